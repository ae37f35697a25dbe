//! The decoder on a Vulkan device: the same [`DecoderSpec`] the CPU decoder runs (norm kind, QKV
//! layout, q/k norms, partial rotary, sliding window, MLP kind, biases: all data), through the
//! device ops. Weights are loaded by the CPU decoder's own loader one layer at a time (so fused
//! QKV splits and tensor names are shared) and uploaded in their stored encoding.
//!
//! Stays on the CPU: the token embeddings and the image front ends' reshapes (their rows are
//! uploaded per forward: one row per decoded token; the front ends' linears run on the device
//! through [`DeviceLinear::forward_host`]). On the device: every decoder layer, the KV cache, the
//! final norm and the lm_head; hidden states and logits are read back.
//! Modality experts (EVE v2, Mono-InternVL): each routed part keeps its image-row copy on the
//! device; a forward that mixes text and image rows gathers each kind's rows, runs them through
//! their weights and scatters the results back in sequence order. A pre-decoder stack (HoVLE)
//! is a second [`DeviceStack`] with its own heads, RoPE and layers of the KV cache.

use super::buffers::DeviceTensor;
use super::context::VulkanContext;
use super::kv_cache::DeviceKvCache;
use super::linear::DeviceLinear;
use super::ops::{AttentionShape, Batch, RowIndex, MAX_HEAD_DIM};
use crate::checkpoint::Weights;
use crate::decoder::layers::{Linear, Norm, Rope};
use crate::decoder::{load_block, Attention, Block, Forward, Mlp, Routed, RowSplit};
use crate::error::{Error, Result};
use crate::spec::{DecoderSpec, NormKind};
use candle_core::{DType, Device, Tensor};
use std::sync::Arc;

/// Prefills longer than this wait for each layer before recording the next, so the
/// intermediates of at most one layer are alive at a time.
const WAIT_PER_LAYER_ABOVE_ROWS: usize = 64;

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

struct DeviceAttention {
    q: DeviceLinear,
    k: DeviceLinear,
    v: DeviceLinear,
    o: DeviceLinear,
    q_norm: Option<DeviceNorm>,
    k_norm: Option<DeviceNorm>,
}

impl DeviceAttention {
    fn upload(
        ctx: &Arc<VulkanContext>,
        a: Attention,
        name: &dyn Fn(&str) -> String,
    ) -> Result<Self> {
        let norm = |n: &Option<Norm>| n.as_ref().map(|n| DeviceNorm::upload(ctx, n)).transpose();
        Ok(DeviceAttention {
            q: DeviceLinear::upload(ctx, &a.q, &name("q"))?,
            k: DeviceLinear::upload(ctx, &a.k, &name("k"))?,
            v: DeviceLinear::upload(ctx, &a.v, &name("v"))?,
            o: DeviceLinear::upload(ctx, &a.o, &name("o"))?,
            q_norm: norm(&a.q_norm)?,
            k_norm: norm(&a.k_norm)?,
        })
    }
}

impl DeviceMlp {
    fn upload(ctx: &Arc<VulkanContext>, m: Mlp, name: &dyn Fn(&str) -> String) -> Result<Self> {
        let lin = |l: &Linear, what: &str| DeviceLinear::upload(ctx, l, &name(what));
        Ok(match m {
            Mlp::SwiGlu { gate, up, down } => DeviceMlp::SwiGlu {
                gate: lin(&gate, "gate")?,
                up: lin(&up, "up")?,
                down: lin(&down, "down")?,
            },
            Mlp::Relu2 { up, down } => DeviceMlp::Relu2 {
                up: lin(&up, "up")?,
                down: lin(&down, "down")?,
            },
        })
    }
}

/// One decoder layer; each part has its image-row copy where the model has modality experts.
struct DeviceLayer {
    attn_norm: Routed<DeviceNorm>,
    attn: Routed<DeviceAttention>,
    mlp_norm: Routed<DeviceNorm>,
    mlp: Routed<DeviceMlp>,
}

impl DeviceLayer {
    fn upload(ctx: &Arc<VulkanContext>, block: Block, i: usize) -> Result<Self> {
        let name = |expert: bool| {
            let copy = if expert { "image-expert " } else { "" };
            move |what: &str| format!("layer {i} {copy}{what}")
        };
        let norm = |n: Norm, _| DeviceNorm::upload(ctx, &n);
        Ok(DeviceLayer {
            attn_norm: block.attn_norm.try_map(norm)?,
            attn: block
                .attn
                .try_map(|a, expert| DeviceAttention::upload(ctx, a, &name(expert)))?,
            mlp_norm: block.mlp_norm.try_map(norm)?,
            mlp: block
                .mlp
                .try_map(|m, expert| DeviceMlp::upload(ctx, m, &name(expert)))?,
        })
    }
}

