//! Pillow 13's Image.resize for 8-bit RGB, bit for bit: antialiased separable convolution with
//! 22-bit fixed-point coefficients, a uint8 intermediate and Pillow 13's pass order.

use super::RgbImage;

/// Resampling filters of `Image.resize`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Filter {
    Nearest,
    Box,
    Bilinear,
    Hamming,
    Bicubic,
    Lanczos,
}

/// Order of the two separable passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum PassOrder {
    /// Pillow >= 13: vertical first iff `in_h - out_h > 0 && in_h - out_h > 2 * (in_w - out_w)`.
    #[default]
    Pillow13,
    /// Pillow <= 12: always horizontal first.
    HorizontalFirst,
    /// Always vertical first.
    VerticalFirst,
}

impl PassOrder {
    /// Whether a `in_w × in_h → out_w × out_h` resize runs its vertical pass first.
    pub fn vertical_first(self, in_w: u32, in_h: u32, out_w: u32, out_h: u32) -> bool {
        match self {
            PassOrder::HorizontalFirst => false,
            PassOrder::VerticalFirst => true,
            PassOrder::Pillow13 => {
                let dh = in_h as i64 - out_h as i64;
                let dw = in_w as i64 - out_w as i64;
                dh > 0 && dh > 2 * dw
            }
        }
    }

    /// Size of the image between the two passes of a resize, when both run. On extreme aspect
    /// ratios it can dwarf both ends (a 1×60,000,000 strip resized to 32×1024 horizontally first
    /// passes through 32×60,000,000), so callers bound it before resizing.
    pub fn intermediate_size(
        self,
        in_w: u32,
        in_h: u32,
        out_w: u32,
        out_h: u32,
    ) -> Option<(u32, u32)> {
        if in_w == out_w || in_h == out_h {
            return None;
        }
        Some(if self.vertical_first(in_w, in_h, out_w, out_h) {
            (in_w, out_h)
        } else {
            (out_w, in_h)
        })
    }
}

const PRECISION_BITS: u32 = 32 - 8 - 2;

impl Filter {
    fn support(self) -> f64 {
        match self {
            Filter::Nearest | Filter::Box => 0.5,
            Filter::Bilinear | Filter::Hamming => 1.0,
            Filter::Bicubic => 2.0,
            Filter::Lanczos => 3.0,
        }
    }

    fn eval(self, x: f64) -> f64 {
        match self {
            Filter::Nearest | Filter::Box => {
                if x > -0.5 && x <= 0.5 {
                    1.0
                } else {
                    0.0
                }
            }
            Filter::Bilinear => {
                let x = x.abs();
                if x < 1.0 {
                    1.0 - x
                } else {
                    0.0
                }
            }
            Filter::Hamming => {
                let x = x.abs();
                if x == 0.0 {
                    1.0
                } else if x >= 1.0 {
                    0.0
                } else {
                    let x = x * std::f64::consts::PI;
                    // Pillow uses float (f32) literals here
                    x.sin() / x * (0.54f32 as f64 + 0.46f32 as f64 * x.cos())
                }
            }
            Filter::Bicubic => {
                const A: f64 = -0.5;
                let x = x.abs();
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
            Filter::Lanczos => {
                if (-3.0..3.0).contains(&x) {
                    sinc(x) * sinc(x / 3.0)
                } else {
                    0.0
                }
            }
        }
    }
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let x = x * std::f64::consts::PI;
        x.sin() / x
    }
}

/// Fixed-point coefficients of one axis: for output i, taps `k[off[i]..off[i] + len[i]]` over input
/// samples `start[i]..start[i] + len[i]`.
struct Coeffs {
    start: Vec<usize>,
    len: Vec<usize>,
    off: Vec<usize>,
    k: Vec<i32>,
}

