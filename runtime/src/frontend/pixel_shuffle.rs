//! InternVL-style patch model (HoVLE, Mono-InternVL): per tile, conv (patch, bias) + the learned
//! position table without its class row (bicubically resized, as `F.interpolate(align_corners=
//! False)`, when the tile grid differs from the table's) → 2×2 pixel shuffle with channels
//! `(dy, dx, c)` → `[LayerNorm →] Linear → GELU → Linear`. `(g/2)²` rows per tile, tiles in order.

use super::{conv_as_linear, windows_2x2, GridShape, Mlp2, WindowOrder};
use crate::checkpoint::Weights;
use crate::decoder::layers::Linear;
use crate::error::{Error, Result};
use crate::spec::FrontendSpec;
use candle_core::Tensor;

pub struct PixelShuffle {
    patch: Linear,
    /// `[G·G, C]` positions of the patch cells (class row dropped), f32.
    positions: Vec<f32>,
    table_side: usize,
    width: usize,
    mlp: Mlp2,
}

impl PixelShuffle {
    pub fn linears_mut(&mut self) -> Vec<&mut Linear> {
        let mut all = vec![&mut self.patch];
        all.extend(self.mlp.linears_mut());
        all
    }

    pub fn load(spec: &FrontendSpec, w: &Weights, patch_dim: usize, hidden: usize) -> Result<Self> {
        let FrontendSpec::PixelShuffle {
            patch_conv,
            position_embedding,
            mlp,
            mlp_norm_eps,
        } = spec
        else {
            return Err(Error::Unsupported("not a pixel-shuffle front end".into()));
        };
        let (patch, c) = conv_as_linear(w, patch_conv, patch_dim)?;
        let shape = w.shape(position_embedding)?;
        let rows = match shape.as_slice() {
            [1, n, cc] | [n, cc] if *cc == c => *n,
            _ => 0,
        };
        let side = (rows.saturating_sub(1) as f64).sqrt() as usize;
        if rows < 2 || side * side + 1 != rows {
            return Err(Error::TensorShape {
                name: position_embedding.clone(),
                actual: shape,
                expected: vec![1, 1 + side * side, c],
            });
        }
        let table = w
            .get_as(position_embedding, &shape, candle_core::DType::F32)?
            .reshape((rows, c))?
            .narrow(0, 1, rows - 1)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        Ok(PixelShuffle {
            patch,
            positions: table,
            table_side: side,
            width: c,
            mlp: Mlp2::load(w, mlp, 4 * c, hidden, *mlp_norm_eps)?,
        })
    }

    pub fn forward(&self, patches: &Tensor, shape: GridShape) -> Result<Tensor> {
        shape.require_even("the 2x2 pixel shuffle")?;
        let c = self.width;
        let (g_h, g_w) = (shape.rows, shape.cols);
        let pos = if (g_h, g_w) == (self.table_side, self.table_side) {
            self.positions.clone()
        } else {
            bicubic_resize(
                &self.positions,
                self.table_side,
                self.table_side,
                c,
                g_h,
                g_w,
            )
        };
        let pos = Tensor::from_vec(pos, (1, g_h * g_w, c), patches.device())?;
        let f = self
            .patch
            .forward(patches)?
            .reshape((shape.tiles, g_h * g_w, c))?;
        let f = f.broadcast_add(&pos.to_dtype(f.dtype())?)?;
        // Tiles stacked vertically: 2×2 windows never straddle two tiles (g_h is even).
        let win = windows_2x2(
            &f.reshape((shape.tiles * g_h, g_w, c))?,
            WindowOrder::ChannelMinor,
        )?;
        self.mlp.forward(&win)
    }
}

/// Cubic convolution weights (A = −0.75) of the 4 taps around fraction `t`, as PyTorch.
fn cubic_weights(t: f32) -> [f32; 4] {
    const A: f32 = -0.75;
    let near = |x: f32| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let far = |x: f32| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)]
}

/// `F.interpolate(mode="bicubic", align_corners=False)` of a `[in_h, in_w, C]` grid to
/// `[out_h, out_w, C]` (border taps clamped), in f32 like PyTorch's CPU kernel.
pub(crate) fn bicubic_resize(
    src: &[f32],
    in_h: usize,
    in_w: usize,
    c: usize,
    out_h: usize,
    out_w: usize,
) -> Vec<f32> {
    let taps = |out: usize, inp: usize| -> Vec<([usize; 4], [f32; 4])> {
        let scale = inp as f32 / out as f32;
        (0..out)
            .map(|o| {
                let x = scale * (o as f32 + 0.5) - 0.5;
                let i0 = x.floor();
                let w = cubic_weights(x - i0);
                let idx =
                    [-1i64, 0, 1, 2].map(|d| (i0 as i64 + d).clamp(0, inp as i64 - 1) as usize);
                (idx, w)
            })
            .collect()
    };
    let (ty, tx) = (taps(out_h, in_h), taps(out_w, in_w));
    let mut out = vec![0f32; out_h * out_w * c];
    for (oy, (iy, wy)) in ty.iter().enumerate() {
        for (ox, (ix, wx)) in tx.iter().enumerate() {
            for ch in 0..c {
                let mut acc = 0f32;
                for a in 0..4 {
                    let row = &src[iy[a] * in_w * c..];
                    let mut r = 0f32;
                    for b in 0..4 {
                        r += wx[b] * row[ix[b] * c + ch];
                    }
                    acc += wy[a] * r;
                }
                out[(oy * out_w + ox) * c + ch] = acc;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bicubic_is_identity_at_the_same_size_and_keeps_constants() {
        let src: Vec<f32> = (0..4 * 4 * 2).map(|v| v as f32 * 0.25 - 3.0).collect();
        assert_eq!(bicubic_resize(&src, 4, 4, 2, 4, 4), src);
        let flat = vec![1.5f32; 3 * 3];
        for v in bicubic_resize(&flat, 3, 3, 1, 5, 7) {
            assert!((v - 1.5).abs() < 1e-5, "{v}");
        }
    }

    #[test]
    fn bicubic_upsample_uses_half_pixel_centres_and_clamped_taps() {
        // Output 0 of 4 → 8 sits at source x = −0.25: taps −2, −1, 0, 1 clamp to 0, 0, 0, 1 with
        // weights W(1.75), W(0.75), W(0.25), W(1.25); on a ramp only W(1.25) = −0.10546875 counts.
        let src = [0f32, 1.0, 2.0, 3.0];
        let got = bicubic_resize(&src, 1, 4, 1, 1, 8);
        assert!((got[0] + 0.10546875).abs() < 1e-6, "{got:?}");
        // The ramp is antisymmetric about its centre, so is the result.
        for k in 0..8 {
            assert!((got[k] + got[7 - k] - 3.0).abs() < 1e-5, "{got:?}");
        }
    }
}
