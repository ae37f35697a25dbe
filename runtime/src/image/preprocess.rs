//! Family-exact preprocessing driven by [`PreprocessSpec`]. Order of operations follows the
//! references: resize (policy + filter) → [tiles + thumbnail] → pad bottom/right in 0..255 units →
//! rescale → normalize → row-major patches flattened HWC or CHW, tile after tile.

use super::pilimage::{self, Filter, PassOrder, RgbImage};
use crate::error::{Error, Result};
use crate::spec::{PatchOrder, PreprocessSpec, ResampleFilter, ResizePolicy};

/// Where an image of a given size ends up: resized size, tiles and the patch grid of each tile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImagePlan {
    pub resized_w: u32,
    pub resized_h: u32,
    /// Patch rows and columns of one tile (of the whole image when it is not tiled).
    pub rows: usize,
    pub cols: usize,
    /// Tiles fed to the front end, thumbnail included (1 when not tiled).
    pub tiles: usize,
    /// `(cols, rows)` of the tile grid cut from the resized image (`(1, 1)` when not tiled).
    pub tile_grid: (usize, usize),
    /// Whether a thumbnail of the whole image follows the grid tiles.
    pub thumbnail: bool,
}

/// Patches of one image, `[tiles·rows·cols, patch_dim]` (tile-major, then row-major), ready for
/// the front end.
#[derive(Debug, Clone)]
pub struct PatchGrid {
    pub patches: Vec<f32>,
    pub patch_dim: usize,
    /// Patch rows and columns of one tile.
    pub rows: usize,
    pub cols: usize,
    pub tiles: usize,
    /// `(h, w)` after the resize step (the tiled image before cutting).
    pub resized_hw: (usize, usize),
    pub tile_grid: (usize, usize),
    pub thumbnail: bool,
}

