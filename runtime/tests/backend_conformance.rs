#![cfg(any(feature = "vulkan", feature = "cuda", feature = "metal"))]
//! Backend conformance: every op the decoder runs on a device, checked against the CPU as the
//! oracle, on every compiled backend that finds a device — Vulkan (our WGSL kernels), CUDA and
//! Metal (candle's kernels under our decoder code) — at the shapes of real models, seeded random
//! inputs. With MONOVLM_CONFORMANCE_CPU=1 the candle CPU device joins as a backend under test:
//! it runs the candle path of this suite (and our blockwise CPU attention against the naive
//! oracle) on any machine.
//!
//! Oracles are independent of the code under test where possible: attention is a naive per-head
//! softmax(q·kᵀ)·v with an explicit mask; RoPE is the plain-ops (differentiable) formulation;
//! quantized weights go through candle's own `QTensor` dequantization and `QMatMul`.
//!
//! Error measure: max |device − oracle| / max |oracle| over the whole output.
//! * f32 ops: ≤ 1e-4. The device computes in f32 like the CPU; only summation order and
//!   `exp`/`sqrt` rounding differ, orders of magnitude below that.
//! * Our Vulkan kernels with weights f16, bf16, q8_0, q4_0, q4_k, q6_k vs the dequantized-weight
//!   f32 product: also ≤ 1e-4 (dequantization is exact in f32 on both sides: the f16 scale times a
//!   small integer fits in 24 bits, so only the f32 summation order of K products differs).
//! * Quantized matmuls vs candle's `QMatMul` (and candle devices' own quantized kernels, which
//!   round activations the same way): candle rounds activations to 8 bits (blocks of 32 for
//!   q8_0/q4_0, 256 for K-quants; CUDA's blocks of 32 are tighter) before its integer dot
//!   products, so each output may move by up to Σ_k |w_nk| · amax(block of x_k)/254; the check
//!   allows exactly that bound per output (plus the 1e-4 f32 term).
//! * Candle devices with f16/bf16 weights compute in that dtype (activations are cast to it,
//!   products accumulate in f32): per output at most u·Σ_k |w_nk x_k| + u·|y_n| (u: the dtype's
//!   unit roundoff) plus the f32 term.
//!
//! Shapes: 7B decoder dims (hidden 4096, FFN 11008 and 14336; vocab 32000 for the gather); the
//! GQA ratios of every family (32/32, 32/8, 28/4, 16/8, 12/4 heads/KV heads; head dims 64 and 128);
//! Fuyu's partial rotary (rotary_dim = hd/2); a sliding window; causal offsets (start > 0).
//! Budget (the Vulkan suite stays under 4 minutes on lavapipe with 2 cores): the biggest shapes go
//! to one 2304×4096 · (4096×4096 q4_k)ᵀ mat-mat and the 2304-token prefill attention (8/2 heads,
//! hd 128); every weight type gets a 200×4096 · (1024×4096)ᵀ mat-mat with bias, ragged tiles, and
//! a decode (T=1) mat-vec at 4096×4096, q4_k and q6_k at all 7B FFN shapes, f16 and q6_k at the
//! 32000-row lm_head (split into row parts on Vulkan: more than lavapipe's 128 MiB binding); every
//! GQA ratio runs at T=1 over 2304 cached keys and at a 128-token prefill continuing a 57-token
//! cache.
//!
//! Whole models: `check-reference` (golden data of the upstream implementations) with the model
//! on the device for every family's fixture, and every fixture's decoder against the CPU decoder
//! over a chunked prefill with image rows, single-token steps and KV-cache growth.
//! Vulkan only: row routing for modality experts (gather/scatter exact), front-end offloading.
//!
//! A backend that is compiled in but finds no device prints a note and is skipped, unless
//! MONOVLM_REQUIRE_VULKAN=1 / MONOVLM_REQUIRE_CUDA=1 / MONOVLM_REQUIRE_METAL=1 asks for it (CI
//! sets the first): then the suite fails.

