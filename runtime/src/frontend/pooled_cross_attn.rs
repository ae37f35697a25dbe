//! EVE v1's vision tokenizer. Conv (patch, no bias) gives `F [Hp, Wp, C]`; the 2×2 average pool
//! `P` queries its 4 unpooled cells (local cross-attention, output `P + proj(attn)`); the learned
//! class vector then queries every local output (global cross-attention, output
//! `cls + proj(attn)`). Both attentions: `q = Linear(LN(x))`, `[k|v] = Linear(LN(keys))`, fixed
//! heads, scale `C^-½`. Layout `[CLS, row, SPLIT, row, SPLIT, …, SPLIT]`, then the mlp2x_gelu
//! projector on every vector.

use super::{conv_as_linear, learned_vector, windows_2x2, GridShape, Mlp2, WindowOrder};
use crate::checkpoint::Weights;
use crate::decoder::layers::{Linear, Norm};
use crate::error::{Error, Result};
use crate::spec::{CrossAttnNames, FrontendSpec, NormKind};
use candle_core::Tensor;

struct CrossAttn {
    q_norm: Norm,
    q: Linear,
    kv_norm: Norm,
    kv: Linear,
    proj: Linear,
    heads: usize,
    scale: f64,
}

impl CrossAttn {
    fn linears_mut(&mut self) -> [&mut Linear; 3] {
        [&mut self.q, &mut self.kv, &mut self.proj]
    }

    fn load(w: &Weights, n: &CrossAttnNames, c: usize, heads: usize, eps: f64) -> Result<Self> {
        Ok(CrossAttn {
            q_norm: Norm::load(w, &n.q_norm, c, NormKind::LayerNorm, eps)?,
            q: Linear::load(w, &n.q, c, c, false)?,
            kv_norm: Norm::load(w, &n.kv_norm, c, NormKind::LayerNorm, eps)?,
            kv: Linear::load(w, &n.kv, 2 * c, c, false)?,
            proj: Linear::load(w, &n.proj, c, c, true)?,
            heads,
            scale: (c as f64).powf(-0.5),
        })
    }

    /// One query per row: `q_in` `[M, C]` attends over its own keys `kv_in` `[M, K, C]` → `[M, C]`.
    fn forward(&self, q_in: &Tensor, kv_in: &Tensor) -> Result<Tensor> {
        let (m, k, c) = kv_in.dims3()?;
        let (nh, hd) = (self.heads, c / self.heads);
        let q = self
            .q
            .forward(&self.q_norm.forward(q_in)?)?
            .reshape((m, nh, 1, hd))?;
        let kv = self
            .kv
            .forward(&self.kv_norm.forward(&kv_in.reshape((m * k, c))?)?)?
            .reshape((m, k, 2 * c))?;
        let split = |from: usize| -> Result<Tensor> {
            Ok(kv
                .narrow(2, from, c)?
                .reshape((m, k, nh, hd))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let (keys, values) = (split(0)?, split(c)?);
        let scores = (q * self.scale)?.matmul(&keys.transpose(2, 3)?.contiguous()?)?; // [M, nh, 1, K]
                                                                                      // Composite softmax: differentiable, so the front end can be trained.
        let probs = candle_nn::ops::softmax(&scores, candle_core::D::Minus1)?;
        let o = probs.matmul(&values)?.reshape((m, c))?;
        self.proj.forward(&o)
    }
}

pub struct PooledCrossAttn {
    patch: Linear,
    local: CrossAttn,
    global: CrossAttn,
    class: Tensor,
    split: Tensor,
    projector: Mlp2,
    width: usize,
}

impl PooledCrossAttn {
    pub fn linears_mut(&mut self) -> Vec<&mut Linear> {
        let mut all = vec![&mut self.patch];
        all.extend(self.local.linears_mut());
        all.extend(self.global.linears_mut());
        all.extend(self.projector.linears_mut());
        all
    }

    pub fn load(spec: &FrontendSpec, w: &Weights, patch_dim: usize, hidden: usize) -> Result<Self> {
        let FrontendSpec::PooledCrossAttn {
            patch_conv,
            local,
            global,
            heads,
            norm_eps,
            class_embedding,
            split_embedding,
            projector,
        } = spec
        else {
            return Err(Error::Unsupported(
                "not a pooled cross-attention front end".into(),
            ));
        };
        let (patch, c) = conv_as_linear(w, patch_conv, patch_dim)?;
        if *heads == 0 || c % heads != 0 {
            return Err(Error::Unsupported(format!(
                "vision width {c} is not a multiple of {heads} heads"
            )));
        }
        Ok(PooledCrossAttn {
            patch,
            local: CrossAttn::load(w, local, c, *heads, *norm_eps)?,
            global: CrossAttn::load(w, global, c, *heads, *norm_eps)?,
            class: learned_vector(w, class_embedding, c)?,
            split: learned_vector(w, split_embedding, c)?,
            projector: Mlp2::load(w, projector, c, hidden, *norm_eps)?,
            width: c,
        })
    }

    pub fn forward(&self, patches: &Tensor, shape: GridShape) -> Result<Tensor> {
        shape.require_even("the 2x2 pooled cross-attention")?;
        if shape.tiles != 1 {
            return Err(Error::Unsupported(
                "the pooled cross-attention front end takes one tile".into(),
            ));
        }
        let c = self.width;
        let f = self.patch.forward(patches)?;
        let (h, w) = (shape.rows / 2, shape.cols / 2);
        let win = windows_2x2(
            &f.reshape((shape.rows, shape.cols, c))?,
            WindowOrder::ChannelMinor,
        )?
        .reshape((h * w, 4, c))?;
        let pooled = win.mean(1)?;
        let local = (&pooled + self.local.forward(&pooled, &win)?)?;
        let dtype = local.dtype();
        let class = self.class.to_dtype(dtype)?;
        let cls = (&class + self.global.forward(&class, &local.unsqueeze(0)?)?)?;
        let split = self
            .split
            .to_dtype(dtype)?
            .reshape((1, 1, c))?
            .broadcast_as((h, 1, c))?;
        let rows = Tensor::cat(&[&local.reshape((h, w, c))?, &split.contiguous()?], 1)?
            .reshape((h * (w + 1), c))?;
        self.projector.forward(&Tensor::cat(&[&cls, &rows], 0)?)
    }
}
