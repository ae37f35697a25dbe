//! GIF, decoded ourselves: the `image` crate turns transparent pixels black, Pillow keeps the
//! palette colour of the transparent index; LZW follows Pillow's semantics.

use super::{check_dims, le16, DecodeLimits, ImageError, RgbImage};

const F: &str = "GIF";

fn trunc(what: &str) -> ImageError {
    ImageError::Truncated {
        format: F,
        detail: what.into(),
    }
}

fn corrupt(what: &str) -> ImageError {
    ImageError::Corrupt {
        format: F,
        detail: what.into(),
    }
}

/// Reads a sequence of data sub-blocks starting at `pos`; returns (data, position after terminator).
fn sub_blocks(b: &[u8], mut pos: usize, collect: bool) -> Result<(Vec<u8>, usize), ImageError> {
    let mut out = Vec::new();
    loop {
        let n = *b.get(pos).ok_or_else(|| trunc("data sub-block"))? as usize;
        pos += 1;
        if n == 0 {
            return Ok((out, pos));
        }
        let blk = b.get(pos..pos + n).ok_or_else(|| trunc("data sub-block"))?;
        if collect {
            out.extend_from_slice(blk);
        }
        pos += n;
    }
}

pub(super) fn decode(b: &[u8], limits: &DecodeLimits) -> Result<RgbImage, ImageError> {
    if b.len() < 13 {
        return Err(trunc("header"));
    }
    let mut width = le16(&b[6..8]) as u32;
    let mut height = le16(&b[8..10]) as u32;
    let flags = b[10];
    let mut pos = 13usize;
    let mut global: Option<&[u8]> = None;
    if flags & 0x80 != 0 {
        let n = 3usize << ((flags & 7) + 1);
        global = Some(b.get(pos..pos + n).ok_or_else(|| trunc("global palette"))?);
        pos += n;
    }
    let mut transparency: Option<u8> = None;
    // Walk to the first image descriptor.
    loop {
        match *b.get(pos).ok_or_else(|| trunc("no image"))? {
            0x21 => {
                let label = *b.get(pos + 1).ok_or_else(|| trunc("extension"))?;
                if label == 0xF9 {
                    let n = *b.get(pos + 2).ok_or_else(|| trunc("extension"))? as usize;
                    let blk = b
                        .get(pos + 3..pos + 3 + n)
                        .ok_or_else(|| trunc("extension"))?;
                    if n >= 4 && blk[0] & 1 != 0 {
                        transparency = Some(blk[3]);
                    }
                }
                let (_, p) = sub_blocks(b, pos + 2, false)?;
                pos = p;
            }
            0x2C => break,
            0x3B => return Err(corrupt("no image in file")),
            _ => return Err(corrupt("unexpected block")),
        }
    }
    let d = b
        .get(pos..pos + 10)
        .ok_or_else(|| trunc("image descriptor"))?;
    let x0 = le16(&d[1..3]) as u32;
    let y0 = le16(&d[3..5]) as u32;
    let fw = le16(&d[5..7]) as u32;
    let fh = le16(&d[7..9]) as u32;
    let iflags = d[9];
    pos += 10;
    // Pillow grows the canvas to hold the first frame.
    width = width.max(x0 + fw);
    height = height.max(y0 + fh);
    check_dims(width, height, limits).map_err(|e| e.with_format(F))?;
    let mut palette = global;
    if iflags & 0x80 != 0 {
        let n = 3usize << ((iflags & 7) + 1);
        palette = Some(b.get(pos..pos + n).ok_or_else(|| trunc("local palette"))?);
        pos += n;
    }
    let interlace = iflags & 0x40 != 0;
    let min_code = *b.get(pos).ok_or_else(|| trunc("LZW code size"))?;
    pos += 1;
    if min_code > 12 {
        return Err(corrupt("bad LZW minimum code size"));
    }
    if fw == 0 || fh == 0 {
        return Err(corrupt("empty frame"));
    }
    // Canvas of palette indices: the transparent index if there is one, else 0.
    let fill = transparency.unwrap_or(0);
    let mut canvas = vec![fill; width as usize * height as usize];
    let npix = fw as usize * fh as usize;
    let mut frame = Vec::with_capacity(npix);
    lzw_decode(b, pos, min_code, npix, &mut frame)?;
    // Place the frame rows (interlaced order if needed).
    let rows: Vec<u32> = if interlace {
        let mut r = Vec::with_capacity(fh as usize);
        for (start, step) in [(0u32, 8u32), (4, 8), (2, 4), (1, 2)] {
            let mut y = start;
            while y < fh {
                r.push(y);
                y += step;
            }
        }
        r
    } else {
        (0..fh).collect()
    };
    for (i, row) in frame.chunks(fw.max(1) as usize).enumerate() {
        let y = y0 + rows[i];
        let off = y as usize * width as usize + x0 as usize;
        canvas[off..off + row.len()].copy_from_slice(row);
    }
    // Palette lookup. Without a palette, or with a grey identity palette, Pillow uses mode "L"
    // (value = index); otherwise indices past the palette read as black.
    let pal = palette.unwrap_or(&[]);
    let identity = pal
        .chunks_exact(3)
        .enumerate()
        .all(|(i, e)| e.iter().all(|&v| v as usize == i));
    let mut lut = [[0u8; 3]; 256];
    for (i, e) in lut.iter_mut().enumerate() {
        *e = if identity {
            [i as u8; 3]
        } else if i * 3 + 2 < pal.len() {
            [pal[i * 3], pal[i * 3 + 1], pal[i * 3 + 2]]
        } else {
            [0; 3]
        };
    }
    let data = canvas.iter().flat_map(|&i| lut[i as usize]).collect();
    Ok(RgbImage {
        width,
        height,
        data,
    })
}

