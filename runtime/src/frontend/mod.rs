//! Image front ends: from patch pixels to rows of decoder-width embeddings, one file per kind.
//! Every conv here has kernel = stride, so it is a Linear over CHW-flattened patches.

mod dense_conv;
mod linear_patch;
mod pixel_shuffle;
mod pooled_cross_attn;

use crate::checkpoint::Weights;
use crate::decoder::layers::{Linear, Norm};
use crate::error::{Error, Result};
use crate::image::PatchGrid;
use crate::spec::{ConvNames, FrontendSpec, MlpNames, NormKind};
use candle_core::{DType, Device, Tensor};

/// Shape of a patch tensor: `tiles` grids of `rows × cols` patches, tile-major then row-major.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GridShape {
    pub tiles: usize,
    pub rows: usize,
    pub cols: usize,
}

impl GridShape {
    pub fn of(grid: &PatchGrid) -> Self {
        GridShape {
            tiles: grid.tiles,
            rows: grid.rows,
            cols: grid.cols,
        }
    }

    pub fn patches(&self) -> usize {
        self.tiles * self.rows * self.cols
    }

    /// Errors unless every tile has an even number of rows and columns (2×2 merges).
    fn require_even(&self, what: &str) -> Result<()> {
        if !self.rows.is_multiple_of(2)
            || !self.cols.is_multiple_of(2)
            || self.rows == 0
            || self.cols == 0
        {
            return Err(Error::Image(format!(
                "{what} needs an even, non-empty patch grid, got {}x{}",
                self.rows, self.cols
            )));
        }
        Ok(())
    }
}

// One value per loaded model: variant sizes do not matter.
#[allow(clippy::large_enum_variant)]
pub enum Frontend {
    LinearPatch(linear_patch::LinearPatch),
    DenseConv(dense_conv::DenseConv),
    PooledCrossAttn(pooled_cross_attn::PooledCrossAttn),
    PixelShuffle(pixel_shuffle::PixelShuffle),
}

impl Frontend {
    /// Loads the image part of `spec` (a holistic front end's decoder layers belong to the decoder).
    pub fn load(spec: &FrontendSpec, w: &Weights, patch_dim: usize, hidden: usize) -> Result<Self> {
        Ok(match spec.image() {
            FrontendSpec::LinearPatch { weight, bias } => Frontend::LinearPatch(
                linear_patch::LinearPatch::load(w, weight, bias.as_deref(), patch_dim, hidden)?,
            ),
            s @ FrontendSpec::DenseConv { .. } => {
                Frontend::DenseConv(dense_conv::DenseConv::load(s, w, patch_dim, hidden)?)
            }
            s @ FrontendSpec::PooledCrossAttn { .. } => Frontend::PooledCrossAttn(
                pooled_cross_attn::PooledCrossAttn::load(s, w, patch_dim, hidden)?,
            ),
            s @ FrontendSpec::PixelShuffle { .. } => {
                Frontend::PixelShuffle(pixel_shuffle::PixelShuffle::load(s, w, patch_dim, hidden)?)
            }
            FrontendSpec::Holistic { .. } => {
                return Err(Error::Unsupported(
                    "a holistic front end must wrap an image front end".into(),
                ))
            }
        })
    }

    /// Every linear layer (patch embeddings as matmuls, attention and projector layers), for
    /// moving them to a compute device while the reshapes around them stay on the host.
    pub fn linears_mut(&mut self) -> Vec<&mut Linear> {
        match self {
            Frontend::LinearPatch(f) => f.linears_mut(),
            Frontend::DenseConv(f) => f.linears_mut(),
            Frontend::PooledCrossAttn(f) => f.linears_mut(),
            Frontend::PixelShuffle(f) => f.linears_mut(),
        }
    }

    /// Embeds a patch tensor `[tiles·rows·cols, patch_dim]` (f32) → `[N, D]` rows in sequence order.
    pub fn forward_patches(&self, patches: &Tensor, shape: GridShape) -> Result<Tensor> {
        if patches.dim(0)? != shape.patches() {
            return Err(Error::InvalidArgument(format!(
                "{} patches for a {}x{}x{} grid",
                patches.dim(0)?,
                shape.tiles,
                shape.rows,
                shape.cols
            )));
        }
        match self {
            Frontend::LinearPatch(f) => f.forward(patches),
            Frontend::DenseConv(f) => f.forward(patches, shape),
            Frontend::PooledCrossAttn(f) => f.forward(patches, shape),
            Frontend::PixelShuffle(f) => f.forward(patches, shape),
        }
    }

