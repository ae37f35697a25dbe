// Half-split ("rotate_half", NeoX) rotary embedding over the first `rot` dims of every head of
// x [T, H, hd]; the remaining dims pass through. cos/sin are [T, rot/2] tables the host computes
// per row position (in f64, as the CPU path does: WGSL's cos/sin are only accurate near zero).

struct Params {
    t: u32,
    heads: u32,
    hd: u32,
    rot: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> cos_t: array<f32>;
@group(0) @binding(3) var<storage, read> sin_t: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn rope(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.y * nwg.x * 256u + gid.x;
    if (i >= p.t * p.heads * p.hd) {
        return;
    }
    let d = i % p.hd;
    let head_base = i - d;
    let t = i / (p.heads * p.hd);
    let half = p.rot / 2u;
    if (d < half) {
        let c = cos_t[t * half + d];
        let s = sin_t[t * half + d];
        out[i] = x[i] * c - x[head_base + d + half] * s;
    } else if (d < p.rot) {
        let j = d - half;
        let c = cos_t[t * half + j];
        let s = sin_t[t * half + j];
        out[i] = x[i] * c + x[head_base + j] * s;
    } else {
        out[i] = x[i];
    }
}
