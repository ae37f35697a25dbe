//! EVE v2's vision tokenizer: conv (patch, bias) → erf-GELU → conv 2×2 (bias) → `[h, w, D]`, then
//! the learned split vector after every row and the learned class vector first:
//! `1 + h·(w+1)` rows, fed to the decoder as they are (no projector, no norm).

use super::{conv_as_linear, learned_vector, windows_2x2, GridShape, WindowOrder};
use crate::checkpoint::Weights;
use crate::decoder::layers::Linear;
use crate::error::{Error, Result};
use crate::spec::FrontendSpec;
use candle_core::{DType, Tensor};

pub struct DenseConv {
    patch: Linear,
    dense: Linear,
    class: Tensor,
    split: Tensor,
    hidden: usize,
}

impl DenseConv {
    pub fn linears_mut(&mut self) -> Vec<&mut Linear> {
        vec![&mut self.patch, &mut self.dense]
    }

    pub fn load(spec: &FrontendSpec, w: &Weights, patch_dim: usize, hidden: usize) -> Result<Self> {
        let FrontendSpec::DenseConv {
            patch_conv,
            dense_conv,
            class_embedding,
            split_embedding,
        } = spec
        else {
            return Err(Error::Unsupported("not a dense-conv front end".into()));
        };
        let (patch, c) = conv_as_linear(w, patch_conv, patch_dim)?;
        let dense_w = w.get(&dense_conv.weight, &[hidden, c, 2, 2])?;
        let dense_b = match &dense_conv.bias {
            Some(b) => Some(w.get_as(b, &[hidden], DType::F32)?),
            None => None,
        };
        Ok(DenseConv {
            patch,
            dense: Linear::new(dense_w.reshape((hidden, c * 4))?, dense_b),
            class: learned_vector(w, class_embedding, hidden)?,
            split: learned_vector(w, split_embedding, hidden)?,
            hidden,
        })
    }

    pub fn forward(&self, patches: &Tensor, shape: GridShape) -> Result<Tensor> {
        shape.require_even("the 2x2 dense conv")?;
        if shape.tiles != 1 {
            return Err(Error::Unsupported(
                "the dense-conv front end takes one tile".into(),
            ));
        }
        let f = self.patch.forward(patches)?.gelu_erf()?;
        let c = f.dim(1)?;
        let win = windows_2x2(
            &f.reshape((shape.rows, shape.cols, c))?,
            WindowOrder::ChannelMajor,
        )?;
        let (h, w, d) = (shape.rows / 2, shape.cols / 2, self.hidden);
        let grid = self.dense.forward(&win)?.reshape((h, w, d))?;
        let dtype = grid.dtype();
        let split = self
            .split
            .to_dtype(dtype)?
            .reshape((1, 1, d))?
            .broadcast_as((h, 1, d))?;
        let rows = Tensor::cat(&[&grid, &split.contiguous()?], 1)?.reshape((h * (w + 1), d))?;
        Ok(Tensor::cat(&[&self.class.to_dtype(dtype)?, &rows], 0)?)
    }
}