use candle_core::quantized::{ggml_file, GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Device, IndexOp, Module, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use runtime::decoder::attend;
use runtime::decoder::layers::{Linear, Norm, Rope};
use runtime::device::ComputeDevice;
use runtime::reference::{all_passed, check_fixture};
use runtime::spec::NormKind;
use runtime::{LoadOptions, Model};
use std::sync::OnceLock;

#[cfg(feature = "vulkan")]
use runtime::decoder::layers::LinearWeight;
#[cfg(feature = "vulkan")]
use runtime::image::pilimage::{self, DecodeLimits};
#[cfg(feature = "vulkan")]
use runtime::vulkan::{AttentionShape, Batch, DeviceTensor, VulkanContext, NO_ADAPTER};
#[cfg(feature = "vulkan")]
use std::sync::Arc;

const F32_TOL: f32 = 1e-4;

/// A compute backend under test.
#[derive(Clone)]
enum Backend {
    #[cfg(feature = "vulkan")]
    Vulkan(Arc<VulkanContext>),
    /// A candle device (CUDA, Metal; the CPU with MONOVLM_CONFORMANCE_CPU=1).
    Candle(Device),
}

fn required(var: &str) -> bool {
    std::env::var(var).is_ok_and(|v| v == "1")
}

/// Every compiled backend that finds a device (opened once per test binary).
fn backends() -> Vec<Backend> {
    static ALL: OnceLock<Vec<Backend>> = OnceLock::new();
    ALL.get_or_init(|| {
        #[allow(unused_mut)]
        let mut all = Vec::new();
        #[cfg(feature = "vulkan")]
        match VulkanContext::open_default() {
            Ok(Some(c)) => all.push(Backend::Vulkan(c)),
            Ok(None) if required("MONOVLM_REQUIRE_VULKAN") => {
                panic!("MONOVLM_REQUIRE_VULKAN=1: {NO_ADAPTER}")
            }
            Ok(None) => eprintln!("skipping Vulkan conformance: {NO_ADAPTER}"),
            Err(e) => panic!("opening the Vulkan adapter failed: {e}"),
        }
        #[cfg(feature = "cuda")]
        match Device::new_cuda(0) {
            Ok(d) => all.push(Backend::Candle(d)),
            Err(e) if required("MONOVLM_REQUIRE_CUDA") => panic!("MONOVLM_REQUIRE_CUDA=1: {e}"),
            Err(e) => eprintln!("skipping CUDA conformance: no device ({e})"),
        }
        #[cfg(feature = "metal")]
        match Device::new_metal(0) {
            Ok(d) => all.push(Backend::Candle(d)),
            Err(e) if required("MONOVLM_REQUIRE_METAL") => panic!("MONOVLM_REQUIRE_METAL=1: {e}"),
            Err(e) => eprintln!("skipping Metal conformance: no device ({e})"),
        }
        if required("MONOVLM_CONFORMANCE_CPU") {
            all.push(Backend::Candle(Device::Cpu));
        }
        for b in &all {
            eprintln!("backend under test: {}", b.name());
        }
        all
    })
    .clone()
}

/// An activation or elementwise op of the decoder's MLPs and residuals.
#[derive(Debug, Clone, Copy)]
enum Op {
    SiluMul,
    GeluTanh,
    GeluErf,
    ReluSq,
    Add,
    Mul,
    Scale(f32),
}

/// How a test weight is stored on both sides.
#[derive(Debug, Clone, Copy)]
enum Stored {
    Dense(DType),
    Quant(GgmlDType),
}

impl Stored {
    fn name(self) -> String {
        match self {
            Stored::Dense(d) => format!("{d:?}").to_lowercase(),
            Stored::Quant(q) => format!("{q:?}").to_lowercase(),
        }
    }
}

#[cfg(feature = "vulkan")]
fn up(ctx: &VulkanContext, v: &[f32], shape: &[usize]) -> DeviceTensor {
    ctx.upload(v, shape).expect("upload")
}

/// Runs one Vulkan op in its own batch and reads the result.
#[cfg(feature = "vulkan")]
fn run(
    ctx: &VulkanContext,
    f: impl FnOnce(&mut Batch) -> runtime::Result<DeviceTensor>,
) -> Vec<f32> {
    let mut b = ctx.batch();
    let out = f(&mut b).expect("record op");
    b.submit().expect("submit");
    ctx.read(&out).expect("read back")
}

/// `v` with `shape` on a candle device.
fn on(d: &Device, v: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_slice(v, shape, d).expect("device tensor")
}

/// A norm's parameters on device `d`.
fn norm_on(n: &Norm, d: &Device) -> Norm {
    Norm {
        kind: n.kind,
        weight: n.weight.to_device(d).expect("weight"),
        bias: n.bias.as_ref().map(|b| b.to_device(d).expect("bias")),
        eps: n.eps,
    }
}

impl Backend {
    fn name(&self) -> String {
        match self {
            #[cfg(feature = "vulkan")]
            Backend::Vulkan(c) => format!("{c:?}"),
            Backend::Candle(d) => format!("candle {:?}", d.location()),
        }
    }

    fn options(&self) -> LoadOptions {
        let device = match self {
            #[cfg(feature = "vulkan")]
            Backend::Vulkan(c) => ComputeDevice::Vulkan(c.clone()),
            Backend::Candle(d) => ComputeDevice::Candle(d.clone()),
        };
        LoadOptions {
            device,
            ..LoadOptions::default()
        }
    }

    fn is_cpu(&self) -> bool {
        matches!(self, Backend::Candle(Device::Cpu))
    }

    /// `norm` over rows of `x` `[rows, dim]`.
    fn norm(&self, x: &[f32], rows: usize, dim: usize, norm: &Norm) -> Vec<f32> {
        match self {
            #[cfg(feature = "vulkan")]
            Backend::Vulkan(ctx) => {
                let xd = up(ctx, x, &[rows, dim]);
                let w = ctx.upload_tensor(&norm.weight).expect("weight");
                let b = norm
                    .bias
                    .as_ref()
                    .map(|b| ctx.upload_tensor(b).expect("bias"));
                run(ctx, |batch| match norm.kind {
                    NormKind::Rms => batch.rms_norm(&xd, &w, norm.eps),
                    NormKind::LayerNorm => batch.layer_norm(&xd, &w, b.as_ref(), norm.eps),
                })
            }
            Backend::Candle(d) => flat(
                &norm_on(norm, d)
                    .forward(&on(d, x, &[rows, dim]))
                    .expect("norm"),
            ),
        }
    }

    /// RoPE of `x` `[T, H, hd]` at positions `start..start+T`.
    fn rope(&self, x: &[f32], dims: [usize; 3], rope: &Rope, start: usize) -> Vec<f32> {
        let t = dims[0];
        match self {
            #[cfg(feature = "vulkan")]
            Backend::Vulkan(ctx) => {
                let positions: Vec<usize> = (start..start + t).collect();
                let (cos, sin) = ctx.rope_tables(rope, &positions).expect("tables");
                let xd = up(ctx, x, &dims);
                run(ctx, |b| b.rope(&xd, &cos, &sin, rope.rotary_dim()))
            }
            Backend::Candle(d) => {
                let (c, s) = rope.tables(start, t, DType::F32, d).expect("tables");
                flat(&rope.apply(&on(d, x, &dims), &c, &s, false).expect("rope"))
            }
        }
    }

    /// Attention of `q` `[T, H, hd]` over the first `start + T` rows of `k`, `v`.
    fn attention(
        &self,
        (q, k, v): (&[f32], &[f32], &[f32]),
        dims: (usize, usize, usize, usize),
        start: usize,
        window: Option<usize>,
        seed: u64,
    ) -> Vec<f32> {
        let (t, heads, kv_heads, hd) = dims;
        let s = start + t;
        match self {
            #[cfg(feature = "vulkan")]
            Backend::Vulkan(ctx) => {
                // The device cache has spare capacity past the visible rows, as a real KV cache
                // does; the spare rows hold large values that must not leak in.
                let cap = s + 5;
                let mut kpad = k.to_vec();
                kpad.extend(random(seed + 3, 5 * kv_heads * hd, 100.0));
                let mut vpad = v.to_vec();
                vpad.extend(random(seed + 4, 5 * kv_heads * hd, 100.0));
                let (qd, kd, vd) = (
                    up(ctx, q, &[t, heads, hd]),
                    up(ctx, &kpad, &[cap, kv_heads, hd]),
                    up(ctx, &vpad, &[cap, kv_heads, hd]),
                );
                run(ctx, |b| {
                    b.attention(&qd, &kd, &vd, AttentionShape { start, window })
                })
            }
            Backend::Candle(d) => {
                let _ = seed;
                let o = attend(
                    &on(d, q, &[t, heads, hd]),
                    &on(d, k, &[s, kv_heads, hd]),
                    &on(d, v, &[s, kv_heads, hd]),
                    start,
                    window,
                    false,
                )
                .expect("attention");
                flat(&o)
            }
        }
    }

    /// `op` over `a` (and `b`) of shape `[rows, dim]`.
    fn elementwise(&self, op: Op, a: &[f32], b: &[f32], shape: [usize; 2]) -> Vec<f32> {
        match self {
            #[cfg(feature = "vulkan")]
            Backend::Vulkan(ctx) => {
                let (ad, bd) = (up(ctx, a, &shape), up(ctx, b, &shape));
                run(ctx, |x| match op {
                    Op::SiluMul => x.silu_mul(&ad, &bd),
                    Op::GeluTanh => x.gelu_tanh(&ad),
                    Op::GeluErf => x.gelu_erf(&ad),
                    Op::ReluSq => x.relu_sq(&ad),
                    Op::Add => x.add(&ad, &bd),
                    Op::Mul => x.mul(&ad, &bd),
                    Op::Scale(f) => x.scale(&ad, f),
                })
            }
            Backend::Candle(d) => flat(&op_on(op, &on(d, a, &shape), &on(d, b, &shape))),
        }
    }

    /// `x [T, K] · Wᵀ (+ bias)` with `w` `[N, K]` stored as `stored`.
    fn matmul(&self, x: &[f32], (t, n, k): (usize, usize, usize), w: &QWeight) -> Vec<f32> {
        match self {
            #[cfg(feature = "vulkan")]
            Backend::Vulkan(ctx) => {
                let dw = match &w.stored_cpu {
                    StoredCpu::Dense(ws) => ctx.upload_dense_weight(ws).expect("upload dense"),
                    StoredCpu::Quant(qt) => ctx.upload_qtensor(qt).expect("upload blocks"),
                };
                let xd = up(ctx, x, &[t, k]);
                let bd = w.bias.as_ref().map(|b| up(ctx, b, &[n]));
                run(ctx, |batch| batch.matmul(&xd, &dw, bd.as_ref()))
            }
            Backend::Candle(d) => {
                let bias = w.bias.as_ref().map(|b| on(d, b, &[n]));
                let lin = match &w.stored_cpu {
                    StoredCpu::Dense(ws) => Linear::new(ws.to_device(d).expect("weight"), bias),
                    StoredCpu::Quant(qt) => {
                        let bytes = qt.data().expect("blocks");
                        let qd = ggml_file::qtensor_from_ggml(qt.dtype(), &bytes, vec![n, k], d)
                            .expect("blocks on the device");
                        Linear::quantized(qd, bias).expect("quantized linear")
                    }
                };
                flat(&lin.forward(&on(d, x, &[t, k])).expect("matmul"))
            }
        }
    }

    /// Whether this backend's matmul with `stored` weights is exact up to f32 summation order
    /// (else it rounds activations, and is held to the rounding bound).
    fn matmul_is_exact(&self, stored: Stored) -> bool {
        match self {
            #[cfg(feature = "vulkan")]
            Backend::Vulkan(_) => true,
            Backend::Candle(_) => matches!(stored, Stored::Dense(DType::F32)),
        }
    }

    /// Rows `ids` of the f32 table `[vocab, dim]`.
    fn gather(&self, table: &[f32], vocab: usize, dim: usize, ids: &[u32]) -> Vec<f32> {
        match self {
            #[cfg(feature = "vulkan")]
            Backend::Vulkan(ctx) => {
                let t = ctx.upload_matrix(table, vocab, dim).expect("upload table");
                run(ctx, |b| b.gather(&t, ids))
            }
            Backend::Candle(d) => {
                let idx = Tensor::new(ids, d).expect("ids");
                flat(
                    &on(d, table, &[vocab, dim])
                        .index_select(&idx, 0)
                        .expect("gather"),
                )
            }
        }
    }
}

/// The candle form of `op` (also the oracle, on the CPU).
fn op_on(op: Op, a: &Tensor, b: &Tensor) -> Tensor {
    match op {
        Op::SiluMul => candle_nn::ops::silu(a).and_then(|s| s * b),
        Op::GeluTanh => a.gelu(),
        Op::GeluErf => a.gelu_erf(),
        Op::ReluSq => a.relu().and_then(|r| r.sqr()),
        Op::Add => a + b,
        Op::Mul => a * b,
        Op::Scale(f) => a * f as f64,
    }
    .expect("elementwise op")
}

/// A test weight in its stored form on the CPU.
enum StoredCpu {
    Dense(Tensor),
    Quant(QTensor),
}

struct QWeight {
    stored_cpu: StoredCpu,
    /// The exact f32 values of the stored weight (candle's dequantization).
    exact: Tensor,
    bias: Option<Vec<f32>>,
}

impl QWeight {
    fn new(w: &[f32], n: usize, k: usize, stored: Stored, bias: Option<Vec<f32>>) -> Self {
        let wt = cpu(w, &[n, k]);
        let (stored_cpu, exact) = match stored {
            Stored::Dense(dtype) => {
                let ws = wt.to_dtype(dtype).expect("cast");
                let exact = ws.to_dtype(DType::F32).expect("f32");
                (StoredCpu::Dense(ws), exact)
            }
            Stored::Quant(q) => {
                let qt = QTensor::quantize(&wt, q).expect("quantize");
                let exact = qt.dequantize(&Device::Cpu).expect("dequantize");
                (StoredCpu::Quant(qt), exact)
            }
        };
        QWeight {
            stored_cpu,
            exact,
            bias,
        }
    }
}

fn random(seed: u64, n: usize, scale: f32) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(-scale..scale)).collect()
}

