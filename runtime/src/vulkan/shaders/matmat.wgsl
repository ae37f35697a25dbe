// Tiled mat-mat (prefill, T > 1): a workgroup of 16×16 threads computes a 64×64 tile of y,
// walking K in steps of 32. Each step stages x[64 rows, 32] and W[64 rows, 32] (dequantized
// once per element) in shared memory, stored k-major so the inner loop reads contiguous runs;
// every thread then accumulates a 4×4 block of outputs (rows ty+16i, columns tx+16j).
// 2 × 8 KiB of shared memory: within WebGPU's default 16 KiB.

const BM: u32 = 64u;
const BN: u32 = 64u;
const BK: u32 = 32u;
var<workgroup> xs: array<f32, 2048>; // [BK][BM]
var<workgroup> ws: array<f32, 2048>; // [BK][BN]

@compute @workgroup_size(256)
fn matmat(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
    let lid = lid3.x;
    let m0 = wg.y * BM;
    let n0 = wg.x * BN;
    let tx = lid % 16u;
    let ty = lid / 16u;
    var acc: array<f32, 16>;
    for (var i = 0u; i < 16u; i = i + 1u) {
        acc[i] = 0.0;
    }
    for (var k0 = 0u; k0 < p.k; k0 = k0 + BK) {
        for (var r = 0u; r < 8u; r = r + 1u) {
            let e = lid + r * 256u;
            let row = e / BK;
            let kk = e % BK;
            let gk = k0 + kk;
            var xv = 0.0;
            if (m0 + row < p.t && gk < p.k) {
                xv = x[(m0 + row) * p.k + gk];
            }
            xs[kk * BM + row] = xv;
            var wv = 0.0;
            if (n0 + row < p.n && gk < p.k) {
                wv = w_elem(n0 + row, gk);
            }
            ws[kk * BN + row] = wv;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk = kk + 1u) {
            var a: array<f32, 4>;
            var b: array<f32, 4>;
            for (var i = 0u; i < 4u; i = i + 1u) {
                a[i] = xs[kk * BM + ty + 16u * i];
                b[i] = ws[kk * BN + tx + 16u * i];
            }
            for (var i = 0u; i < 4u; i = i + 1u) {
                for (var j = 0u; j < 4u; j = j + 1u) {
                    acc[i * 4u + j] = acc[i * 4u + j] + a[i] * b[j];
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i = i + 1u) {
        let m = m0 + ty + 16u * i;
        if (m < p.t) {
            for (var j = 0u; j < 4u; j = j + 1u) {
                let n = n0 + tx + 16u * j;
                if (n < p.n) {
                    var r = acc[i * 4u + j];
                    if (p.has_bias != 0u) {
                        r = r + bias[p.n_offset + n];
                    }
                    y[m * p.n_total + p.n_offset + n] = r;
                }
            }
        }
    }
}
