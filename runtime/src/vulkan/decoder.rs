//! The decoder on a Vulkan device: the same [`DecoderSpec`] the CPU decoder runs (norm kind, QKV
//! layout, q/k norms, partial rotary, sliding window, MLP kind, biases: all data), through the
//! device ops. Weights are loaded by the CPU decoder's own loader one layer at a time (so fused
//! QKV splits and tensor names are shared) and uploaded in their stored encoding.
//!
//! Stays on the CPU: the token embeddings and the image front end (their rows are uploaded per
//! forward: one row per decoded token). On the device: every decoder layer, the KV cache, the
//! final norm and the lm_head; hidden states and logits are read back.
//! Not yet on the device: modality experts (EVE v2, Mono-InternVL) and pre-decoder stacks (HoVLE)
//! are refused at load with an error instead of running on the CPU behind the user's back.

use super::buffers::{DeviceTensor, DeviceWeight};
use super::context::VulkanContext;
use super::kv_cache::DeviceKvCache;
use super::ops::{AttentionShape, Batch, MAX_HEAD_DIM};
use crate::checkpoint::Weights;
use crate::decoder::layers::{Linear, LinearWeight, Norm, Rope};
use crate::decoder::{load_block, Block, Mlp, Routed};
use crate::error::{Error, Result};
use crate::spec::{DecoderSpec, NormKind};
use candle_core::{DType, Device, Tensor};
use std::sync::Arc;

/// Prefills longer than this wait for each layer before recording the next, so the
/// intermediates of at most one layer are alive at a time.
const WAIT_PER_LAYER_ABOVE_ROWS: usize = 64;

struct DeviceLinear {
    weight: DeviceWeight,
    bias: Option<DeviceTensor>,
}

impl DeviceLinear {
    fn upload(ctx: &VulkanContext, lin: &Linear, name: &str) -> Result<Self> {
        if lin.lora.is_some() {
            return Err(Error::Unsupported(format!(
                "{name}: LoRA adapters do not run on Vulkan yet (merge the adapter, or use --device cpu)"
            )));
        }
        let weight = match &lin.weight {
            LinearWeight::Dense(t) => ctx.upload_dense_weight(t)?,
            LinearWeight::Quantized(q) => ctx.upload_qmatmul(q)?,
        };
        let bias = lin
            .bias
            .as_ref()
            .map(|b| ctx.upload_tensor(b))
            .transpose()?;
        Ok(DeviceLinear { weight, bias })
    }

    fn forward(&self, b: &mut Batch, x: &DeviceTensor) -> Result<DeviceTensor> {
        b.matmul(x, &self.weight, self.bias.as_ref())
    }
}

struct DeviceNorm {
    kind: NormKind,
    weight: DeviceTensor,
    bias: Option<DeviceTensor>,
    eps: f64,
}

impl DeviceNorm {
    fn upload(ctx: &VulkanContext, n: &Norm) -> Result<Self> {
        Ok(DeviceNorm {
            kind: n.kind,
            weight: ctx.upload_tensor(&n.weight)?,
            bias: n.bias.as_ref().map(|b| ctx.upload_tensor(b)).transpose()?,
            eps: n.eps,
        })
    }

    /// Normalises over the last dimension of `x`.
    fn forward(&self, b: &mut Batch, x: &DeviceTensor) -> Result<DeviceTensor> {
        match self.kind {
            NormKind::Rms => b.rms_norm(x, &self.weight, self.eps),
            NormKind::LayerNorm => b.layer_norm(x, &self.weight, self.bias.as_ref(), self.eps),
        }
    }
}

enum DeviceMlp {
    SwiGlu {
        gate: DeviceLinear,
        up: DeviceLinear,
        down: DeviceLinear,
    },
    Relu2 {
        up: DeviceLinear,
        down: DeviceLinear,
    },
}

impl DeviceMlp {
    fn forward(&self, b: &mut Batch, x: &DeviceTensor) -> Result<DeviceTensor> {
        match self {
            DeviceMlp::SwiGlu { gate, up, down } => {
                let g = gate.forward(b, x)?;
                let u = up.forward(b, x)?;
                let h = b.silu_mul(&g, &u)?;
                down.forward(b, &h)
            }
            DeviceMlp::Relu2 { up, down } => {
                let u = up.forward(b, x)?;
                let h = b.relu_sq(&u)?;
                down.forward(b, &h)
            }
        }
    }
}

struct DeviceLayer {
    attn_norm: DeviceNorm,
    q: DeviceLinear,
    k: DeviceLinear,
    v: DeviceLinear,
    o: DeviceLinear,
    q_norm: Option<DeviceNorm>,
    k_norm: Option<DeviceNorm>,
    mlp_norm: DeviceNorm,
    mlp: DeviceMlp,
}

