// Mat-vec (decode, T = 1; more rows go through dispatch z): one workgroup of 64 threads per
// output n; threads stride over 32-wide chunks of K (one GGML block or sub-block each) and
// reduce in shared memory.

const MV_WG: u32 = 64u;
var<workgroup> partial: array<f32, MV_WG>;

@compute @workgroup_size(64)
fn matvec(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_id) lid3: vec3<u32>) {
    let n = wg.y * nwg.x + wg.x;
    let t = wg.z;
    if (n >= p.n || t >= p.t) {
        return;
    }
    let lid = lid3.x;
    let chunks = (p.k + 31u) / 32u;
    var s = 0.0;
    for (var c = lid; c < chunks; c = c + MV_WG) {
        s = s + w_dot32(n, c * 32u, t * p.k + c * 32u);
    }
    partial[lid] = s;
    workgroupBarrier();
    for (var st = MV_WG / 2u; st > 0u; st = st >> 1u) {
        if (lid < st) {
            partial[lid] = partial[lid] + partial[lid + st];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        var r = partial[0];
        if (p.has_bias != 0u) {
            r = r + bias[p.n_offset + n];
        }
        y[t * p.n_total + p.n_offset + n] = r;
    }
}
