// Mat-vec (decode, T = 1; more rows go through dispatch z): a workgroup of 64 threads covers
// 64 / L outputs with L = p.lanes threads each (a power of two: as many as the row has 32-wide
// chunks, at most 64, so short rows leave no thread idle). Each thread strides over its row's
// chunks (one GGML block or sub-block each); the L partial sums reduce in shared memory.

const MV_WG: u32 = 64u;
var<workgroup> partial: array<f32, MV_WG>;

@compute @workgroup_size(64)
fn matvec(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_id) lid3: vec3<u32>) {
    let lanes = p.lanes;
    let lid = lid3.x;
    let lane = lid % lanes;
    let n = (wg.y * nwg.x + wg.x) * (MV_WG / lanes) + lid / lanes;
    let t = wg.z;
    let in_range = n < p.n && t < p.t;
    var s = 0.0;
    if (in_range) {
        let chunks = (p.k + 31u) / 32u;
        for (var c = lane; c < chunks; c = c + lanes) {
            s = s + w_dot32(n, c * 32u, t * p.k + c * 32u);
        }
    }
    partial[lid] = s;
    workgroupBarrier();
    for (var st = lanes / 2u; st > 0u; st = st >> 1u) {
        if (lane < st) {
            partial[lid] = partial[lid] + partial[lid + st];
        }
        workgroupBarrier();
    }
    if (in_range && lane == 0u) {
        var r = partial[lid];
        if (p.has_bias != 0u) {
            r = r + bias[p.n_offset + n];
        }
        y[t * p.n_total + p.n_offset + n] = r;
    }
}
