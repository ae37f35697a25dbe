// Dense f32 weights, row-major [N, K].

fn w_elem(row: u32, col: u32) -> f32 {
    return bitcast<f32>(w[row * p.k + col]);
}

fn w_dot32(row: u32, col0: u32, xoff: u32) -> f32 {
    var s = 0.0;
    let n = min(32u, p.k - col0);
    let base = row * p.k + col0;
    for (var i = 0u; i < n; i = i + 1u) {
        s = s + bitcast<f32>(w[base + i]) * x[xoff + i];
    }
    return s;
}
