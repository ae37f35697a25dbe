//! One decoder block parameterised by [`DecoderSpec`]: Llama/Mistral/Qwen2 (RMSNorm, GQA, SwiGLU,
//! QKV bias, sliding window), InternLM2 (grouped fused `wqkv`) and Persimmon (LayerNorm with bias,
//! fused per-head QKV, q/k LayerNorm, partial rotary, relu² MLP with biases) are the same code with
//! different knobs. Two more knobs: modality experts (a second copy of some per-layer weights used
//! at image rows, EVE v2 / Mono-InternVL) and a pre-decoder stack that every position passes
//! first, with its own heads, RoPE and KV cache but no final norm (HoVLE).

mod fused;
pub mod kv_cache;
pub mod layers;
#[cfg(target_arch = "x86_64")]
mod quant_cpu;

pub use kv_cache::KvCache;
use layers::{Linear, Norm, Rope};

use crate::checkpoint::Weights;
use crate::device::ComputeDevice;
use crate::error::{Error, Result};
use crate::spec::{DecoderNames, DecoderSpec, ExpertNames, MlpKind, NormKind, QkvLayout};
use candle_core::{DType, Device, IndexOp, Tensor};

/// Queries processed per attention block during prefill, so a 2k-token image prefix never holds a
/// full T×T score matrix per head.
const ATTN_QUERY_BLOCK: usize = 256;

pub(crate) struct Attention {
    pub(crate) q: Linear,
    pub(crate) k: Linear,
    pub(crate) v: Linear,
    pub(crate) o: Linear,
    pub(crate) q_norm: Option<Norm>,
    pub(crate) k_norm: Option<Norm>,
}

pub(crate) enum Mlp {
    SwiGlu {
        gate: Linear,
        up: Linear,
        down: Linear,
    },
    Relu2 {
        up: Linear,
        down: Linear,
    },
}

/// A part of a layer with an optional image-row copy.
pub(crate) struct Routed<T> {
    pub(crate) text: T,
    pub(crate) expert: Option<T>,
}

impl<T> Routed<T> {
    /// Both copies converted by `f(part, is_expert)` (for moving a loaded layer to a device).
    #[cfg(feature = "vulkan")]
    pub(crate) fn try_map<U>(self, f: impl Fn(T, bool) -> Result<U>) -> Result<Routed<U>> {
        Ok(Routed {
            text: f(self.text, false)?,
            expert: self.expert.map(|e| f(e, true)).transpose()?,
        })
    }
}

pub(crate) struct Block {
    pub(crate) attn_norm: Routed<Norm>,
    pub(crate) attn: Routed<Attention>,
    pub(crate) mlp_norm: Routed<Norm>,
    pub(crate) mlp: Routed<Mlp>,
}

/// Which rows of a `t`-row forward take the expert weights (shared by every backend).
#[derive(Debug, PartialEq)]
pub(crate) enum RowSplit {
    Text,
    Expert,
    /// Row indices (ascending) of each kind.
    Mixed {
        text: Vec<u32>,
        expert: Vec<u32>,
    },
}

impl RowSplit {
    pub(crate) fn new(t: usize, expert_rows: &[usize]) -> Result<Self> {
        let mut is_expert = vec![false; t];
        for &r in expert_rows {
            *is_expert.get_mut(r).ok_or_else(|| {
                Error::InvalidArgument(format!("image row {r} outside a {t}-row forward"))
            })? = true;
        }
        let n = is_expert.iter().filter(|&&e| e).count();
        if n == 0 {
            return Ok(RowSplit::Text);
        }
        if n == t {
            return Ok(RowSplit::Expert);
        }
        let pick = |want: bool| -> Vec<u32> {
            (0..t as u32)
                .filter(|&i| is_expert[i as usize] == want)
                .collect()
        };
        Ok(RowSplit::Mixed {
            text: pick(false),
            expert: pick(true),
        })
    }
}

/// Which rows of a forward take the expert weights, as index tensors on the compute device.
enum Rows {
    Text,
    Expert,
    Mixed { text: Tensor, expert: Tensor },
}

