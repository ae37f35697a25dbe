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
