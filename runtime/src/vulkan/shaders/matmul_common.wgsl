// Shared by every matmul kernel: y[T, N] = x[T, K] · W[N, K]ᵀ (+ bias[N]).
// W is the weight's raw bytes (f32, f16, bf16 or GGML blocks) viewed as u32 words; the
// weight-type file that follows this one decodes it (`w_elem`, `w_dot32`). A weight larger than
// one storage binding is split into parts of whole rows: a dispatch covers the n rows of one part,
// which are outputs n_offset.. of the n_total columns of y.

struct Params {
    t: u32,
    n: u32,
    k: u32,
    has_bias: u32,
    n_offset: u32,
    n_total: u32,
    // Threads per output of the mat-vec kernel (unused by mat-mat).
    lanes: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<u32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

fn byte_at(off: u32) -> u32 {
    return (w[off >> 2u] >> ((off & 3u) * 8u)) & 0xffu;
}

fn i8_at(off: u32) -> i32 {
    return (i32(byte_at(off)) << 24u) >> 24u;
}

// An f16 at an even byte offset (GGML blocks keep their f16 fields 2-aligned).
fn f16_at(off: u32) -> f32 {
    let word = w[off >> 2u];
    let bits = select(word & 0xffffu, word >> 16u, (off & 2u) != 0u);
    return unpack2x16float(bits).x;
}
