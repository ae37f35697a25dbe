//! JPEG, decoded ourselves to reproduce libjpeg-turbo as Pillow drives it: "islow" integer IDCT,
//! fancy upsampling, libjpeg's YCbCr tables, Pillow's inverted-CMYK convention. The `image`
//! crate's decoder uses a different IDCT and differs from Pillow by a few levels.

use super::{check_dims, cmyk_to_rgb, DecodeLimits, ImageError, RgbImage};

const F: &str = "JPEG";

fn corrupt(d: &str) -> ImageError {
    ImageError::Corrupt {
        format: F,
        detail: d.into(),
    }
}

fn trunc(d: &str) -> ImageError {
    ImageError::Truncated {
        format: F,
        detail: d.into(),
    }
}

/// Zig-zag order -> natural order, with 16 extra entries (as libjpeg) for corrupt run lengths.
const NATURAL: [usize; 80] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
    13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
    52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63,
    63, 63, 63, 63, 63, 63,
];

#[derive(Clone)]
struct Huffman {
    maxcode: [i32; 18],
    valoffset: [i32; 18],
    vals: Vec<u8>,
    /// 8-bit lookahead: (length, symbol), length 0 = longer code
    look: Vec<(u8, u8)>,
}

impl Huffman {
    fn new(counts: &[u8; 16], vals: Vec<u8>, is_dc: bool) -> Result<Huffman, ImageError> {
        let mut maxcode = [-1i32; 18];
        let mut valoffset = [0i32; 18];
        let mut code = 0i32;
        let mut p = 0usize;
        let mut look = vec![(0u8, 0u8); 256];
        for l in 1..=16usize {
            let n = counts[l - 1] as usize;
            if n > 0 {
                valoffset[l] = p as i32 - code;
                for _ in 0..n {
                    if code >= (1 << l) {
                        return Err(corrupt("bad Huffman table"));
                    }
                    if l <= 8 {
                        let shift = 8 - l;
                        let sym = *vals.get(p).ok_or_else(|| corrupt("bad Huffman table"))?;
                        for j in 0..(1usize << shift) {
                            look[((code as usize) << shift) | j] = (l as u8, sym);
                        }
                    }
                    code += 1;
                    p += 1;
                }
                maxcode[l] = code - 1;
            }
            if code >= (1 << l) {
                return Err(corrupt("bad Huffman table"));
            }
            code <<= 1;
        }
        maxcode[17] = 0xFFFFF;
        if p > vals.len() || (is_dc && vals[..p].iter().any(|&v| v > 15)) {
            return Err(corrupt("bad Huffman table"));
        }
        Ok(Huffman {
            maxcode,
            valoffset,
            vals,
            look,
        })
    }
}

/// Entropy-coded data reader with libjpeg's behaviour at markers: once a marker is reached, zero
/// bits are supplied (and `hit_marker` is set). Running out of input is an error (Pillow reports
/// such files as truncated).
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    buf: u64,
    n: u32,
    /// marker reached inside the entropy-coded data (libjpeg's `unread_marker`): its code and
    /// the position of its 0xFF; the reader is past it and supplies zero bits
    marker: Option<(u8, usize)>,
    eof: bool,
    /// zero bits appended after a marker / the end of data (still in `buf`)
    pad: u32,
}

impl<'a> Bits<'a> {
    fn fill(&mut self) {
        while self.n <= 56 {
            if self.marker.is_some() || self.eof {
                // zero padding
                self.n += 8;
                self.pad += 8;
                continue;
            }
            let Some(&b) = self.data.get(self.pos) else {
                self.eof = true;
                continue;
            };
            if b == 0xFF {
                // skip fill bytes
                let mut q = self.pos + 1;
                while self.data.get(q) == Some(&0xFF) {
                    q += 1;
                }
                match self.data.get(q) {
                    Some(0) => {
                        self.pos = q + 1;
                        self.buf |= 0xFFu64 << (56 - self.n);
                        self.n += 8;
                    }
                    Some(&c) => {
                        self.marker = Some((c, q - 1));
                        self.pos = q + 1;
                    }
                    None => {
                        self.eof = true;
                    }
                }
            } else {
                self.pos += 1;
                self.buf |= (b as u64) << (56 - self.n);
                self.n += 8;
            }
        }
    }

    /// Bits consumed beyond the real data (to detect truncation)?
    fn check(&self) -> Result<(), ImageError> {
        // libjpeg fills its bit buffer greedily and suspends at the end of the input, which Pillow
        // reports as a truncated file
        if self.eof {
            Err(trunc("entropy-coded data ends early"))
        } else {
            Ok(())
        }
    }

    fn get(&mut self, k: u32) -> i32 {
        if k == 0 {
            return 0;
        }
        if self.n < k {
            self.fill();
        }
        let v = (self.buf >> (64 - k)) as i32;
        self.buf <<= k;
        self.n -= k;
        v
    }

