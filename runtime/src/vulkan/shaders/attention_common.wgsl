// Shared by attention.wgsl (v1) and attention_tiled.wgsl (v2), joined in front of each: the
// host-side contract (parameters, bindings) and the visibility rule.
//
// q [T, H, hd]; k, v [S, KV, hd] (the KV cache, rows 0..start+T valid); out [T, H, hd].
// Query i sits at absolute position start+i and sees key j iff j <= start+i and, with a window
// w, start+i − j <= w. Scores are q·k · scale.

struct Params {
    t: u32,
    heads: u32,
    kv_heads: u32,
    hd: u32,
    start: u32,
    window: u32, // 0xffffffff: no window
    scale: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

const NO_WINDOW: u32 = 0xffffffffu;
// exp(NEG_BIG − finite) underflows to exactly 0, without the NaNs of −inf − −inf.
const NEG_BIG: f32 = -1.0e30;

// The first key a query at absolute position `pos` sees.
fn window_lo(pos: u32) -> u32 {
    if (p.window != NO_WINDOW && pos > p.window) {
        return pos - p.window;
    }
    return 0u;
}
