//! Our CPU kernels for GGUF block types that candle 0.11 leaves slow on x86-64 (this module is
//! compiled there only): q4_0 prefill (AVX-512 VNNI, or AVX2), q4_0 and q8_0 decode (VNNI).
//!
//! candle 0.11 repacks q4_k, q6_k and q8_0 weights for tiled prefill kernels on x86 but multiplies
//! q4_0 block by block (our q4_0 prefill ran at 0.12 of llama.cpp's, 9× slower than q4_k: README
//! benchmarks). Here a tile of weight rows is expanded once to one byte per weight (the nibble,
//! 0..15) and multiplied against every activation row with `vpdpbusd` (64 byte products per
//! instruction; on AVX2, `vpmaddubsw` + `vpmaddwd` for 32). Activations are rounded to q8_0
//! blocks first, exactly as candle's and llama.cpp's q4_0 kernels round them; q4_0's offset of 8
//! is taken out per block with the activation block's sum. Measured at pp128 on one thread of
//! this project's machine (AMD EPYC): candle 20.5 tokens/s, AVX2 66.8, VNNI 72.8.
//!
//! Decode (1–3 rows) gains nothing from expanded tiles; with VNNI each weight row is unpacked in
//! registers straight from its blocks, two blocks per `vpdpbusd`, against activations reordered to
//! the unpacked order (1 thread: candle 18.7 tokens/s, this 39.2). Without VNNI decode keeps
//! candle's kernel. q8_0 decode works the same way on the stored signed bytes read as unsigned
//! (sign bit flipped, 128 taken out per block like q4_0's 8): 2 threads 42-44 → 52 tokens/s on
//! the 0.5B model (1 thread: 29 → 30, bound by memory there).

use crate::error::Result;
use candle_core::quantized::{GgmlDType, QMatMul};
use candle_core::{Device, Tensor};

const QK: usize = 32;
/// Bytes of a q4_0 block: an f16 scale and 16 bytes of nibbles.
const BLOCK_BYTES: usize = 18;
/// Bytes of a q8_0 block: an f16 scale and 32 signed bytes.
const Q8_0_BLOCK_BYTES: usize = 34;
/// What a stored q4_0 nibble adds to its weight (w = d · (nibble − 8)).
const Q4_0_OFFSET: i32 = 8;
/// What reading a q8_0 byte as unsigned adds (w + 128, by flipping the sign bit).
const Q8_0_OFFSET: i32 = 128;
/// Weight rows expanded at a time (their bytes stay in the L2 cache while every activation row
/// passes over them).
const TILE_ROWS: usize = 16;
/// Fewer activation rows than this (decode) read the weights straight from their blocks instead
/// of expanding tiles, which pays off only over several rows.
const MIN_ROWS: usize = 4;

/// A kernel: `(x, rows, k, stored weight, n, isa) → y [rows, n]`.
type KernelFn = fn(&[f32], usize, usize, &[u8], usize, Isa) -> Vec<f32>;

