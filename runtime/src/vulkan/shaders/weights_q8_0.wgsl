// GGML q8_0: blocks of 32 weights, 34 bytes each: f16 d, then 32 × i8 q. w = d · q.

const Q8_0_BYTES: u32 = 34u;

fn w_elem(row: u32, col: u32) -> f32 {
    let base = (row * (p.k / 32u) + col / 32u) * Q8_0_BYTES;
    return f16_at(base) * f32(i8_at(base + 2u + col % 32u));
}

fn w_dot32(row: u32, col0: u32, xoff: u32) -> f32 {
    let base = (row * (p.k / 32u) + col0 / 32u) * Q8_0_BYTES;
    var s = 0.0;
    for (var i = 0u; i < 32u; i = i + 1u) {
        s = s + f32(i8_at(base + 2u + i)) * x[xoff + i];
    }
    return f16_at(base) * s;
}