fn cpu(v: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_slice(v, shape, &Device::Cpu).expect("cpu tensor")
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.to_dtype(DType::F32)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1())
        .expect("cpu values")
}

/// Max |got − want| relative to max |want|; NaN or a length mismatch is an infinite error.
fn rel_err(got: &[f32], want: &[f32]) -> f32 {
    if got.len() != want.len() {
        return f32::INFINITY;
    }
    let scale = want
        .iter()
        .fold(0f32, |m, v| m.max(v.abs()))
        .max(f32::MIN_POSITIVE);
    let mut worst = 0f32;
    for (g, w) in got.iter().zip(want) {
        let e = (g - w).abs();
        if e.is_nan() {
            return f32::INFINITY;
        }
        worst = worst.max(e);
    }
    worst / scale
}

/// Checks one op result, printing a row of the conformance table.
fn check(op: &str, shape: &str, got: &[f32], want: &[f32], tol: f32) -> Result<f32, String> {
    let err = rel_err(got, want);
    let verdict = if err <= tol { "ok" } else { "FAIL" };
    eprintln!("| {op} | {shape} | {err:.2e} | {tol:.0e} | {verdict} |");
    if err <= tol {
        Ok(err)
    } else {
        Err(format!("{op} {shape}: relative error {err:e} > {tol:e}"))
    }
}

fn assert_close(op: &str, shape: &str, got: &[f32], want: &[f32], tol: f32) {
    if let Err(e) = check(op, shape, got, want, tol) {
        panic!("{e}");
    }
}