    fn decode(&mut self, h: &Huffman) -> u8 {
        if self.n < 16 {
            self.fill();
        }
        let (l, sym) = h.look[(self.buf >> 56) as usize];
        if l > 0 {
            self.buf <<= l;
            self.n -= l as u32;
            return sym;
        }
        let mut code = self.get(1);
        let mut l = 1usize;
        while code > h.maxcode[l] {
            code = (code << 1) | self.get(1);
            l += 1;
            if l > 16 {
                return 0; // libjpeg: warning, symbol 0
            }
        }
        let idx = (code + h.valoffset[l]) as usize;
        h.vals.get(idx).copied().unwrap_or(0)
    }

    /// Discards buffered bits and positions on the next marker (libjpeg's restart handling).
    /// Were zero bits (past a marker) consumed?
    fn overrun(&self) -> bool {
        self.n < self.pad
    }

    /// libjpeg's next_marker: skips garbage up to the next marker (0xFF 0x00 is not one).
    fn next_marker(&mut self) -> Result<(u8, usize), ImageError> {
        loop {
            while *self
                .data
                .get(self.pos)
                .ok_or_else(|| trunc("missing marker"))?
                != 0xFF
            {
                self.pos += 1;
            }
            while *self
                .data
                .get(self.pos)
                .ok_or_else(|| trunc("missing marker"))?
                == 0xFF
            {
                self.pos += 1;
            }
            let c = self.data[self.pos];
            self.pos += 1;
            if c != 0 {
                return Ok((c, self.pos - 2));
            }
        }
    }

    /// libjpeg's read_restart_marker + jpeg_resync_to_restart. Returns true when the reader is
    /// past the restart marker (false: a marker stays unread and the interval reads as zeros).
    fn restart(&mut self, desired: u8) -> Result<bool, ImageError> {
        self.buf = 0;
        self.n = 0;
        self.pad = 0;
        let mut m = match self.marker {
            Some(m) => m,
            None => self.next_marker()?,
        };
        self.marker = Some(m);
        let rst = |k: u8| 0xD0 + (k & 7);
        if m.0 == rst(desired) {
            self.marker = None;
            return Ok(true);
        }
        loop {
            let c = m.0;
            let next_two = c == rst(desired.wrapping_add(1)) || c == rst(desired.wrapping_add(2));
            let action = if c < 0xC0 {
                2
            } else if !(0xD0..=0xD7).contains(&c) || next_two {
                3
            } else if c == rst(desired.wrapping_sub(1)) || c == rst(desired.wrapping_sub(2)) {
                2
            } else {
                1
            };
            match action {
                1 => {
                    self.marker = None;
                    return Ok(true);
                }
                2 => {
                    m = self.next_marker()?;
                    self.marker = Some(m);
                }
                _ => return Ok(false),
            }
        }
    }

    /// Position of the marker that ends the scan.
    fn end_marker_pos(&mut self) -> Result<usize, ImageError> {
        match self.marker {
            Some((_, p)) => Ok(p),
            None => Ok(self.next_marker()?.1),
        }
    }
}

fn extend(v: i32, s: u32) -> i32 {
    if s == 0 {
        0
    } else if v < (1 << (s - 1)) {
        v + (-1i32 << s) + 1
    } else {
        v
    }
}

struct Comp {
    id: u8,
    h: usize,
    v: usize,
    tq: usize,
    /// blocks per row / column actually covering the component (libjpeg width_in_blocks)
    bw: usize,
    bh: usize,
    /// allocated (MCU-padded) blocks per row / column
    pbw: usize,
    pbh: usize,
    coefs: Vec<i16>,
    qt: Option<[u16; 64]>,
    dc_pred: i32,
    /// libjpeg downsampled_width / height
    dw: usize,
    dh: usize,
}