impl PatchGrid {
    pub fn len(&self) -> usize {
        self.tiles * self.rows * self.cols
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn ceil_to(x: u64, m: u64) -> u64 {
    x.div_ceil(m) * m
}

/// Sizes past this are refused before any pixel is allocated (upstream rules can ask for
/// absurd sizes on extreme aspect ratios, e.g. EVE v2 on a 1×10⁸ strip).
const MAX_RESIZED_PIXELS: u64 = 1 << 28;

fn to_u32(v: f64, what: &str) -> Result<u32> {
    if v.is_finite() && v >= 0.0 && v <= u32::MAX as f64 {
        Ok(v as u32)
    } else {
        Err(Error::Image(format!("{what} size {v} is out of range")))
    }
}

/// CPython's `hash((a, b))` for small non-negative ints (the xxHash-based tuple hash of 3.8+).
fn py_tuple_hash(items: &[u64]) -> u64 {
    const P1: u64 = 11400714785074694791;
    const P2: u64 = 14029467366897019727;
    const P5: u64 = 2870177450012600261;
    let mut acc = P5;
    for &lane in items {
        acc = acc.wrapping_add(lane.wrapping_mul(P2));
        acc = acc.rotate_left(31);
        acc = acc.wrapping_mul(P1);
    }
    acc = acc.wrapping_add(items.len() as u64 ^ (P5 ^ 3527539));
    if acc == u64::MAX {
        1546275796
    } else {
        acc
    }
}

/// Iteration order of a CPython (3.8–3.13) `set` built by adding `keys` one by one: open
/// addressing with 9 linear probes then perturbation, resized ×4 when 3/5 full. InternVL sorts its
/// candidate grids by tile count with a *stable* sort over such a set, so grids with equal counts
/// keep this order, which decides exact aspect-ratio ties.
fn py_set_order(keys: &[(u32, u32)]) -> Vec<(u32, u32)> {
    const LINEAR_PROBES: usize = 9;
    type Slot = Option<((u32, u32), u64)>;
    fn insert_clean(table: &mut [Slot], key: (u32, u32), hash: u64) {
        let mask = table.len() - 1;
        let mut perturb = hash;
        let mut i = hash as usize & mask;
        loop {
            if table[i].is_none() {
                table[i] = Some((key, hash));
                return;
            }
            if i + LINEAR_PROBES <= mask {
                for j in 1..=LINEAR_PROBES {
                    if table[i + j].is_none() {
                        table[i + j] = Some((key, hash));
                        return;
                    }
                }
            }
            perturb >>= 5;
            i = (i
                .wrapping_mul(5)
                .wrapping_add(1)
                .wrapping_add(perturb as usize))
                & mask;
        }
    }
    let mut table: Vec<Slot> = vec![None; 8];
    let mut used = 0usize;
    for &key in keys {
        let hash = py_tuple_hash(&[key.0 as u64, key.1 as u64]);
        let mask = table.len() - 1;
        let mut perturb = hash;
        let mut i = hash as usize & mask;
        let mut slot = None;
        'probe: loop {
            let probes = if i + LINEAR_PROBES <= mask {
                LINEAR_PROBES
            } else {
                0
            };
            for j in 0..=probes {
                match table[i + j] {
                    None => {
                        slot = Some(i + j);
                        break 'probe;
                    }
                    Some((k, _)) if k == key => break 'probe,
                    Some(_) => {}
                }
            }
            perturb >>= 5;
            i = (i
                .wrapping_mul(5)
                .wrapping_add(1)
                .wrapping_add(perturb as usize))
                & mask;
        }
        let Some(slot) = slot else { continue };
        table[slot] = Some((key, hash));
        used += 1;
        // No deletions, so `fill == used`.
        if used * 5 >= mask * 3 {
            let mut size = 8;
            while size <= used * 4 {
                size <<= 1;
            }
            let mut bigger: Vec<Slot> = vec![None; size];
            for (k, h) in table.iter().flatten() {
                insert_clean(&mut bigger, *k, *h);
            }
            table = bigger;
        }
    }
    table.into_iter().flatten().map(|(k, _)| k).collect()
}

/// InternVL's `find_closest_aspect_ratio` over its candidate grids `(cols, rows)`: the first grid
/// with the smallest `|W/H − cols/rows|`; on an exact tie the later grid wins iff
/// `W·H > 0.5·tile²·cols·rows`.
pub fn choose_tile_grid(width: u32, height: u32, tile: u32, min: u32, max: u32) -> (u32, u32) {
    let mut generated = Vec::new();
    for n in min..=max {
        for i in 1..=n {
            for j in 1..=n {
                if i * j <= max && i * j >= min {
                    generated.push((i, j));
                }
            }
        }
    }
    let mut candidates = py_set_order(&generated);
    candidates.sort_by_key(|&(i, j)| i * j);
    let aspect = width as f64 / height as f64;
    let area = width as f64 * height as f64;
    let mut best = (1, 1);
    let mut best_diff = f64::INFINITY;
    for (i, j) in candidates {
        let diff = (aspect - i as f64 / j as f64).abs();
        if diff < best_diff {
            best_diff = diff;
            best = (i, j);
        } else if diff == best_diff && area > 0.5 * tile as f64 * tile as f64 * (i * j) as f64 {
            best = (i, j);
        }
    }
    best
}

/// Size after the family's resize rule, the tiles and each tile's patch grid.
pub fn plan(spec: &PreprocessSpec, width: u32, height: u32) -> Result<ImagePlan> {
    if width == 0 || height == 0 {
        return Err(Error::Image(format!(
            "image has zero size ({width}x{height})"
        )));
    }
    let p = spec.patch as u64;
    let mut tiles = 1;
    let mut tile_grid = (1, 1);
    let mut thumbnail = false;
    let mut tile_size = None;
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
        ResizePolicy::AreaTarget { max_size, multiple } => {
            if max_size == 0 || multiple == 0 {
                return Err(Error::Image("area-target resize with a zero size".into()));
            }
            // Python float64 in upstream's operation order (the order decides 1-ulp ceil cases).
            let r = ((width as u64 * height as u64) as f64).sqrt() / max_size as f64;
            let m = multiple as f64;
            let side = |v: u32| (v as f64 / r / m).ceil().max(1.0) * m;
            (
                to_u32(side(width), "resized")?,
                to_u32(side(height), "resized")?,
            )
        }
        ResizePolicy::LongSideFixed { base, patch, scale } => {
            if base == 0 || patch == 0 || scale == 0 {
                return Err(Error::Image(
                    "long-side-fixed resize with a zero size".into(),
                ));
            }
            let short_side = |short: u32, long: u32| {
                // `ceil(S * short / long / p)`: an integer product, then two float64 divisions.
                ((base as u64 * short as u64) as f64 / long as f64 / patch as f64).ceil() as u64
                    * patch as u64
            };
            let (bw, bh) = if width > height {
                (base as u64, short_side(height, width))
            } else {
                (short_side(width, height), base as u64)
            };
            (
                to_u32((bw * scale as u64) as f64, "resized")?,
                to_u32((bh * scale as u64) as f64, "resized")?,
            )
        }
        ResizePolicy::Tiles {
            tile,
            min_tiles,
            max_tiles,
            thumbnail: thumb,
        } => {
            if tile == 0 || min_tiles == 0 || max_tiles < min_tiles || max_tiles > 64 {
                return Err(Error::Image(format!(
                    "tiling needs tile > 0 and 1 <= min <= max <= 64 tiles (tile {tile}, {min_tiles}..{max_tiles})"
                )));
            }
            let (c, r) = choose_tile_grid(width, height, tile, min_tiles, max_tiles);
            tile_grid = (c as usize, r as usize);
            tiles = (c * r) as usize;
            thumbnail = thumb && tiles != 1;
            tiles += thumbnail as usize;
            tile_size = Some(tile);
            (
                to_u32(tile as f64 * c as f64, "resized")?,
                to_u32(tile as f64 * r as f64, "resized")?,
            )
        }
    };
    if rw as u64 * rh as u64 > MAX_RESIZED_PIXELS {
        return Err(Error::Image(format!(
            "a {width}x{height} image would be resized to {rw}x{rh}, past the {MAX_RESIZED_PIXELS}-pixel limit"
        )));
    }
    check_intermediate(spec, width, height, rw, rh)?;
    if let (true, Some(t)) = (thumbnail, tile_size) {
        check_intermediate(spec, width, height, t, t)?;
    }
    let (pw, ph) = match tile_size {
        Some(t) => (t, t),
        None => (rw, rh),
    };
    let rows = (ph as u64).div_ceil(p) as usize;
    let cols = (pw as u64).div_ceil(p) as usize;
    Ok(ImagePlan {
        resized_w: rw,
        resized_h: rh,
        rows,
        cols,
        tiles,
        tile_grid,
        thumbnail,
    })
}