impl Rows {
    fn new(t: usize, expert_rows: &[usize], device: &Device) -> Result<Self> {
        Ok(match RowSplit::new(t, expert_rows)? {
            RowSplit::Text => Rows::Text,
            RowSplit::Expert => Rows::Expert,
            RowSplit::Mixed { text, expert } => Rows::Mixed {
                text: Tensor::new(text.as_slice(), device)?,
                expert: Tensor::new(expert.as_slice(), device)?,
            },
        })
    }

    /// `f(weights, rows)` with the text weights on text rows and the expert weights (when the part
    /// has them) on image rows, reassembled in row order.
    fn apply<T>(
        &self,
        x: &Tensor,
        part: &Routed<T>,
        f: impl Fn(&T, &Tensor) -> Result<Tensor>,
    ) -> Result<Tensor> {
        let Some(expert) = &part.expert else {
            return f(&part.text, x);
        };
        match self {
            Rows::Text => f(&part.text, x),
            Rows::Expert => f(expert, x),
            Rows::Mixed { text, expert: ex } => {
                let yt = f(&part.text, &x.index_select(text, 0)?)?;
                let ye = f(expert, &x.index_select(ex, 0)?)?;
                let mut shape = yt.dims().to_vec();
                shape[0] = x.dim(0)?;
                let out = Tensor::zeros(shape, yt.dtype(), yt.device())?;
                Ok(out.index_add(text, &yt, 0)?.index_add(ex, &ye, 0)?)
            }
        }
    }
}

/// Splits a fused per-head `[H*3*hd, D]` weight (rows `[q_h; k_h; v_h]` per head) into q, k, v.
fn split_per_head(t: &Tensor, heads: usize, hd: usize) -> Result<[Tensor; 3]> {
    let rest: Vec<usize> = t.dims()[1..].to_vec();
    let mut shape = vec![heads, 3, hd];
    shape.extend(&rest);
    let t = t.reshape(shape)?;
    let mut out_shape = vec![heads * hd];
    out_shape.extend(&rest);
    let pick = |j: usize| -> Result<Tensor> {
        Ok(t.i((.., j))?.contiguous()?.reshape(out_shape.clone())?)
    };
    Ok([pick(0)?, pick(1)?, pick(2)?])
}

/// Splits a grouped fused `[(H+2·KV)*hd, D]` weight (per KV head g: `[q_{g·r}…q_{g·r+r−1}; k_g; v_g]`)
/// into q `[H*hd, D]`, k and v `[KV*hd, D]`.
fn split_grouped(t: &Tensor, heads: usize, kv_heads: usize, hd: usize) -> Result<[Tensor; 3]> {
    let r = heads / kv_heads;
    let rest: Vec<usize> = t.dims()[1..].to_vec();
    let mut shape = vec![kv_heads, r + 2, hd];
    shape.extend(&rest);
    let t = t.reshape(shape)?;
    let take = |from: usize, n: usize| -> Result<Tensor> {
        let mut out_shape = vec![kv_heads * n * hd];
        out_shape.extend(&rest);
        Ok(t.narrow(1, from, n)?.contiguous()?.reshape(out_shape)?)
    };
    Ok([take(0, r)?, take(r, 1)?, take(r + 1, 1)?])
}