/// Which rows of a forward take the expert weights, with the indices on the device.
enum DeviceRows {
    Text,
    Expert,
    Mixed { text: RowIndex, expert: RowIndex },
}

impl DeviceRows {
    fn new(ctx: &VulkanContext, t: usize, expert_rows: &[usize]) -> Result<Self> {
        Ok(match RowSplit::new(t, expert_rows)? {
            RowSplit::Text => DeviceRows::Text,
            RowSplit::Expert => DeviceRows::Expert,
            RowSplit::Mixed { text, expert } => DeviceRows::Mixed {
                text: ctx.row_index(&text, t)?,
                expert: ctx.row_index(&expert, t)?,
            },
        })
    }

    /// `f(weights, rows)` with the text weights on text rows and the expert weights (when the
    /// part has them) on image rows; each of `f`'s outputs is reassembled in row order.
    fn apply<T>(
        &self,
        b: &mut Batch,
        x: &DeviceTensor,
        part: &Routed<T>,
        f: impl Fn(&T, &mut Batch, &DeviceTensor) -> Result<Vec<DeviceTensor>>,
    ) -> Result<Vec<DeviceTensor>> {
        let Some(expert) = &part.expert else {
            return f(&part.text, b, x);
        };
        let (text_rows, expert_rows) = match self {
            DeviceRows::Text => return f(&part.text, b, x),
            DeviceRows::Expert => return f(expert, b, x),
            DeviceRows::Mixed { text, expert } => (text, expert),
        };
        let xt = b.gather_rows(x, text_rows)?;
        let xe = b.gather_rows(x, expert_rows)?;
        let yt = f(&part.text, b, &xt)?;
        let ye = f(expert, b, &xe)?;
        let t = x.shape[0];
        yt.iter()
            .zip(&ye)
            .map(|(yt, ye)| {
                let mut shape = yt.shape.clone();
                shape[0] = t;
                let out = b.context().zeros(&shape)?;
                b.scatter_rows(yt, text_rows, &out)?;
                b.scatter_rows(ye, expert_rows, &out)?;
                Ok(out)
            })
            .collect()
    }

    /// [`DeviceRows::apply`] for parts with one output.
    fn apply1<T>(
        &self,
        b: &mut Batch,
        x: &DeviceTensor,
        part: &Routed<T>,
        f: impl Fn(&T, &mut Batch, &DeviceTensor) -> Result<DeviceTensor>,
    ) -> Result<DeviceTensor> {
        let mut out = self.apply(b, x, part, |w, b, x| Ok(vec![f(w, b, x)?]))?;
        out.pop()
            .ok_or_else(|| Error::InvalidArgument("routed part returned nothing".into()))
    }
}

/// A stack of layers sharing one set of hyperparameters (the decoder, or HoVLE's pre-decoder),
/// with its own RoPE and its own layers of the KV cache.
struct DeviceStack {
    spec: DecoderSpec,
    layers: Vec<DeviceLayer>,
    rope: Rope,
    /// Index of this stack's first layer in the KV cache.
    first_cache_layer: usize,
}

impl DeviceStack {
    fn load(
        ctx: &Arc<VulkanContext>,
        spec: &DecoderSpec,
        w: &Weights,
        first_cache_layer: usize,
    ) -> Result<Self> {
        let mut layers = Vec::with_capacity(spec.layers);
        for i in 0..spec.layers {
            let block = load_block(spec, w, i)?;
            layers.push(DeviceLayer::upload(ctx, block, i)?);
        }
        Ok(DeviceStack {
            spec: spec.clone(),
            layers,
            rope: Rope::new(spec.rope_theta, spec.rotary_dim),
            first_cache_layer,
        })
    }

    /// Widest activation row of a layer, in f32 values.
    fn widest_row(&self) -> usize {
        let s = &self.spec;
        s.hidden.max(s.heads * s.head_dim).max(s.intermediate)
    }