/// Refuses a resize whose first pass would be larger than the resized-size limit: on extreme
/// aspect ratios it can dwarf both ends (a 233 KB PNG of 1×60,000,000 pixels, resized to 32×1024
/// horizontally first, passes through 32×60,000,000 and aborted the process).
fn check_intermediate(spec: &PreprocessSpec, w: u32, h: u32, rw: u32, rh: u32) -> Result<()> {
    let (_, order) = filter(spec);
    match order.intermediate_size(w, h, rw, rh) {
        Some((iw, ih)) if iw as u64 * ih as u64 > MAX_RESIZED_PIXELS => Err(Error::Image(format!(
            "a {w}x{h} image would pass through {iw}x{ih} pixels on its way to {rw}x{rh}, past the {MAX_RESIZED_PIXELS}-pixel limit (crop it or use a less extreme aspect ratio)"
        ))),
        _ => Ok(()),
    }
}

fn filter(spec: &PreprocessSpec) -> (Filter, PassOrder) {
    match spec.filter {
        ResampleFilter::Bilinear => (Filter::Bilinear, PassOrder::HorizontalFirst),
        ResampleFilter::Bicubic => (Filter::Bicubic, PassOrder::HorizontalFirst),
        ResampleFilter::BilinearPillow13 => (Filter::Bilinear, PassOrder::Pillow13),
        ResampleFilter::BicubicPillow13 => (Filter::Bicubic, PassOrder::Pillow13),
    }
}

fn resized(spec: &PreprocessSpec, img: &RgbImage, w: u32, h: u32) -> Option<RgbImage> {
    let (f, order) = filter(spec);
    ((w, h) != (img.width, img.height)).then(|| pilimage::resize_with_order(img, w, h, f, order))
}

/// Normalized value of each channel for each 8-bit level, in f32 like the references.
struct Normalizer {
    lut: [[f32; 256]; 3],
    pad: [f32; 3],
}

/// `v · rescale` as the references compute it. For the usual 1/255 that is the correctly rounded
/// `v / 255` (torchvision's f32 division and HF's float64 product agree on every 8-bit level);
/// `v as f32 * (1/255 as f32)` is off by up to 3 ulp after normalization.
fn rescaled(v: f32, rescale: f32) -> f32 {
    if rescale == (1.0f64 / 255.0) as f32 {
        (v as f64 / 255.0) as f32
    } else {
        v * rescale
    }
}

