// RMSNorm and LayerNorm over the last dimension: one workgroup per row, f32 throughout.
// rms:   y = x / sqrt(mean(x²) + eps) · w
// layer: y = (x − mean) / sqrt(var + eps) · w (+ b when has_bias)

struct Params {
    rows: u32,
    dim: u32,
    eps: f32,
    has_bias: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

const WG: u32 = 256u;
var<workgroup> red: array<f32, WG>;

fn reduce_sum(lid: u32, v: f32) -> f32 {
    red[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            red[lid] = red[lid] + red[lid + s];
        }
        workgroupBarrier();
    }
    let total = red[0];
    // Everyone has read red[0] before the next reduction overwrites it.
    workgroupBarrier();
    return total;
}

fn row_of(wg: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wg.y * nwg.x + wg.x;
}

@compute @workgroup_size(256)
fn rms_norm(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid3: vec3<u32>) {
    let row = row_of(wg, nwg);
    if (row >= p.rows) {
        return;
    }
    let lid = lid3.x;
    let base = row * p.dim;
    var ss = 0.0;
    for (var i = lid; i < p.dim; i = i + WG) {
        let v = x[base + i];
        ss = ss + v * v;
    }
    let mean_sq = reduce_sum(lid, ss) / f32(p.dim);
    let denom = sqrt(mean_sq + p.eps);
    for (var i = lid; i < p.dim; i = i + WG) {
        out[base + i] = x[base + i] / denom * weight[i];
    }
}

@compute @workgroup_size(256)
fn layer_norm(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid3: vec3<u32>) {
    let row = row_of(wg, nwg);
    if (row >= p.rows) {
        return;
    }
    let lid = lid3.x;
    let base = row * p.dim;
    var s = 0.0;
    for (var i = lid; i < p.dim; i = i + WG) {
        s = s + x[base + i];
    }
    let mean = reduce_sum(lid, s) / f32(p.dim);
    var sc = 0.0;
    for (var i = lid; i < p.dim; i = i + WG) {
        let c = x[base + i] - mean;
        sc = sc + c * c;
    }
    let denom = sqrt(reduce_sum(lid, sc) / f32(p.dim) + p.eps);
    for (var i = lid; i < p.dim; i = i + WG) {
        var y = (x[base + i] - mean) / denom * weight[i];
        if (p.has_bias != 0u) {
            y = y + bias[i];
        }
        out[base + i] = y;
    }
}
