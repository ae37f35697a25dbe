//! One Linear over flattened patches (Fuyu with bias and HWC patches, SOLO without bias, CHW).

use crate::checkpoint::Weights;
use crate::decoder::layers::Linear;
use crate::error::Result;
use candle_core::{DType, Tensor};

pub struct LinearPatch(Linear);

impl LinearPatch {
    pub fn load(
        w: &Weights,
        weight: &str,
        bias: Option<&str>,
        patch_dim: usize,
        hidden: usize,
    ) -> Result<Self> {
        let wt = w.get(weight, &[hidden, patch_dim])?;
        let b = match bias {
            Some(b) => Some(w.get_as(b, &[hidden], DType::F32)?),
            None => None,
        };
        Ok(LinearPatch(Linear::new(wt, b)))
    }

    pub fn linears_mut(&mut self) -> Vec<&mut Linear> {
        vec![&mut self.0]
    }

    pub fn forward(&self, patches: &Tensor) -> Result<Tensor> {
        self.0.forward(patches)
    }
}