fn precompute_coeffs(in_size: u32, out_size: u32, filter: Filter) -> Coeffs {
    // Pillow keeps the box as C floats: the size is rounded to f32 first.
    let in0 = 0.0f32;
    let in1 = in_size as f32;
    let scale = (in1 - in0) as f64 / out_size as f64;
    let filterscale = if scale < 1.0 { 1.0 } else { scale };
    let support = filter.support() * filterscale;
    let ss = 1.0 / filterscale;
    let n = out_size as usize;
    let mut c = Coeffs {
        start: Vec::with_capacity(n),
        len: Vec::with_capacity(n),
        off: Vec::with_capacity(n),
        k: Vec::new(),
    };
    let mut w: Vec<f64> = Vec::new();
    for xx in 0..n {
        let center = in0 as f64 + (xx as f64 + 0.5) * scale;
        let xmin = ((center - support + 0.5) as i64).max(0);
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64);
        let cnt = (xmax - xmin).max(0) as usize;
        w.clear();
        let mut ww = 0.0f64;
        for x in 0..cnt {
            let v = filter.eval(((x as i64 + xmin) as f64 - center + 0.5) * ss);
            w.push(v);
            ww += v;
        }
        c.start.push(xmin as usize);
        c.len.push(cnt);
        c.off.push(c.k.len());
        for &v in &w {
            let v = if ww != 0.0 { v / ww } else { v };
            let f = (1u32 << PRECISION_BITS) as f64;
            c.k.push(if v < 0.0 {
                (-0.5 + v * f) as i32
            } else {
                (0.5 + v * f) as i32
            });
        }
    }
    c
}