/// The CPU oracle of attention: per head, softmax(q·kᵀ·scale + mask)·v with candle ops.
fn attention_oracle(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    (t, heads, kv_heads, hd): (usize, usize, usize, usize),
    start: usize,
    window: Option<usize>,
) -> Vec<f32> {
    let s = start + t;
    let q = cpu(q, &[t, heads, hd]);
    let k = cpu(k, &[s, kv_heads, hd]);
    let v = cpu(v, &[s, kv_heads, hd]);
    let mut mask = vec![0f32; t * s];
    for i in 0..t {
        let pos = start + i;
        for j in 0..s {
            let visible = j <= pos && window.is_none_or(|w| pos - j <= w);
            if !visible {
                mask[i * s + j] = f32::NEG_INFINITY;
            }
        }
    }
    let mask = cpu(&mask, &[t, s]);
    let scale = 1.0 / (hd as f64).sqrt();
    let group = heads / kv_heads;
    let mut outs = Vec::with_capacity(heads);
    for h in 0..heads {
        let qh = q
            .i((.., h, ..))
            .and_then(|x| x.contiguous())
            .expect("q head");
        let kh = k
            .i((.., h / group, ..))
            .and_then(|x| x.contiguous())
            .expect("k head");
        let vh = v
            .i((.., h / group, ..))
            .and_then(|x| x.contiguous())
            .expect("v head");
        let scores = (qh.matmul(&kh.t().expect("kt")).expect("qk") * scale)
            .and_then(|x| x.broadcast_add(&mask))
            .expect("scores");
        let p = candle_nn::ops::softmax_last_dim(&scores).expect("softmax");
        outs.push(p.matmul(&vh).expect("pv"));
    }
    // [H, T, hd] -> [T, H, hd]
    flat(
        &Tensor::stack(&outs, 0)
            .and_then(|o| o.transpose(0, 1))
            .and_then(|o| o.contiguous())
            .expect("stack"),
    )
}

/// Per-output bound on candle's `QMatMul` deviation from the exact product: it rounds each
/// activation block to 8 bits (q8_0 blocks of 32 for q8_0/q4_0, q8_K blocks of 256 for K-quants),
/// an error of at most amax(block)/254 per activation.
fn qmatmul_bound(x: &[f32], t: usize, k: usize, w_abs: &Tensor, block: usize) -> Vec<f32> {
    let mut e = vec![0f32; t * k];
    for row in 0..t {
        for b0 in (0..k).step_by(block) {
            let blk = &x[row * k + b0..row * k + (b0 + block).min(k)];
            let amax = blk.iter().fold(0f32, |m, v| m.max(v.abs()));
            e[row * k + b0..row * k + b0 + blk.len()].fill(amax / 254.0);
        }
    }
    flat(
        &cpu(&e, &[t, k])
            .matmul(&w_abs.t().expect("t"))
            .expect("bound"),
    )
}

#[test]
fn compare_rejects_a_wrong_result() {
    // The checks must be able to fail: a real device output nudged by 1e-3 of its scale, or one
    // NaN, is rejected.
    for be in backends() {
        let x = random(1, 4 * 4096, 1.0);
        let w = random(2, 4096, 1.0);
        let norm = Norm {
            kind: NormKind::Rms,
            weight: cpu(&w, &[4096]),
            bias: None,
            eps: 1e-5,
        };
        let got = be.norm(&x, 4, 4096, &norm);
        let want = flat(&norm.forward(&cpu(&x, &[4, 4096])).expect("cpu rms"));
        assert!(check("rms_norm (unchanged)", "4×4096", &got, &want, F32_TOL).is_ok());
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        let mut wrong = got.clone();
        wrong[777] += 1e-3 * scale;
        let perturbed = check("rms_norm (perturbed)", "4×4096", &wrong, &want, F32_TOL);
        assert!(
            perturbed.is_err(),
            "{}: a perturbed result passed",
            be.name()
        );
        let mut nan = got;
        nan[5] = f32::NAN;
        assert!(check("rms_norm (NaN)", "4×4096", &nan, &want, F32_TOL).is_err());
    }
}

#[test]
fn embedding_gather_7b_vocab() {
    let (vocab, dim) = (32000, 4096);
    let table = random(3, vocab * dim, 1.0);
    let ids: Vec<u32> = vec![0, 31999, 1, 17, 29871, 13, 2, 31999, 15000];
    let idx = Tensor::new(ids.as_slice(), &Device::Cpu).expect("ids");
    let want = flat(
        &cpu(&table, &[vocab, dim])
            .index_select(&idx, 0)
            .expect("gather"),
    );
    for be in backends() {
        let got = be.gather(&table, vocab, dim, &ids);
        // A gather copies: exact.
        assert_close("embedding gather", "32000×4096, 9 ids", &got, &want, 0.0);
    }
    #[cfg(feature = "vulkan")]
    if let Some(ctx) = vulkan() {
        let t = ctx.upload_matrix(&table, vocab, dim).expect("upload table");
        let mut b = ctx.batch();
        assert!(b.gather(&t, &[32000]).is_err(), "out-of-vocabulary id");
    }
}

/// The Vulkan backend under test, if any.
#[cfg(feature = "vulkan")]
fn vulkan() -> Option<Arc<VulkanContext>> {
    backends().into_iter().find_map(|b| match b {
        Backend::Vulkan(c) => Some(c),
        _ => None,
    })
}

#[test]
fn norms_at_7b_width() {
    for be in backends() {
        for (rows, dim) in [(1, 4096), (64, 4096), (300, 2048)] {
            let x = random(4, rows * dim, 3.0);
            let w = random(5, dim, 1.0);
            let b = random(6, dim, 1.0);
            let shape = format!("{rows}×{dim} on {}", be.name());
            for (kind, bias) in [
                (NormKind::Rms, false),
                (NormKind::LayerNorm, true),
                (NormKind::LayerNorm, false),
            ] {
                let norm = Norm {
                    kind,
                    weight: cpu(&w, &[dim]),
                    bias: bias.then(|| cpu(&b, &[dim])),
                    eps: if kind == NormKind::Rms { 1e-6 } else { 1e-5 },
                };
                let got = be.norm(&x, rows, dim, &norm);
                let want = flat(&norm.forward(&cpu(&x, &[rows, dim])).expect("cpu norm"));
                let name = match (kind, bias) {
                    (NormKind::Rms, _) => "rms_norm",
                    (_, true) => "layer_norm + bias",
                    (_, false) => "layer_norm, no bias",
                };
                assert_close(name, &shape, &got, &want, F32_TOL);
            }
        }
    }
}

