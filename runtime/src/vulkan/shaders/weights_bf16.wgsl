// Dense bf16 weights, row-major [N, K]: a bf16 is the top half of an f32.

fn bf16_at(idx: u32) -> f32 {
    let word = w[idx >> 1u];
    let bits = select(word << 16u, word & 0xffff0000u, (idx & 1u) != 0u);
    return bitcast<f32>(bits);
}

fn w_elem(row: u32, col: u32) -> f32 {
    return bf16_at(row * p.k + col);
}

fn w_dot32(row: u32, col0: u32, xoff: u32) -> f32 {
    var s = 0.0;
    let n = min(32u, p.k - col0);
    let base = row * p.k + col0;
    for (var i = 0u; i < n; i = i + 1u) {
        s = s + bf16_at(base + i) * x[xoff + i];
    }
    return s;
}