/// `x · Wᵀ` for a q4_0 or q8_0 `W` on the CPU when one of these kernels applies, else `None`
/// (candle's kernel then runs).
pub(crate) fn try_forward(m: &QMatMul, x: &Tensor) -> Result<Option<Tensor>> {
    let QMatMul::QTensor(q) = m else {
        return Ok(None);
    };
    let (n, k) = match q.shape().dims() {
        [n, k] => (*n, *k),
        _ => return Ok(None),
    };
    let dims = x.dims();
    let rows = x.elem_count() / k.max(1);
    if !matches!(q.dtype(), GgmlDType::Q4_0 | GgmlDType::Q8_0)
        || !q.device().is_cpu()
        || !x.device().is_cpu()
        || dims.last() != Some(&k)
        || k == 0
        || !k.is_multiple_of(QK)
        || rows == 0
    {
        return Ok(None);
    }
    let Some(isa) = isa() else {
        return Ok(None);
    };
    // Which kernel, if any: q8_0 prefill stays with candle, which repacks q8_0 for its x86 tiles
    // (faster than ours); decode needs VNNI.
    let run: KernelFn = match (q.dtype(), rows < MIN_ROWS, isa) {
        (GgmlDType::Q4_0, false, _) => matmul,
        (GgmlDType::Q4_0, true, Isa::Vnni) => {
            |x, rows, k, w, n, _| matvec::<false>(x, rows, k, w, n)
        }
        (GgmlDType::Q8_0, true, Isa::Vnni) => {
            |x, rows, k, w, n, _| matvec::<true>(x, rows, k, w, n)
        }
        _ => return Ok(None),
    };
    let xs: Vec<f32> = x.flatten_all()?.to_vec1()?;
    let data = q.data()?;
    let y = run(&xs, rows, k, &data, n, isa);
    let mut shape = dims.to_vec();
    if let Some(last) = shape.last_mut() {
        *last = n;
    }
    Ok(Some(Tensor::from_vec(y, shape, &Device::Cpu)?))
}

/// The vector instructions the kernel runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Isa {
    /// AVX-512 VNNI: 64 byte products per `vpdpbusd`.
    Vnni,
    /// AVX2: `vpmaddubsw` + `vpmaddwd`, 32 byte products per pair of instructions.
    Avx2,
}

/// What this CPU has, best first; `None` leaves q4_0 to candle.
fn isa() -> Option<Isa> {
    use std::arch::is_x86_feature_detected as has;
    if has!("avx512f") && has!("avx512bw") && has!("avx512vl") && has!("avx512vnni") && has!("f16c")
    {
        return Some(Isa::Vnni);
    }
    if has!("avx2") && has!("fma") {
        return Some(Isa::Avx2);
    }
    None
}

/// Lanes of one vector step: two q4_0 blocks (64 bytes) give 16 i32 partial sums, 8 per block.
const LANES: usize = 16;

/// Activation rows rounded to q8_0 blocks, laid out for the vector loop: rows padded to whole
/// block pairs (zeros), and per pair 16 lanes of scale (8 per block) and 16 lanes of the offset
/// term, which starts each pair's integer sum.
struct Q8Rows {
    /// `rows × padded_k` bytes.
    q: Vec<i8>,
    /// Per row and pair: the two blocks' scales, each on its 8 lanes.
    scale: Vec<f32>,
    /// Per row and pair: `−c · Σq` of each block on its first lane, for weights stored as
    /// unsigned bytes `w + c` (q4_0's nibbles: c = 8; q8_0's bytes read as unsigned: c = 128).
    offset: Vec<i32>,
}

/// Block pairs of a `k`-wide row.
fn pairs(k: usize) -> usize {
    (k / QK).div_ceil(2)
}

/// Rounds like GGML's `quantize_row_q8_0`: `d = amax / 127`, `q = round(x / d)`, `d` kept as f16.
fn quantize_rows(x: &[f32], rows: usize, k: usize, stored_offset: i32) -> Q8Rows {
    let np = pairs(k);
    let padded = np * 2 * QK;
    let mut out = Q8Rows {
        q: vec![0; rows * padded],
        scale: vec![0.0; rows * np * LANES],
        offset: vec![0; rows * np * LANES],
    };
    for r in 0..rows {
        for (b, chunk) in x[r * k..(r + 1) * k].chunks_exact(QK).enumerate() {
            let amax = chunk.iter().fold(0f32, |m, v| m.max(v.abs()));
            let d = amax / 127.0;
            let id = if d > 0.0 { 1.0 / d } else { 0.0 };
            let mut sum = 0i32;
            for (i, v) in chunk.iter().enumerate() {
                let q = (v * id).round() as i8;
                out.q[r * padded + b * QK + i] = q;
                sum += q as i32;
            }
            // The block keeps its scale as an f16, as GGML's q8_0 blocks do.
            let d = half::f16::from_f32(d).to_f32();
            let lane0 = (r * np + b / 2) * LANES + (b % 2) * 8;
            out.scale[lane0..lane0 + 8].fill(d);
            out.offset[lane0] = -stored_offset * sum;
        }
    }
    out
}