/// The text copy of a routed part; experts are refused before any layer loads.
fn text<T>(part: Routed<T>) -> T {
    part.text
}

impl DeviceLayer {
    fn upload(ctx: &VulkanContext, block: Block, i: usize) -> Result<Self> {
        let name = |what: &str| format!("layer {i} {what}");
        let attn = text(block.attn);
        let mlp = match text(block.mlp) {
            Mlp::SwiGlu { gate, up, down } => DeviceMlp::SwiGlu {
                gate: DeviceLinear::upload(ctx, &gate, &name("gate"))?,
                up: DeviceLinear::upload(ctx, &up, &name("up"))?,
                down: DeviceLinear::upload(ctx, &down, &name("down"))?,
            },
            Mlp::Relu2 { up, down } => DeviceMlp::Relu2 {
                up: DeviceLinear::upload(ctx, &up, &name("up"))?,
                down: DeviceLinear::upload(ctx, &down, &name("down"))?,
            },
        };
        Ok(DeviceLayer {
            attn_norm: DeviceNorm::upload(ctx, &text(block.attn_norm))?,
            q: DeviceLinear::upload(ctx, &attn.q, &name("q"))?,
            k: DeviceLinear::upload(ctx, &attn.k, &name("k"))?,
            v: DeviceLinear::upload(ctx, &attn.v, &name("v"))?,
            o: DeviceLinear::upload(ctx, &attn.o, &name("o"))?,
            q_norm: attn
                .q_norm
                .as_ref()
                .map(|n| DeviceNorm::upload(ctx, n))
                .transpose()?,
            k_norm: attn
                .k_norm
                .as_ref()
                .map(|n| DeviceNorm::upload(ctx, n))
                .transpose()?,
            mlp_norm: DeviceNorm::upload(ctx, &text(block.mlp_norm))?,
            mlp,
        })
    }
}

/// Decoder layers, final norm and lm_head on one Vulkan device.
pub struct VulkanDecoder {
    ctx: Arc<VulkanContext>,
    spec: DecoderSpec,
    layers: Vec<DeviceLayer>,
    final_norm: DeviceNorm,
    lm_head: DeviceLinear,
    rope: Rope,
}

impl std::fmt::Debug for VulkanDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "VulkanDecoder({} layers on {:?})",
            self.layers.len(),
            self.ctx
        )
    }
}

impl VulkanDecoder {
    /// Says why `spec` cannot run on Vulkan yet, if it cannot.
    pub fn check_supported(spec: &DecoderSpec, pre: Option<&DecoderSpec>) -> Result<()> {
        if spec.names.experts.is_some() {
            return Err(Error::Unsupported(
                "this model routes image positions through modality-expert weights (EVE v2, \
                 Mono-InternVL), which the Vulkan backend does not run yet; use --device cpu"
                    .into(),
            ));
        }
        if pre.is_some() {
            return Err(Error::Unsupported(
                "this model's holistic pre-decoder layers (HoVLE) do not run on the Vulkan \
                 backend yet; use --device cpu"
                    .into(),
            ));
        }
        if spec.head_dim > MAX_HEAD_DIM {
            return Err(Error::Unsupported(format!(
                "head dim {} (the Vulkan attention kernels handle up to {MAX_HEAD_DIM})",
                spec.head_dim
            )));
        }
        Ok(())
    }

    /// Loads and uploads every layer of `spec`, one at a time; `final_norm` and `lm_head` come
    /// from the CPU loader (the lm_head may be the tied embedding table).
    pub fn load(
        ctx: Arc<VulkanContext>,
        spec: &DecoderSpec,
        w: &Weights,
        final_norm: &Norm,
        lm_head: &Linear,
    ) -> Result<Self> {
        Self::check_supported(spec, None)?;
        let mut layers = Vec::with_capacity(spec.layers);
        for i in 0..spec.layers {
            let block = load_block(spec, w, i)?;
            layers.push(DeviceLayer::upload(&ctx, block, i)?);
        }
        Ok(VulkanDecoder {
            final_norm: DeviceNorm::upload(&ctx, final_norm)?,
            lm_head: DeviceLinear::upload(&ctx, lm_head, "lm_head")?,
            rope: Rope::new(spec.rope_theta, spec.rotary_dim),
            spec: spec.clone(),
            layers,
            ctx,
        })
    }

    pub fn context(&self) -> &Arc<VulkanContext> {
        &self.ctx
    }

    pub fn new_cache(&self) -> DeviceKvCache {
        DeviceKvCache::new(
            self.ctx.clone(),
            self.layers.len(),
            self.spec.kv_heads,
            self.spec.head_dim,
        )
    }