pub(super) fn decode(b: &[u8], limits: &DecodeLimits) -> Result<RgbImage, ImageError> {
    let mut pos = 2usize;
    let mut qts: [Option<[u16; 64]>; 4] = [None; 4];
    let mut dcs: [Option<Huffman>; 4] = [None, None, None, None];
    let mut acs: [Option<Huffman>; 4] = [None, None, None, None];
    let mut comps: Vec<Comp> = Vec::new();
    let (mut width, mut height) = (0usize, 0usize);
    let mut progressive = false;
    let mut restart_interval = 0usize;
    let mut adobe: Option<u8> = None;
    let mut jfif = false;
    let (mut hmax, mut vmax) = (1usize, 1usize);
    let mut frame_seen = false;
    let mut scans = 0usize;
    loop {
        // find marker
        while pos < b.len() && b[pos] != 0xFF {
            pos += 1;
        }
        while pos < b.len() && b[pos] == 0xFF {
            pos += 1;
        }
        let Some(&marker) = b.get(pos) else {
            // libjpeg would wait for more data; Pillow reports a truncated file
            return Err(trunc("no EOI marker"));
        };
        pos += 1;
        match marker {
            0xD8 | 0x01 | 0xD0..=0xD7 => continue,
            0xD9 => break,
            _ => {}
        }
        let len = b
            .get(pos..pos + 2)
            .map(|s| u16::from_be_bytes([s[0], s[1]]) as usize)
            .ok_or_else(|| trunc("marker"))?;
        if len < 2 {
            return Err(corrupt("bad marker length"));
        }
        let seg = b
            .get(pos + 2..pos + len)
            .ok_or_else(|| trunc("marker segment"))?;
        let seg_end = pos + len;
        match marker {
            0xC0..=0xC2 => {
                if frame_seen {
                    return Err(corrupt("multiple SOF markers"));
                }
                frame_seen = true;
                progressive = marker == 0xC2;
                if seg.len() < 6 {
                    return Err(corrupt("short SOF"));
                }
                if seg[0] != 8 {
                    return Err(ImageError::Unsupported {
                        format: F,
                        detail: format!("{}-bit samples", seg[0]),
                    });
                }
                height = u16::from_be_bytes([seg[1], seg[2]]) as usize;
                width = u16::from_be_bytes([seg[3], seg[4]]) as usize;
                let nc = seg[5] as usize;
                if seg.len() < 6 + nc * 3 || nc == 0 {
                    return Err(corrupt("short SOF"));
                }
                if !(nc == 1 || nc == 3 || nc == 4) {
                    return Err(ImageError::Unsupported {
                        format: F,
                        detail: format!("{nc} components"),
                    });
                }
                check_dims(width as u32, height as u32, limits).map_err(|e| e.with_format(F))?;
                for i in 0..nc {
                    let c = &seg[6 + i * 3..9 + i * 3];
                    let (h, v) = ((c[1] >> 4) as usize, (c[1] & 15) as usize);
                    if !(1..=4).contains(&h) || !(1..=4).contains(&v) || c[2] > 3 {
                        return Err(corrupt("bad sampling factors"));
                    }
                    comps.push(Comp {
                        id: c[0],
                        h,
                        v,
                        tq: c[2] as usize,
                        bw: 0,
                        bh: 0,
                        pbw: 0,
                        pbh: 0,
                        coefs: Vec::new(),
                        qt: None,
                        dc_pred: 0,
                        dw: 0,
                        dh: 0,
                    });
                }
                hmax = comps.iter().map(|c| c.h).max().unwrap();
                vmax = comps.iter().map(|c| c.v).max().unwrap();
                if comps
                    .iter()
                    .any(|c| !hmax.is_multiple_of(c.h) || !vmax.is_multiple_of(c.v))
                {
                    // libjpeg: "fractional sampling not implemented yet"
                    return Err(ImageError::Unsupported {
                        format: F,
                        detail: "fractional sampling factors".into(),
                    });
                }
                let mcux = width.div_ceil(8 * hmax);
                let mcuy = height.div_ceil(8 * vmax);
                let mut total = 0u64;
                for c in comps.iter_mut() {
                    c.dw = (width * c.h).div_ceil(hmax);
                    c.dh = (height * c.v).div_ceil(vmax);
                    c.bw = (width * c.h).div_ceil(8 * hmax);
                    c.bh = (height * c.v).div_ceil(8 * vmax);
                    c.pbw = mcux * c.h;
                    c.pbh = mcuy * c.v;
                    total += (c.pbw * c.pbh) as u64 * 64 * 2 + (c.pbw * c.pbh) as u64 * 64;
                }
                total += (width * height * 3) as u64;
                if total > limits.max_alloc_bytes {
                    return Err(ImageError::AllocLimit {
                        format: F,
                        limit: limits.max_alloc_bytes,
                    });
                }
                for c in comps.iter_mut() {
                    c.coefs = vec![0i16; c.pbw * c.pbh * 64];
                }
            }
            0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => {
                return Err(ImageError::Unsupported {
                    format: F,
                    detail: format!("SOF{} (lossless/hierarchical/arithmetic)", marker - 0xC0),
                });
            }
            0xC4 => {
                let mut p = 0usize;
                while p < seg.len() {
                    let tc = seg[p] >> 4;
                    let th = (seg[p] & 15) as usize;
                    if tc > 1 || th > 3 {
                        return Err(corrupt("bad DHT"));
                    }
                    let counts: [u8; 16] = seg
                        .get(p + 1..p + 17)
                        .ok_or_else(|| corrupt("short DHT"))?
                        .try_into()
                        .unwrap();
                    let n: usize = counts.iter().map(|&c| c as usize).sum();
                    if n > 256 {
                        return Err(corrupt("bad DHT"));
                    }
                    let vals = seg
                        .get(p + 17..p + 17 + n)
                        .ok_or_else(|| corrupt("short DHT"))?
                        .to_vec();
                    let h = Huffman::new(&counts, vals, tc == 0)?;
                    if tc == 0 {
                        dcs[th] = Some(h);
                    } else {
                        acs[th] = Some(h);
                    }
                    p += 17 + n;
                }
            }
            0xDB => {
                let mut p = 0usize;
                while p < seg.len() {
                    let pq = seg[p] >> 4;
                    let tq = (seg[p] & 15) as usize;
                    if tq > 3 || pq > 1 {
                        return Err(corrupt("bad DQT"));
                    }
                    let mut t = [0u16; 64];
                    for (k, &nat) in NATURAL[..64].iter().enumerate() {
                        t[nat] = if pq == 0 {
                            *seg.get(p + 1 + k).ok_or_else(|| corrupt("short DQT"))? as u16
                        } else {
                            let s = seg
                                .get(p + 1 + 2 * k..p + 3 + 2 * k)
                                .ok_or_else(|| corrupt("short DQT"))?;
                            u16::from_be_bytes([s[0], s[1]])
                        };
                    }
                    qts[tq] = Some(t);
                    p += 1 + 64 * (pq as usize + 1);
                }
            }
            0xDD => {
                if seg.len() < 2 {
                    return Err(corrupt("short DRI"));
                }
                restart_interval = u16::from_be_bytes([seg[0], seg[1]]) as usize;
            }
            0xE0 if seg.len() >= 14 && seg.starts_with(b"JFIF\0") => jfif = true,
            0xEE if seg.len() >= 12 && seg.starts_with(b"Adobe") => adobe = Some(seg[11]),
            0xDA => {
                if !frame_seen {
                    return Err(corrupt("SOS before SOF"));
                }
                let ns = *seg.first().ok_or_else(|| corrupt("short SOS"))? as usize;
                if ns == 0 || ns > 4 || seg.len() < 1 + ns * 2 + 3 {
                    return Err(corrupt("bad SOS"));
                }
                let mut sc = Vec::with_capacity(ns);
                for i in 0..ns {
                    let id = seg[1 + i * 2];
                    let t = seg[2 + i * 2];
                    let ci = comps
                        .iter()
                        .position(|c| c.id == id)
                        .ok_or_else(|| corrupt("SOS names unknown component"))?;
                    sc.push((ci, (t >> 4) as usize, (t & 15) as usize));
                }
                if sc.iter().any(|&(_, td, ta)| td > 3 || ta > 3) {
                    return Err(corrupt("bad Huffman table index"));
                }
                if ns > 1
                    && sc
                        .iter()
                        .map(|&(ci, _, _)| comps[ci].h * comps[ci].v)
                        .sum::<usize>()
                        > 10
                {
                    return Err(corrupt("too many blocks in MCU"));
                }
                let ss = seg[1 + ns * 2] as usize;
                let se = seg[2 + ns * 2] as usize;
                let ah = (seg[3 + ns * 2] >> 4) as u32;
                let al = (seg[3 + ns * 2] & 15) as u32;
                // latch quantization tables on a component's first scan (libjpeg)
                for &(ci, _, _) in &sc {
                    if comps[ci].qt.is_none() {
                        let tq = comps[ci].tq;
                        comps[ci].qt =
                            Some(qts[tq].ok_or_else(|| corrupt("missing quantization table"))?);
                    }
                }
                let params = Scan {
                    comps: sc,
                    ss,
                    se,
                    ah,
                    al,
                    progressive,
                    restart_interval,
                    hmax,
                    vmax,
                    width,
                    height,
                };
                let all_comps = params.comps.len() == comps.len();
                let end = decode_scan(b, seg_end, &mut comps, &params, &dcs, &acs)?;
                scans += 1;
                if scans == 1 && !progressive && all_comps {
                    // libjpeg's single-scan mode: the image is output right after this scan and
                    // Pillow never looks at what follows (EOI included)
                    break;
                }
                pos = end;
                continue;
            }
            _ => {}
        }
        pos = seg_end;
    }
    if scans == 0 {
        return Err(corrupt("no image data"));
    }
    // colour space as libjpeg's default_decompress_parms
    let nc = comps.len();
    let planes: Vec<Vec<u8>> = comps
        .iter()
        .map(|c| upsample(&idct_plane(c), c, hmax, vmax, width, height))
        .collect();
    let n = width * height;
    let mut out = Vec::with_capacity(n * 3);
    match nc {
        1 => out.extend(planes[0][..n].iter().flat_map(|&v| [v, v, v])),
        3 => {
            let is_rgb = if jfif {
                false
            } else if let Some(t) = adobe {
                t == 0
            } else {
                comps[0].id == b'R' && comps[1].id == b'G' && comps[2].id == b'B'
            };
            let t = YccTables::new();
            let px = planes[0][..n]
                .iter()
                .zip(&planes[1][..n])
                .zip(&planes[2][..n]);
            for ((&a, &b), &c) in px {
                out.extend_from_slice(&if is_rgb { [a, b, c] } else { t.rgb(a, b, c) });
            }
        }
        _ => {
            let ycck = matches!(adobe, Some(t) if t != 0);
            let t = YccTables::new();
            let px = planes[0][..n]
                .iter()
                .zip(&planes[1][..n])
                .zip(&planes[2][..n])
                .zip(&planes[3][..n]);
            for (((&c, &m), &y), &k) in px {
                let (mut c, mut m, mut y) = (c, m, y);
                if ycck {
                    let rgb = t.rgb(c, m, y);
                    c = 255 - rgb[0];
                    m = 255 - rgb[1];
                    y = 255 - rgb[2];
                }
                // Pillow reads JPEG CMYK as "CMYK;I" (Adobe's inverted convention)
                out.extend_from_slice(&cmyk_to_rgb(255 - c, 255 - m, 255 - y, 255 - k));
            }
        }
    }
    Ok(RgbImage {
        width: width as u32,
        height: height as u32,
        data: out,
    })
}