impl Attention {
    /// `names`: `[q, k, v, o]` for separate projections, `[qkv, "", "", o]` for fused layouts.
    fn load(spec: &DecoderSpec, w: &Weights, p: &str, names: [&str; 4]) -> Result<Self> {
        let [qn, kn, vn, on] = names;
        let n = &spec.names;
        let (d, hd) = (spec.hidden, spec.head_dim);
        let (qd, kvd) = (spec.heads * hd, spec.kv_heads * hd);
        let (q, k, v) = match spec.qkv {
            QkvLayout::Separate => (
                Linear::load(w, &format!("{p}{qn}"), qd, d, spec.qkv_bias)?,
                Linear::load(w, &format!("{p}{kn}"), kvd, d, spec.qkv_bias)?,
                Linear::load(w, &format!("{p}{vn}"), kvd, d, spec.qkv_bias)?,
            ),
            QkvLayout::FusedPerHead | QkvLayout::FusedGrouped => {
                let per_head = spec.qkv == QkvLayout::FusedPerHead;
                if per_head && spec.heads != spec.kv_heads {
                    return Err(Error::Unsupported(
                        "fused per-head QKV requires as many KV heads as query heads".into(),
                    ));
                }
                let fused = Linear::load(w, &format!("{p}{qn}"), qd + 2 * kvd, d, spec.qkv_bias)?;
                let split = |t: &Tensor| {
                    if per_head {
                        split_per_head(t, spec.heads, hd)
                    } else {
                        split_grouped(t, spec.heads, spec.kv_heads, hd)
                    }
                };
                // Split row indices rather than the weight, so quantized blocks split exactly.
                let rows = Tensor::arange(0u32, (qd + 2 * kvd) as u32, &Device::Cpu)?;
                let [iq, ik, iv] = split(&rows)?;
                let (bq, bk, bv) = match &fused.bias {
                    Some(b) => {
                        let [a, b2, c] = split(b)?;
                        (Some(a), Some(b2), Some(c))
                    }
                    None => (None, None, None),
                };
                (
                    fused.select_rows(&iq, bq)?,
                    fused.select_rows(&ik, bk)?,
                    fused.select_rows(&iv, bv)?,
                )
            }
        };
        let o = Linear::load(w, &format!("{p}{on}"), d, qd, spec.o_bias)?;
        let (q_norm, k_norm) = if spec.qk_norm {
            (
                Some(Norm::load(
                    w,
                    &format!("{p}{}", n.q_norm),
                    hd,
                    NormKind::LayerNorm,
                    spec.norm_eps,
                )?),
                Some(Norm::load(
                    w,
                    &format!("{p}{}", n.k_norm),
                    hd,
                    NormKind::LayerNorm,
                    spec.norm_eps,
                )?),
            )
        } else {
            (None, None)
        };
        Ok(Attention {
            q,
            k,
            v,
            o,
            q_norm,
            k_norm,
        })
    }

    /// q, k and v side by side `[T, (H + 2·KV)·hd]`, so one routed pass gives all three.
    fn qkv(&self, h: &Tensor) -> Result<Tensor> {
        Ok(Tensor::cat(
            &[
                &self.q.forward(h)?,
                &self.k.forward(h)?,
                &self.v.forward(h)?,
            ],
            1,
        )?)
    }
}