    /// Embeds one image's patches.
    pub fn forward(&self, grid: &PatchGrid, device: &Device) -> Result<Tensor> {
        let t = Tensor::from_slice(&grid.patches, (grid.len(), grid.patch_dim), device)?;
        self.forward_patches(&t, GridShape::of(grid))
    }
}

/// Loads a kernel = stride conv `[out, 3, p, p]` as a Linear `[out, 3·p·p]` (CHW columns); `out`
/// is read from the checkpoint and returned.
fn conv_as_linear(w: &Weights, names: &ConvNames, patch_dim: usize) -> Result<(Linear, usize)> {
    let shape = w.shape(&names.weight)?;
    let (out, k_elems) = match shape.as_slice() {
        [o, c, kh, kw] => (*o, c * kh * kw),
        _ => (0, 0),
    };
    if out == 0 || k_elems != patch_dim {
        return Err(Error::TensorShape {
            name: names.weight.clone(),
            actual: shape,
            expected: vec![out, 3, 0, 0],
        });
    }
    let weight = w.get(&names.weight, &shape)?.reshape((out, patch_dim))?;
    let bias = match &names.bias {
        Some(b) => Some(w.get_as(b, &[out], DType::F32)?),
        None => None,
    };
    Ok((Linear::new(weight, bias), out))
}

/// A learned vector stored with any number of leading 1-dims (`[D]`, `[1, 1, D]`), as `[1, D]`.
fn learned_vector(w: &Weights, name: &str, dim: usize) -> Result<Tensor> {
    let shape = w.shape(name)?;
    if shape.iter().product::<usize>() != dim || shape.last() != Some(&dim) {
        return Err(Error::TensorShape {
            name: name.to_string(),
            actual: shape,
            expected: vec![dim],
        });
    }
    Ok(w.get(name, &shape)?.reshape((1, dim))?)
}

/// Channel order of a 2×2 merge.
#[derive(Clone, Copy)]
enum WindowOrder {
    /// `(c, dy, dx)`: a 2×2 conv's weight layout.
    ChannelMajor,
    /// `(dy, dx, c)`: InternVL's pixel shuffle.
    ChannelMinor,
}

/// `x` `[R, W, C]` (R rows of W cells, both even) → `[R/2·W/2, 4C]`, one row per 2×2 window.
fn windows_2x2(x: &Tensor, order: WindowOrder) -> Result<Tensor> {
    let (r, w, c) = x.dims3()?;
    let x = x.reshape((r / 2, 2, w / 2, 2, c))?;
    let x = match order {
        WindowOrder::ChannelMajor => x.permute((0, 2, 4, 1, 3))?,
        WindowOrder::ChannelMinor => x.permute((0, 2, 1, 3, 4))?,
    };
    Ok(x.contiguous()?.reshape((r / 2 * (w / 2), 4 * c))?)
}

/// `[LayerNorm →] Linear → erf-GELU → Linear`, biases on both.
struct Mlp2 {
    norm: Option<Norm>,
    fc1: Linear,
    fc2: Linear,
}

impl Mlp2 {
    fn linears_mut(&mut self) -> [&mut Linear; 2] {
        [&mut self.fc1, &mut self.fc2]
    }

    fn load(w: &Weights, names: &MlpNames, inp: usize, out: usize, eps: f64) -> Result<Self> {
        let norm = match &names.norm {
            Some(n) => Some(Norm::load(w, n, inp, NormKind::LayerNorm, eps)?),
            None => None,
        };
        Ok(Mlp2 {
            norm,
            fc1: Linear::load(w, &names.fc1, out, inp, true)?,
            fc2: Linear::load(w, &names.fc2, out, out, true)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = match &self.norm {
            Some(n) => n.forward(x)?,
            None => x.clone(),
        };
        self.fc2.forward(&self.fc1.forward(&x)?.gelu_erf()?)
    }
}