    /// Records every layer over `x` `[T, D]` at positions `start..start+T` (appending to
    /// `cache`), submitting one batch per layer.
    fn forward(
        &self,
        ctx: &VulkanContext,
        mut x: DeviceTensor,
        rows: &DeviceRows,
        start: usize,
        cache: &DeviceKvCache,
    ) -> Result<DeviceTensor> {
        let s = &self.spec;
        let t = x.shape[0];
        let (heads, kv_heads, hd) = (s.heads, s.kv_heads, s.head_dim);
        let positions: Vec<usize> = (start..start + t).collect();
        let (cos, sin) = ctx.rope_tables(&self.rope, &positions)?;
        let shape = AttentionShape {
            start,
            window: s.sliding_window,
        };
        for (i, layer) in self.layers.iter().enumerate() {
            let (k_cache, v_cache) = cache.layer(self.first_cache_layer + i)?;
            let mut b = ctx.batch();
            let h = rows.apply1(&mut b, &x, &layer.attn_norm, |n, b, x| n.forward(b, x))?;
            let qkv = rows.apply(&mut b, &h, &layer.attn, |a, b, x| {
                Ok(vec![
                    a.q.forward(b, x)?,
                    a.k.forward(b, x)?,
                    a.v.forward(b, x)?,
                ])
            })?;
            let [q, k, v] = &qkv[..] else {
                return Err(Error::InvalidArgument(
                    "attention returned no q, k, v".into(),
                ));
            };
            let mut q = q.reshaped(&[t, heads, hd])?;
            let mut k = k.reshaped(&[t, kv_heads, hd])?;
            let v = v.reshaped(&[t, kv_heads, hd])?;
            // q/k norms act per head after routing: the text copy serves every row (as upstream).
            if let (Some(qn), Some(kn)) = (&layer.attn.text.q_norm, &layer.attn.text.k_norm) {
                q = qn.forward(&mut b, &q)?;
                k = kn.forward(&mut b, &k)?;
            }
            let q = b.rope(&q, &cos, &sin, s.rotary_dim)?;
            let k = b.rope(&k, &cos, &sin, s.rotary_dim)?;
            b.copy_rows(&k, k_cache, start)?;
            b.copy_rows(&v, v_cache, start)?;
            let a = b.attention(&q, k_cache, v_cache, shape)?;
            let a = a.reshaped(&[t, heads * hd])?;
            let o = rows.apply1(&mut b, &a, &layer.attn, |a, b, x| a.o.forward(b, x))?;
            x = b.add(&x, &o)?;
            let h = rows.apply1(&mut b, &x, &layer.mlp_norm, |n, b, x| n.forward(b, x))?;
            let m = rows.apply1(&mut b, &h, &layer.mlp, |m, b, x| m.forward(b, x))?;
            x = b.add(&x, &m)?;
            b.submit()?;
            if t > WAIT_PER_LAYER_ABOVE_ROWS {
                ctx.wait()?;
            }
        }
        Ok(x)
    }
}

/// Decoder layers (and a pre-decoder stack, if the model has one), final norm and lm_head on
/// one Vulkan device.
pub struct VulkanDecoder {
    ctx: Arc<VulkanContext>,
    pre: Option<DeviceStack>,
    main: DeviceStack,
    final_norm: DeviceNorm,
    lm_head: DeviceLinear,
}

impl std::fmt::Debug for VulkanDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "VulkanDecoder({} + {} layers on {:?})",
            self.pre_layers(),
            self.main.layers.len(),
            self.ctx
        )
    }
}

impl VulkanDecoder {
    /// Says why `spec` (with pre-decoder `pre`) cannot run on Vulkan, if it cannot.
    pub fn check_supported(spec: &DecoderSpec, pre: Option<&DecoderSpec>) -> Result<()> {
        for s in std::iter::once(spec).chain(pre) {
            if s.head_dim > MAX_HEAD_DIM {
                return Err(Error::Unsupported(format!(
                    "head dim {} (the Vulkan attention kernels handle up to {MAX_HEAD_DIM})",
                    s.head_dim
                )));
            }
        }
        Ok(())
    }

