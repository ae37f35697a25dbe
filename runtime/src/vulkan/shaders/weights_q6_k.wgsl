// GGML q6_K: super-blocks of 256 weights, 210 bytes: 128 bytes ql (low 4 bits), 64 bytes qh
// (high 2 bits), 16 × i8 scales (one per 16 weights), f16 d. Each half n of 128 weights uses
// ql[64n..], qh[32n..], scales[8n..]; within it, quarter r (32 weights) takes the low (r < 2) or
// high nibble of ql[l + 32·(r & 1)] and bits 2r..2r+1 of qh[l]. w = d · scale · (q − 32).

const Q6_K_BYTES: u32 = 210u;

fn q6_k_value(base: u32, idx: u32) -> f32 {
    let half = idx / 128u;
    let r = (idx % 128u) / 32u;
    let l = idx % 32u;
    let qlb = byte_at(base + 64u * half + l + 32u * (r & 1u));
    let low = select(qlb & 0xfu, qlb >> 4u, r >= 2u);
    let high = (byte_at(base + 128u + 32u * half + l) >> (2u * r)) & 3u;
    let q = i32(low | (high << 4u)) - 32;
    let sc = i8_at(base + 192u + 8u * half + l / 16u + 2u * r);
    return f16_at(base + 208u) * f32(sc) * f32(q);
}

fn w_elem(row: u32, col: u32) -> f32 {
    let base = (row * (p.k / 256u) + col / 256u) * Q6_K_BYTES;
    return q6_k_value(base, col % 256u);
}

fn w_dot32(row: u32, col0: u32, xoff: u32) -> f32 {
    let base = (row * (p.k / 256u) + col0 / 256u) * Q6_K_BYTES;
    let idx0 = col0 % 256u;
    let half = idx0 / 128u;
    let r = (idx0 % 128u) / 32u;
    let d = f16_at(base + 208u);
    let ql = base + 64u * half + 32u * (r & 1u);
    let qh = base + 128u + 32u * half;
    let nib = select(0u, 4u, r >= 2u);
    let sc = base + 192u + 8u * half + 2u * r;
    var s = 0.0;
    for (var l = 0u; l < 32u; l = l + 1u) {
        let low = (byte_at(ql + l) >> nib) & 0xfu;
        let high = (byte_at(qh + l) >> (2u * r)) & 3u;
        let q = i32(low | (high << 4u)) - 32;
        s = s + d * f32(i8_at(sc + l / 16u)) * f32(q) * x[xoff + l];
    }
    return s;
}
