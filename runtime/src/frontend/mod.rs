//! Image front ends: from patch pixels to rows of decoder-width embeddings.

use crate::checkpoint::Weights;
use crate::decoder::layers::Linear;
use crate::error::Result;
use crate::image::PatchGrid;
use crate::spec::FrontendSpec;
use candle_core::{DType, Tensor};

pub enum Frontend {
    /// One Linear over flattened patches.
    LinearPatch(Linear),
}

impl Frontend {
    pub fn load(spec: &FrontendSpec, w: &Weights, patch_dim: usize, hidden: usize) -> Result<Self> {
        match spec {
            FrontendSpec::LinearPatch { weight, bias } => {
                let wt = w.get(weight, &[hidden, patch_dim])?;
                let b = match bias {
                    Some(b) => Some(w.get_as(b, &[hidden], DType::F32)?),
                    None => None,
                };
                Ok(Frontend::LinearPatch(Linear::new(wt, b)))
            }
        }
    }

    /// Embeds a patch tensor `[N, patch_dim]` (f32) → `[N, D]`.
    pub fn forward_patches(&self, patches: &Tensor) -> Result<Tensor> {
        match self {
            Frontend::LinearPatch(l) => l.forward(patches),
        }
    }

    /// Embeds one image's patches.
    pub fn forward(&self, grid: &PatchGrid, device: &candle_core::Device) -> Result<Tensor> {
        let t = Tensor::from_slice(&grid.patches, (grid.len(), grid.patch_dim), device)?;
        self.forward_patches(&t)
    }
}
