//! Many activation rows (a prefill) × GGUF q4_0 weights on x86-64 CPUs with AVX-512 VNNI.
//!
//! candle 0.11 repacks q4_k, q6_k and q8_0 weights for tiled prefill kernels on x86 but multiplies
//! q4_0 block by block (our q4_0 prefill ran at 0.12 of llama.cpp's, 9× slower than q4_k: README
//! benchmarks). Here a tile of weight rows is expanded once to one byte per weight (the nibble,
//! 0..15) and multiplied against every activation row with `vpdpbusd` (64 byte products per
//! instruction). Activations are rounded to q8_0 blocks first, exactly as candle's and llama.cpp's
//! q4_0 kernels round them; q4_0's offset of 8 is taken out per block with the activation block's
//! sum. Other CPUs, and decode (one row, memory-bound), keep candle's kernels.

use crate::error::Result;
use candle_core::quantized::{GgmlDType, QMatMul};
use candle_core::{Device, Tensor};

const QK: usize = 32;
const BLOCK_BYTES: usize = 18;
/// Weight rows expanded at a time (their bytes stay in the L2 cache while every activation row
/// passes over them).
const TILE_ROWS: usize = 16;
/// Fewer activation rows than this keep candle's kernel (expanding a tile pays off over rows).
const MIN_ROWS: usize = 4;

/// `x · Wᵀ` for a q4_0 `W` on the CPU when this kernel applies, else `None`.
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
    if q.dtype() != GgmlDType::Q4_0
        || !q.device().is_cpu()
        || !x.device().is_cpu()
        || dims.last() != Some(&k)
        || k == 0
        || !k.is_multiple_of(QK)
        || rows < MIN_ROWS
        || !supported()
    {
        return Ok(None);
    }
    let xs: Vec<f32> = x.flatten_all()?.to_vec1()?;
    let data = q.data()?;
    let y = matmul(
        &xs,
        rows,
        k,
        &data,
        n,
        candle_core::utils::get_num_threads(),
    );
    let mut shape = dims.to_vec();
    if let Some(last) = shape.last_mut() {
        *last = n;
    }
    Ok(Some(Tensor::from_vec(y, shape, &Device::Cpu)?))
}

/// Whether this CPU has the instructions the kernel uses.
fn supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
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
    /// Per row and pair: `−8 · Σq` of each block on its first lane (q4_0 stores w + 8).
    offset: Vec<i32>,
}

/// Block pairs of a `k`-wide row.
fn pairs(k: usize) -> usize {
    (k / QK).div_ceil(2)
}

/// Rounds like GGML's `quantize_row_q8_0`: `d = amax / 127`, `q = round(x / d)`, `d` kept as f16.
fn quantize_rows(x: &[f32], rows: usize, k: usize) -> Q8Rows {
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
            out.offset[lane0] = -8 * sum;
        }
    }
    out
}

