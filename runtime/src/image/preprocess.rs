//! Family-exact preprocessing driven by [`PreprocessSpec`]. Order of operations follows the
//! references: resize (policy + filter) → pad bottom/right in 0..255 units → rescale → normalize →
//! row-major patches flattened HWC or CHW.

use super::pilimage::{self, Filter, RgbImage};
use crate::error::{Error, Result};
use crate::spec::{PatchOrder, PreprocessSpec, ResampleFilter, ResizePolicy};

/// Where an image of a given size ends up: resized size and patch grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImagePlan {
    pub resized_w: u32,
    pub resized_h: u32,
    pub rows: usize,
    pub cols: usize,
}

/// Patches of one image, `[rows*cols, patch_dim]` row-major, ready for the front end.
#[derive(Debug, Clone)]
pub struct PatchGrid {
    pub patches: Vec<f32>,
    pub patch_dim: usize,
    pub rows: usize,
    pub cols: usize,
    pub resized_hw: (usize, usize),
}

impl PatchGrid {
    pub fn len(&self) -> usize {
        self.rows * self.cols
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn ceil_to(x: u64, m: u64) -> u64 {
    x.div_ceil(m) * m
}

/// Size after the family's resize rule and the resulting patch grid.
pub fn plan(spec: &PreprocessSpec, width: u32, height: u32) -> Result<ImagePlan> {
    if width == 0 || height == 0 {
        return Err(Error::Image(format!(
            "image has zero size ({width}x{height})"
        )));
    }
    let p = spec.patch as u64;
    let (rw, rh) = match spec.resize {
        ResizePolicy::FitWithin { max_w, max_h } => {
            if width > max_w || height > max_h {
                let s = (max_h as f64 / height as f64).min(max_w as f64 / width as f64);
                // Python int() truncation; the reference would produce 0 for extreme ratios, we keep 1.
                let nw = ((width as f64 * s) as u32).max(1);
                let nh = ((height as f64 * s) as u32).max(1);
                (nw, nh)
            } else {
                (width, height)
            }
        }
        ResizePolicy::LongSideRoundUp { multiple, cap } => {
            let m = multiple as u64;
            let (long, short) = (width.max(height) as u64, width.min(height) as u64);
            let new_long = ceil_to(long, m).min(cap as u64);
            let scaled = (new_long as f64 * short as f64 / long as f64) as u64;
            // Upstream yields 0 (and crashes) for extreme ratios; one patch row is the smallest grid.
            let new_short = ceil_to(scaled, m).max(m);
            if width >= height {
                (new_long as u32, new_short as u32)
            } else {
                (new_short as u32, new_long as u32)
            }
        }
    };
    let rows = (rh as u64).div_ceil(p) as usize;
    let cols = (rw as u64).div_ceil(p) as usize;
    Ok(ImagePlan {
        resized_w: rw,
        resized_h: rh,
        rows,
        cols,
    })
}

/// Full preprocessing of a decoded RGB image.
pub fn preprocess(spec: &PreprocessSpec, img: &RgbImage) -> Result<PatchGrid> {
    let plan = plan(spec, img.width, img.height)?;
    let resized;
    let img = if (plan.resized_w, plan.resized_h) != (img.width, img.height) {
        let filter = match spec.filter {
            ResampleFilter::Bilinear => Filter::Bilinear,
            ResampleFilter::Bicubic => Filter::Bicubic,
        };
        resized = pilimage::resize(img, plan.resized_w, plan.resized_h, filter);
        &resized
    } else {
        img
    };
    let p = spec.patch;
    let (w, h) = (img.width as usize, img.height as usize);
    let (rows, cols) = (plan.rows, plan.cols);
    let (ch, cw) = (rows * p, cols * p);
    if (ch > h || cw > w) && spec.pad_value.is_none() {
        return Err(Error::Image(format!(
            "resized image {w}x{h} is not a multiple of the patch size {p} and the family does not pad"
        )));
    }
    let pad = spec.pad_value.unwrap_or(0.0);
    // Normalized value of each channel at (y, x) on the padded canvas, in f32 like the references.
    let norm: Vec<[f32; 256]> = (0..3)
        .map(|c| {
            let mut t = [0f32; 256];
            for (v, slot) in t.iter_mut().enumerate() {
                *slot = (v as f32 * spec.rescale - spec.mean[c]) / spec.std[c];
            }
            t
        })
        .collect();
    let pad_norm: Vec<f32> = (0..3)
        .map(|c| (pad * spec.rescale - spec.mean[c]) / spec.std[c])
        .collect();
    let value = |c: usize, y: usize, x: usize| -> f32 {
        if y < h && x < w {
            norm[c][img.data[(y * w + x) * 3 + c] as usize]
        } else {
            pad_norm[c]
        }
    };
    let dim = p * p * 3;
    let mut patches = Vec::with_capacity(rows * cols * dim);
    for r in 0..rows {
        for cc in 0..cols {
            let (y0, x0) = (r * p, cc * p);
            match spec.order {
                PatchOrder::Hwc => {
                    for py in 0..p {
                        for px in 0..p {
                            for c in 0..3 {
                                patches.push(value(c, y0 + py, x0 + px));
                            }
                        }
                    }
                }
                PatchOrder::Chw => {
                    for c in 0..3 {
                        for py in 0..p {
                            for px in 0..p {
                                patches.push(value(c, y0 + py, x0 + px));
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(PatchGrid {
        patches,
        patch_dim: dim,
        rows,
        cols,
        resized_hw: (plan.resized_h as usize, plan.resized_w as usize),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{PatchOrder, ResampleFilter};

    fn spec(resize: ResizePolicy, patch: usize) -> PreprocessSpec {
        PreprocessSpec {
            resize,
            filter: ResampleFilter::Bilinear,
            resample_exact: true,
            patch,
            order: PatchOrder::Chw,
            pad_value: Some(1.0),
            rescale: 1.0 / 255.0,
            mean: [0.5; 3],
            std: [0.5; 3],
        }
    }

    fn sized(p: &PreprocessSpec, w: u32, h: u32) -> (u32, u32, usize, usize) {
        let r = plan(p, w, h).unwrap();
        (r.resized_w, r.resized_h, r.rows, r.cols)
    }

    #[test]
    fn fuyu_fit_within_never_upscales_and_truncates() {
        let p = spec(
            ResizePolicy::FitWithin {
                max_w: 1920,
                max_h: 1080,
            },
            30,
        );
        assert_eq!(sized(&p, 45, 31), (45, 31, 2, 2));
        assert_eq!(sized(&p, 1, 1), (1, 1, 1, 1));
        assert_eq!(sized(&p, 1920, 1080), (1920, 1080, 36, 64));
        // One pixel too wide: s = 1920/1921, height truncates to 1079.
        assert_eq!(sized(&p, 1921, 1080), (1920, 1079, 36, 64));
        assert_eq!(sized(&p, 12, 1200), (10, 1080, 36, 1));
        assert_eq!(sized(&p, 3000, 3000), (1080, 1080, 36, 36));
        // Extreme ratios: the reference would produce a zero side; we keep one pixel.
        assert_eq!(sized(&p, 1, 100_000), (1, 1080, 36, 1));
        // Python: int(100000 * (1920/100000)) == 1919.
        assert_eq!(sized(&p, 100_000, 1), (1919, 1, 1, 64));
    }

    #[test]
    fn solo_long_side_round_up_rule() {
        let p = spec(
            ResizePolicy::LongSideRoundUp {
                multiple: 32,
                cap: 1024,
            },
            32,
        );
        assert_eq!(sized(&p, 300, 64), (320, 96, 3, 10));
        assert_eq!(sized(&p, 64, 300), (96, 320, 10, 3));
        assert_eq!(sized(&p, 45, 31), (64, 64, 2, 2));
        assert_eq!(sized(&p, 1100, 20), (1024, 32, 1, 32));
        assert_eq!(sized(&p, 1, 50), (32, 64, 2, 1));
        assert_eq!(sized(&p, 1, 1), (32, 32, 1, 1));
        assert_eq!(sized(&p, 4000, 3000), (1024, 768, 24, 32));
        // int() truncation before the ceil: 1024*333/1000 = 340.99 → 340 → 352.
        assert_eq!(sized(&p, 1000, 333), (1024, 352, 11, 32));
        // Degenerate ratio: upstream computes a zero side; we keep one patch.
        assert_eq!(sized(&p, 1, 100_000), (32, 1024, 32, 1));
    }

    #[test]
    fn zero_sized_image_is_an_error() {
        let p = spec(
            ResizePolicy::FitWithin {
                max_w: 1920,
                max_h: 1080,
            },
            30,
        );
        assert!(plan(&p, 0, 10).is_err());
    }

    #[test]
    fn padding_happens_before_rescale_and_patches_are_hwc_or_chw() {
        let mut p = spec(
            ResizePolicy::FitWithin {
                max_w: 1920,
                max_h: 1080,
            },
            2,
        );
        p.order = PatchOrder::Hwc;
        // 1x1 red pixel: the rest of the 2x2 patch is the raw pad value 1.0 → (1/255-0.5)/0.5.
        let img = RgbImage {
            width: 1,
            height: 1,
            data: vec![255, 0, 0],
        };
        let g = preprocess(&p, &img).unwrap();
        let pad = (1.0f32 / 255.0 - 0.5) / 0.5;
        assert_eq!((g.rows, g.cols, g.patch_dim), (1, 1, 12));
        assert_eq!(&g.patches[..3], &[1.0, -1.0, -1.0]);
        assert!(g.patches[3..].iter().all(|&v| (v - pad).abs() < 1e-7));
        p.order = PatchOrder::Chw;
        let g = preprocess(&p, &img).unwrap();
        assert_eq!(g.patches[0], 1.0);
        assert!((g.patches[1] - pad).abs() < 1e-7);
        assert_eq!(g.patches[4], -1.0);
    }
}
