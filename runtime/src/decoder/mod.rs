//! One decoder block parameterised by [`DecoderSpec`]: Llama/Mistral (RMSNorm, GQA, SwiGLU, sliding
//! window) and Persimmon (LayerNorm with bias, fused per-head QKV, q/k LayerNorm, partial rotary,
//! relu² MLP with biases) are the same code with different knobs.

pub mod kv_cache;
pub mod layers;

pub use kv_cache::KvCache;
use layers::{Linear, Norm, Rope};

use crate::checkpoint::Weights;
use crate::error::{Error, Result};
use crate::spec::{DecoderSpec, MlpKind, NormKind, QkvLayout};
use candle_core::{DType, Device, IndexOp, Tensor};

/// Queries processed per attention block during prefill, so a 2k-token image prefix never holds a
/// full T×T score matrix per head.
const ATTN_QUERY_BLOCK: usize = 256;

struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    q_norm: Option<Norm>,
    k_norm: Option<Norm>,
}

enum Mlp {
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

struct Block {
    attn_norm: Norm,
    attn: Attention,
    mlp_norm: Norm,
    mlp: Mlp,
}

pub struct Decoder {
    pub spec: DecoderSpec,
    embed: Tensor,
    blocks: Vec<Block>,
    final_norm: Norm,
    lm_head: Linear,
    rope: Rope,
    dtype: DType,
    device: Device,
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

impl Attention {
    fn load(spec: &DecoderSpec, w: &Weights, p: &str) -> Result<Self> {
        let n = &spec.names;
        let (d, hd) = (spec.hidden, spec.head_dim);
        let (qd, kvd) = (spec.heads * hd, spec.kv_heads * hd);
        let (q, k, v) = match spec.qkv {
            QkvLayout::Separate => (
                Linear::load(w, &format!("{p}{}", n.q), qd, d, spec.qkv_bias)?,
                Linear::load(w, &format!("{p}{}", n.k), kvd, d, spec.qkv_bias)?,
                Linear::load(w, &format!("{p}{}", n.v), kvd, d, spec.qkv_bias)?,
            ),
            QkvLayout::FusedPerHead => {
                if spec.heads != spec.kv_heads {
                    return Err(Error::Unsupported(
                        "fused per-head QKV requires as many KV heads as query heads".into(),
                    ));
                }
                let fused = Linear::load(w, &format!("{p}{}", n.qkv), 3 * qd, d, spec.qkv_bias)?;
                let [wq, wk, wv] = split_per_head(&fused.weight, spec.heads, hd)?;
                let (bq, bk, bv) = match &fused.bias {
                    Some(b) => {
                        let [a, b2, c] = split_per_head(b, spec.heads, hd)?;
                        (Some(a), Some(b2), Some(c))
                    }
                    None => (None, None, None),
                };
                (
                    Linear::new(wq, bq),
                    Linear::new(wk, bk),
                    Linear::new(wv, bv),
                )
            }
        };
        let o = Linear::load(w, &format!("{p}{}", n.o), d, qd, spec.o_bias)?;
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
}

impl Mlp {
    fn load(spec: &DecoderSpec, w: &Weights, p: &str) -> Result<Self> {
        let n = &spec.names;
        let (d, f, b) = (spec.hidden, spec.intermediate, spec.mlp_bias);
        Ok(match spec.mlp {
            MlpKind::SwiGlu => Mlp::SwiGlu {
                gate: Linear::load(w, &format!("{p}{}", n.gate), f, d, b)?,
                up: Linear::load(w, &format!("{p}{}", n.up), f, d, b)?,
                down: Linear::load(w, &format!("{p}{}", n.down), d, f, b)?,
            },
            MlpKind::Relu2 => Mlp::Relu2 {
                up: Linear::load(w, &format!("{p}{}", n.up), f, d, b)?,
                down: Linear::load(w, &format!("{p}{}", n.down), d, f, b)?,
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

impl Decoder {
    pub fn load(spec: &DecoderSpec, w: &Weights) -> Result<Self> {
        let n = &spec.names;
        let embed = w.get(&n.embed, &[spec.vocab, spec.hidden])?;
        let mut blocks = Vec::with_capacity(spec.layers);
        for i in 0..spec.layers {
            let p = n.layer_prefix(i);
            blocks.push(Block {
                attn_norm: Norm::load(
                    w,
                    &format!("{p}{}", n.attn_norm),
                    spec.hidden,
                    spec.norm,
                    spec.norm_eps,
                )?,
                attn: Attention::load(spec, w, &p)?,
                mlp_norm: Norm::load(
                    w,
                    &format!("{p}{}", n.mlp_norm),
                    spec.hidden,
                    spec.norm,
                    spec.norm_eps,
                )?,
                mlp: Mlp::load(spec, w, &p)?,
            });
        }
        let final_norm = Norm::load(w, &n.final_norm, spec.hidden, spec.norm, spec.norm_eps)?;
        let lm_head = if spec.tie_embeddings && !w.contains(&format!("{}.weight", n.lm_head)) {
            Linear::new(embed.clone(), None)
        } else {
            Linear::load(w, &n.lm_head, spec.vocab, spec.hidden, false)?
        };
        Ok(Decoder {
            spec: spec.clone(),
            embed,
            blocks,
            final_norm,
            lm_head,
            rope: Rope::new(spec.rope_theta, spec.rotary_dim),
            dtype: w.dtype,
            device: w.device.clone(),
        })
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn new_cache(&self) -> KvCache {
        KvCache::new(self.blocks.len())
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

    /// Runs `x` (`[T, D]`, positions `cache.len..cache.len+T`) through all blocks and the final norm,
    /// appending to `cache`. Returns the normed hidden states `[T, D]`.
    pub fn forward_hidden(&self, x: &Tensor, cache: &mut KvCache) -> Result<Tensor> {
        let t = x.dim(0)?;
        let start = cache.len;
        if start + t > self.spec.max_position {
            return Err(Error::ContextOverflow {
                tokens: start + t,
                context: self.spec.max_position,
            });
        }
        let (cos, sin) = self.rope.tables(start, t, DType::F32, &self.device)?;
        let mut x = x.to_dtype(self.dtype)?;
        for (block, lc) in self.blocks.iter().zip(cache.layers.iter_mut()) {
            let h = block.attn_norm.forward(&x)?;
            let a = self.attention(&block.attn, &h, start, &cos, &sin, lc)?;
            x = (x + a)?;
            let h = block.mlp_norm.forward(&x)?;
            x = (x + block.mlp.forward(&h)?)?;
        }
        cache.len = start + t;
        self.final_norm.forward(&x)
    }

    /// Logits `[T, V]` (f32) of normed hidden states.
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        Ok(self.lm_head.forward(hidden)?.to_dtype(DType::F32)?)
    }

    fn attention(
        &self,
        attn: &Attention,
        h: &Tensor,
        start: usize,
        cos: &Tensor,
        sin: &Tensor,
        cache: &mut kv_cache::LayerCache,
    ) -> Result<Tensor> {
        let s = &self.spec;
        let t = h.dim(0)?;
        let (hd, nh, nkv) = (s.head_dim, s.heads, s.kv_heads);
        let mut q = attn.q.forward(h)?.reshape((t, nh, hd))?;
        let mut k = attn.k.forward(h)?.reshape((t, nkv, hd))?;
        let v = attn.v.forward(h)?.reshape((t, nkv, hd))?;
        if let (Some(qn), Some(kn)) = (&attn.q_norm, &attn.k_norm) {
            q = qn.forward(&q)?;
            k = kn.forward(&k)?;
        }
        let q = self.rope.apply(&q, cos, sin)?;
        let k = self.rope.apply(&k, cos, sin)?;
        let (k_all, v_all) = cache.append(&k, &v)?;
        let total = start + t;
        let group = nh / nkv;
        // [KV, S, hd] for keys and values; queries grouped as [KV, G, T, hd] so GQA needs no repeat.
        let k_all = k_all.transpose(0, 1)?.contiguous()?.to_dtype(DType::F32)?;
        let v_all = v_all.transpose(0, 1)?.contiguous()?.to_dtype(DType::F32)?;
        let q = q
            .to_dtype(DType::F32)?
            .transpose(0, 1)?
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
            if let Some(mask) = self.mask(start + q0, qb, total, group)? {
                scores = scores.broadcast_add(&mask)?;
            }
            let probs = candle_nn::ops::softmax_last_dim(&scores)?;
            let o = probs.matmul(&v_all)?.reshape((nkv, group, qb, hd))?;
            outs.push(o);
            q0 += qb;
        }
        let o = if outs.len() == 1 {
            outs.pop().unwrap_or_else(|| unreachable!())
        } else {
            Tensor::cat(&outs, 2)?
        };
        // [KV, G, T, hd] -> [H, T, hd] -> [T, H*hd]
        let o = o
            .reshape((nh, t, hd))?
            .transpose(0, 1)?
            .contiguous()?
            .reshape((t, nh * hd))?
            .to_dtype(self.dtype)?;
        attn.o.forward(&o)
    }

    /// Additive mask `[G*qb, S]` for queries at absolute positions `q_start..q_start+qb`, or `None`
    /// when every key is visible.
    fn mask(
        &self,
        q_start: usize,
        qb: usize,
        total: usize,
        group: usize,
    ) -> Result<Option<Tensor>> {
        let window = self.spec.sliding_window;
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
        let m = Tensor::from_vec(m, (qb, total), &self.device)?;
        let m = if group > 1 {
            Tensor::cat(&vec![&m; group], 0)?
        } else {
            m
        };
        Ok(Some(m))
    }
}