#[test]
fn rope_full_and_partial_with_offsets() {
    for be in backends() {
        // (T, heads, hd, rotary_dim, first position): Llama-style full rotary at a 2304-token
        // prefill, Fuyu's half-rotary heads, a decode row deep into the context.
        for (t, heads, hd, rot, start) in [
            (2304, 8, 128, 128, 0),
            (300, 32, 64, 32, 1000),
            (1, 32, 128, 128, 4095),
            (7, 12, 64, 64, 3),
        ] {
            let x = random(7, t * heads * hd, 2.0);
            let rope = Rope::new(10000.0, rot);
            let got = be.rope(&x, [t, heads, hd], &rope, start);
            // The oracle is the plain-ops formulation (the training path), not the fused kernel.
            let (c, s) = rope
                .tables(start, t, DType::F32, &Device::Cpu)
                .expect("cpu tables");
            let want = flat(
                &rope
                    .apply(&cpu(&x, &[t, heads, hd]), &c, &s, true)
                    .expect("cpu rope"),
            );
            let shape = format!(
                "T {t}, {heads}×{hd}, rotary {rot}, start {start} on {}",
                be.name()
            );
            assert_close("rope", &shape, &got, &want, F32_TOL);
        }
    }
}

fn check_attention(
    be: &Backend,
    dims: (usize, usize, usize, usize),
    start: usize,
    window: Option<usize>,
    seed: u64,
) {
    let (t, heads, kv_heads, hd) = dims;
    let s = start + t;
    let q = random(seed, t * heads * hd, 1.0);
    let k = random(seed + 1, s * kv_heads * hd, 1.0);
    let v = random(seed + 2, s * kv_heads * hd, 1.0);
    let got = be.attention((&q, &k, &v), dims, start, window, seed);
    let want = attention_oracle(&q, &k, &v, dims, start, window);
    let shape = format!(
        "T {t}, start {start}, {heads}/{kv_heads} heads, hd {hd}{} on {}",
        window.map_or(String::new(), |w| format!(", window {w}")),
        be.name()
    );
    assert_close("attention", &shape, &got, &want, F32_TOL);
}

#[test]
fn attention_prefill_2304_tokens() {
    for be in backends() {
        check_attention(&be, (2304, 8, 2, 128), 0, None, 10);
    }
}

#[test]
fn attention_every_gqa_ratio() {
    for be in backends() {
        for (i, (heads, kv_heads, hd)) in [
            (32, 32, 128),
            (32, 8, 128),
            (28, 4, 128),
            (16, 8, 128),
            (12, 4, 64),
            (32, 32, 64),
        ]
        .into_iter()
        .enumerate()
        {
            let seed = 20 + 10 * i as u64;
            // Decode: one query over 2304 cached keys.
            check_attention(&be, (1, heads, kv_heads, hd), 2303, None, seed);
            // A prefill that continues a cached prefix (causal offset).
            check_attention(&be, (128, heads, kv_heads, hd), 57, None, seed + 5);
        }
    }
}

#[test]
fn attention_other_head_dims() {
    // hd 256 takes Vulkan's v1 kernel, hd 80 a head that fills neither kernel's lanes evenly.
    for be in backends() {
        check_attention(&be, (1, 8, 2, 256), 700, None, 80);
        check_attention(&be, (70, 8, 2, 256), 30, Some(50), 81);
        check_attention(&be, (1, 6, 2, 80), 700, None, 82);
        check_attention(&be, (70, 6, 2, 80), 30, Some(50), 83);
    }
}

#[test]
fn attention_sliding_window() {
    for be in backends() {
        // Mistral-style window shorter than the sequence: prefill, a continued prefill, decode.
        check_attention(&be, (400, 8, 2, 128), 0, Some(128), 90);
        check_attention(&be, (100, 32, 8, 128), 500, Some(256), 91);
        check_attention(&be, (1, 32, 8, 128), 2303, Some(1024), 92);
        // Window 0: each query sees only itself.
        check_attention(&be, (33, 12, 4, 64), 3, Some(0), 93);
    }
}

#[test]
fn activations_and_elementwise() {
    for be in backends() {
        for (rows, dim) in [(1, 14336), (64, 11008)] {
            let n = rows * dim;
            let a = random(40, n, 6.0);
            let b = random(41, n, 3.0);
            let (ac, bc) = (cpu(&a, &[rows, dim]), cpu(&b, &[rows, dim]));
            let shape = format!("{rows}×{dim} on {}", be.name());
            for (name, op) in [
                ("swiglu silu(gate)·up", Op::SiluMul),
                ("gelu (tanh)", Op::GeluTanh),
                ("gelu (erf)", Op::GeluErf),
                ("relu²", Op::ReluSq),
                ("add", Op::Add),
                ("mul", Op::Mul),
                ("scale", Op::Scale(0.125)),
            ] {
                let got = be.elementwise(op, &a, &b, [rows, dim]);
                let want = flat(&op_on(op, &ac, &bc));
                assert_close(name, &shape, &got, &want, F32_TOL);
            }
        }
    }
}

/// Largest |got − want| relative to `bound + F32_TOL·scale` per output; passing means ≤ 1.
fn check_bounded(op: &str, shape: &str, got: &[f32], want: &[f32], bound: &[f32], what: &str) {
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    let mut worst = 0f32;
    let mut worst_ratio = 0f32;
    let mut nan = got.len() != want.len();
    for ((g, r), bd) in got.iter().zip(want).zip(bound) {
        let diff = (g - r).abs();
        nan |= diff.is_nan();
        worst = worst.max(diff);
        worst_ratio = worst_ratio.max(diff / (bd + F32_TOL * scale));
    }
    let ok = !nan && worst_ratio <= 1.0;
    eprintln!(
        "| {op} | {shape} | {:.2e} | ≤ {what} (used {:.0}%) | {} |",
        worst / scale,
        worst_ratio * 100.0,
        if ok { "ok" } else { "FAIL" }
    );
    assert!(ok, "{op} {shape}: deviation beyond the {what}");
}

/// Per-output bound of a product computed with activations cast to a 16-bit float of unit
/// roundoff `u` and accumulated in f32: u·Σ_k |w_nk x_k| (input rounding) + u·|y_n| (output).
fn cast_bound(x: &[f32], t: usize, k: usize, w_exact: &Tensor, y: &[f32], u: f32) -> Vec<f32> {
    let sum_abs = flat(
        &cpu(&x.iter().map(|v| v.abs()).collect::<Vec<_>>(), &[t, k])
            .matmul(&w_exact.abs().and_then(|w| w.t()).expect("|w|ᵀ"))
            .expect("Σ|wx|"),
    );
    sum_abs
        .iter()
        .zip(y)
        .map(|(s, y)| u * s + u * y.abs())
        .collect()
}

