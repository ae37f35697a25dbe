//! Row-wise CPU kernels in one pass, with backward passes, where the composed version was a
//! measured cost of training: attention's softmax (candle_nn's fused softmax has no backward; the
//! composed one records max, subtract, exp, sum and divide for autograd, each with its own
//! broadcasts and reductions). Other devices and dtypes use the composed ops. (A fused
//! LayerNorm was tried too and made no measurable difference at the default model's size.)

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Tensor, D};

struct SoftmaxLastDim;

impl CustomOp1 for SoftmaxLastDim {
    fn name(&self) -> &'static str {
        "monovlm-softmax-last-dim"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(all) = storage else {
            candle_core::bail!("softmax_last_dim: only f32 is implemented");
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("softmax_last_dim: the input must be contiguous");
        };
        let xs = &all[start..end];
        let dim = layout.dims().last().copied().unwrap_or(1).max(1);
        let mut out = vec![0f32; xs.len()];
        for (x, y) in xs.chunks_exact(dim).zip(out.chunks_exact_mut(dim)) {
            let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0f32;
            for (yi, &xi) in y.iter_mut().zip(x) {
                *yi = (xi - max).exp();
                sum += *yi;
            }
            let inv = 1.0 / sum;
            for yi in y.iter_mut() {
                *yi *= inv;
            }
        }
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        // d/dx softmax: y ⊙ (g − Σ_j g_j y_j)
        let dot = (grad_res * res)?.sum_keepdim(D::Minus1)?;
        Ok(Some((grad_res.broadcast_sub(&dot)? * res)?))
    }
}

/// Softmax over the last dimension that autograd can differentiate: one fused pass on the CPU
/// for f32, candle_nn's composed softmax elsewhere.
pub fn softmax_last_dim_differentiable(xs: &Tensor) -> candle_core::Result<Tensor> {
    if xs.device().is_cpu() && xs.dtype() == DType::F32 {
        xs.contiguous()?.apply_op1(SoftmaxLastDim)
    } else {
        candle_nn::ops::softmax(xs, D::Minus1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .and_then(|d| d.abs())
            .and_then(|d| d.flatten_all())
            .and_then(|d| d.max(0))
            .and_then(|d| d.to_scalar::<f32>())
            .unwrap()
    }

    #[test]
    fn forward_and_gradient_match_the_composed_softmax() {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&(Tensor::randn(0f32, 3.0, (2, 5, 33), &dev).unwrap())).unwrap();
        // A masked position, as attention has.
        let mask = Tensor::from_vec(
            (0..33)
                .map(|j| if j == 7 { f32::NEG_INFINITY } else { 0.0 })
                .collect(),
            33,
            &dev,
        )
        .unwrap();
        let w = Tensor::randn(0f32, 1.0, (2, 5, 33), &dev).unwrap();
        let xm = x.as_tensor().broadcast_add(&mask).unwrap();
        let ours = softmax_last_dim_differentiable(&xm).unwrap();
        let theirs = candle_nn::ops::softmax(&xm, D::Minus1).unwrap();
        assert!(max_diff(&ours, &theirs) < 1e-6);
        let g_ours = (&ours * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let g_theirs = (&theirs * &w)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let (a, b) = (g_ours.get(&x).unwrap(), g_theirs.get(&x).unwrap());
        assert!(
            max_diff(a, b) < 1e-6,
            "gradients differ by {}",
            max_diff(a, b)
        );
        // The masked position gets no gradient.
        assert_eq!(
            a.narrow(2, 7, 1)
                .unwrap()
                .abs()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap(),
            0.0
        );
    }
}