    /// Loads and uploads every layer of `pre` and `spec`, one at a time; `final_norm` and
    /// `lm_head` come from the CPU loader (the lm_head may be the tied embedding table).
    pub fn load(
        ctx: Arc<VulkanContext>,
        spec: &DecoderSpec,
        pre: Option<&DecoderSpec>,
        w: &Weights,
        final_norm: &Norm,
        lm_head: &Linear,
    ) -> Result<Self> {
        Self::check_supported(spec, pre)?;
        let pre = pre.map(|p| DeviceStack::load(&ctx, p, w, 0)).transpose()?;
        let first = pre.as_ref().map_or(0, |p| p.layers.len());
        Ok(VulkanDecoder {
            main: DeviceStack::load(&ctx, spec, w, first)?,
            pre,
            final_norm: DeviceNorm::upload(&ctx, final_norm)?,
            lm_head: DeviceLinear::upload(&ctx, lm_head, "lm_head")?,
            ctx,
        })
    }

    pub fn context(&self) -> &Arc<VulkanContext> {
        &self.ctx
    }

    /// Layers of the pre-decoder stack (0 without one).
    pub fn pre_layers(&self) -> usize {
        self.pre.as_ref().map_or(0, |p| p.layers.len())
    }

    fn stacks(&self) -> impl Iterator<Item = &DeviceStack> {
        self.pre.iter().chain(std::iter::once(&self.main))
    }

    pub fn new_cache(&self) -> DeviceKvCache {
        let shapes = self
            .stacks()
            .flat_map(|s| vec![(s.spec.kv_heads, s.spec.head_dim); s.layers.len()])
            .collect();
        DeviceKvCache::new(self.ctx.clone(), shapes)
    }

    /// Rows per device pass whose widest activation (`width` f32 values per row) fits one binding.
    fn rows_per_pass(&self, width: usize) -> usize {
        (self.ctx.max_binding() as usize / (4 * width.max(1))).max(1)
    }

    /// Runs rows `x` `[T, D]` at positions `start..start+T` through the pre-decoder (if any),
    /// every layer (rows `expert_rows` of `x` taking the modality-expert weights) and the final
    /// norm, appending to `cache`. Returns the normed hidden states `[T, D]` (f32, CPU) and, with
    /// `keep_pre_out`, the pre-decoder's output (read back only then).
    pub fn forward(
        &self,
        x: &Tensor,
        expert_rows: &[usize],
        start: usize,
        cache: &mut DeviceKvCache,
        keep_pre_out: bool,
    ) -> Result<Forward> {
        let (t, d) = x.dims2()?;
        if d != self.main.spec.hidden {
            return Err(Error::InvalidArgument(format!(
                "{d}-wide rows for a {}-wide decoder",
                self.main.spec.hidden
            )));
        }
        if let Some(&bad) = expert_rows.iter().find(|&&r| r >= t) {
            return Err(Error::InvalidArgument(format!(
                "image row {bad} outside a {t}-row forward"
            )));
        }
        let widest = self.stacks().map(DeviceStack::widest_row).max();
        let pass = self.rows_per_pass(widest.unwrap_or(d));
        let values: Vec<f32> = x.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        cache.reserve(start + t, start)?;
        let mut hidden = Vec::with_capacity(t * d);
        let mut pre_out = (self.pre.is_some() && keep_pre_out).then(|| Vec::with_capacity(t * d));
        for r0 in (0..t).step_by(pass) {
            let n = pass.min(t - r0);
            let pass_rows: Vec<usize> = expert_rows
                .iter()
                .filter(|&&r| (r0..r0 + n).contains(&r))
                .map(|&r| r - r0)
                .collect();
            let rows = DeviceRows::new(&self.ctx, n, &pass_rows)?;
            let mut h = self.ctx.upload(&values[r0 * d..(r0 + n) * d], &[n, d])?;
            if let Some(pre) = &self.pre {
                h = pre.forward(&self.ctx, h, &DeviceRows::Text, start + r0, cache)?;
                if let Some(out) = pre_out.as_mut() {
                    out.extend(self.ctx.read(&h)?);
                }
            }
            let h = self.main.forward(&self.ctx, h, &rows, start + r0, cache)?;
            let mut b = self.ctx.batch();
            let h = self.final_norm.forward(&mut b, &h)?;
            b.submit()?;
            hidden.extend(self.ctx.read(&h)?);
        }
        let cpu = |v: Vec<f32>| Tensor::from_vec(v, (t, d), &Device::Cpu);
        Ok(Forward {
            hidden: cpu(hidden)?,
            pre_out: pre_out.map(cpu).transpose()?,
        })
    }

    /// Logits `[T, V]` (f32, CPU) of normed hidden states `[T, D]`.
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        self.lm_head.forward_host(hidden)
    }
}