fn check_matmul(be: &Backend, t: usize, n: usize, k: usize, stored: Stored, bias: bool) {
    let seed = (t * 31 + n * 7 + k) as u64;
    let x = random(seed, t * k, 1.0);
    let w = random(seed + 1, n * k, 1.0);
    let b = random(seed + 2, n, 1.0);
    let qw = QWeight::new(&w, n, k, stored, bias.then(|| b.clone()));
    let got = be.matmul(&x, (t, n, k), &qw);
    let xc = cpu(&x, &[t, k]);
    let mut want = xc.matmul(&qw.exact.t().expect("t")).expect("matmul");
    if bias {
        want = want.broadcast_add(&cpu(&b, &[n])).expect("bias");
    }
    let want = flat(&want);
    let shape = format!(
        "{t}×{k} · ({n}×{k} {})ᵀ{} on {}",
        stored.name(),
        if bias { " + bias" } else { "" },
        be.name()
    );
    let kernel = if t == 1 { "mat-vec" } else { "mat-mat" };
    let w_abs = qw.exact.abs().expect("abs");
    let rounding_bound = |block: usize| qmatmul_bound(&x, t, k, &w_abs, block);
    let block = match stored {
        Stored::Quant(GgmlDType::Q8_0 | GgmlDType::Q4_0) => 32,
        _ => 256,
    };
    if be.matmul_is_exact(stored) {
        let op = format!("{kernel} vs dequantized f32");
        assert_close(&op, &shape, &got, &want, F32_TOL);
    } else {
        let (bound, what) = match stored {
            Stored::Dense(DType::F16) => (
                cast_bound(&x, t, k, &qw.exact, &want, 2f32.powi(-11)),
                "f16 rounding bound",
            ),
            Stored::Dense(DType::BF16) => (
                cast_bound(&x, t, k, &qw.exact, &want, 2f32.powi(-8)),
                "bf16 rounding bound",
            ),
            Stored::Dense(d) => panic!("no bound for {d:?} weights"),
            Stored::Quant(_) => (rounding_bound(block), "activation-rounding bound"),
        };
        let op = format!("{kernel} vs dequantized f32");
        check_bounded(&op, &shape, &got, &want, &bound, what);
    }
    // Our own block decoding against GGML's kernels (candle's QMatMul on the CPU).
    if let (StoredCpu::Quant(qt), true) = (&qw.stored_cpu, be.matmul_is_exact(stored)) {
        let bytes = qt.data().expect("blocks");
        let again = ggml_file::qtensor_from_ggml(qt.dtype(), &bytes, vec![n, k], &Device::Cpu)
            .expect("blocks");
        let qmm = QMatMul::from_qtensor(again).expect("qmatmul");
        let mut q = qmm.forward(&xc).expect("qmatmul");
        if bias {
            q = q.broadcast_add(&cpu(&b, &[n])).expect("bias");
        }
        let op = format!("{kernel} vs candle QMatMul");
        check_bounded(
            &op,
            &shape,
            &got,
            &flat(&q),
            &rounding_bound(block),
            "activation-rounding bound",
        );
    }
}

const QUANTS: [Stored; 4] = [
    Stored::Quant(GgmlDType::Q8_0),
    Stored::Quant(GgmlDType::Q4_0),
    Stored::Quant(GgmlDType::Q4K),
    Stored::Quant(GgmlDType::Q6K),
];

const DENSE: [Stored; 3] = [
    Stored::Dense(DType::F32),
    Stored::Dense(DType::F16),
    Stored::Dense(DType::BF16),
];

#[test]
fn matvec_decode_every_weight_type() {
    for be in backends() {
        for stored in DENSE.into_iter().chain(QUANTS) {
            check_matmul(&be, 1, 4096, 4096, stored, true);
        }
        // Short rows share a workgroup (Vulkan: one thread per 32-wide chunk): K of 1, 3, 8
        // chunks, a ragged last chunk, N no multiple of the outputs per workgroup.
        for stored in DENSE {
            check_matmul(&be, 1, 100, 100, stored, true);
            check_matmul(&be, 1, 37, 20, stored, false);
        }
        check_matmul(&be, 1, 100, 96, Stored::Quant(GgmlDType::Q8_0), true);
        check_matmul(&be, 1, 130, 256, Stored::Quant(GgmlDType::Q4K), true);
    }
}

#[test]
fn matvec_decode_7b_ffn_and_lm_head() {
    for be in backends() {
        for stored in [Stored::Quant(GgmlDType::Q4K), Stored::Quant(GgmlDType::Q6K)] {
            check_matmul(&be, 1, 11008, 4096, stored, false);
            check_matmul(&be, 1, 4096, 11008, stored, false);
            check_matmul(&be, 1, 14336, 4096, stored, false);
            check_matmul(&be, 1, 4096, 14336, stored, false);
        }
        // An f16 lm_head over a 32000 vocabulary is 250 MiB: more than lavapipe binds at once,
        // so it runs as row parts there.
        check_matmul(&be, 1, 32000, 4096, Stored::Dense(DType::F16), false);
        check_matmul(&be, 1, 32000, 4096, Stored::Quant(GgmlDType::Q6K), false);
    }
}

#[test]
fn matmat_prefill_2304_tokens_q4k() {
    for be in backends() {
        check_matmul(&be, 2304, 4096, 4096, Stored::Quant(GgmlDType::Q4K), false);
    }
}

#[test]
fn matmat_prefill_every_weight_type() {
    for be in backends() {
        for stored in DENSE.into_iter().chain(QUANTS) {
            check_matmul(&be, 200, 1024, 4096, stored, true);
        }
        // Ragged tiles: T, N and K that are no multiple of the 64×64×32 tile (dense K is free).
        for stored in DENSE {
            check_matmul(&be, 77, 100, 100, stored, true);
        }
        check_matmul(&be, 77, 100, 256, Stored::Quant(GgmlDType::Q4K), true);
        check_matmul(&be, 3, 100, 96, Stored::Quant(GgmlDType::Q8_0), true);
    }
}

/// Every family's fixture: Fuyu (LayerNorm, fused per-head QKV, q/k norms, partial rotary,
/// relu²), SOLO and EVE v1 (Llama), EVE v2 (Qwen2 with modality experts on norms, attention and
/// MLP), Mono-InternVL (InternLM2 fused QKV, MLP experts), HoVLE (a pre-decoder stack with its
/// own heads and KV cache in front of InternLM2).
const FIXTURES: [&str; 6] = [
    "fuyu-tiny",
    "solo-tiny",
    "eve1-tiny",
    "eve2-tiny",
    "monointernvl-tiny",
    "hovle-tiny",
];

#[test]
fn check_reference_fixtures_on_every_backend() {
    // The CPU itself is checked by the main test suite.
    for be in backends().into_iter().filter(|b| !b.is_cpu()) {
        for name in FIXTURES {
            let dir = monovlm_e2e::fixture(name);
            let reports = check_fixture(&dir, None, &be.options())
                .unwrap_or_else(|e| panic!("{name} on {}: {e}", be.name()));
            for r in &reports {
                eprintln!("{name} on {}: {}", be.name(), r.line());
            }
            assert!(
                all_passed(&reports),
                "{name}: check-reference fails on {}",
                be.name()
            );
        }
    }
}