/// Where the pool's threads write their disjoint parts of the output.
#[derive(Clone, Copy)]
struct Out(*mut f32);
// SAFETY: every element is written by exactly one work item (disjoint column ranges) while the
// owning Vec outlives the pool call, which returns only when all items are done.
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

impl Out {
    /// # Safety
    /// `i` is inside the output and no other thread writes it.
    unsafe fn write(self, i: usize, v: f32) {
        unsafe { *self.0.add(i) = v }
    }
}

/// `y [rows, n] = x [rows, k] · Wᵀ` with `w` the q4_0 blocks of an `[n, k]` weight, on candle's
/// CPU thread pool (the threads its own kernels use, sized by `--threads`).
fn matmul(x: &[f32], rows: usize, k: usize, w: &[u8], n: usize, isa: Isa) -> Vec<f32> {
    let xq = quantize_rows(x, rows, k, Q4_0_OFFSET);
    let mut y = vec![0f32; rows * n];
    let out = Out(y.as_mut_ptr());
    candle_core::utils::barrier_pool().execute_chunked(n.div_ceil(TILE_ROWS), |tiles| {
        let n0 = tiles.start * TILE_ROWS;
        let n1 = (tiles.end * TILE_ROWS).min(n);
        let part = columns(&xq, rows, k, w, n0, n1, isa);
        let width = n1 - n0;
        for r in 0..rows {
            for c in 0..width {
                // SAFETY: columns n0..n1 belong to this work item alone.
                unsafe { out.write(r * n + n0 + c, part[r * width + c]) };
            }
        }
    });
    y
}

/// Activation rows reordered to match two stored q4_0 blocks unpacked side by side: per pair of
/// blocks (b, b + 1) the low nibbles of b, of b + 1, the high nibbles of b, of b + 1 (weights
/// 0..16 of b, 0..16 of b + 1, 16..32 of b, 16..32 of b + 1), scales and offsets on the same
/// groups of 4 lanes.
fn nibble_order(xq: &Q8Rows, rows: usize, k: usize) -> Q8Rows {
    let np = pairs(k);
    let padded = np * 2 * QK;
    let mut out = Q8Rows {
        q: vec![0; rows * padded],
        scale: vec![0.0; rows * np * LANES],
        offset: vec![0; rows * np * LANES],
    };
    for r in 0..rows {
        for p in 0..np {
            let at = r * padded + p * 64;
            let (src, dst) = (&xq.q[at..at + 64], &mut out.q[at..at + 64]);
            dst[..16].copy_from_slice(&src[..16]);
            dst[16..32].copy_from_slice(&src[32..48]);
            dst[32..48].copy_from_slice(&src[16..32]);
            dst[48..].copy_from_slice(&src[48..]);
            let l = (r * np + p) * LANES;
            let (d0, d1) = (xq.scale[l], xq.scale[l + 8]);
            for (g, d) in [d0, d1, d0, d1].into_iter().enumerate() {
                out.scale[l + 4 * g..l + 4 * g + 4].fill(d);
            }
            out.offset[l] = xq.offset[l];
            out.offset[l + 4] = xq.offset[l + 8];
        }
    }
    out
}

