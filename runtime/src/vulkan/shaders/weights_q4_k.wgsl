// GGML q4_K: super-blocks of 256 weights, 144 bytes: f16 d, f16 dmin, 12 bytes of packed 6-bit
// (scale, min) pairs for 8 sub-blocks of 32, then 128 bytes of nibbles. Each 64-weight chunk c
// uses bytes 32c..32c+31: low nibbles for sub-block 2c, high nibbles for 2c+1.
// w = d · scale · nibble − dmin · min.

const Q4_K_BYTES: u32 = 144u;

// The 6-bit (scale, min) of sub-block j (GGML get_scale_min_k4).
fn q4_k_scale_min(base: u32, j: u32) -> vec2<f32> {
    let s = base + 4u;
    if (j < 4u) {
        return vec2<f32>(f32(byte_at(s + j) & 63u), f32(byte_at(s + j + 4u) & 63u));
    }
    let sc = (byte_at(s + j + 4u) & 0xfu) | ((byte_at(s + j - 4u) >> 6u) << 4u);
    let mn = (byte_at(s + j + 4u) >> 4u) | ((byte_at(s + j) >> 6u) << 4u);
    return vec2<f32>(f32(sc), f32(mn));
}

fn w_elem(row: u32, col: u32) -> f32 {
    let base = (row * (p.k / 256u) + col / 256u) * Q4_K_BYTES;
    let idx = col % 256u;
    let sub = idx / 32u;
    let sm = q4_k_scale_min(base, sub);
    let b = byte_at(base + 16u + (sub / 2u) * 32u + idx % 32u);
    let q = select(b & 0xfu, b >> 4u, (sub & 1u) != 0u);
    return f16_at(base) * sm.x * f32(q) - f16_at(base + 2u) * sm.y;
}

fn w_dot32(row: u32, col0: u32, xoff: u32) -> f32 {
    let base = (row * (p.k / 256u) + col0 / 256u) * Q4_K_BYTES;
    let sub = (col0 % 256u) / 32u;
    let sm = q4_k_scale_min(base, sub);
    let scale = f16_at(base) * sm.x;
    let offset = f16_at(base + 2u) * sm.y;
    let qbase = base + 16u + (sub / 2u) * 32u;
    let shift = (sub & 1u) * 4u;
    var s = 0.0;
    for (var i = 0u; i < 32u; i = i + 1u) {
        let q = (byte_at(qbase + i) >> shift) & 0xfu;
        s = s + (scale * f32(q) - offset) * x[xoff + i];
    }
    return s;
}