#[test]
fn decoder_matches_cpu_across_kv_cache_growth() {
    // A whole decoder fed the same rows on both sides: a prefill in two chunks (the second
    // continues the cache; rows 5..30 of the first and 3..9 of the second are image rows, which
    // take the expert weights where a model has them), then single tokens — image rows among
    // them — until the cache outgrows its first 64 positions and is copied into a bigger one.
    // Every hidden state, the pre-decoder's output and the logits must agree.
    for be in backends().into_iter().filter(|b| !b.is_cpu()) {
        for name in FIXTURES {
            let dir = monovlm_e2e::fixture(name).join("model");
            let cpu_model = Model::load(&dir, &LoadOptions::default()).expect("cpu model");
            let dev_model = Model::load(&dir, &be.options()).expect("device model");
            let vocab = cpu_model.spec.decoder.vocab as u32;
            let mut rng = StdRng::seed_from_u64(99);
            let ids: Vec<u32> = (0..80).map(|_| rng.random_range(0..vocab)).collect();
            let steps: Vec<(std::ops::Range<usize>, Vec<usize>)> =
                [(0..40, (5..30).collect()), (40..60, (3..9).collect())]
                    .into_iter()
                    .chain((60..80).map(|i| (i..i + 1, if i % 3 == 0 { vec![0] } else { vec![] })))
                    .collect();
            let mut cpu_cache = cpu_model.new_cache();
            let mut dev_cache = dev_model.new_cache();
            for (r, image_rows) in steps {
                let e = cpu_model.decoder.embed(&ids[r.clone()]).expect("embed");
                let want = cpu_model
                    .forward_full(&e, &image_rows, &mut cpu_cache)
                    .expect("cpu forward");
                let e = e
                    .to_device(dev_model.device())
                    .expect("embeds on the device");
                let got = dev_model
                    .forward_full(&e, &image_rows, &mut dev_cache)
                    .expect("device forward");
                let what = format!("{name} positions {}..{} on {}", r.start, r.end, be.name());
                let (gh, wh) = (flat(&got.hidden), flat(&want.hidden));
                assert_close("decoder hidden", &what, &gh, &wh, F32_TOL);
                match (&got.pre_out, &want.pre_out) {
                    (Some(g), Some(w)) => {
                        assert_close("pre-decoder", &what, &flat(g), &flat(w), F32_TOL)
                    }
                    (None, None) => {}
                    _ => panic!("{what}: a pre-decoder output on one side only"),
                }
                let lw = cpu_model.decoder.logits(&want.hidden).expect("cpu logits");
                let lg = dev_model
                    .decoder
                    .logits(&got.hidden)
                    .expect("device logits");
                assert_close("decoder logits", &what, &flat(&lg), &flat(&lw), F32_TOL);
            }
            assert_eq!(dev_cache.len, 80);
        }
    }
}

#[cfg(feature = "vulkan")]
#[test]
fn vulkan_modality_rows_gather_and_scatter_back() {
    // Routing image rows to expert weights: a 2304-row prefix at 7B width split into text and
    // image rows (interleaved as in a prompt: text, image block, text) and put back in order.
    let Some(ctx) = vulkan() else { return };
    let (t, dim) = (2304, 4096);
    let x = random(4, t * dim, 1.0);
    let expert: Vec<u32> = (40..2250).collect();
    let text: Vec<u32> = (0..40).chain(2250..t as u32).collect();
    let text_idx = ctx.row_index(&text, t).expect("text rows");
    let expert_idx = ctx.row_index(&expert, t).expect("image rows");
    let dx = up(&ctx, &x, &[t, dim]);
    let pick = |rows: &[u32]| {
        let idx = Tensor::new(rows, &Device::Cpu).expect("ids");
        flat(&cpu(&x, &[t, dim]).index_select(&idx, 0).expect("rows"))
    };
    let got = run(&ctx, |b| b.gather_rows(&dx, &expert_idx));
    assert_close(
        "gather_rows",
        "2210 of 2304×4096",
        &got,
        &pick(&expert),
        0.0,
    );
    // Scattering both parts back rebuilds the input exactly; one part alone leaves zeros.
    let back = run(&ctx, |b| {
        let xt = b.gather_rows(&dx, &text_idx)?;
        let xe = b.gather_rows(&dx, &expert_idx)?;
        let out = ctx.zeros(&[t, dim])?;
        b.scatter_rows(&xt, &text_idx, &out)?;
        b.scatter_rows(&xe, &expert_idx, &out)?;
        Ok(out)
    });
    assert_close("scatter_rows", "2304×4096", &back, &x, 0.0);
    let half = run(&ctx, |b| {
        let xt = b.gather_rows(&dx, &text_idx)?;
        let out = ctx.zeros(&[t, dim])?;
        b.scatter_rows(&xt, &text_idx, &out)?;
        Ok(out)
    });
    assert!(half[100 * dim..101 * dim].iter().all(|&v| v == 0.0));
    assert_eq!(half[2260 * dim + 7], x[2260 * dim + 7]);
    // Indices must ascend within the row count (scatter relies on distinct rows).
    assert!(ctx.row_index(&[3, 2], 10).is_err());
    assert!(ctx.row_index(&[1, 1], 10).is_err());
    assert!(ctx.row_index(&[9, 10], 10).is_err());
    let mut b = ctx.batch();
    assert!(b
        .gather_rows(&dx.rows(10).expect("rows"), &text_idx)
        .is_err());
}

#[cfg(feature = "vulkan")]
#[test]
fn vulkan_front_ends_run_their_linears_on_the_device() {
    // Every family's image front end: its patch embedding, attention and projector linears are
    // on the device, and the image rows it produces for a real fixture image match the CPU's.
    let Some(ctx) = vulkan() else { return };
    for name in FIXTURES {
        let fixture = monovlm_e2e::fixture(name);
        let dir = fixture.join("model");
        let cpu_model = Model::load(&dir, &LoadOptions::default()).expect("cpu model");
        let mut dev_model =
            Model::load(&dir, &Backend::Vulkan(ctx.clone()).options()).expect("vulkan model");
        let linears = dev_model.frontend.linears_mut();
        assert!(!linears.is_empty(), "{name}: a front end without linears");
        for l in linears {
            assert!(
                matches!(l.weight, LinearWeight::Vulkan(_)),
                "{name}: a front-end linear stayed on the host"
            );
        }
        let mut images: Vec<_> = std::fs::read_dir(fixture.join("images"))
            .expect("images")
            .map(|e| e.expect("entry").path())
            .collect();
        images.sort();
        let img = pilimage::open_rgb(&images[0], &DecodeLimits::default()).expect("image");
        let grid = cpu_model.preprocess(&img).expect("preprocess");
        let want = cpu_model
            .frontend
            .forward(&grid, &Device::Cpu)
            .expect("cpu front end");
        let got = dev_model
            .frontend
            .forward(&grid, &Device::Cpu)
            .expect("vulkan front end");
        let what = format!("{name} {}", images[0].display());
        assert_close("front end", &what, &flat(&got), &flat(&want), F32_TOL);
    }
}