    /// Rows per device pass whose widest activation (`width` f32 values per row) fits one binding.
    fn rows_per_pass(&self, width: usize) -> usize {
        (self.ctx.max_binding() as usize / (4 * width.max(1))).max(1)
    }

    /// Runs rows `x` `[T, D]` at positions `start..start+T` through every layer and the final
    /// norm, appending to `cache`. Returns the normed hidden states `[T, D]` (f32, CPU).
    pub fn forward(&self, x: &Tensor, start: usize, cache: &mut DeviceKvCache) -> Result<Tensor> {
        let (t, d) = x.dims2()?;
        if d != self.spec.hidden {
            return Err(Error::InvalidArgument(format!(
                "{d}-wide rows for a {}-wide decoder",
                self.spec.hidden
            )));
        }
        let s = &self.spec;
        let widest = s.hidden.max(s.heads * s.head_dim).max(s.intermediate);
        let pass = self.rows_per_pass(widest);
        let values: Vec<f32> = x.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        cache.reserve(start + t, start)?;
        let mut out = Vec::with_capacity(t * d);
        for r0 in (0..t).step_by(pass) {
            let n = pass.min(t - r0);
            let h = self.forward_rows(&values[r0 * d..(r0 + n) * d], n, start + r0, cache)?;
            out.extend(self.ctx.read(&h)?);
        }
        Ok(Tensor::from_vec(out, (t, d), &Device::Cpu)?)
    }

    fn forward_rows(
        &self,
        x: &[f32],
        t: usize,
        start: usize,
        cache: &DeviceKvCache,
    ) -> Result<DeviceTensor> {
        let s = &self.spec;
        let (heads, kv_heads, hd) = (s.heads, s.kv_heads, s.head_dim);
        let positions: Vec<usize> = (start..start + t).collect();
        let (cos, sin) = self.ctx.rope_tables(&self.rope, &positions)?;
        let shape = AttentionShape {
            start,
            window: s.sliding_window,
        };
        let mut x = self.ctx.upload(x, &[t, s.hidden])?;
        for (i, layer) in self.layers.iter().enumerate() {
            let (k_cache, v_cache) = cache.layer(i)?;
            let mut b = self.ctx.batch();
            let h = layer.attn_norm.forward(&mut b, &x)?;
            let mut q = layer.q.forward(&mut b, &h)?.reshaped(&[t, heads, hd])?;
            let mut k = layer.k.forward(&mut b, &h)?.reshaped(&[t, kv_heads, hd])?;
            let v = layer.v.forward(&mut b, &h)?.reshaped(&[t, kv_heads, hd])?;
            if let (Some(qn), Some(kn)) = (&layer.q_norm, &layer.k_norm) {
                q = qn.forward(&mut b, &q)?;
                k = kn.forward(&mut b, &k)?;
            }
            let q = b.rope(&q, &cos, &sin, s.rotary_dim)?;
            let k = b.rope(&k, &cos, &sin, s.rotary_dim)?;
            b.copy_rows(&k, k_cache, start)?;
            b.copy_rows(&v, v_cache, start)?;
            let a = b.attention(&q, k_cache, v_cache, shape)?;
            let o = layer.o.forward(&mut b, &a.reshaped(&[t, heads * hd])?)?;
            x = b.add(&x, &o)?;
            let h = layer.mlp_norm.forward(&mut b, &x)?;
            let m = layer.mlp.forward(&mut b, &h)?;
            x = b.add(&x, &m)?;
            b.submit()?;
            if t > WAIT_PER_LAYER_ABOVE_ROWS {
                self.ctx.wait()?;
            }
        }
        let mut b = self.ctx.batch();
        let h = self.final_norm.forward(&mut b, &x)?;
        b.submit()?;
        Ok(h)
    }

    /// Logits `[T, V]` (f32, CPU) of normed hidden states `[T, D]`.
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        let (t, d) = hidden.dims2()?;
        let vocab = self.lm_head.weight.rows;
        let values: Vec<f32> = hidden.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        let pass = self.rows_per_pass(vocab.max(d));
        let mut out = Vec::with_capacity(t * vocab);
        for r0 in (0..t).step_by(pass) {
            let n = pass.min(t - r0);
            let h = self.ctx.upload(&values[r0 * d..(r0 + n) * d], &[n, d])?;
            let mut b = self.ctx.batch();
            let logits = self.lm_head.forward(&mut b, &h)?;
            b.submit()?;
            out.extend(self.ctx.read(&logits)?);
        }
        Ok(Tensor::from_vec(out, (t, vocab), &Device::Cpu)?)
    }
}