/// Activation rows (fewer than [`MIN_ROWS`]) × a q4_0 (`Q8_0` false) or q8_0 weight, reading each
/// weight row straight from its blocks once for all rows (AVX-512 VNNI only; `try_forward`
/// checks). q8_0's prefill stays with candle's repacked tiles, which already do well.
fn matvec<const Q8_0: bool>(x: &[f32], rows: usize, k: usize, w: &[u8], n: usize) -> Vec<f32> {
    let xq = if Q8_0 {
        quantize_rows(x, rows, k, Q8_0_OFFSET)
    } else {
        nibble_order(&quantize_rows(x, rows, k, Q4_0_OFFSET), rows, k)
    };
    let blocks = k / QK;
    let row_bytes = blocks * if Q8_0 { Q8_0_BLOCK_BYTES } else { BLOCK_BYTES };
    decode_outputs(rows, n, |j| {
        let wr = &w[j * row_bytes..(j + 1) * row_bytes];
        // SAFETY: only reached with Isa::Vnni detected (try_forward).
        unsafe {
            by_rows(rows, |r| match r {
                1 => row_vnni::<1, Q8_0>(wr, blocks, &xq).to_vec(),
                2 => row_vnni::<2, Q8_0>(wr, blocks, &xq).to_vec(),
                _ => row_vnni::<3, Q8_0>(wr, blocks, &xq).to_vec(),
            })
        }
    })
}

/// The first `rows` results of `f(rows)` (1 to 3 rows: a kernel instance per count).
fn by_rows(rows: usize, f: impl Fn(usize) -> Vec<f32>) -> [f32; MIN_ROWS - 1] {
    let mut v = [0f32; MIN_ROWS - 1];
    let got = f(rows.clamp(1, MIN_ROWS - 1));
    v[..got.len()].copy_from_slice(&got);
    v
}

/// `y [rows, n]` with output column j of every row from `f(j)`, on candle's CPU thread pool.
fn decode_outputs(
    rows: usize,
    n: usize,
    f: impl Fn(usize) -> [f32; MIN_ROWS - 1] + Sync,
) -> Vec<f32> {
    let mut y = vec![0f32; rows * n];
    let out = Out(y.as_mut_ptr());
    candle_core::utils::barrier_pool().execute_chunked(n, |outputs| {
        for j in outputs {
            for (r, v) in f(j).iter().take(rows).enumerate() {
                // SAFETY: output column j belongs to this work item alone.
                unsafe { out.write(r * n + j, *v) };
            }
        }
    });
    y
}

