//! Per-request limits: body size, image pixels, generated tokens, stop strings.

use super::errors::ApiError;
use runtime::image::DecodeLimits;
use std::io::Cursor;

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_image_pixels: u64,
    /// Upper bound on `max_tokens`; also the default when a request gives none.
    pub max_tokens: usize,
    pub max_images: usize,
    pub max_stops: usize,
}

impl Limits {
    pub fn decode_limits(&self) -> DecodeLimits {
        DecodeLimits {
            max_pixels: self.max_image_pixels,
            // RGBA at the pixel limit plus slack for the decoder's own buffers.
            max_alloc_bytes: self.max_image_pixels.saturating_mul(8).max(64 << 20),
        }
    }

    /// Reads only the image header and refuses images over the pixel limit before any pixel
    /// buffer is allocated (a 100 kB PNG can claim 100000×100000).
    pub fn check_image_header(&self, bytes: &[u8], index: usize) -> Result<(u32, u32), ApiError> {
        let mut reader = image::ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| undecodable(index, &e.to_string()))?;
        // Only the header is read here; our own pixel limit below decides, with a clear message.
        reader.no_limits();
        if reader.format().is_none() {
            return Err(undecodable(
                index,
                "unknown image format (send PNG, JPEG or WebP)",
            ));
        }
        let (w, h) = reader
            .into_dimensions()
            .map_err(|e| undecodable(index, &e.to_string()))?;
        let pixels = u64::from(w) * u64::from(h);
        if pixels > self.max_image_pixels {
            return Err(ApiError::invalid(format!(
                "image {index} is {w}x{h} = {pixels} pixels, over the server's limit of {} pixels",
                self.max_image_pixels
            ))
            .param("messages")
            .code("image_too_large"));
        }
        Ok((w, h))
    }

    /// `max_completion_tokens` (or the older `max_tokens`), capped by the server.
    pub fn max_tokens(&self, asked: Option<i64>) -> Result<usize, ApiError> {
        match asked {
            None => Ok(self.max_tokens),
            Some(n) if n < 1 => Err(ApiError::invalid(format!(
                "max_tokens must be at least 1, got {n}"
            ))
            .param("max_tokens")),
            Some(n) => Ok(usize::try_from(n)
                .unwrap_or(usize::MAX)
                .min(self.max_tokens)),
        }
    }
}

pub fn undecodable(index: usize, why: &str) -> ApiError {
    ApiError::invalid(format!("image {index} cannot be decoded: {why}"))
        .param("messages")
        .code("invalid_image")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_body_bytes: 1 << 20,
            max_image_pixels: 1_000_000,
            max_tokens: 100,
            max_images: 4,
            max_stops: 4,
        }
    }

    /// A PNG signature and IHDR chunk claiming `w × h`, with no pixel data.
    pub fn png_header(w: u32, h: u32) -> Vec<u8> {
        let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = b"IHDR".to_vec();
        ihdr.extend(w.to_be_bytes());
        ihdr.extend(h.to_be_bytes());
        ihdr.extend([8, 2, 0, 0, 0]);
        v.extend(13u32.to_be_bytes());
        v.extend(&ihdr);
        v.extend(crc32(&ihdr).to_be_bytes());
        // An empty IDAT: decoders read the header up to the first data chunk.
        v.extend(0u32.to_be_bytes());
        v.extend(b"IDAT");
        v.extend(crc32(b"IDAT").to_be_bytes());
        v
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn huge_header_is_refused_before_decoding() {
        let e = limits()
            .check_image_header(&png_header(100_000, 100_000), 0)
            .unwrap_err();
        assert_eq!(e.code, Some("image_too_large"), "{}", e.message);
        assert_eq!(
            limits().check_image_header(&png_header(10, 20), 0).unwrap(),
            (10, 20)
        );
        let e = limits().check_image_header(b"not an image", 1).unwrap_err();
        assert_eq!(e.code, Some("invalid_image"));
    }

    #[test]
    fn max_tokens_is_capped_and_validated() {
        let l = limits();
        assert_eq!(l.max_tokens(None).unwrap(), 100);
        assert_eq!(l.max_tokens(Some(7)).unwrap(), 7);
        assert_eq!(l.max_tokens(Some(1_000_000)).unwrap(), 100);
        assert!(l.max_tokens(Some(0)).is_err());
    }
}
