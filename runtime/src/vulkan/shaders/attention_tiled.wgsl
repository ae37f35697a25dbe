// Causal attention with GQA, an optional sliding window and an online softmax (v2, head dims up
// to 128), the same contract as v1.
// (Parameters, bindings and the visibility rule: attention_common.wgsl.)
//
// v2: a workgroup takes 8 query rows that share one KV head, the rows R = i·G + g (position i,
// head g of the group of G = H/KV query heads), so GQA heads read each key once. Keys stream
// through shared memory in tiles of 16: K tile → 8×16 scores → per-row running max/normaliser
// update → V tile (same shared buffer) → rescaled accumulation. Per tile, every key and value is
// read from global memory once for 8 rows instead of once per row (v1). On lavapipe (2 busy CPU
// cores) the 2304-token prefill with 32/8 heads, hd 128 took 277 s against v1's 311 s: lavapipe
// is bound by its per-lane shared-memory gathers, not by global reads; real GPUs not measured
// yet. 12.6 KiB of shared memory.

const ROWS: u32 = 8u;
const BK: u32 = 16u;
const HD_MAX: u32 = 128u;
const WG: u32 = 128u; // ROWS × BK: one thread per score

var<workgroup> q_sh: array<f32, 1024>; // [ROWS][HD_MAX]
var<workgroup> kv_sh: array<f32, 2048>; // K tile [HD_MAX][BK], then V tile [BK][HD_MAX]
var<workgroup> p_sh: array<f32, 128>; // [ROWS][BK]
var<workgroup> m_sh: array<f32, 8>;
var<workgroup> l_sh: array<f32, 8>;
var<workgroup> corr_sh: array<f32, 8>;

@compute @workgroup_size(128)
fn attend_tiled(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
    let lid = lid3.x;
    let kvh = wg.x;
    let group = p.heads / p.kv_heads;
    let total_rows = p.t * group;
    let r0 = wg.y * ROWS;
    if (kvh >= p.kv_heads || r0 >= total_rows) {
        return;
    }
    let rows = min(ROWS, total_rows - r0);
    // Positions grow with the row index, so the first row has the lowest visible key and the
    // last row the highest.
    let lo = window_lo(p.start + r0 / group);
    let hi = p.start + (r0 + rows - 1u) / group;

    for (var e = lid; e < ROWS * HD_MAX; e = e + WG) {
        let r = e / HD_MAX;
        let d = e % HD_MAX;
        var val = 0.0;
        if (r < rows && d < p.hd) {
            let row = r0 + r;
            let h = kvh * group + row % group;
            val = q[((row / group) * p.heads + h) * p.hd + d];
        }
        q_sh[e] = val;
    }
    if (lid < ROWS) {
        m_sh[lid] = NEG_BIG;
        l_sh[lid] = 0.0;
    }
    var acc: array<f32, 8>;
    for (var o = 0u; o < 8u; o = o + 1u) {
        acc[o] = 0.0;
    }
    workgroupBarrier();

    // This thread's score: row sr, key sj of the tile.
    let sr = lid / BK;
    let sj = lid % BK;
    let s_pos = p.start + (r0 + sr) / group;
    let s_lo = window_lo(s_pos);

    for (var j0 = lo; j0 <= hi; j0 = j0 + BK) {
        // K is stored transposed ([d][key]) so the 16 threads scoring one row read adjacent words.
        for (var e = lid; e < BK * HD_MAX; e = e + WG) {
            let jj = e / HD_MAX;
            let d = e % HD_MAX;
            var val = 0.0;
            if (j0 + jj <= hi && d < p.hd) {
                val = k[((j0 + jj) * p.kv_heads + kvh) * p.hd + d];
            }
            kv_sh[d * BK + jj] = val;
        }
        workgroupBarrier();

        let j = j0 + sj;
        var s = NEG_BIG;
        if (sr < rows && j <= s_pos && j >= s_lo) {
            var dot = 0.0;
            for (var d = 0u; d < p.hd; d = d + 1u) {
                dot = dot + q_sh[sr * HD_MAX + d] * kv_sh[d * BK + sj];
            }
            s = dot * p.scale;
        }
        p_sh[lid] = s;
        workgroupBarrier();

        if (lid < ROWS) {
            let m_old = m_sh[lid];
            var m_new = m_old;
            for (var jj = 0u; jj < BK; jj = jj + 1u) {
                m_new = max(m_new, p_sh[lid * BK + jj]);
            }
            var sum = 0.0;
            for (var jj = 0u; jj < BK; jj = jj + 1u) {
                let sv = p_sh[lid * BK + jj];
                var pv = 0.0;
                if (sv > 0.5 * NEG_BIG) {
                    pv = exp(sv - m_new);
                }
                p_sh[lid * BK + jj] = pv;
                sum = sum + pv;
            }
            let corr = exp(m_old - m_new);
            corr_sh[lid] = corr;
            l_sh[lid] = l_sh[lid] * corr + sum;
            m_sh[lid] = m_new;
        }
        // The K tile is no longer needed: reuse its memory for V.
        for (var e = lid; e < BK * HD_MAX; e = e + WG) {
            let jj = e / HD_MAX;
            let d = e % HD_MAX;
            var val = 0.0;
            if (j0 + jj <= hi && d < p.hd) {
                val = v[((j0 + jj) * p.kv_heads + kvh) * p.hd + d];
            }
            kv_sh[e] = val;
        }
        workgroupBarrier();

        for (var o = 0u; o < 8u; o = o + 1u) {
            let idx = lid + o * WG;
            let r = idx / HD_MAX;
            let d = idx % HD_MAX;
            var a = acc[o] * corr_sh[r];
            for (var jj = 0u; jj < BK; jj = jj + 1u) {
                a = a + p_sh[r * BK + jj] * kv_sh[jj * HD_MAX + d];
            }
            acc[o] = a;
        }
        // p_sh, corr_sh and kv_sh are rewritten by the next tile.
        workgroupBarrier();
    }

    for (var o = 0u; o < 8u; o = o + 1u) {
        let idx = lid + o * WG;
        let r = idx / HD_MAX;
        let d = idx % HD_MAX;
        if (r < rows && d < p.hd) {
            let row = r0 + r;
            let h = kvh * group + row % group;
            out[((row / group) * p.heads + h) * p.hd + d] = acc[o] / l_sh[r];
        }
    }
}
