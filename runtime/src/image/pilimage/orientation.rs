//! EXIF orientation (tag 0x0112, else XMP tiff:Orientation) applied as ImageOps.exif_transpose.

use super::*;

/// The EXIF orientation Pillow would apply (1 = none). Malformed metadata counts as 1.
pub fn orientation_of(bytes: &[u8], format: Format) -> u8 {
    let (exif, xmp) = match format {
        Format::Png => png_meta(bytes),
        Format::Jpeg => jpeg_meta(bytes),
        Format::WebP => webp_meta(bytes),
        // TIFF: the orientation tag of IFD0; Pillow reads no EXIF/XMP from GIF or BMP
        Format::Tiff => (Some(bytes.to_vec()), None),
        Format::Gif | Format::Bmp => (None, None),
    };
    if let Some(e) = exif {
        if let Some(o) = exif_orientation(&e) {
            return if (1..=8).contains(&o) { o as u8 } else { 1 };
        }
    }
    if let Some(x) = xmp {
        if let Some(o) = xmp_orientation(&x) {
            return if (1..=8).contains(&o) { o } else { 1 };
        }
    }
    1
}

fn png_meta(b: &[u8]) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
    let mut exif = None;
    let mut xmp = None;
    for (ty, data) in png_chunks(b) {
        match ty {
            b"eXIf" => exif = Some(data.to_vec()),
            b"iTXt" => {
                // keyword \0 compression_flag compression_method lang \0 translated \0 text
                if let Some(k) = data.iter().position(|&c| c == 0) {
                    if &data[..k] == b"XML:com.adobe.xmp" && data.get(k + 1) == Some(&0) {
                        let rest = &data[(k + 3).min(data.len())..];
                        let mut parts = rest.splitn(3, |&c| c == 0);
                        let _lang = parts.next();
                        let _tr = parts.next();
                        if let Some(t) = parts.next() {
                            xmp = Some(t.to_vec());
                        }
                    }
                }
            }
            b"tEXt" => {
                if let Some(k) = data.iter().position(|&c| c == 0) {
                    let key = &data[..k];
                    let text = &data[k + 1..];
                    if key == b"Raw profile type exif" && exif.is_none() {
                        exif = raw_profile_exif(text);
                    } else if key == b"XML:com.adobe.xmp" {
                        xmp = Some(text.to_vec());
                    }
                }
            }
            b"IEND" => break,
            _ => {}
        }
    }
    (exif, xmp)
}

/// "\nexif\n    LEN\nHEX..." -> bytes (Pillow skips the first three lines).
fn raw_profile_exif(text: &[u8]) -> Option<Vec<u8>> {
    let s = std::str::from_utf8(text).ok()?;
    let hex: String = s.split('\n').skip(3).collect::<Vec<_>>().concat();
    let hex = hex.as_bytes();
    let mut out = Vec::with_capacity(hex.len() / 2);
    for pair in hex.chunks_exact(2) {
        let h = (pair[0] as char).to_digit(16)?;
        let l = (pair[1] as char).to_digit(16)?;
        out.push((h * 16 + l) as u8);
    }
    Some(out)
}

fn jpeg_meta(b: &[u8]) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
    let mut exif: Option<Vec<u8>> = None;
    let mut xmp = None;
    let mut pos = 2usize;
    while pos + 4 <= b.len() {
        if b[pos] != 0xFF {
            pos += 1; // Pillow skips junk before markers
            continue;
        }
        let marker = b[pos + 1];
        if marker == 0xFF {
            pos += 1;
            continue;
        }
        if marker == 0xD9 || marker == 0xDA {
            break;
        }
        if (0xD0..=0xD7).contains(&marker) || marker == 0x01 {
            pos += 2;
            continue;
        }
        let len = u16::from_be_bytes([b[pos + 2], b[pos + 3]]) as usize;
        if len < 2 || pos + 2 + len > b.len() {
            break;
        }
        let s = &b[pos + 4..pos + 2 + len];
        if marker == 0xE1 {
            if s.starts_with(b"Exif\0\0") {
                match &mut exif {
                    Some(e) => e.extend_from_slice(&s[6..]),
                    None => exif = Some(s.to_vec()),
                }
            } else if let Some(rest) = s.strip_prefix(b"http://ns.adobe.com/xap/1.0/\0") {
                xmp = Some(rest.to_vec());
            }
        }
        pos += 2 + len;
    }
    (exif, xmp)
}