struct Scan {
    comps: Vec<(usize, usize, usize)>,
    ss: usize,
    se: usize,
    ah: u32,
    al: u32,
    progressive: bool,
    restart_interval: usize,
    hmax: usize,
    vmax: usize,
    width: usize,
    height: usize,
}

/// Decodes one scan starting at `start`; returns the position of the marker that ends it.
fn decode_scan(
    b: &[u8],
    start: usize,
    comps: &mut [Comp],
    s: &Scan,
    dcs: &[Option<Huffman>; 4],
    acs: &[Option<Huffman>; 4],
) -> Result<usize, ImageError> {
    let mut bits = Bits {
        data: b,
        pos: start,
        buf: 0,
        n: 0,
        marker: None,
        eof: false,
        pad: 0,
    };
    let single = s.comps.len() == 1;
    let (mcux, mcuy) = if single {
        let c = &comps[s.comps[0].0];
        (c.bw, c.bh)
    } else {
        (s.width.div_ceil(8 * s.hmax), s.height.div_ceil(8 * s.vmax))
    };
    // libjpeg ignores Ss/Se/Ah/Al of sequential scans (with a warning)
    let kind = if !s.progressive {
        0
    } else if s.al > 13 || (s.ah != 0 && s.al + 1 != s.ah) {
        return Err(corrupt("bad progression parameters"));
    } else if s.ss == 0 {
        if s.se != 0 {
            return Err(corrupt("bad progressive DC scan"));
        }
        if s.ah == 0 {
            1
        } else {
            2
        }
    } else {
        if s.comps.len() != 1 || s.se < s.ss || s.se > 63 {
            return Err(corrupt("bad progressive AC scan"));
        }
        if s.ah == 0 {
            3
        } else {
            4
        }
    };
    // tables needed
    for &(_, td, ta) in &s.comps {
        if (kind == 0 || kind == 1) && dcs[td].is_none() {
            return Err(corrupt("missing Huffman table"));
        }
        if (kind == 0 || kind == 3 || kind == 4) && acs[ta].is_none() {
            return Err(corrupt("missing Huffman table"));
        }
    }
    for &(ci, _, _) in &s.comps {
        comps[ci].dc_pred = 0;
    }
    let mut eobrun = 0u32;
    let mut insufficient = false;
    let mut restarts_left = s.restart_interval;
    let mut next_rst = 0u8;
    let total = mcux * mcuy;
    for m in 0..total {
        if s.restart_interval > 0 {
            if restarts_left == 0 {
                // process_restart
                if bits.restart(next_rst)? {
                    insufficient = false;
                }
                next_rst = (next_rst + 1) & 7;
                for &(ci, _, _) in &s.comps {
                    comps[ci].dc_pred = 0;
                }
                eobrun = 0;
                restarts_left = s.restart_interval;
            }
            restarts_left -= 1;
        }
        let (mx, my) = (m % mcux, m / mcux);
        for &(ci, td, ta) in &s.comps {
            let c = &mut comps[ci];
            let (bh, bv) = if single { (1, 1) } else { (c.h, c.v) };
            for by in 0..bv {
                for bx in 0..bh {
                    let (x, y) = if single {
                        (mx, my)
                    } else {
                        (mx * c.h + bx, my * c.v + by)
                    };
                    let off = (y * c.pbw + x) * 64;
                    if insufficient {
                        continue;
                    }
                    let blk = &mut c.coefs[off..off + 64];
                    match kind {
                        0 => {
                            let dc = dcs[td].as_ref().unwrap();
                            let ac = acs[ta].as_ref().unwrap();
                            let t = bits.decode(dc) as u32;
                            let diff = extend(bits.get(t), t);
                            c.dc_pred = c.dc_pred.wrapping_add(diff);
                            blk[0] = c.dc_pred as i16;
                            let mut k = 1usize;
                            while k < 64 {
                                let rs = bits.decode(ac);
                                let r = (rs >> 4) as usize;
                                let sz = (rs & 15) as u32;
                                if sz != 0 {
                                    k += r;
                                    let v = extend(bits.get(sz), sz);
                                    blk[NATURAL[k]] = v as i16;
                                } else {
                                    if r != 15 {
                                        break;
                                    }
                                    k += 15;
                                }
                                k += 1;
                            }
                        }
                        1 => {
                            let dc = dcs[td].as_ref().unwrap();
                            let t = bits.decode(dc) as u32;
                            let diff = extend(bits.get(t), t);
                            c.dc_pred = c.dc_pred.wrapping_add(diff);
                            blk[0] = (c.dc_pred.wrapping_shl(s.al)) as i16;
                        }
                        2 => {
                            if bits.get(1) != 0 {
                                blk[0] |= (1i32 << s.al) as i16;
                            }
                        }
                        3 => {
                            if eobrun > 0 {
                                eobrun -= 1;
                            } else {
                                let ac = acs[ta].as_ref().unwrap();
                                let mut k = s.ss;
                                while k <= s.se {
                                    let rs = bits.decode(ac);
                                    let r = (rs >> 4) as u32;
                                    let sz = (rs & 15) as u32;
                                    if sz != 0 {
                                        k += r as usize;
                                        let v = extend(bits.get(sz), sz);
                                        blk[NATURAL[k.min(79)]] = (v.wrapping_shl(s.al)) as i16;
                                    } else if r == 15 {
                                        k += 15;
                                    } else {
                                        eobrun = 1 << r;
                                        if r != 0 {
                                            eobrun += bits.get(r) as u32;
                                        }
                                        eobrun -= 1;
                                        break;
                                    }
                                    k += 1;
                                }
                            }
                        }
                        _ => {
                            let ac = acs[ta].as_ref().unwrap();
                            refine_ac(&mut bits, ac, blk, s.ss, s.se, s.al, &mut eobrun);
                        }
                    }
                }
            }
        }
        bits.check()?;
        if bits.overrun() {
            // libjpeg: the MCU in progress was finished with zero bits; later ones are skipped
            insufficient = true;
        }
    }
    bits.end_marker_pos()
}

