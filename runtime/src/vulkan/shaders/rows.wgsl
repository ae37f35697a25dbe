// Row moves by index, for f32 rows of `dim` values.
// gather:  out[t, :] = table[ids[t], :]  (embedding lookups; picking a modality's rows). A table
//          larger than one storage binding is split into parts of whole rows; each dispatch copies
//          the ids that fall in its part (rows row0..row0+part_rows).
// scatter: out[ids[t], :] = table[t, :]  (putting a modality's rows back in sequence order).
// Ids are checked on the host (in range; for scatter, distinct).

struct Params {
    rows: u32,
    dim: u32,
    row0: u32,
    part_rows: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read> table: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

// Element i of the `rows × dim` index space of this dispatch, or none past its end.
fn element(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.y * nwg.x * 256u + gid.x;
}

@compute @workgroup_size(256)
fn gather(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = element(gid, nwg);
    if (i >= p.rows * p.dim) {
        return;
    }
    let id = ids[i / p.dim];
    if (id >= p.row0 && id - p.row0 < p.part_rows) {
        out[i] = table[(id - p.row0) * p.dim + i % p.dim];
    }
}

@compute @workgroup_size(256)
fn scatter(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = element(gid, nwg);
    if (i >= p.rows * p.dim) {
        return;
    }
    out[ids[i / p.dim] * p.dim + i % p.dim] = table[i];
}
