//! Byte-for-byte comparison against reference outputs recorded from real Pillow by
//! `gen_testdata.py` (Pillow 13.0.0), plus the SOLO golden fixture when it is present.

use runtime::image::pilimage::*;
use std::path::{Path, PathBuf};

fn td() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pillow")
}

/// Polynomial hash mod 2^64: sum_i (b_i + 1) * P^(i+1) (same as gen_testdata.py).
fn phash(data: &[u8]) -> u64 {
    const P: u64 = 0x100000001B3;
    let mut pw = 1u64;
    let mut h = 0u64;
    for &b in data {
        pw = pw.wrapping_mul(P);
        h = h.wrapping_add((b as u64 + 1).wrapping_mul(pw));
    }
    h
}

fn splitmix(idx: u64, seed: u64) -> u8 {
    let mut z = idx.wrapping_mul(0x9E3779B97F4A7C15).wrapping_add(seed);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
    z ^= z >> 31;
    (z >> 56) as u8
}

fn pattern(name: &str, w: u32, h: u32) -> RgbImage {
    let (wi, hi) = (w as i64, h as i64);
    let mut data = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..hi {
        for x in 0..wi {
            for c in 0..3i64 {
                let v = match name {
                    "noise" => splitmix(((y * wi + x) * 3 + c) as u64, 12345) as i64,
                    "grad" => match c {
                        0 => (x * 255) / (wi - 1).max(1),
                        1 => (y * 255) / (hi - 1).max(1),
                        _ => ((x + y) * 255) / (wi + hi - 2).max(1),
                    },
                    "edges" => match c {
                        0 => ((x / 5 + y / 3) % 2) * 255,
                        1 => {
                            if (x * 7 + y * 3) % 11 > 5 {
                                250
                            } else {
                                3
                            }
                        }
                        _ => {
                            if x * hi > y * wi {
                                230
                            } else {
                                20
                            }
                        }
                    },
                    _ => panic!("unknown pattern {name}"),
                };
                data.push(v as u8);
            }
        }
    }
    RgbImage::from_raw(w, h, data).unwrap()
}

fn filter(name: &str) -> Filter {
    match name {
        "nearest" => Filter::Nearest,
        "box" => Filter::Box,
        "bilinear" => Filter::Bilinear,
        "hamming" => Filter::Hamming,
        "bicubic" => Filter::Bicubic,
        "lanczos" => Filter::Lanczos,
        _ => panic!("unknown filter {name}"),
    }
}

fn max_diff(a: &[u8], b: &[u8]) -> i32 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (x as i32 - y as i32).abs())
        .max()
        .unwrap_or(0)
}

#[test]
fn resize_matches_pillow() {
    let cases = std::fs::read_to_string(td().join("resize_cases.txt")).unwrap();
    let raw = std::fs::read(td().join("resize_raw.bin")).unwrap();
    let mut cache: Option<(String, u32, u32, RgbImage)> = None;
    let (mut n, mut bad) = (0, Vec::new());
    for line in cases
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (pat, w, h) = (f[0], f[1].parse().unwrap(), f[2].parse().unwrap());
        let (ow, oh): (u32, u32) = (f[4].parse().unwrap(), f[5].parse().unwrap());
        let want = u64::from_str_radix(f[6], 16).unwrap();
        let (off, len): (usize, usize) = (f[7].parse().unwrap(), f[8].parse().unwrap());
        if cache
            .as_ref()
            .map(|c| (c.0.as_str(), c.1, c.2) != (pat, w, h))
            .unwrap_or(true)
        {
            cache = Some((pat.to_string(), w, h, pattern(pat, w, h)));
        }
        let src = &cache.as_ref().unwrap().3;
        let out = resize(src, ow, oh, filter(f[3]));
        assert_eq!(out.data.len(), (ow * oh * 3) as usize);
        n += 1;
        if phash(&out.data) != want {
            let d = if len > 0 {
                format!("max diff {}", max_diff(&out.data, &raw[off..off + len]))
            } else {
                String::new()
            };
            bad.push(format!("{line}: {d}"));
        }
    }
    assert!(
        bad.is_empty(),
        "{} of {n} resize cases differ from Pillow:\n{}",
        bad.len(),
        bad.join("\n")
    );
    assert!(n > 400);
}

#[test]
fn decode_matches_pillow() {
    let cases = std::fs::read_to_string(td().join("decode_cases.txt")).unwrap();
    let raw = std::fs::read(td().join("decode_raw.bin")).unwrap();
    let limits = DecodeLimits::default();
    let (mut n, mut bad) = (0, Vec::new());
    for line in cases
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (w, h): (u32, u32) = (f[2].parse().unwrap(), f[3].parse().unwrap());
        let want = u64::from_str_radix(f[4], 16).unwrap();
        let (off, len): (usize, usize) = (f[5].parse().unwrap(), f[6].parse().unwrap());
        n += 1;
        match open_rgb(td().join("decode").join(f[0]), &limits) {
            Err(e) => bad.push(format!("{} ({}): error {e}", f[0], f[1])),
            Ok(img) => {
                if (img.width, img.height) != (w, h) {
                    bad.push(format!(
                        "{} ({}): size {}x{} want {w}x{h}",
                        f[0], f[1], img.width, img.height
                    ));
                } else if phash(&img.data) != want {
                    let d = if len > 0 {
                        let r = &raw[off..off + len];
                        let cnt = img.data.iter().zip(r).filter(|(a, b)| a != b).count();
                        format!(
                            "max diff {}, {cnt} of {len} bytes differ",
                            max_diff(&img.data, r)
                        )
                    } else {
                        String::new()
                    };
                    bad.push(format!("{} ({}): {d}", f[0], f[1]));
                }
            }
        }
    }
    assert!(
        bad.is_empty(),
        "{} of {n} decode cases differ from Pillow:\n{}",
        bad.len(),
        bad.join("\n")
    );
    assert!(n > 90);
    // files Pillow refuses must be refused too
    let refused = std::fs::read_to_string(td().join("bad_cases.txt")).unwrap();
    for f in refused.lines().filter(|l| !l.is_empty()) {
        assert!(
            open_rgb(td().join("decode").join(f), &limits).is_err(),
            "{f} should fail"
        );
    }
}