impl Mlp {
    /// `names`: `[gate, up, down]`.
    fn load(spec: &DecoderSpec, w: &Weights, p: &str, names: [&str; 3]) -> Result<Self> {
        let [gn, un, dn] = names;
        let (d, f, b) = (spec.hidden, spec.intermediate, spec.mlp_bias);
        Ok(match spec.mlp {
            MlpKind::SwiGlu => Mlp::SwiGlu {
                gate: Linear::load(w, &format!("{p}{gn}"), f, d, b)?,
                up: Linear::load(w, &format!("{p}{un}"), f, d, b)?,
                down: Linear::load(w, &format!("{p}{dn}"), d, f, b)?,
            },
            MlpKind::Relu2 => Mlp::Relu2 {
                up: Linear::load(w, &format!("{p}{un}"), f, d, b)?,
                down: Linear::load(w, &format!("{p}{dn}"), d, f, b)?,
            },
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Mlp::SwiGlu { gate, up, down } => {
                let g = candle_nn::ops::silu(&gate.forward(x)?)?;
                down.forward(&(g * up.forward(x)?)?)
            }
            Mlp::Relu2 { up, down } => down.forward(&up.forward(x)?.relu()?.sqr()?),
        }
    }
}

fn attn_names(n: &DecoderNames, spec: &DecoderSpec) -> [String; 4] {
    match spec.qkv {
        QkvLayout::Separate => [n.q.clone(), n.k.clone(), n.v.clone(), n.o.clone()],
        _ => [n.qkv.clone(), String::new(), String::new(), n.o.clone()],
    }
}

fn refs<const N: usize>(a: &[String; N]) -> [&str; N] {
    std::array::from_fn(|i| a[i].as_str())
}

/// A stack of blocks sharing one set of hyperparameters (a decoder, or a pre-decoder).
struct Stack {
    spec: DecoderSpec,
    blocks: Vec<Block>,
    rope: Rope,
}

/// Checks that the heads group evenly (every decoder path needs it).
fn check_heads(spec: &DecoderSpec) -> Result<()> {
    if spec.heads == 0 || spec.kv_heads == 0 || !spec.heads.is_multiple_of(spec.kv_heads) {
        return Err(Error::Unsupported(format!(
            "{} query heads are not a multiple of {} KV heads",
            spec.heads, spec.kv_heads
        )));
    }
    Ok(())
}

/// Loads layer `i` of `spec` (with its expert copies, if any) on the weights' device.
pub(crate) fn load_block(spec: &DecoderSpec, w: &Weights, i: usize) -> Result<Block> {
    let n = &spec.names;
    let norm = |p: &str, name: &str| {
        Norm::load(
            w,
            &format!("{p}{name}"),
            spec.hidden,
            spec.norm,
            spec.norm_eps,
        )
    };
    let text_attn = attn_names(n, spec);
    let text_mlp = [n.gate.clone(), n.up.clone(), n.down.clone()];
    let none = ExpertNames::default();
    let ex = n.experts.as_ref().unwrap_or(&none);
    let p = n.layer_prefix(i);
    Ok(Block {
        attn_norm: Routed {
            text: norm(&p, &n.attn_norm)?,
            expert: ex.attn_norm.as_ref().map(|e| norm(&p, e)).transpose()?,
        },
        attn: Routed {
            text: Attention::load(spec, w, &p, refs(&text_attn))?,
            expert: ex
                .attn
                .as_ref()
                .map(|e| Attention::load(spec, w, &p, refs(e)))
                .transpose()?,
        },
        mlp_norm: Routed {
            text: norm(&p, &n.mlp_norm)?,
            expert: ex.mlp_norm.as_ref().map(|e| norm(&p, e)).transpose()?,
        },
        mlp: Routed {
            text: Mlp::load(spec, w, &p, refs(&text_mlp))?,
            expert: ex
                .mlp
                .as_ref()
                .map(|e| Mlp::load(spec, w, &p, refs(e)))
                .transpose()?,
        },
    })
}

impl Stack {
    fn load(spec: &DecoderSpec, w: &Weights) -> Result<Self> {
        check_heads(spec)?;
        let blocks = (0..spec.layers)
            .map(|i| load_block(spec, w, i))
            .collect::<Result<Vec<_>>>()?;
        Ok(Stack {
            spec: spec.clone(),
            blocks,
            rope: Rope::new(spec.rope_theta, spec.rotary_dim),
        })
    }

    /// Runs `x` (positions `start..start+T`) through the blocks, appending to `caches`; without
    /// caches (training) every op is one that candle can differentiate.
    fn forward(
        &self,
        x: &Tensor,
        rows: &Rows,
        start: usize,
        mut caches: Option<&mut [kv_cache::LayerCache]>,
        dtype: DType,
    ) -> Result<Tensor> {
        let t = x.dim(0)?;
        let (cos, sin) = self.rope.tables(start, t, DType::F32, x.device())?;
        let mut x = x.to_dtype(dtype)?;
        for (i, block) in self.blocks.iter().enumerate() {
            let lc = match caches.as_deref_mut() {
                Some(c) => Some(c.get_mut(i).ok_or_else(|| {
                    Error::InvalidArgument("KV cache was made for another model".into())
                })?),
                None => None,
            };
            let h = rows.apply(&x, &block.attn_norm, |n, x| n.forward(x))?;
            let a = self.attention(&block.attn, rows, &h, start, &cos, &sin, lc, dtype)?;
            x = (x + a)?;
            let h = rows.apply(&x, &block.mlp_norm, |n, x| n.forward(x))?;
            x = (&x + rows.apply(&h, &block.mlp, |m, x| m.forward(x))?)?;
        }
        Ok(x)
    }

