// Causal attention with GQA, an optional sliding window and an online softmax (v1).
// (Parameters, bindings and the visibility rule: attention_common.wgsl.)
//
// v1: one workgroup of 64 threads per (head, query row). Keys stream through in tiles of 64, one
// key per thread; the running max m, normaliser l and the output accumulator are rescaled per
// tile (flash-attention style), so no T×S score matrix exists anywhere. Each thread owns the
// output dims lid, lid+64, lid+128, lid+192 (head dims up to 256).

const TILE: u32 = 64u;
const MAX_HD: u32 = 256u;

var<workgroup> q_sh: array<f32, MAX_HD>;
var<workgroup> p_sh: array<f32, TILE>;
var<workgroup> red: array<f32, TILE>;

fn reduce_max(lid: u32, x: f32) -> f32 {
    red[lid] = x;
    workgroupBarrier();
    for (var s = TILE / 2u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            red[lid] = max(red[lid], red[lid + s]);
        }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}

fn reduce_sum(lid: u32, x: f32) -> f32 {
    red[lid] = x;
    workgroupBarrier();
    for (var s = TILE / 2u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            red[lid] = red[lid] + red[lid + s];
        }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}

@compute @workgroup_size(64)
fn attend(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
    let lid = lid3.x;
    let h = wg.x;
    let i = wg.y;
    if (h >= p.heads || i >= p.t) {
        return;
    }
    let kvh = h / (p.heads / p.kv_heads);
    let pos = p.start + i;
    let lo = window_lo(pos);
    let q_base = (i * p.heads + h) * p.hd;
    for (var d = lid; d < p.hd; d = d + TILE) {
        q_sh[d] = q[q_base + d];
    }
    workgroupBarrier();

    var m = NEG_BIG;
    var l = 0.0;
    var acc = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
    for (var j0 = lo; j0 <= pos; j0 = j0 + TILE) {
        let j = j0 + lid;
        var s = NEG_BIG;
        if (j <= pos) {
            let k_base = (j * p.kv_heads + kvh) * p.hd;
            var dot = 0.0;
            for (var d = 0u; d < p.hd; d = d + 1u) {
                dot = dot + q_sh[d] * k[k_base + d];
            }
            s = dot * p.scale;
        }
        let m_new = max(m, reduce_max(lid, s));
        var pj = 0.0;
        if (j <= pos) {
            pj = exp(s - m_new);
        }
        let corr = exp(m - m_new);
        p_sh[lid] = pj;
        l = l * corr + reduce_sum(lid, pj);
        // reduce_sum ends with a barrier, so every p_sh entry is visible here.
        let n = min(TILE, pos + 1u - j0);
        for (var c = 0u; c < 4u; c = c + 1u) {
            let d = lid + c * TILE;
            if (d < p.hd) {
                var a = acc[c] * corr;
                for (var jj = 0u; jj < n; jj = jj + 1u) {
                    a = a + p_sh[jj] * v[((j0 + jj) * p.kv_heads + kvh) * p.hd + d];
                }
                acc[c] = a;
            }
        }
        m = m_new;
        // p_sh is rewritten by the next tile.
        workgroupBarrier();
    }
    for (var c = 0u; c < 4u; c = c + 1u) {
        let d = lid + c * TILE;
        if (d < p.hd) {
            out[q_base + d] = acc[c] / l;
        }
    }
}
