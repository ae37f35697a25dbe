//! Layout (glyphs and rules measured to the pixel), canvas sizing per aspect bucket, and
//! rasterization with colour, noise, speckles and blur.

use super::fonts::FontSet;
use super::{patches, Bucket, MAX_AREA, MAX_PATCHES, MAX_SIDE, MIN_SIDE, PATCH};
use ab_glyph::{point, Font, Glyph, PxScale, ScaleFont};
use image::{Rgb, RgbImage};
use rand::Rng;

/// A face at a size: measures and places text.
#[derive(Clone, Copy)]
pub(crate) struct Pen<'a> {
    pub fonts: &'a FontSet,
    pub face: usize,
    pub scale: PxScale,
}

impl<'a> Pen<'a> {
    /// A pen whose digits are `digit_px` pixels tall.
    pub fn with_digit_height(fonts: &'a FontSet, face: usize, digit_px: f32) -> Pen<'a> {
        let s = digit_px / fonts.face(face).digit_ratio;
        Pen {
            fonts,
            face,
            scale: PxScale::from(s),
        }
    }

    fn scaled(&self) -> ab_glyph::PxScaleFont<&ab_glyph::FontArc> {
        self.fonts.face(self.face).font.as_scaled(self.scale)
    }

    pub fn ascent(&self) -> f32 {
        self.scaled().ascent()
    }

    /// Baseline-to-baseline distance without extra gap.
    pub fn line_height(&self) -> f32 {
        let s = self.scaled();
        s.ascent() - s.descent()
    }

    /// Digit height in pixels.
    pub fn digit_height(&self) -> f32 {
        self.scale.y * self.fonts.face(self.face).digit_ratio
    }

    /// Lays out `text` with its baseline at (x, y); returns the glyphs and the advance width.
    fn shape(&self, x: f32, y: f32, text: &str) -> (Vec<(usize, Glyph)>, f32) {
        let mut out = Vec::new();
        let mut caret = x;
        let mut prev: Option<(usize, ab_glyph::GlyphId)> = None;
        for c in text.chars() {
            let (fi, id) = match self.fonts.lookup(self.face, c) {
                Some(g) => g,
                None => continue,
            };
            let sf = self.fonts.face(fi).font.as_scaled(self.scale);
            if let Some((pf, pid)) = prev {
                if pf == fi {
                    caret += sf.kern(pid, id);
                }
            }
            out.push((fi, id.with_scale_and_position(self.scale, point(caret, y))));
            caret += sf.h_advance(id);
            prev = Some((fi, id));
        }
        (out, caret - x)
    }

    pub fn width(&self, text: &str) -> f32 {
        self.shape(0.0, 0.0, text).1
    }
}

/// Everything drawn in the foreground colour, in content coordinates (any origin).
#[derive(Default)]
pub(crate) struct Layout {
    glyphs: Vec<(usize, Glyph)>,
    /// Filled rectangles (x0, y0, x1, y1) in pixels, rounded when drawn.
    rects: Vec<(f32, f32, f32, f32)>,
}

impl Layout {
    /// Text with its baseline at (x, y); returns its advance width.
    pub fn text(&mut self, pen: &Pen, x: f32, y: f32, text: &str) -> f32 {
        let (g, w) = pen.shape(x, y, text);
        self.glyphs.extend(g);
        w
    }

    pub fn rect(&mut self, x0: f32, y0: f32, x1: f32, y1: f32) {
        self.rects.push((
            x0.round(),
            y0.round(),
            x1.round().max(x0.round() + 1.0),
            y1.round().max(y0.round() + 1.0),
        ));
    }

    /// Ink bounding box in whole pixels: (x0, y0, x1, y1), exclusive max.
    pub fn bounds(&self, fonts: &FontSet) -> Option<(i32, i32, i32, i32)> {
        let mut b: Option<(i32, i32, i32, i32)> = None;
        let mut add = |x0: i32, y0: i32, x1: i32, y1: i32| {
            b = Some(match b {
                None => (x0, y0, x1, y1),
                Some((a, c, d, e)) => (a.min(x0), c.min(y0), d.max(x1), e.max(y1)),
            });
        };
        for (fi, g) in &self.glyphs {
            if let Some(o) = fonts.face(*fi).font.outline_glyph(g.clone()) {
                let r = o.px_bounds();
                add(
                    r.min.x.floor() as i32,
                    r.min.y.floor() as i32,
                    r.max.x.ceil() as i32,
                    r.max.y.ceil() as i32,
                );
            }
        }
        for &(x0, y0, x1, y1) in &self.rects {
            add(x0 as i32, y0 as i32, x1 as i32, y1 as i32);
        }
        b
    }
}

/// Where the content goes: canvas size and the offset added to content coordinates.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Placement {
    pub w: u32,
    pub h: u32,
    pub dx: i32,
    pub dy: i32,
}