/// One stored weight row against `R` (at most three) activation rows: q4_0 blocks against rows
/// in [`nibble_order`], or (`Q8_0`) q8_0 blocks, read as unsigned with their sign bit flipped
/// (w + 128), against rows in the pair layout. `R` and `Q8_0` are constants so the accumulators
/// stay in registers and the format's branches compile away.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,f16c")]
unsafe fn row_vnni<const R: usize, const Q8_0: bool>(
    w: &[u8],
    blocks: usize,
    x: &Q8Rows,
) -> [f32; R] {
    use std::arch::x86_64::*;
    let block_bytes = if Q8_0 { Q8_0_BLOCK_BYTES } else { BLOCK_BYTES };
    let np = blocks.div_ceil(2);
    let low = _mm256_set1_epi8(0x0f);
    let flip = _mm256_set1_epi8(i8::MIN);
    let mut acc = [_mm512_setzero_ps(); R];
    for p in 0..np {
        let base = 2 * p * block_bytes;
        let second = 2 * p + 1 < blocks;
        let next = base + block_bytes;
        // SAFETY: a block is an f16 scale then its weight bytes (16 nibble bytes for q4_0, 32
        // for q8_0); block 2p+1 is read only when it exists; the activation slices hold `np`
        // whole pairs per row.
        unsafe {
            // Weight bytes start after a block's 2-byte scale (no closure here: one would not
            // be inlined into this target-feature function).
            // `q1` may point past the row when block 2p is the last; it is read only if `second`.
            let (q0, q1) = (w.as_ptr().add(base + 2), w.as_ptr().wrapping_add(next + 2));
            // The 64 weight bytes in the activations' order, and where block 2p+1's scale
            // lanes are (q4_0: lanes 4..8 and 12..16 of the nibble order; q8_0: 8..16).
            let (wv, second_lanes) = if Q8_0 {
                let v0 = _mm256_xor_si256(_mm256_loadu_si256(q0 as *const _), flip);
                let v1 = if second {
                    _mm256_xor_si256(_mm256_loadu_si256(q1 as *const _), flip)
                } else {
                    _mm256_setzero_si256()
                };
                (
                    _mm512_inserti64x4::<1>(_mm512_castsi256_si512(v0), v1),
                    0xff00,
                )
            } else {
                let v0 = _mm_loadu_si128(q0 as *const _);
                let v1 = if second {
                    _mm_loadu_si128(q1 as *const _)
                } else {
                    _mm_setzero_si128()
                };
                let both = _mm256_set_m128i(v1, v0);
                let lo = _mm256_and_si256(both, low);
                let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(both), low);
                (
                    _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi),
                    0xf0f0,
                )
            };
            let d0 = u16::from_le_bytes([w[base], w[base + 1]]);
            let d1 = if second {
                u16::from_le_bytes([w[next], w[next + 1]])
            } else {
                0
            };
            let d = _mm_cvtph_ps(_mm_set_epi16(0, 0, 0, 0, 0, 0, d1 as i16, d0 as i16));
            let ws = _mm512_mask_blend_ps(
                second_lanes,
                _mm512_broadcastss_ps(d),
                _mm512_broadcastss_ps(_mm_shuffle_ps::<1>(d, d)),
            );
            for (r, a) in acc.iter_mut().enumerate() {
                let at = (r * np + p) * LANES;
                let xv = _mm512_loadu_si512(x.q.as_ptr().add(at * 4) as *const _);
                let start = _mm512_loadu_si512(x.offset.as_ptr().add(at) as *const _);
                let xs = _mm512_loadu_ps(x.scale.as_ptr().add(at));
                let sums = _mm512_dpbusd_epi32(start, wv, xv);
                *a = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums), _mm512_mul_ps(ws, xs), *a);
            }
        }
    }
    acc.map(|a| _mm512_reduce_add_ps(a))
}

/// Output columns `n0..n1` for every row: `[rows, n1 - n0]`.
fn columns(
    xq: &Q8Rows,
    rows: usize,
    k: usize,
    w: &[u8],
    n0: usize,
    n1: usize,
    isa: Isa,
) -> Vec<f32> {
    let np = pairs(k);
    let padded = np * 2 * QK;
    let width = n1 - n0;
    let mut out = vec![0f32; rows * width];
    let mut bytes = vec![0u8; TILE_ROWS * padded];
    let mut scales = vec![0f32; TILE_ROWS * np * LANES];
    let dot4 = dot4_fn(isa);
    for t0 in (n0..n1).step_by(TILE_ROWS) {
        let tile = TILE_ROWS.min(n1 - t0);
        expand_tile(w, t0, tile, k, &mut bytes, &mut scales);
        for r in 0..rows {
            let x = Pairs {
                bytes: &xq.q[r * padded..(r + 1) * padded],
                scale: &xq.scale[r * np * LANES..(r + 1) * np * LANES],
            };
            let offset = &xq.offset[r * np * LANES..(r + 1) * np * LANES];
            let row = |j: usize| Pairs {
                bytes: &bytes[j * padded..(j + 1) * padded],
                scale: &scales[j * np * LANES..(j + 1) * np * LANES],
            };
            let o = r * width + (t0 - n0);
            // Four weight rows per pass over the activation row share its loads (a ragged last
            // group repeats its last row).
            for j in (0..tile).step_by(4) {
                let pick = |i: usize| row((j + i).min(tile - 1));
                let four = dot4([pick(0), pick(1), pick(2), pick(3)], x, offset);
                let m = 4.min(tile - j);
                out[o + j..o + j + m].copy_from_slice(&four[..m]);
            }
        }
    }
    out
}

/// One row in the vector loop's layout: bytes padded to block pairs, per pair 16 lanes of scale.
#[derive(Clone, Copy)]
struct Pairs<'a, T> {
    bytes: &'a [T],
    scale: &'a [f32],
}

