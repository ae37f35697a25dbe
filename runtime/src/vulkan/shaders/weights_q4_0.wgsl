// GGML q4_0: blocks of 32 weights, 18 bytes each: f16 d, then 16 bytes whose low nibbles are
// weights 0..15 and high nibbles weights 16..31. w = d · (nibble − 8).

const Q4_0_BYTES: u32 = 18u;

fn q4_0_nibble(base: u32, j: u32) -> f32 {
    let b = byte_at(base + 2u + (j & 15u));
    let q = select(b & 0xfu, b >> 4u, j >= 16u);
    return f32(i32(q) - 8);
}

fn w_elem(row: u32, col: u32) -> f32 {
    let base = (row * (p.k / 32u) + col / 32u) * Q4_0_BYTES;
    return q4_0_nibble(base, col % 32u) * f16_at(base);
}

fn w_dot32(row: u32, col0: u32, xoff: u32) -> f32 {
    let base = (row * (p.k / 32u) + col0 / 32u) * Q4_0_BYTES;
    var s = 0.0;
    for (var i = 0u; i < 16u; i = i + 1u) {
        let b = byte_at(base + 2u + i);
        s = s + f32(i32(b & 0xfu) - 8) * x[xoff + i] + f32(i32(b >> 4u) - 8) * x[xoff + 16u + i];
    }
    return s * f16_at(base);
}