fn webp_meta(b: &[u8]) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
    let mut exif = None;
    let mut xmp = None;
    let mut pos = 12usize;
    while pos + 8 <= b.len() {
        let ty = &b[pos..pos + 4];
        let len = le32(&b[pos + 4..pos + 8]) as usize;
        let start = pos + 8;
        let Some(end) = start.checked_add(len).filter(|&e| e <= b.len()) else {
            break;
        };
        match ty {
            b"EXIF" => exif = Some(b[start..end].to_vec()),
            b"XMP " => xmp = Some(b[start..end].to_vec()),
            _ => {}
        }
        pos = end + (len & 1);
    }
    (exif, xmp)
}

/// Orientation tag from IFD0 of an EXIF/TIFF blob (optionally prefixed by "Exif\0\0").
/// `None`: no orientation tag (or unreadable); `Some(v)`: the raw value.
pub(super) fn exif_orientation(data: &[u8]) -> Option<u32> {
    let d = data.strip_prefix(b"Exif\0\0").unwrap_or(data);
    if d.len() < 8 {
        return None;
    }
    let le = match &d[0..4] {
        b"II*\0" => true,
        b"MM\0*" => false,
        _ => return None,
    };
    let r16 = |o: usize| -> Option<u32> {
        let s = d.get(o..o + 2)?;
        Some(if le {
            u16::from_le_bytes([s[0], s[1]])
        } else {
            u16::from_be_bytes([s[0], s[1]])
        } as u32)
    };
    let r32 = |o: usize| -> Option<u32> {
        let s = d.get(o..o + 4)?;
        let a = [s[0], s[1], s[2], s[3]];
        Some(if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        })
    };
    let ifd = r32(4)? as usize;
    let n = r16(ifd)? as usize;
    for i in 0..n {
        let e = ifd + 2 + i * 12;
        let tag = r16(e)?;
        if tag != 0x0112 {
            continue;
        }
        let ty = r16(e + 2)?;
        let count = r32(e + 4)?;
        if count != 1 {
            return Some(0);
        }
        return match ty {
            1 | 6 | 7 => d.get(e + 8).map(|&v| v as u32), // BYTE / SBYTE / UNDEFINED
            3 | 8 => r16(e + 8),
            4 | 9 => r32(e + 8),
            _ => Some(0),
        };
    }
    None
}

/// `tiff:Orientation(="|>)([0-9])` as in Pillow's `Image.getexif`.
pub(super) fn xmp_orientation(x: &[u8]) -> Option<u8> {
    let pat = b"tiff:Orientation";
    let mut i = 0;
    while i + pat.len() + 2 <= x.len() {
        if &x[i..i + pat.len()] == pat {
            let j = i + pat.len();
            let digit_at = if x[j] == b'=' && x.get(j + 1) == Some(&b'"') {
                j + 2
            } else if x[j] == b'>' {
                j + 1
            } else {
                i += 1;
                continue;
            };
            if let Some(&c) = x.get(digit_at) {
                if c.is_ascii_digit() {
                    return Some(c - b'0');
                }
            }
        }
        i += 1;
    }
    None
}

/// Applies an EXIF orientation (1..=8) the way `ImageOps.exif_transpose` does.
pub fn apply_orientation(img: RgbImage, orientation: u8) -> RgbImage {
    let (w, h) = (img.width as usize, img.height as usize);
    // out(x, y) = in(f(x, y)); output size swapped for 5..=8
    let map: fn(usize, usize, usize, usize) -> (usize, usize) = match orientation {
        2 => |x, y, w, _h| (w - 1 - x, y),        // FLIP_LEFT_RIGHT
        3 => |x, y, w, h| (w - 1 - x, h - 1 - y), // ROTATE_180
        4 => |x, y, _w, h| (x, h - 1 - y),        // FLIP_TOP_BOTTOM
        5 => |x, y, _w, _h| (y, x),               // TRANSPOSE
        6 => |x, y, _w, h| (y, h - 1 - x),        // ROTATE_270 (clockwise)
        7 => |x, y, w, h| (w - 1 - y, h - 1 - x), // TRANSVERSE
        8 => |x, y, w, _h| (w - 1 - y, x),        // ROTATE_90 (counter-clockwise)
        _ => return img,
    };
    let (ow, oh) = if orientation >= 5 { (h, w) } else { (w, h) };
    let mut data = vec![0u8; ow * oh * 3];
    for y in 0..oh {
        for x in 0..ow {
            let (sx, sy) = map(x, y, w, h);
            let s = (sy * w + sx) * 3;
            let d = (y * ow + x) * 3;
            data[d..d + 3].copy_from_slice(&img.data[s..s + 3]);
        }
    }
    RgbImage {
        width: ow as u32,
        height: oh as u32,
        data,
    }
}
