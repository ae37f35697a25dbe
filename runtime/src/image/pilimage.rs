//! PROVISIONAL: replaced by the Pillow-exact module.
use image::ImageReader;
use std::io::Cursor;

#[derive(Debug, Clone)]
pub struct RgbImage {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}
#[derive(Debug, Clone, Copy)]
pub struct DecodeLimits {
    pub max_pixels: u64,
    pub max_alloc_bytes: u64,
}
impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_pixels: 100_000_000,
            max_alloc_bytes: 1 << 30,
        }
    }
}
#[derive(Debug, Clone, Copy)]
pub enum Filter {
    Bilinear,
    Bicubic,
}
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ImageError(String);
pub fn decode_rgb(bytes: &[u8], _l: &DecodeLimits) -> Result<RgbImage, ImageError> {
    let img = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ImageError(e.to_string()))?
        .decode()
        .map_err(|e| ImageError(e.to_string()))?;
    let rgb = img.to_rgb8();
    Ok(RgbImage {
        width: rgb.width(),
        height: rgb.height(),
        data: rgb.into_raw(),
    })
}
pub fn resize(img: &RgbImage, w: u32, h: u32, _f: Filter) -> RgbImage {
    let src = image::RgbImage::from_raw(img.width, img.height, img.data.clone()).unwrap();
    let r = image::imageops::resize(&src, w, h, image::imageops::FilterType::Triangle);
    RgbImage {
        width: w,
        height: h,
        data: r.into_raw(),
    }
}