    #[allow(clippy::too_many_arguments)]
    fn attention(
        &self,
        attn: &Routed<Attention>,
        rows: &Rows,
        h: &Tensor,
        start: usize,
        cos: &Tensor,
        sin: &Tensor,
        cache: Option<&mut kv_cache::LayerCache>,
        dtype: DType,
    ) -> Result<Tensor> {
        let differentiable = cache.is_none();
        let s = &self.spec;
        let t = h.dim(0)?;
        let (hd, nh, nkv) = (s.head_dim, s.heads, s.kv_heads);
        let qkv = rows.apply(h, attn, |a, x| a.qkv(x))?;
        let mut q = qkv.narrow(1, 0, nh * hd)?.reshape((t, nh, hd))?;
        let mut k = qkv.narrow(1, nh * hd, nkv * hd)?.reshape((t, nkv, hd))?;
        let v = qkv
            .narrow(1, (nh + nkv) * hd, nkv * hd)?
            .reshape((t, nkv, hd))?;
        if let (Some(qn), Some(kn)) = (&attn.text.q_norm, &attn.text.k_norm) {
            q = qn.forward(&q)?;
            k = kn.forward(&k)?;
        }
        let q = self.rope.apply(&q, cos, sin, differentiable)?;
        let k = self.rope.apply(&k, cos, sin, differentiable)?;
        let (k_all, v_all) = match cache {
            Some(c) => c.append(&k, &v)?,
            None => (k, v),
        };
        let o = attend(&q, &k_all, &v_all, start, s.sliding_window, differentiable)?;
        let o = o.to_dtype(dtype)?;
        rows.apply(&o, attn, |a, x| a.o.forward(x))
    }
}

/// Attention of queries `q` `[T, H, hd]` at positions `start..start+T` over keys and values
/// `[S, KV, hd]` (S = start + T: the cached prefix and the new rows), causal, with an optional
/// window (key j visible from position i iff `0 <= i - j <= window`), scale 1/√hd, in f32.
/// GQA needs no repeat: queries are grouped per KV head. Queries go in blocks, so a long image
/// prefix never holds a full T×S score matrix. `differentiable` keeps to ops with a backward
/// pass (training). Returns `[T, H·hd]` (f32).
pub fn attend(
    q: &Tensor,
    k_all: &Tensor,
    v_all: &Tensor,
    start: usize,
    window: Option<usize>,
    differentiable: bool,
) -> Result<Tensor> {
    let (t, nh, hd) = q.dims3()?;
    let (total, nkv, _) = k_all.dims3()?;
    if nkv == 0 || !nh.is_multiple_of(nkv) || total != start + t {
        return Err(Error::InvalidArgument(format!(
            "attention of {t} queries × {nh} heads at {start} over {total} keys × {nkv} heads"
        )));
    }
    let group = nh / nkv;
    // [KV, S, hd] for keys and values; queries grouped as [KV, G, T, hd].
    let k_all = k_all.transpose(0, 1)?.contiguous()?.to_dtype(DType::F32)?;
    let v_all = v_all.transpose(0, 1)?.contiguous()?.to_dtype(DType::F32)?;
    let q = q
        .to_dtype(DType::F32)?
        .transpose(0, 1)?
        .contiguous()?
        .reshape((nkv, group, t, hd))?;
    let scale = 1.0 / (hd as f64).sqrt();
    let mut outs = Vec::new();
    let mut q0 = 0;
    while q0 < t {
        let qb = ATTN_QUERY_BLOCK.min(t - q0);
        let qblk = q
            .narrow(2, q0, qb)?
            .contiguous()?
            .reshape((nkv, group * qb, hd))?;
        let mut scores = (qblk.matmul(&k_all.t()?)? * scale)?; // [KV, G*qb, S]
        if let Some(mask) = attention_mask(start + q0, qb, total, group, window, q.device())? {
            scores = scores.broadcast_add(&mask)?;
        }
        // candle_nn's fused softmax has no backward pass; ours has.
        let probs = if differentiable {
            fused::softmax_last_dim_differentiable(&scores)?
        } else {
            candle_nn::ops::softmax_last_dim(&scores)?
        };
        outs.push(probs.matmul(&v_all)?.reshape((nkv, group, qb, hd))?);
        q0 += qb;
    }
    let o = if outs.len() == 1 {
        outs.pop().unwrap_or_else(|| unreachable!())
    } else {
        Tensor::cat(&outs, 2)?
    };
    // [KV, G, T, hd] -> [H, T, hd] -> [T, H*hd]
    Ok(o.reshape((nh, t, hd))?
        .transpose(0, 1)?
        .contiguous()?
        .reshape((t, nh * hd))?)
}

/// Additive mask `[G*qb, S]` for queries at absolute positions `q_start..q_start+qb`, or `None`
/// when every key is visible.
fn attention_mask(
    q_start: usize,
    qb: usize,
    total: usize,
    group: usize,
    window: Option<usize>,
    device: &Device,
) -> Result<Option<Tensor>> {
    let last_q = q_start + qb - 1;
    let causal_binds = q_start + 1 < total;
    let window_binds = window.is_some_and(|w| last_q > w);
    if !causal_binds && !window_binds {
        return Ok(None);
    }
    let mut m = vec![0f32; qb * total];
    for r in 0..qb {
        let i = q_start + r;
        for j in 0..total {
            let visible = j <= i && window.is_none_or(|w| i - j <= w);
            if !visible {
                m[r * total + j] = f32::NEG_INFINITY;
            }
        }
    }
    let m = Tensor::from_vec(m, (qb, total), device)?;
    let m = if group > 1 {
        Tensor::cat(&vec![&m; group], 0)?
    } else {
        m
    };
    Ok(Some(m))
}

/// Output of one forward: the normed hidden states and, with a pre-decoder, its raw output.
pub struct Forward {
    pub hidden: Tensor,
    pub pre_out: Option<Tensor>,
}

/// Where the decoder layers, final norm and lm_head run.
// One per model, built at load: variant sizes do not matter.
#[allow(clippy::large_enum_variant)]
enum Layers {
    /// On a candle device (CPU, CUDA, Metal), with an optional pre-decoder stack.
    Candle {
        pre: Option<Stack>,
        main: Stack,
        final_norm: Norm,
        lm_head: Linear,
    },
    /// On a Vulkan device through our own kernels.
    #[cfg(feature = "vulkan")]
    Vulkan(crate::vulkan::VulkanDecoder),
}

pub struct Decoder {
    pub spec: DecoderSpec,
    /// Token embeddings, on the candle device (the CPU for Vulkan).
    embed: Tensor,
    layers: Layers,
    dtype: DType,
    device: Device,
}

impl Decoder {
    /// Loads the decoder and, when given, the pre-decoder stack every position passes first.
    pub fn load(spec: &DecoderSpec, pre: Option<&DecoderSpec>, w: &Weights) -> Result<Self> {
        Self::load_on(spec, pre, w, &ComputeDevice::Candle(w.device.clone()))
    }