#[inline]
fn clip8(v: i32) -> u8 {
    (v >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Horizontal pass: `src` is (in_w x h), result (out_w x h).
fn pass_horizontal(src: &[u8], in_w: usize, h: usize, out_w: usize, c: &Coeffs) -> Vec<u8> {
    let mut out = vec![0u8; out_w * h * 3];
    let init = 1i32 << (PRECISION_BITS - 1);
    for y in 0..h {
        let row = &src[y * in_w * 3..(y + 1) * in_w * 3];
        let orow = &mut out[y * out_w * 3..(y + 1) * out_w * 3];
        for xx in 0..out_w {
            let k = &c.k[c.off[xx]..c.off[xx] + c.len[xx]];
            let px = &row[c.start[xx] * 3..(c.start[xx] + c.len[xx]) * 3];
            let (mut s0, mut s1, mut s2) = (init, init, init);
            for (p, &kv) in px.chunks_exact(3).zip(k) {
                s0 = s0.wrapping_add((p[0] as i32).wrapping_mul(kv));
                s1 = s1.wrapping_add((p[1] as i32).wrapping_mul(kv));
                s2 = s2.wrapping_add((p[2] as i32).wrapping_mul(kv));
            }
            orow[xx * 3] = clip8(s0);
            orow[xx * 3 + 1] = clip8(s1);
            orow[xx * 3 + 2] = clip8(s2);
        }
    }
    out
}

/// Vertical pass: `src` is (w x in_h), result (w x out_h).
fn pass_vertical(src: &[u8], w: usize, out_h: usize, c: &Coeffs) -> Vec<u8> {
    let stride = w * 3;
    let mut out = vec![0u8; stride * out_h];
    let mut acc = vec![0i32; stride];
    for yy in 0..out_h {
        acc.fill(1i32 << (PRECISION_BITS - 1));
        let k = &c.k[c.off[yy]..c.off[yy] + c.len[yy]];
        for (j, &kv) in k.iter().enumerate() {
            let y = c.start[yy] + j;
            let row = &src[y * stride..(y + 1) * stride];
            for (a, &p) in acc.iter_mut().zip(row) {
                *a = a.wrapping_add((p as i32).wrapping_mul(kv));
            }
        }
        for (o, &a) in out[yy * stride..(yy + 1) * stride].iter_mut().zip(&acc) {
            *o = clip8(a);
        }
    }
    out
}

/// `Image.resize((out_w, out_h), filter)` of Pillow 13 for an RGB image, bit-exact, for any sizes
/// (up/down-scaling, 1xN, extreme ratios). A zero output dimension gives an empty image; a
/// zero-sized input gives a black image. Panics only if `img.data.len() != width * height * 3`.
pub fn resize(img: &RgbImage, out_w: u32, out_h: u32, filter: Filter) -> RgbImage {
    resize_with_order(img, out_w, out_h, filter, PassOrder::Pillow13)
}

/// [`resize`] with an explicit pass order (e.g. [`PassOrder::HorizontalFirst`] for Pillow <= 12).
pub fn resize_with_order(
    img: &RgbImage,
    out_w: u32,
    out_h: u32,
    filter: Filter,
    order: PassOrder,
) -> RgbImage {
    let (in_w, in_h) = (img.width, img.height);
    assert_eq!(
        img.data.len(),
        in_w as usize * in_h as usize * 3,
        "RgbImage data length does not match its size"
    );
    if out_w == 0 || out_h == 0 {
        return RgbImage {
            width: out_w,
            height: out_h,
            data: Vec::new(),
        };
    }
    if (out_w, out_h) == (in_w, in_h) {
        return img.clone();
    }
    if in_w == 0 || in_h == 0 {
        return RgbImage::new(out_w, out_h);
    }
    if filter == Filter::Nearest {
        return resize_nearest(img, out_w, out_h);
    }
    let need_h = out_w != in_w;
    let need_v = out_h != in_h;
    let vertical_first = order.vertical_first(in_w, in_h, out_w, out_h);
    let (in_w, in_h, out_wu, out_hu) =
        (in_w as usize, in_h as usize, out_w as usize, out_h as usize);
    let ch = need_h.then(|| precompute_coeffs(in_w as u32, out_w, filter));
    let cv = need_v.then(|| precompute_coeffs(in_h as u32, out_h, filter));
    let data = match (ch, cv) {
        (Some(ch), None) => pass_horizontal(&img.data, in_w, in_h, out_wu, &ch),
        (None, Some(cv)) => pass_vertical(&img.data, in_w, out_hu, &cv),
        (Some(ch), Some(cv)) => {
            if vertical_first {
                let t = pass_vertical(&img.data, in_w, out_hu, &cv);
                pass_horizontal(&t, in_w, out_hu, out_wu, &ch)
            } else {
                let t = pass_horizontal(&img.data, in_w, in_h, out_wu, &ch);
                pass_vertical(&t, out_wu, out_hu, &cv)
            }
        }
        (None, None) => img.data.clone(),
    };
    RgbImage {
        width: out_w,
        height: out_h,
        data,
    }
}

/// Pillow's NEAREST resize (an affine "scale" transform with the source coordinate accumulated in f64).
fn resize_nearest(img: &RgbImage, out_w: u32, out_h: u32) -> RgbImage {
    let (in_w, in_h) = (img.width as i64, img.height as i64);
    let coords = |in_size: i64, out_size: u32| -> Vec<Option<usize>> {
        let a = in_size as f64 / out_size as f64;
        let mut o = a * 0.5;
        let mut v = Vec::with_capacity(out_size as usize);
        for _ in 0..out_size {
            let i = if o < 0.0 { -1 } else { o as i64 };
            v.push((0..in_size).contains(&i).then_some(i as usize));
            o += a;
        }
        v
    };
    let xs = coords(in_w, out_w);
    let ys = coords(in_h, out_h);
    let mut out = RgbImage::new(out_w, out_h);
    let ow = out_w as usize;
    for (y, sy) in ys.iter().enumerate() {
        let Some(sy) = *sy else { continue };
        let srow = &img.data[sy * in_w as usize * 3..(sy + 1) * in_w as usize * 3];
        let drow = &mut out.data[y * ow * 3..(y + 1) * ow * 3];
        for (x, sx) in xs.iter().enumerate() {
            if let Some(sx) = *sx {
                drow[x * 3..x * 3 + 3].copy_from_slice(&srow[sx * 3..sx * 3 + 3]);
            }
        }
    }
    out
}