fn refine_ac(
    bits: &mut Bits,
    ac: &Huffman,
    blk: &mut [i16],
    ss: usize,
    se: usize,
    al: u32,
    eobrun: &mut u32,
) {
    let p1 = (1i32 << al) as i16;
    let m1 = (-1i32 << al) as i16;
    let mut k = ss;
    if *eobrun == 0 {
        while k <= se {
            let rs = bits.decode(ac);
            let mut r = (rs >> 4) as i32;
            let sz = rs & 15;
            let mut sval = 0i16;
            if sz != 0 {
                sval = if bits.get(1) != 0 { p1 } else { m1 };
            } else if r != 15 {
                *eobrun = 1 << r;
                if r != 0 {
                    *eobrun += bits.get(r as u32) as u32;
                }
                break;
            }
            loop {
                let c = &mut blk[NATURAL[k.min(79)]];
                if *c != 0 {
                    if bits.get(1) != 0 && (*c & p1) == 0 {
                        *c = if *c >= 0 {
                            c.wrapping_add(p1)
                        } else {
                            c.wrapping_add(m1)
                        };
                    }
                } else {
                    r -= 1;
                    if r < 0 {
                        break;
                    }
                }
                k += 1;
                if k > se {
                    break;
                }
            }
            if sz != 0 {
                blk[NATURAL[k.min(79)]] = sval;
            }
            k += 1;
        }
    }
    if *eobrun > 0 {
        while k <= se {
            let c = &mut blk[NATURAL[k]];
            if *c != 0 && bits.get(1) != 0 && (*c & p1) == 0 {
                *c = if *c >= 0 {
                    c.wrapping_add(p1)
                } else {
                    c.wrapping_add(m1)
                };
            }
            k += 1;
        }
        *eobrun -= 1;
    }
}