    /// Like [`Decoder::load`], with the layers on `compute` (for Vulkan, `w` loads on the CPU
    /// and each layer is uploaded as it loads).
    pub fn load_on(
        spec: &DecoderSpec,
        pre: Option<&DecoderSpec>,
        w: &Weights,
        compute: &ComputeDevice,
    ) -> Result<Self> {
        let n = &spec.names;
        check_heads(spec)?;
        if let Some(p) = pre {
            check_heads(p)?;
            if p.hidden != spec.hidden {
                return Err(Error::Unsupported(format!(
                    "pre-decoder width {} differs from the decoder's {}",
                    p.hidden, spec.hidden
                )));
            }
        }
        #[cfg(feature = "vulkan")]
        if matches!(compute, ComputeDevice::Vulkan(_)) {
            crate::vulkan::VulkanDecoder::check_supported(spec, pre)?;
        }
        let embed = w.get(&n.embed, &[spec.vocab, spec.hidden])?;
        let final_norm = Norm::load(w, &n.final_norm, spec.hidden, spec.norm, spec.norm_eps)?;
        let lm_head = if spec.tie_embeddings && !w.contains(&format!("{}.weight", n.lm_head)) {
            Linear::new(embed.clone(), None)
        } else {
            Linear::load(w, &n.lm_head, spec.vocab, spec.hidden, false)?
        };
        let layers = match compute {
            ComputeDevice::Candle(_) => Layers::Candle {
                pre: pre.map(|p| Stack::load(p, w)).transpose()?,
                main: Stack::load(spec, w)?,
                final_norm,
                lm_head,
            },
            #[cfg(feature = "vulkan")]
            ComputeDevice::Vulkan(ctx) => Layers::Vulkan(crate::vulkan::VulkanDecoder::load(
                ctx.clone(),
                spec,
                pre,
                w,
                &final_norm,
                &lm_head,
            )?),
        };
        Ok(Decoder {
            spec: spec.clone(),
            embed,
            layers,
            dtype: w.dtype,
            device: w.device.clone(),
        })
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The candle device of the embeddings and of the tensors this decoder takes and returns.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Whether some weights have an image-row copy (rows are routed by image positions).
    pub fn has_experts(&self) -> bool {
        self.spec.names.experts.is_some()
    }

    /// Layers of the pre-decoder stack (0 without one).
    pub fn pre_layers(&self) -> usize {
        match &self.layers {
            Layers::Candle { pre, .. } => pre.as_ref().map_or(0, |p| p.blocks.len()),
            #[cfg(feature = "vulkan")]
            Layers::Vulkan(v) => v.pre_layers(),
        }
    }

    fn main_layers(&self) -> usize {
        match &self.layers {
            Layers::Candle { main, .. } => main.blocks.len(),
            #[cfg(feature = "vulkan")]
            Layers::Vulkan(_) => self.spec.layers,
        }
    }

    pub fn new_cache(&self) -> KvCache {
        #[allow(unused_mut)]
        let mut cache = KvCache::new(self.pre_layers() + self.main_layers());
        #[cfg(feature = "vulkan")]
        if let Layers::Vulkan(v) = &self.layers {
            cache.device = Some(v.new_cache());
        }
        cache
    }

    /// Word embeddings `[T, D]` of `ids`.
    pub fn embed(&self, ids: &[u32]) -> Result<Tensor> {
        if let Some(&bad) = ids.iter().find(|&&i| i as usize >= self.spec.vocab) {
            return Err(Error::InvalidArgument(format!(
                "token id {bad} is outside the vocabulary of {}",
                self.spec.vocab
            )));
        }
        let idx = Tensor::new(ids, &self.device)?;
        Ok(self.embed.index_select(&idx, 0)?)
    }

    /// Runs text rows `x` (`[T, D]`, positions `cache.len..cache.len+T`) through all stacks and the
    /// final norm, appending to `cache`. Returns the normed hidden states `[T, D]`.
    pub fn forward_hidden(&self, x: &Tensor, cache: &mut KvCache) -> Result<Tensor> {
        Ok(self.forward_routed(x, &[], cache, false)?.hidden)
    }

    /// Like [`Decoder::forward_hidden`], with the rows `image_rows` (relative to `x`) taking the
    /// modality-expert weights where the decoder has them. `keep_pre_out` also returns the
    /// pre-decoder's output (for checks; a Vulkan device reads it back only then).
    pub fn forward_routed(
        &self,
        x: &Tensor,
        image_rows: &[usize],
        cache: &mut KvCache,
        keep_pre_out: bool,
    ) -> Result<Forward> {
        let t = x.dim(0)?;
        let start = cache.len;
        self.check_context(start, t)?;
        let expert_rows = if self.has_experts() { image_rows } else { &[] };
        let n_pre = self.pre_layers();
        if cache.layers.len() != n_pre + self.main_layers() {
            return Err(Error::InvalidArgument(
                "KV cache was made for another model".into(),
            ));
        }
        let out = match &self.layers {
            Layers::Candle { .. } => {
                let rows = Rows::new(t, expert_rows, &self.device)?;
                let (pre_caches, main_caches) = cache.layers.split_at_mut(n_pre);
                let mut out =
                    self.run_stacks(x, &rows, start, Some(pre_caches), Some(main_caches))?;
                if !keep_pre_out {
                    out.pre_out = None;
                }
                out
            }
            #[cfg(feature = "vulkan")]
            Layers::Vulkan(v) => {
                let device_cache = cache.device.as_mut().ok_or_else(|| {
                    Error::InvalidArgument("KV cache was made for another device".into())
                })?;
                v.forward(x, expert_rows, start, device_cache, keep_pre_out)?
            }
        };
        cache.len = start + t;
        Ok(out)
    }

    /// The whole sequence `x` (positions `0..T`) without a cache, through ops that all have a
    /// backward pass: the training forward. Returns the normed hidden states `[T, D]`.
    pub fn forward_train(&self, x: &Tensor, image_rows: &[usize]) -> Result<Tensor> {
        let t = x.dim(0)?;
        self.check_context(0, t)?;
        let rows = if self.has_experts() {
            Rows::new(t, image_rows, &self.device)?
        } else {
            Rows::Text
        };
        Ok(self.run_stacks(x, &rows, 0, None, None)?.hidden)
    }

    /// Checks that positions `start..start+t` fit the context.
    fn check_context(&self, start: usize, t: usize) -> Result<()> {
        if start + t > self.spec.max_position {
            return Err(Error::ContextOverflow {
                tokens: start + t,
                context: self.spec.max_position,
            });
        }
        Ok(())
    }

    fn run_stacks(
        &self,
        x: &Tensor,
        rows: &Rows,
        start: usize,
        pre_caches: Option<&mut [kv_cache::LayerCache]>,
        main_caches: Option<&mut [kv_cache::LayerCache]>,
    ) -> Result<Forward> {
        let (pre, main, final_norm) = match &self.layers {
            Layers::Candle {
                pre,
                main,
                final_norm,
                ..
            } => (pre, main, final_norm),
            #[cfg(feature = "vulkan")]
            Layers::Vulkan(_) => {
                return Err(Error::Unsupported(
                    "training runs on candle devices (cpu, cuda, metal), not on Vulkan".into(),
                ))
            }
        };
        let pre_out = match pre {
            Some(p) => Some(p.forward(x, &Rows::Text, start, pre_caches, self.dtype)?),
            None => None,
        };
        let x = main.forward(
            pre_out.as_ref().unwrap_or(x),
            rows,
            start,
            main_caches,
            self.dtype,
        )?;
        Ok(Forward {
            hidden: final_norm.forward(&x)?,
            pre_out,
        })
    }

    /// Logits `[T, V]` (f32) of normed hidden states.
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        match &self.layers {
            Layers::Candle { lm_head, .. } => Ok(lm_head.forward(hidden)?.to_dtype(DType::F32)?),
            #[cfg(feature = "vulkan")]
            Layers::Vulkan(v) => v.logits(hidden),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    #[test]
    fn grouped_qkv_rows_are_split_per_kv_head() {
        // 4 query heads, 2 KV heads, head_dim 1: rows [q0 q1 k0 v0 | q2 q3 k1 v1].
        let w = Tensor::arange(0f32, 8.0, &Device::Cpu)
            .unwrap()
            .reshape((8, 1))
            .unwrap();
        let [q, k, v] = split_grouped(&w, 4, 2, 1).unwrap();
        assert_eq!(col(&q), [0.0, 1.0, 4.0, 5.0]);
        assert_eq!(col(&k), [2.0, 6.0]);
        assert_eq!(col(&v), [3.0, 7.0]);
        // MHA: one query per group.
        let w = Tensor::arange(0f32, 6.0, &Device::Cpu)
            .unwrap()
            .reshape((6, 1))
            .unwrap();
        let [q, k, v] = split_grouped(&w, 2, 2, 1).unwrap();
        assert_eq!(
            (col(&q), col(&k), col(&v)),
            (vec![0.0, 3.0], vec![1.0, 4.0], vec![2.0, 5.0])
        );
    }

    #[test]
    fn rows_route_each_row_to_its_weights() {
        let dev = Device::Cpu;
        let x = Tensor::arange(1f32, 6.0, &dev)
            .unwrap()
            .reshape((5, 1))
            .unwrap();
        let part = Routed {
            text: 1f64,
            expert: Some(100f64),
        };
        let scale = |s: &f64, x: &Tensor| -> Result<Tensor> { Ok((x * *s)?) };
        let mixed = Rows::new(5, &[1, 3], &dev).unwrap();
        let y = col(&mixed.apply(&x, &part, scale).unwrap());
        assert_eq!(y, [1.0, 200.0, 3.0, 400.0, 5.0]);
        let all = Rows::new(5, &[0, 1, 2, 3, 4], &dev).unwrap();
        assert_eq!(col(&all.apply(&x, &part, scale).unwrap())[4], 500.0);
        // A part without an expert copy ignores the routing.
        let shared = Routed {
            text: 2f64,
            expert: None,
        };
        assert_eq!(col(&mixed.apply(&x, &shared, scale).unwrap())[1], 4.0);
        assert!(Rows::new(5, &[5], &dev).is_err());
    }
}
