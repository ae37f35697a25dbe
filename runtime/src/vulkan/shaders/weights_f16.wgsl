// Dense f16 weights, row-major [N, K], two per word (low half first).

fn w_elem(row: u32, col: u32) -> f32 {
    return f16_at((row * p.k + col) * 2u);
}

fn w_dot32(row: u32, col0: u32, xoff: u32) -> f32 {
    var s = 0.0;
    let n = min(32u, p.k - col0);
    let base = row * p.k + col0;
    for (var i = 0u; i < n; i = i + 1u) {
        s = s + f16_at((base + i) * 2u) * x[xoff + i];
    }
    return s;
}