impl Normalizer {
    fn new(spec: &PreprocessSpec) -> Self {
        let mut lut = [[0f32; 256]; 3];
        let mut pad = [0f32; 3];
        let pad_raw = spec.pad_value.unwrap_or(0.0);
        for c in 0..3 {
            for (v, slot) in lut[c].iter_mut().enumerate() {
                *slot = (rescaled(v as f32, spec.rescale) - spec.mean[c]) / spec.std[c];
            }
            pad[c] = (rescaled(pad_raw, spec.rescale) - spec.mean[c]) / spec.std[c];
        }
        Normalizer { lut, pad }
    }
}

/// Appends the `rows × cols` patches of the `view_w × view_h` window at `(x0, y0)` of `img`;
/// positions past the window read as the pad value.
#[allow(clippy::too_many_arguments)]
fn push_patches(
    out: &mut Vec<f32>,
    spec: &PreprocessSpec,
    norm: &Normalizer,
    img: &RgbImage,
    (x0, y0): (usize, usize),
    (view_w, view_h): (usize, usize),
    rows: usize,
    cols: usize,
) {
    let p = spec.patch;
    let w = img.width as usize;
    let value = |c: usize, y: usize, x: usize| -> f32 {
        if y < view_h && x < view_w {
            norm.lut[c][img.data[((y0 + y) * w + x0 + x) * 3 + c] as usize]
        } else {
            norm.pad[c]
        }
    };
    for r in 0..rows {
        for cc in 0..cols {
            let (py0, px0) = (r * p, cc * p);
            match spec.order {
                PatchOrder::Hwc => {
                    for py in 0..p {
                        for px in 0..p {
                            for c in 0..3 {
                                out.push(value(c, py0 + py, px0 + px));
                            }
                        }
                    }
                }
                PatchOrder::Chw => {
                    for c in 0..3 {
                        for py in 0..p {
                            for px in 0..p {
                                out.push(value(c, py0 + py, px0 + px));
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Full preprocessing of a decoded RGB image.
pub fn preprocess(spec: &PreprocessSpec, img: &RgbImage) -> Result<PatchGrid> {
    let plan = plan(spec, img.width, img.height)?;
    let p = spec.patch;
    let big = resized(spec, img, plan.resized_w, plan.resized_h);
    let full = big.as_ref().unwrap_or(img);
    let (w, h) = (full.width as usize, full.height as usize);
    let (rows, cols) = (plan.rows, plan.cols);
    let norm = Normalizer::new(spec);
    let dim = p * p * 3;
    let mut patches = Vec::with_capacity(plan.tiles * rows * cols * dim);
    if let ResizePolicy::Tiles { tile, .. } = spec.resize {
        let t = tile as usize;
        if rows * p != t {
            return Err(Error::Image(format!(
                "tile size {t} is not a multiple of the patch size {p}"
            )));
        }
        let (gc, gr) = plan.tile_grid;
        for r in 0..gr {
            for c in 0..gc {
                push_patches(
                    &mut patches,
                    spec,
                    &norm,
                    full,
                    (c * t, r * t),
                    (t, t),
                    rows,
                    cols,
                );
            }
        }
        if plan.thumbnail {
            let thumb = resized(spec, img, tile, tile);
            let thumb = thumb.as_ref().unwrap_or(img);
            push_patches(&mut patches, spec, &norm, thumb, (0, 0), (t, t), rows, cols);
        }
    } else {
        if (rows * p > h || cols * p > w) && spec.pad_value.is_none() {
            return Err(Error::Image(format!(
                "resized image {w}x{h} is not a multiple of the patch size {p} and the family does not pad"
            )));
        }
        push_patches(&mut patches, spec, &norm, full, (0, 0), (w, h), rows, cols);
    }
    Ok(PatchGrid {
        patches,
        patch_dim: dim,
        rows,
        cols,
        tiles: plan.tiles,
        resized_hw: (plan.resized_h as usize, plan.resized_w as usize),
        tile_grid: plan.tile_grid,
        thumbnail: plan.thumbnail,
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

    /// `(h, w)` after the resize rule.
    fn hw(p: &PreprocessSpec, w: u32, h: u32) -> (u32, u32) {
        let r = plan(p, w, h).unwrap();
        (r.resized_h, r.resized_w)
    }

    #[test]
    fn eve2_area_target_matches_upstream_sizes() {
        // (max_size, input w×h, upstream `process_images` h×w) from the real 800/1600 processors.
        let cases = [
            (800, (640, 480), (704, 928)),
            (800, (1000, 10), (96, 8000)),
            (800, (10, 1000), (8000, 96)),
            (800, (13, 200), (3168, 224)),
            (800, (1, 1), (800, 800)),
            (800, (4000, 3000), (704, 928)),
            (800, (1920, 1080), (608, 1088)),
            // float64 quirks: W/r/32 lands one ulp above an integer.
            (800, (57, 57), (832, 832)),
            (800, (69, 69), (832, 832)),
            (800, (17, 68), (1600, 416)),
            (1600, (13, 200), (6304, 416)),
            (1600, (57, 57), (1632, 1632)),
            (1600, (17, 68), (3200, 800)),
        ];
        for (max_size, (w, h), want) in cases {
            let p = spec(
                ResizePolicy::AreaTarget {
                    max_size,
                    multiple: 32,
                },
                16,
            );
            assert_eq!(hw(&p, w, h), want, "{w}x{h} at {max_size}");
            let r = plan(&p, w, h).unwrap();
            assert_eq!(
                (r.rows, r.cols),
                (want.0 as usize / 16, want.1 as usize / 16)
            );
        }
        let p = spec(
            ResizePolicy::AreaTarget {
                max_size: 112,
                multiple: 32,
            },
            16,
        );
        assert_eq!(hw(&p, 17, 68), (256, 64));
        // Extreme strips: the short side never drops below one 32-pixel cell; absurd results are
        // refused before allocating.
        assert_eq!(hw(&p, 1, 5000).1, 32);
        let hd = spec(
            ResizePolicy::AreaTarget {
                max_size: 1600,
                multiple: 32,
            },
            16,
        );
        assert!(plan(&hd, 1, u32::MAX).is_err());
    }

    #[test]
    fn eve1_long_side_fixed_matches_upstream_sizes() {
        // (image_size, input w×h, upstream h×w) for the real 672 and 1344 processors (clip 336).
        let cases = [
            (672, (640, 480), (504, 672)),
            (672, (480, 640), (672, 504)),
            (672, (1000, 10), (28, 672)),
            (672, (10, 1000), (672, 28)),
            (672, (13, 200), (672, 56)),
            (672, (337, 320), (644, 672)),
            (672, (1, 1), (672, 672)),
            (672, (17, 68), (672, 168)),
            (672, (1920, 1080), (392, 672)),
            (1344, (1000, 10), (56, 1344)),
            (1344, (337, 320), (1288, 1344)),
            (1344, (17, 68), (1344, 336)),
            (1344, (1920, 1080), (784, 1344)),
        ];
        for (size, (w, h), want) in cases {
            let p = spec(
                ResizePolicy::LongSideFixed {
                    base: 336,
                    patch: 14,
                    scale: size / 336,
                },
                14,
            );
            assert_eq!(hw(&p, w, h), want, "{w}x{h} at {size}");
        }
        // Larger than the target and extreme ratios still give one 2×2-poolable cell row.
        let p = spec(
            ResizePolicy::LongSideFixed {
                base: 336,
                patch: 14,
                scale: 2,
            },
            14,
        );
        assert_eq!(hw(&p, 100_000, 1), (28, 672));
        assert_eq!(hw(&p, 9000, 9000), (672, 672));
    }

    #[test]
    fn cpython_set_order_of_internvl_candidates() {
        // The candidate lists InternVL builds (`sorted(set(...), key=i*j)`), as CPython 3.11 orders
        // them, for max_num 4 and 6.
        let order = |max: u32| {
            let mut gen = Vec::new();
            for n in 1..=max {
                for i in 1..=n {
                    for j in 1..=n {
                        if i * j <= max {
                            gen.push((i, j));
                        }
                    }
                }
            }
            let mut c = py_set_order(&gen);
            c.sort_by_key(|&(i, j)| i * j);
            c
        };
        assert_eq!(
            order(4),
            [
                (1, 1),
                (1, 2),
                (2, 1),
                (3, 1),
                (1, 3),
                (4, 1),
                (1, 4),
                (2, 2)
            ]
        );
        assert_eq!(
            order(6),
            [
                (1, 1),
                (1, 2),
                (2, 1),
                (3, 1),
                (1, 3),
                (4, 1),
                (1, 4),
                (2, 2),
                (1, 5),
                (5, 1),
                (6, 1),
                (2, 3),
                (1, 6),
                (3, 2)
            ]
        );
    }

    #[test]
    fn internvl_tiling_grid_choice_and_tie_rule() {
        let pick = |w, h, max| choose_tile_grid(w, h, 448, 1, max);
        assert_eq!(pick(448, 448, 6), (1, 1));
        // Equal ratio 1:1 for 1x1 and 2x2: the later (2x2) wins only when the image is large.
        assert_eq!(pick(800, 800, 6), (2, 2));
        assert_eq!(pick(300, 300, 6), (1, 1));
        // 2:1 exactly.
        assert_eq!(pick(896, 448, 6), (2, 1));
        assert_eq!(pick(10, 1000, 6), (1, 6));
        assert_eq!(pick(100_000, 1, 12), (12, 1));
        assert_eq!(pick(1, 1, 1), (1, 1));
        // Fixture-sized tiles (56): 118x60 → 2x1, 40x125 → 1x3, 130x130 → 2x2 (tie, large).
        assert_eq!(choose_tile_grid(118, 60, 56, 1, 4), (2, 1));
        assert_eq!(choose_tile_grid(40, 125, 56, 1, 4), (1, 3));
        assert_eq!(choose_tile_grid(130, 130, 56, 1, 4), (2, 2));
        assert_eq!(choose_tile_grid(50, 50, 56, 1, 4), (1, 1));
    }

    #[test]
    fn tiles_plan_counts_the_thumbnail() {
        let tiles = |thumbnail| {
            spec(
                ResizePolicy::Tiles {
                    tile: 56,
                    min_tiles: 1,
                    max_tiles: 4,
                    thumbnail,
                },
                14,
            )
        };
        let r = plan(&tiles(true), 230, 50).unwrap();
        assert_eq!(
            (r.resized_w, r.resized_h, r.tile_grid, r.tiles, r.thumbnail),
            (224, 56, (4, 1), 5, true)
        );
        assert_eq!((r.rows, r.cols), (4, 4));
        // One tile: no thumbnail even when enabled.
        let r = plan(&tiles(true), 50, 50).unwrap();
        assert_eq!((r.tiles, r.thumbnail), (1, false));
        let r = plan(&tiles(false), 230, 50).unwrap();
        assert_eq!((r.tiles, r.thumbnail), (4, false));
        // Tiny and huge inputs keep within the grid limits.
        assert_eq!(plan(&tiles(true), 1, 1).unwrap().tiles, 1);
        assert_eq!(plan(&tiles(true), 1, 100_000).unwrap().tile_grid, (1, 4));
        // A tiled image is cut into whole tiles and the thumbnail comes last.
        let img = RgbImage {
            width: 112,
            height: 56,
            data: (0..112 * 56)
                .flat_map(|i| [(i % 112) as u8, 0, 0])
                .collect(),
        };
        let g = preprocess(&tiles(true), &img).unwrap();
        assert_eq!((g.tiles, g.rows, g.cols, g.len()), (3, 4, 4, 48));
        // First patch of tile 2 starts at x = 56 (channel 0, CHW): (56/255 - 0.5)/0.5.
        let first_of_tile2 = g.patches[16 * g.patch_dim];
        assert!((first_of_tile2 - (56.0 / 255.0 - 0.5) / 0.5).abs() < 1e-6);
    }

    #[test]
    fn a_resize_whose_first_pass_would_be_huge_is_refused_before_allocating() {
        // SOLO's rule on a 1×60,000,000 strip: 32×1024 at the end, but with Pillow <= 12's
        // horizontal-first order the image is 32×60,000,000 in between (a 233 KB PNG used to
        // abort the process here). Pillow 13's order shrinks the height first: 1×1024.
        for (filter, refused) in [
            (ResampleFilter::Bicubic, true),
            (ResampleFilter::BicubicPillow13, false),
        ] {
            let mut p = spec(
                ResizePolicy::LongSideRoundUp {
                    multiple: 32,
                    cap: 1024,
                },
                32,
            );
            p.filter = filter;
            match plan(&p, 1, 60_000_000) {
                Err(e) => assert!(refused && e.to_string().contains("32x60000000"), "{e}"),
                Ok(_) => assert!(!refused, "{filter:?}: planned"),
            }
            // The same strip on its side shrinks horizontally first: 1024x1 in between, fine.
            plan(&p, 60_000_000, 1).unwrap();
            // Ordinary extremes still plan.
            plan(&p, 1, 100_000).unwrap();
        }
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