/// `y [rows, n] = x [rows, k] · Wᵀ` with `w` the q4_0 blocks of an `[n, k]` weight.
fn matmul(x: &[f32], rows: usize, k: usize, w: &[u8], n: usize, threads: usize) -> Vec<f32> {
    let xq = quantize_rows(x, rows, k);
    let tiles = n.div_ceil(TILE_ROWS);
    let threads = threads.clamp(1, tiles.max(1));
    let per_thread = tiles.div_ceil(threads);
    let mut y = vec![0f32; rows * n];
    // Each thread computes whole tiles of output columns into its own buffer.
    let parts: Vec<(usize, usize, Vec<f32>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let xq = &xq;
                scope.spawn(move || {
                    let n0 = (t * per_thread * TILE_ROWS).min(n);
                    let n1 = ((t + 1) * per_thread * TILE_ROWS).min(n);
                    (n0, n1, columns(xq, rows, k, w, n0, n1))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    for (n0, n1, part) in parts {
        let width = n1 - n0;
        if width == 0 {
            continue;
        }
        for (r, chunk) in part.chunks_exact(width).enumerate() {
            y[r * n + n0..r * n + n1].copy_from_slice(chunk);
        }
    }
    y
}

/// Output columns `n0..n1` for every row: `[rows, n1 - n0]`.
fn columns(xq: &Q8Rows, rows: usize, k: usize, w: &[u8], n0: usize, n1: usize) -> Vec<f32> {
    let np = pairs(k);
    let padded = np * 2 * QK;
    let width = n1 - n0;
    let mut out = vec![0f32; rows * width];
    let mut bytes = vec![0u8; TILE_ROWS * padded];
    let mut scales = vec![0f32; TILE_ROWS * np * LANES];
    let (dot, dot4) = dot_fns();
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
            let mut j = 0;
            // Four weight rows per pass over the activation row share its loads.
            while j + 4 <= tile {
                let four = dot4([row(j), row(j + 1), row(j + 2), row(j + 3)], x, offset);
                out[o + j..o + j + 4].copy_from_slice(&four);
                j += 4;
            }
            for j in j..tile {
                out[o + j] = dot(row(j), x, offset);
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

/// `Σ_b w_scale_b · x_scale_b · (Σ_i w_bi · x_bi − 8 Σ_i x_bi)`: one output of the product.
type DotFn = fn(Pairs<'_, u8>, Pairs<'_, i8>, &[i32]) -> f32;
/// The same for four weight rows against one activation row.
type Dot4Fn = fn([Pairs<'_, u8>; 4], Pairs<'_, i8>, &[i32]) -> [f32; 4];

/// The vector dot products where the CPU has them, else the scalar ones.
fn dot_fns() -> (DotFn, Dot4Fn) {
    #[cfg(target_arch = "x86_64")]
    if supported() {
        // SAFETY: the features `dot_vnni` and `dot4_vnni` are compiled for were just detected.
        return (
            |w, x, offset| unsafe { dot_vnni(w, x, offset) },
            |w, x, offset| unsafe { dot4_vnni(w, x, offset) },
        );
    }
    (dot_scalar, |w, x, offset| {
        w.map(|w| dot_scalar(w, x, offset))
    })
}

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

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn dot_vnni(w: Pairs<'_, u8>, x: Pairs<'_, i8>, offset: &[i32]) -> f32 {
    use std::arch::x86_64::*;
    let mut acc = _mm512_setzero_ps();
    for p in 0..offset.len() / LANES {
        // SAFETY: every slice holds `pairs` whole steps (bytes: 64 per pair, lanes: 16).
        unsafe {
            let wv = _mm512_loadu_si512(w.bytes.as_ptr().add(p * 64) as *const _);
            let xv = _mm512_loadu_si512(x.bytes.as_ptr().add(p * 64) as *const _);
            let start = _mm512_loadu_si512(offset.as_ptr().add(p * LANES) as *const _);
            let sums = _mm512_dpbusd_epi32(start, wv, xv);
            let scale = _mm512_mul_ps(
                _mm512_loadu_ps(w.scale.as_ptr().add(p * LANES)),
                _mm512_loadu_ps(x.scale.as_ptr().add(p * LANES)),
            );
            acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums), scale, acc);
        }
    }
    _mm512_reduce_add_ps(acc)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
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

    #[test]
    fn matches_candle_q4_0_matmul_exactly_up_to_summation_order() {
        // candle's own q4_0 × q8_0 kernel rounds the activations the same way, so the two agree
        // to f32 summation order; odd and even block counts, ragged tiles, several threads.
        for (rows, n, k) in [(5, 37, 96), (16, 64, 256), (9, 20, 32)] {
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
            for threads in [1, 3] {
                let got = matmul(&x, rows, k, &data, n, threads);
                let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
                for (g, w) in got.iter().zip(&want) {
                    assert!((g - w).abs() <= 1e-5 * scale, "{rows}×{n}×{k}: {g} vs {w}");
                }
            }
        }
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn the_vector_dot_equals_the_scalar_one() {
        if !supported() {
            return;
        }
        // Odd and even block counts (the odd one ends in a zero-padded half pair).
        for blocks in [1, 2, 5] {
            let k = blocks * QK;
            let x = random(9 + blocks as u64, k);
            let xq = quantize_rows(&x, 1, k);
            let np = pairs(k);
            let mut raw = Vec::new();
            for b in 0..blocks {
                raw.extend(half::f16::from_f32(0.5 + b as f32).to_le_bytes());
                raw.extend((0..16).map(|i| ((i * 7 + b) % 256) as u8));
            }
            let mut bytes = vec![0u8; np * 2 * QK];
            let mut scales = vec![0f32; np * LANES];
            expand_tile(&raw, 0, 1, k, &mut bytes, &mut scales);
            let w = Pairs {
                bytes: &bytes,
                scale: &scales,
            };
            let xp = Pairs {
                bytes: &xq.q,
                scale: &xq.scale,
            };
            // SAFETY: supported() checked the features.
            let v = unsafe { dot_vnni(w, xp, &xq.offset) };
            let s = dot_scalar(w, xp, &xq.offset);
            assert!(
                (v - s).abs() <= 1e-5 * s.abs().max(1.0),
                "{blocks} blocks: {v} vs {s}"
            );
        }
    }
}