/// Weight rows `row0..row0+tile` as one byte per weight (the nibble, 0..15) and their f16 block
/// scales on 8 lanes each, padded like the activations.
fn expand_tile(w: &[u8], row0: usize, tile: usize, k: usize, bytes: &mut [u8], scales: &mut [f32]) {
    let (blocks, np) = (k / QK, pairs(k));
    let padded = np * 2 * QK;
    for j in 0..tile {
        let row = &w[(row0 + j) * blocks * BLOCK_BYTES..(row0 + j + 1) * blocks * BLOCK_BYTES];
        for (b, block) in row.chunks_exact(BLOCK_BYTES).enumerate() {
            let lane0 = (j * np + b / 2) * LANES + (b % 2) * 8;
            let d = half::f16::from_le_bytes([block[0], block[1]]).to_f32();
            scales[lane0..lane0 + 8].fill(d);
            let out = &mut bytes[j * padded + b * QK..j * padded + (b + 1) * QK];
            for (i, &packed) in block[2..].iter().enumerate() {
                // GGML's q4_0: weight i in the low nibble of byte i, weight i + 16 in the high.
                out[i] = packed & 0x0f;
                out[i + 16] = packed >> 4;
            }
        }
    }
}

/// `Σ_b w_scale_b · x_scale_b · (Σ_i w_bi · x_bi − 8 Σ_i x_bi)` for four weight rows against one
/// activation row: four outputs of the product.
type Dot4Fn = fn([Pairs<'_, u8>; 4], Pairs<'_, i8>, &[i32]) -> [f32; 4];

fn dot4_fn(isa: Isa) -> Dot4Fn {
    match isa {
        // SAFETY: `isa` comes from `isa()`, which detected the features each one is compiled for.
        Isa::Vnni => |w, x, offset| unsafe { dot4_vnni(w, x, offset) },
        Isa::Avx2 => |w, x, offset| unsafe { dot4_avx2(w, x, offset) },
    }
}

/// The reference the vector kernels are tested against.
#[cfg(test)]
fn dot_scalar(w: Pairs<'_, u8>, x: Pairs<'_, i8>, offset: &[i32]) -> f32 {
    let mut total = 0f32;
    for p in 0..offset.len() / LANES {
        for half in 0..2 {
            let lane0 = p * LANES + half * 8;
            let base = (2 * p + half) * QK;
            let s: i32 = (0..QK)
                .map(|i| w.bytes[base + i] as i32 * x.bytes[base + i] as i32)
                .sum::<i32>()
                + offset[lane0];
            total += w.scale[lane0] * x.scale[lane0] * s as f32;
        }
    }
    total
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,f16c")]
unsafe fn dot4_vnni(w: [Pairs<'_, u8>; 4], x: Pairs<'_, i8>, offset: &[i32]) -> [f32; 4] {
    use std::arch::x86_64::*;
    let mut acc = [_mm512_setzero_ps(); 4];
    for p in 0..offset.len() / LANES {
        // SAFETY: every slice holds `pairs` whole steps (bytes: 64 per pair, lanes: 16).
        unsafe {
            let xv = _mm512_loadu_si512(x.bytes.as_ptr().add(p * 64) as *const _);
            let xs = _mm512_loadu_ps(x.scale.as_ptr().add(p * LANES));
            let start = _mm512_loadu_si512(offset.as_ptr().add(p * LANES) as *const _);
            for (a, w) in acc.iter_mut().zip(&w) {
                let wv = _mm512_loadu_si512(w.bytes.as_ptr().add(p * 64) as *const _);
                let sums = _mm512_dpbusd_epi32(start, wv, xv);
                let scale = _mm512_mul_ps(_mm512_loadu_ps(w.scale.as_ptr().add(p * LANES)), xs);
                *a = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums), scale, *a);
            }
        }
    }
    acc.map(|a| _mm512_reduce_add_ps(a))
}

#[target_feature(enable = "avx2,fma")]
unsafe fn dot4_avx2(w: [Pairs<'_, u8>; 4], x: Pairs<'_, i8>, offset: &[i32]) -> [f32; 4] {
    use std::arch::x86_64::*;
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_ps(); 4];
    // One block (32 bytes, 8 lanes) at a time: the pair layout's halves.
    for h in 0..offset.len() / 8 {
        // SAFETY: every slice holds whole pairs: 32 bytes and 8 lanes per half.
        unsafe {
            let xv = _mm256_loadu_si256(x.bytes.as_ptr().add(h * 32) as *const _);
            let xs = _mm256_loadu_ps(x.scale.as_ptr().add(h * 8));
            let start = _mm256_loadu_si256(offset.as_ptr().add(h * 8) as *const _);
            for (a, w) in acc.iter_mut().zip(&w) {
                let wv = _mm256_loadu_si256(w.bytes.as_ptr().add(h * 32) as *const _);
                // Nibble (0..15) × i8 pairs stay within i16: 2 · 15 · 128 < 2¹⁵.
                let pairs = _mm256_maddubs_epi16(wv, xv);
                let sums = _mm256_add_epi32(_mm256_madd_epi16(pairs, ones), start);
                let scale = _mm256_mul_ps(_mm256_loadu_ps(w.scale.as_ptr().add(h * 8)), xs);
                *a = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums), scale, *a);
            }
        }
    }
    acc.map(|a| {
        let lanes: [f32; 8] = unsafe { std::mem::transmute(a) };
        lanes.iter().sum()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::QTensor;
    use candle_core::Module;

    fn random(seed: u64, n: usize) -> Vec<f32> {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
    }

    /// Every instruction set this CPU can run (a VNNI machine also runs the AVX2 kernel).
    fn runnable() -> Vec<Isa> {
        use std::arch::is_x86_feature_detected as has;
        let mut all = Vec::new();
        if isa() == Some(Isa::Vnni) {
            all.push(Isa::Vnni);
        }
        if has!("avx2") && has!("fma") {
            all.push(Isa::Avx2);
        }
        all
    }

    #[test]
    fn matches_candle_q4_0_matmul_up_to_summation_order() {
        // candle's own q4_0 × q8_0 kernel rounds the activations the same way, so the two agree
        // to f32 summation order; odd and even block counts, ragged tiles and groups of four,
        // candle's thread pool, every instruction set the CPU has.
        for (rows, n, k) in [(5, 37, 96), (16, 64, 256), (9, 22, 32)] {
            let x = random(1 + k as u64, rows * k);
            let w = Tensor::from_vec(random(2 + n as u64, n * k), (n, k), &Device::Cpu).unwrap();
            let q = QTensor::quantize(&w, GgmlDType::Q4_0).unwrap();
            let data = q.data().unwrap().to_vec();
            let mm = QMatMul::from_qtensor(q).unwrap();
            let xt = Tensor::from_vec(x.clone(), (rows, k), &Device::Cpu).unwrap();
            let want: Vec<f32> = mm
                .forward(&xt)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
            for isa in runnable() {
                let got = matmul(&x, rows, k, &data, n, isa);
                for (g, w) in got.iter().zip(&want) {
                    assert!(
                        (g - w).abs() <= 1e-5 * scale,
                        "{isa:?} {rows}×{n}×{k}: {g} vs {w}"
                    );
                }
            }
        }
    }

    #[test]
    fn decode_rows_match_candle_q4_0_matmul() {
        // One to three activation rows straight from the stored blocks: odd and even block
        // counts (an odd count ends in half a pair).
        if isa() != Some(Isa::Vnni) {
            return;
        }
        for (rows, n, k) in [(1, 37, 96), (2, 64, 256), (3, 5, 32), (1, 300, 1536)] {
            let x = random(3 + k as u64, rows * k);
            let w = Tensor::from_vec(random(4 + n as u64, n * k), (n, k), &Device::Cpu).unwrap();
            let q = QTensor::quantize(&w, GgmlDType::Q4_0).unwrap();
            let data = q.data().unwrap().to_vec();
            let mm = QMatMul::from_qtensor(q).unwrap();
            let xt = Tensor::from_vec(x.clone(), (rows, k), &Device::Cpu).unwrap();
            let want: Vec<f32> = mm
                .forward(&xt)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
            let got = matvec::<false>(&x, rows, k, &data, n);
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() <= 1e-5 * scale, "{rows}×{n}×{k}: {g} vs {w}");
            }
        }
    }

    #[test]
    fn q8_0_decode_rows_match_candle_q8_0_matmul() {
        if isa() != Some(Isa::Vnni) {
            return;
        }
        // K no multiple of 256: there candle multiplies with GGML's q8_0 dot (the activation
        // rounding ours reproduces); at multiples of 256 it takes its repacked tiles, which round
        // differently (the conformance suite holds both to the rounding bound instead).
        for (rows, n, k) in [(1, 37, 96), (2, 64, 160), (3, 5, 32), (1, 300, 1504)] {
            let x = random(5 + k as u64, rows * k);
            let w = Tensor::from_vec(random(6 + n as u64, n * k), (n, k), &Device::Cpu).unwrap();
            let q = QTensor::quantize(&w, GgmlDType::Q8_0).unwrap();
            let data = q.data().unwrap().to_vec();
            let mm = QMatMul::from_qtensor(q).unwrap();
            let want: Vec<f32> = x
                .chunks(k)
                .flat_map(|row| {
                    let xt = Tensor::from_vec(row.to_vec(), (1, k), &Device::Cpu).unwrap();
                    mm.forward(&xt)
                        .unwrap()
                        .flatten_all()
                        .unwrap()
                        .to_vec1::<f32>()
                        .unwrap()
                })
                .collect();
            let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
            let got = matvec::<true>(&x, rows, k, &data, n);
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() <= 1e-5 * scale, "{rows}×{n}×{k}: {g} vs {w}");
            }
        }
    }

    #[test]
    fn vector_dots_equal_the_scalar_one() {
        // Odd and even block counts (the odd one ends in a zero-padded half pair).
        for blocks in [1, 2, 5] {
            let k = blocks * QK;
            let x = random(9 + blocks as u64, k);
            let xq = quantize_rows(&x, 1, k, Q4_0_OFFSET);
            let np = pairs(k);
            let mut raw = Vec::new();
            for r in 0..4 {
                for b in 0..blocks {
                    raw.extend(half::f16::from_f32(0.5 + (b + r) as f32).to_le_bytes());
                    raw.extend((0..16).map(|i| ((i * 7 + b + 3 * r) % 256) as u8));
                }
            }
            let mut bytes = vec![0u8; 4 * np * 2 * QK];
            let mut scales = vec![0f32; 4 * np * LANES];
            expand_tile(&raw, 0, 4, k, &mut bytes, &mut scales);
            let row = |j: usize| Pairs {
                bytes: &bytes[j * np * 2 * QK..(j + 1) * np * 2 * QK],
                scale: &scales[j * np * LANES..(j + 1) * np * LANES],
            };
            let xp = Pairs {
                bytes: &xq.q,
                scale: &xq.scale,
            };
            let want = [0, 1, 2, 3].map(|j| dot_scalar(row(j), xp, &xq.offset));
            for isa in runnable() {
                let got = dot4_fn(isa)([row(0), row(1), row(2), row(3)], xp, &xq.offset);
                for (g, w) in got.iter().zip(&want) {
                    assert!(
                        (g - w).abs() <= 1e-5 * w.abs().max(1.0),
                        "{isa:?}, {blocks} blocks: {g} vs {w}"
                    );
                }
            }
        }
    }
}