pub(crate) fn fits(w: u32, h: u32) -> bool {
    (MIN_SIDE..=MAX_SIDE).contains(&w)
        && (MIN_SIDE..=MAX_SIDE).contains(&h)
        && w * h <= MAX_AREA
        && patches(w, h) <= MAX_PATCHES
}

/// Largest other side that keeps an image with one side `side` within the limits.
fn max_other(side: u32) -> u32 {
    let side = side.max(1);
    MAX_SIDE
        .min(MAX_AREA / side)
        .min(PATCH * (MAX_PATCHES / side.div_ceil(PATCH)))
}

/// Sizes a canvas of aspect `bucket` around content `bounds` with random margins and offset,
/// or None when it cannot fit the size limits.
pub(crate) fn place<R: Rng>(
    rng: &mut R,
    bounds: (i32, i32, i32, i32),
    bucket: Bucket,
    min_margin: u32,
) -> Option<Placement> {
    let (x0, y0, x1, y1) = bounds;
    let cw = (x1 - x0).max(1) as u32;
    let ch = (y1 - y0).max(1) as u32;
    let mut w = cw + 2 * min_margin + rng.random_range(0..=16u32);
    let mut h = ch + 2 * min_margin + rng.random_range(0..=16u32);
    let ratio: f32 = match bucket {
        Bucket::Wide => rng.random_range(2.6..4.5),
        Bucket::Square => rng.random_range(0.75..2.2),
        Bucket::Tall => rng.random_range(0.3..0.58),
    };
    // Pad one side toward the target ratio, never beyond the size limits.
    for _ in 0..2 {
        w = w.max(MIN_SIDE);
        h = h.max(MIN_SIDE);
        let r = w as f32 / h as f32;
        let pad_w = |h: u32, w: u32| ((h as f32 * ratio).ceil() as u32).min(max_other(h)).max(w);
        let pad_h = |w: u32, h: u32| ((w as f32 / ratio).ceil() as u32).min(max_other(w)).max(h);
        match bucket {
            Bucket::Wide if r < ratio => w = pad_w(h, w),
            Bucket::Tall if r > ratio => h = pad_h(w, h),
            Bucket::Square if r > 2.3 || (r > ratio && rng.random_bool(0.5)) => h = pad_h(w, h),
            Bucket::Square if r < 0.7 || (r < ratio && rng.random_bool(0.5)) => w = pad_w(h, w),
            _ => {}
        }
    }
    if !fits(w, h) || Bucket::classify(w, h) != bucket {
        return None;
    }
    let fx = rng.random_range(min_margin..=w - cw - min_margin);
    let fy = rng.random_range(min_margin..=h - ch - min_margin);
    Some(Placement {
        w,
        h,
        dx: fx as i32 - x0,
        dy: fy as i32 - y0,
    })
}

/// Colours and degradations of one image.
pub(crate) struct Style {
    pub bg: [u8; 3],
    pub fg: [u8; 3],
    pub noise: i32,
    pub speckles: f32,
    pub blur: bool,
    pub border: bool,
}

impl Style {
    pub fn random<R: Rng>(rng: &mut R) -> Style {
        let base: i32 = rng.random_range(215..=255);
        let mut bg = [0u8; 3];
        for c in &mut bg {
            *c = (base + rng.random_range(-12..=0)).clamp(0, 255) as u8;
        }
        let ink: i32 = rng.random_range(0..=70);
        let mut fg = [0u8; 3];
        let tint = rng.random_range(0..3usize);
        for (i, c) in fg.iter_mut().enumerate() {
            let extra = if i == tint && rng.random_bool(0.3) {
                rng.random_range(0..=90)
            } else {
                0
            };
            *c = (ink + extra).clamp(0, 255) as u8;
        }
        if rng.random_bool(0.15) {
            // Light text on dark.
            let inv = |c: [u8; 3]| c.map(|v| 255 - v);
            let (b, f) = (inv(bg), inv(fg));
            bg = b;
            fg = f;
        }
        Style {
            bg,
            fg,
            noise: if rng.random_bool(0.6) {
                rng.random_range(1..=8)
            } else {
                0
            },
            speckles: if rng.random_bool(0.5) {
                rng.random_range(0.0005..0.004)
            } else {
                0.0
            },
            blur: rng.random_bool(0.2),
            border: rng.random_bool(0.15),
        }
    }
}