const F_0_298: i32 = 2446;
const F_0_390: i32 = 3196;
const F_0_541: i32 = 4433;
const F_0_765: i32 = 6270;
const F_0_899: i32 = 7373;
const F_1_175: i32 = 9633;
const F_1_501: i32 = 12299;
const F_1_847: i32 = 15137;
const F_1_961: i32 = 16069;
const F_2_053: i32 = 16819;
const F_2_562: i32 = 20995;
const F_3_072: i32 = 25172;

/// Sum of two 16x16-bit products as a 32-bit lane (x86 `pmaddwd`).
#[inline]
fn madd(a: i16, ca: i32, b: i16, cb: i32) -> i32 {
    (a as i32)
        .wrapping_mul(ca)
        .wrapping_add((b as i32).wrapping_mul(cb))
}

#[inline]
fn sat16(v: i32) -> i16 {
    v.clamp(i16::MIN as i32, i16::MAX as i32) as i16
}

/// One 8-point pass of libjpeg-turbo's accurate integer IDCT ("islow", jidctint.c) with the
/// arithmetic of its x86-64 AVX2 implementation, which is what Pillow's wheels run: 16-bit
/// lanes for the inputs and for the sums in0 +- in4, in7 + in3, in5 + in1; 32-bit products;
/// outputs descaled by `n` bits and saturated to 16 bits. For valid JPEG data this equals the C
/// code exactly; it only matters for corrupt (overflowing) coefficients.
#[inline]
fn idct_pass(i: [i16; 8], n: u32) -> [i16; 8] {
    let tmp3 = madd(i[2], F_0_541 + F_0_765, i[6], F_0_541);
    let tmp2 = madd(i[2], F_0_541, i[6], F_0_541 - F_1_847);
    let tmp0 = (i[0].wrapping_add(i[4]) as i32) << 13;
    let tmp1 = (i[0].wrapping_sub(i[4]) as i32) << 13;
    let (t10, t13) = (tmp0.wrapping_add(tmp3), tmp0.wrapping_sub(tmp3));
    let (t11, t12) = (tmp1.wrapping_add(tmp2), tmp1.wrapping_sub(tmp2));
    let z3 = i[7].wrapping_add(i[3]);
    let z4 = i[5].wrapping_add(i[1]);
    let z3p = madd(z3, F_1_175 - F_1_961, z4, F_1_175);
    let z4p = madd(z3, F_1_175, z4, F_1_175 - F_0_390);
    let o0 = madd(i[7], F_0_298 - F_0_899, i[1], -F_0_899).wrapping_add(z3p);
    let o1 = madd(i[5], F_2_053 - F_2_562, i[3], -F_2_562).wrapping_add(z4p);
    let o3 = madd(i[7], -F_0_899, i[1], F_1_501 - F_0_899).wrapping_add(z4p);
    let o2 = madd(i[5], -F_2_562, i[3], F_3_072 - F_2_562).wrapping_add(z3p);
    let d = |x: i32| sat16(x.wrapping_add(1 << (n - 1)) >> n);
    [
        d(t10.wrapping_add(o3)),
        d(t11.wrapping_add(o2)),
        d(t12.wrapping_add(o1)),
        d(t13.wrapping_add(o0)),
        d(t13.wrapping_sub(o0)),
        d(t12.wrapping_sub(o1)),
        d(t11.wrapping_sub(o2)),
        d(t10.wrapping_sub(o3)),
    ]
}