#[cfg(feature = "vulkan")]
#[test]
fn vulkan_software_adapters_are_flagged_as_slow() {
    // lavapipe (CI's adapter) runs the kernels on the CPU: users get told to prefer --device cpu;
    // a real GPU gets no such note.
    let Some(ctx) = vulkan() else { return };
    let note = ComputeDevice::Vulkan(ctx.clone()).performance_note();
    let is_llvmpipe = ctx.info.driver.contains("llvmpipe") || ctx.info.name.contains("llvmpipe");
    assert_eq!(ctx.info.is_software(), note.is_some(), "{:?}", ctx.info);
    if is_llvmpipe {
        let note = note.expect("lavapipe is a software adapter");
        assert!(note.contains("--device cpu"), "{note}");
    }
    assert!(ComputeDevice::Candle(Device::Cpu)
        .performance_note()
        .is_none());
}

/// A random rank-4 PEFT adapter on every 2-D weight inside the decoder layers of `model_dir`
/// (fused QKV, experts and pre-decoder layers included), written to `out`.
fn random_adapter(model_dir: &std::path::Path, out: &std::path::Path, seed: u64) {
    use runtime::adapter::{Adapters, LoraConfig, LoraDelta};
    use runtime::checkpoint::{SafetensorsFiles, TensorSource};
    let files =
        SafetensorsFiles::open_files(&[model_dir.join("model.safetensors")]).expect("safetensors");
    let r = 4;
    let mut modules = std::collections::BTreeMap::new();
    for (i, name) in files.names().into_iter().enumerate() {
        let Some(module) = name.strip_suffix(".weight") else {
            continue;
        };
        let shape = files.shape(&name).expect("shape");
        if shape.len() != 2 || !module.contains("layers.") || module.contains("norm") {
            continue;
        }
        let (out_f, in_f) = (shape[0], shape[1]);
        let s = seed + 2 * i as u64;
        let delta = LoraDelta {
            a: cpu(&random(s, r * in_f, 0.3), &[r, in_f]),
            b: cpu(&random(s + 1, out_f * r, 0.3), &[out_f, r]),
            scale: 2.0,
            dropout: None,
        };
        modules.insert(module.to_string(), delta);
    }
    assert!(
        !modules.is_empty(),
        "no layer weights in {}",
        model_dir.display()
    );
    let targets = modules.keys().cloned().collect();
    Adapters {
        config: LoraConfig::new(r, 8.0, targets),
        modules,
    }
    .save_peft(out)
    .expect("save adapter");
}

#[test]
fn lora_adapters_match_cpu() {
    // An unmerged LoRA adapter on every decoder-layer linear: the device applies scale·B(A x)
    // as the CPU does (a prefill with image rows, then decode steps).
    for be in backends().into_iter().filter(|b| !b.is_cpu()) {
        for name in ["fuyu-tiny", "eve2-tiny", "hovle-tiny"] {
            let dir = monovlm_e2e::fixture(name).join("model");
            let tmp = tempfile::tempdir().expect("tempdir");
            random_adapter(&dir, tmp.path(), 7);
            let with_lora = |o: LoadOptions| LoadOptions {
                lora: Some(tmp.path().to_path_buf()),
                ..o
            };
            let plain = Model::load(&dir, &LoadOptions::default()).expect("cpu model");
            let cpu_model = Model::load(&dir, &with_lora(LoadOptions::default())).expect("cpu");
            let dev_model = Model::load(&dir, &with_lora(be.options())).expect("device");
            let vocab = cpu_model.spec.decoder.vocab as u32;
            let mut rng = StdRng::seed_from_u64(5);
            let ids: Vec<u32> = (0..24).map(|_| rng.random_range(0..vocab)).collect();
            let (mut cc, mut dc, mut pc) = (
                cpu_model.new_cache(),
                dev_model.new_cache(),
                plain.new_cache(),
            );
            for (r, image_rows) in [
                (0..20, (2..12).collect::<Vec<_>>()),
                (20..21, vec![]),
                (21..22, vec![0]),
            ] {
                let e = cpu_model.decoder.embed(&ids[r.clone()]).expect("embed");
                let want = cpu_model
                    .forward_full(&e, &image_rows, &mut cc)
                    .expect("cpu");
                let base = plain.forward_full(&e, &image_rows, &mut pc).expect("plain");
                let e = e
                    .to_device(dev_model.device())
                    .expect("embeds on the device");
                let got = dev_model
                    .forward_full(&e, &image_rows, &mut dc)
                    .expect("device");
                let what = format!(
                    "{name} + LoRA positions {}..{} on {}",
                    r.start,
                    r.end,
                    be.name()
                );
                let want = flat(&want.hidden);
                // The adapter must matter, or this test proves nothing.
                assert!(
                    rel_err(&flat(&base.hidden), &want) > 1e-2,
                    "{what}: LoRA changed nothing"
                );
                assert_close(
                    "decoder hidden with LoRA",
                    &what,
                    &flat(&got.hidden),
                    &want,
                    F32_TOL,
                );
            }
        }
    }
}

#[cfg(feature = "vulkan")]
#[test]
fn vulkan_profiling_times_every_kernel_and_keeps_results() {
    // A profiled context runs each kernel on its own: the results are those of the batched
    // context, and the table has one row per kernel and grid with its call count.
    let Some(ctx) = vulkan() else { return };
    let profiled = VulkanContext::open_with(ctx.info.index, true).expect("profiled context");
    let (a, b) = (random(50, 1000, 1.0), random(51, 1000, 1.0));
    let twice = |c: &VulkanContext| {
        let (ad, bd) = (up(c, &a, &[1000]), up(c, &b, &[1000]));
        run(c, |x| {
            let s = x.add(&ad, &bd)?;
            let s = x.add(&s, &bd)?;
            x.relu_sq(&s)
        })
    };
    assert_eq!(twice(&profiled), twice(&ctx));
    let rows = profiled.profile().expect("profiling on").rows();
    let calls = |k: &str| {
        rows.iter()
            .filter(|r| r.0.starts_with(k))
            .map(|r| r.1)
            .sum::<usize>()
    };
    assert_eq!((calls("Add"), calls("ReluSq")), (2, 1), "{rows:?}");
    let table = profiled.profile().expect("profiling on").table(10);
    assert!(
        table.contains("| Add ") && table.contains("ms per call"),
        "{table}"
    );
}