fn blend(p: &mut Rgb<u8>, c: [u8; 3], a: f32) {
    let a = a.clamp(0.0, 1.0);
    for (v, c) in p.0.iter_mut().zip(c) {
        *v = (*v as f32 * (1.0 - a) + c as f32 * a).round() as u8;
    }
}

/// Draws `layout` on a canvas at `pl` with `style`.
pub(crate) fn render<R: Rng>(
    rng: &mut R,
    fonts: &FontSet,
    layout: &Layout,
    pl: Placement,
    style: &Style,
) -> RgbImage {
    let (w, h) = (pl.w, pl.h);
    let mut img = RgbImage::new(w, h);
    for p in img.pixels_mut() {
        let n = if style.noise > 0 {
            rng.random_range(-style.noise..=style.noise)
        } else {
            0
        };
        p.0 = style.bg.map(|v| (v as i32 + n).clamp(0, 255) as u8);
    }
    if style.border {
        let inset = rng.random_range(1..=2u32);
        let (x0, y0, x1, y1) = (inset, inset, w - 1 - inset, h - 1 - inset);
        for x in x0..=x1 {
            blend(img.get_pixel_mut(x, y0), style.fg, 0.6);
            blend(img.get_pixel_mut(x, y1), style.fg, 0.6);
        }
        for y in y0 + 1..y1 {
            blend(img.get_pixel_mut(x0, y), style.fg, 0.6);
            blend(img.get_pixel_mut(x1, y), style.fg, 0.6);
        }
    }
    for &(x0, y0, x1, y1) in &layout.rects {
        for y in (y0 as i32 + pl.dy).max(0)..(y1 as i32 + pl.dy).min(h as i32) {
            for x in (x0 as i32 + pl.dx).max(0)..(x1 as i32 + pl.dx).min(w as i32) {
                blend(img.get_pixel_mut(x as u32, y as u32), style.fg, 1.0);
            }
        }
    }
    for (fi, g) in &layout.glyphs {
        let mut g = g.clone();
        g.position.x += pl.dx as f32;
        g.position.y += pl.dy as f32;
        if let Some(o) = fonts.face(*fi).font.outline_glyph(g) {
            let b = o.px_bounds();
            let (bx, by) = (b.min.x as i32, b.min.y as i32);
            o.draw(|x, y, cov| {
                let (px, py) = (bx + x as i32, by + y as i32);
                if px >= 0 && py >= 0 && (px as u32) < w && (py as u32) < h {
                    blend(img.get_pixel_mut(px as u32, py as u32), style.fg, cov);
                }
            });
        }
    }
    if style.speckles > 0.0 {
        let n = (style.speckles * (w * h) as f32) as u32;
        for _ in 0..n {
            let (x, y) = (rng.random_range(0..w), rng.random_range(0..h));
            let a = rng.random_range(0.15..0.45);
            blend(img.get_pixel_mut(x, y), style.fg, a);
        }
    }
    if style.blur {
        img = blur121(&img);
    }
    img
}

/// Separable [1 2 1]/4 blur with clamped edges (integer, so bit-reproducible).
fn blur121(src: &RgbImage) -> RgbImage {
    let (w, h) = src.dimensions();
    let pass = |src: &RgbImage, dx: i32, dy: i32| {
        let mut out = RgbImage::new(w, h);
        for y in 0..h as i32 {
            for x in 0..w as i32 {
                let at = |x: i32, y: i32| {
                    src.get_pixel(
                        x.clamp(0, w as i32 - 1) as u32,
                        y.clamp(0, h as i32 - 1) as u32,
                    )
                    .0
                };
                let (a, b, c) = (at(x - dx, y - dy), at(x, y), at(x + dx, y + dy));
                let p: [u8; 3] = std::array::from_fn(|i| {
                    ((a[i] as u32 + 2 * b[i] as u32 + c[i] as u32 + 2) / 4) as u8
                });
                out.put_pixel(x as u32, y as u32, Rgb(p));
            }
        }
        out
    };
    let tmp = pass(src, 1, 0);
    pass(&tmp, 0, 1)
}