fn idct_block(coef: &[i16], q: &[u16; 64], out: &mut [u8], stride: usize) {
    // dequantize in 16-bit lanes (`pmullw`)
    let mut dq = [0i16; 64];
    for k in 0..64 {
        dq[k] = coef[k].wrapping_mul(q[k] as i16);
    }
    let mut ws = [0i16; 64];
    if dq[8..].iter().all(|&v| v == 0) {
        // all rows 1..7 zero: the DC shortcut (16-bit shift)
        for c in 0..8 {
            let v = dq[c].wrapping_shl(2);
            for r in 0..8 {
                ws[r * 8 + c] = v;
            }
        }
    } else {
        for c in 0..8 {
            let col = std::array::from_fn(|r| dq[r * 8 + c]);
            let o = idct_pass(col, 11);
            for r in 0..8 {
                ws[r * 8 + c] = o[r];
            }
        }
    }
    for r in 0..8 {
        let row: [i16; 8] = ws[r * 8..r * 8 + 8].try_into().unwrap();
        let o = idct_pass(row, 18);
        for c in 0..8 {
            out[r * stride + c] = (o[c].clamp(-128, 127) + 128) as u8;
        }
    }
}

/// IDCT of all blocks of a component into a plane of pbw*8 x pbh*8 samples.
fn idct_plane(c: &Comp) -> Vec<u8> {
    let stride = c.pbw * 8;
    let mut plane = vec![0u8; stride * c.pbh * 8];
    let q = c.qt.unwrap_or([0; 64]);
    for by in 0..c.bh.min(c.pbh) {
        for bx in 0..c.bw.min(c.pbw) {
            let off = (by * c.pbw + bx) * 64;
            let o = by * 8 * stride + bx * 8;
            idct_block(&c.coefs[off..off + 64], &q, &mut plane[o..], stride);
        }
    }
    plane
}

