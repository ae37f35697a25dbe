//! Images attached to messages: decoding from files, dropped files and pasted clipboard images,
//! and the GPU textures that show them.

use anyhow::{Context, Result};
use runtime::image::{pilimage, DecodeLimits, RgbImage};
use std::path::Path;
use std::sync::Arc;

/// Largest texture side we upload; bigger images are shown downsampled (the model still gets
/// the full image).
const MAX_TEXTURE_SIDE: u32 = 2048;

pub fn decode_bytes(bytes: &[u8]) -> Result<RgbImage> {
    Ok(pilimage::decode_rgb(bytes, &DecodeLimits::default())?)
}

pub fn decode_file(path: &Path) -> Result<RgbImage> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    decode_bytes(&bytes).with_context(|| format!("decoding {}", path.display()))
}

/// A pasted clipboard image (RGBA, unmultiplied) as RGB over white.
pub fn from_color_image(img: &egui::ColorImage) -> Result<RgbImage> {
    let [w, h] = img.size;
    anyhow::ensure!(w > 0 && h > 0, "the pasted image is empty");
    let mut data = Vec::with_capacity(w * h * 3);
    for px in &img.pixels {
        let [r, g, b, a] = px.to_srgba_unmultiplied();
        let a = a as u32;
        let over = |c: u8| ((c as u32 * a + 255 * (255 - a) + 127) / 255) as u8;
        data.extend_from_slice(&[over(r), over(g), over(b)]);
    }
    Ok(RgbImage {
        width: w as u32,
        height: h as u32,
        data,
    })
}

/// One image of a message: pixels, their stored file name, and a lazily made texture.
#[derive(Clone)]
pub struct Attachment {
    pub image: Arc<RgbImage>,
    /// File name in the store (empty until saved).
    pub stored: String,
    /// Where it came from, for display (`clipboard` for pastes).
    pub source: String,
    texture: Option<egui::TextureHandle>,
}

impl Attachment {
    pub fn new(image: RgbImage, source: impl Into<String>) -> Self {
        Attachment {
            image: Arc::new(image),
            stored: String::new(),
            source: source.into(),
            texture: None,
        }
    }

    pub fn size(&self) -> egui::Vec2 {
        egui::vec2(self.image.width as f32, self.image.height as f32)
    }

    pub fn texture(&mut self, ctx: &egui::Context) -> &egui::TextureHandle {
        let img = &self.image;
        let name = format!("img-{}", self.source);
        self.texture.get_or_insert_with(|| {
            let color = to_color_image(img);
            ctx.load_texture(name, color, egui::TextureOptions::LINEAR)
        })
    }
}

fn to_color_image(img: &RgbImage) -> egui::ColorImage {
    let (w, h) = (img.width, img.height);
    let step = w.max(h).div_ceil(MAX_TEXTURE_SIDE).max(1);
    if step == 1 {
        return egui::ColorImage::from_rgb([w as usize, h as usize], &img.data);
    }
    // Nearest-neighbour downsample for display only.
    let (tw, th) = (w.div_ceil(step), h.div_ceil(step));
    let mut data = Vec::with_capacity((tw * th * 3) as usize);
    for y in 0..th {
        for x in 0..tw {
            let i = (((y * step).min(h - 1) * w + (x * step).min(w - 1)) * 3) as usize;
            data.extend_from_slice(&img.data[i..i + 3]);
        }
    }
    egui::ColorImage::from_rgb([tw as usize, th as usize], &data)
}