/// LZW decode of the image data into `out` (exactly `npix` indices), with the semantics of
/// Pillow's GIF decoder: sub-blocks are read as length-prefixed chunks until the image is full
/// (a zero length or an end code does not stop it), and running out of data is an error.
fn lzw_decode(
    b: &[u8],
    mut pos: usize,
    bits: u8,
    npix: usize,
    out: &mut Vec<u8>,
) -> Result<(), ImageError> {
    const TABLE: usize = 4096;
    let clear = 1u32 << bits;
    let end = clear + 1;
    let mut codesize = bits as u32 + 1;
    let mut next = clear + 2;
    let mut data = vec![0u8; TABLE];
    let mut link = vec![0u16; TABLE];
    let mut stack: Vec<u8> = Vec::with_capacity(TABLE);
    let mut state = 2u8; // 2: first symbol after a clear; 3: decoding
    let (mut lastcode, mut lastdata) = (0u32, 0u8);
    let mut bitbuf: u64 = 0;
    let mut bitcount: u32 = 0;
    let mut block_left = 0usize;
    while out.len() < npix {
        while bitcount < codesize {
            if block_left > 0 {
                bitbuf |= (b[pos] as u64) << bitcount;
                bitcount += 8;
                pos += 1;
                block_left -= 1;
            } else {
                let n = *b.get(pos).ok_or_else(|| trunc("image data"))? as usize;
                if pos + 1 + n > b.len() {
                    return Err(trunc("image data"));
                }
                block_left = n;
                pos += 1;
            }
        }
        let mut c = (bitbuf & ((1u64 << codesize) - 1)) as u32;
        bitbuf >>= codesize;
        bitcount -= codesize;
        if c == clear {
            codesize = bits as u32 + 1;
            next = clear + 2;
            state = 2;
            continue;
        }
        if c == end {
            continue;
        }
        stack.clear();
        if state == 2 {
            if c > clear {
                return Err(corrupt("bad LZW code"));
            }
            lastcode = c;
            lastdata = c as u8;
            stack.push(c as u8);
            state = 3;
        } else {
            let thiscode = c;
            if c > next {
                return Err(corrupt("bad LZW code"));
            }
            if c == next {
                stack.push(lastdata);
                c = lastcode;
            }
            while c >= clear {
                if c as usize >= TABLE || stack.len() >= TABLE {
                    return Err(corrupt("bad LZW code"));
                }
                stack.push(data[c as usize]);
                c = link[c as usize] as u32;
            }
            stack.push(c as u8);
            lastdata = c as u8;
            if (next as usize) < TABLE {
                data[next as usize] = c as u8;
                link[next as usize] = lastcode as u16;
                if next == (1 << codesize) - 1 && codesize < 12 {
                    codesize += 1;
                }
                next += 1;
            }
            lastcode = thiscode;
        }
        for &v in stack.iter().rev() {
            if out.len() < npix {
                out.push(v);
            }
        }
    }
    Ok(())
}