/// libjpeg-turbo's upsampling of one component to the full image size (fancy triangle filters for
/// 2:1 cases, replication otherwise), edges replicated as libjpeg's context rows are.
fn upsample(
    plane: &[u8],
    c: &Comp,
    hmax: usize,
    vmax: usize,
    width: usize,
    height: usize,
) -> Vec<u8> {
    let stride = c.pbw * 8;
    let (dw, dh) = (c.dw, c.dh);
    let row = |y: usize| -> &[u8] {
        let y = y.min(dh - 1);
        &plane[y * stride..y * stride + dw]
    };
    let mut out = vec![0u8; width * height];
    let (hr, vr) = (hmax / c.h, vmax / c.v);
    let ow = dw * hr; // upsampled row width (>= width)
    let mut line = vec![0u8; ow.max(1)];
    let fancy_h2 = dw > 2;
    for y in 0..height {
        match (hr, vr) {
            (1, 1) => line[..dw].copy_from_slice(row(y)),
            (2, 1) if fancy_h2 => h2v1_fancy(row(y), &mut line),
            (1, 2) => {
                let (iy, below) = (y / 2, y % 2 == 1);
                let r0 = row(iy);
                let r1 = if below {
                    row(iy + 1)
                } else {
                    row(iy.saturating_sub(1))
                };
                let bias = if below { 2 } else { 1 };
                for x in 0..dw {
                    line[x] = ((r0[x] as u32 * 3 + r1[x] as u32 + bias) >> 2) as u8;
                }
            }
            (2, 2) if fancy_h2 => {
                let (iy, below) = (y / 2, y % 2 == 1);
                let r0 = row(iy);
                let r1 = if below {
                    row(iy + 1)
                } else {
                    row(iy.saturating_sub(1))
                };
                h2v2_fancy(r0, r1, &mut line);
            }
            _ => {
                let r = row(y / vr);
                for x in 0..ow {
                    line[x] = r[x / hr];
                }
            }
        }
        out[y * width..(y + 1) * width].copy_from_slice(&line[..width]);
    }
    out
}

fn h2v1_fancy(inp: &[u8], out: &mut [u8]) {
    let n = inp.len();
    let v = |i: usize| inp[i] as u32;
    out[0] = inp[0];
    out[1] = ((v(0) * 3 + v(1) + 2) >> 2) as u8;
    for i in 1..n - 1 {
        let t = v(i) * 3;
        out[2 * i] = ((t + v(i - 1) + 1) >> 2) as u8;
        out[2 * i + 1] = ((t + v(i + 1) + 2) >> 2) as u8;
    }
    out[2 * n - 2] = ((v(n - 1) * 3 + v(n - 2) + 1) >> 2) as u8;
    out[2 * n - 1] = inp[n - 1];
}

fn h2v2_fancy(r0: &[u8], r1: &[u8], out: &mut [u8]) {
    let n = r0.len();
    let cs = |i: usize| r0[i] as u32 * 3 + r1[i] as u32;
    out[0] = ((cs(0) * 4 + 8) >> 4) as u8;
    out[1] = ((cs(0) * 3 + cs(1) + 7) >> 4) as u8;
    for i in 1..n - 1 {
        let t = cs(i) * 3;
        out[2 * i] = ((t + cs(i - 1) + 8) >> 4) as u8;
        out[2 * i + 1] = ((t + cs(i + 1) + 7) >> 4) as u8;
    }
    out[2 * n - 2] = ((cs(n - 1) * 3 + cs(n - 2) + 8) >> 4) as u8;
    out[2 * n - 1] = ((cs(n - 1) * 4 + 7) >> 4) as u8;
}

/// libjpeg's YCbCr -> RGB tables (16-bit fixed point).
struct YccTables {
    cr_r: [i32; 256],
    cb_b: [i32; 256],
    cr_g: [i64; 256],
    cb_g: [i64; 256],
}

impl YccTables {
    fn new() -> YccTables {
        const SB: u32 = 16;
        let half = 1i64 << (SB - 1);
        let fix = |x: f64| (x * (1i64 << SB) as f64 + 0.5) as i64;
        let mut t = YccTables {
            cr_r: [0; 256],
            cb_b: [0; 256],
            cr_g: [0; 256],
            cb_g: [0; 256],
        };
        for i in 0..256usize {
            let x = i as i64 - 128;
            t.cr_r[i] = ((fix(1.40200) * x + half) >> SB) as i32;
            t.cb_b[i] = ((fix(1.77200) * x + half) >> SB) as i32;
            t.cr_g[i] = -fix(0.71414) * x;
            t.cb_g[i] = -fix(0.34414) * x + half;
        }
        t
    }

    #[inline]
    fn rgb(&self, y: u8, cb: u8, cr: u8) -> [u8; 3] {
        let y = y as i32;
        let (cb, cr) = (cb as usize, cr as usize);
        let g = ((self.cb_g[cb] + self.cr_g[cr]) >> 16) as i32;
        [
            (y + self.cr_r[cr]).clamp(0, 255) as u8,
            (y + g).clamp(0, 255) as u8,
            (y + self.cb_b[cb]).clamp(0, 255) as u8,
        ]
    }
}
