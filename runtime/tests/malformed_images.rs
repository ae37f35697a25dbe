//! Malformed input: truncations and flipped bytes must give errors (or images), never panics, and
//! decompression bombs must be refused from the header. Where Pillow decodes a damaged file, we compare
//! with its output (tests/pillow/robust_cases.txt, written by gen_testdata.py).

use runtime::image::pilimage::*;
use std::path::{Path, PathBuf};

fn td() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pillow")
}

fn phash(data: &[u8]) -> u64 {
    const P: u64 = 0x100000001B3;
    let (mut pw, mut h) = (1u64, 0u64);
    for &b in data {
        pw = pw.wrapping_mul(P);
        h = h.wrapping_add((b as u64 + 1).wrapping_mul(pw));
    }
    h
}

type Variants = Vec<(String, Vec<u8>)>;

/// Same corruptions as gen_testdata.py `robust_variants`.
fn variants(data: &[u8]) -> Variants {
    let n = data.len();
    let mut v = Vec::new();
    for f in [5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 98] {
        v.push((format!("cut{f}"), data[..n * f / 100].to_vec()));
    }
    for k in [1, 2] {
        v.push((format!("cutend{k}"), data[..n - k].to_vec()));
    }
    for k in 1..16 {
        let mut b = data.to_vec();
        b[n * k / 16] ^= 0x55;
        v.push((format!("flip{k}"), b));
    }
    v
}

fn no_panic(r: &Result<RgbImage, ImageError>, what: &str) {
    if let Err(e) = r {
        assert!(!e.to_string().contains("panicked"), "{what}: {e}");
    }
}

#[test]
fn damaged_files_vs_pillow() {
    let cases = std::fs::read_to_string(td().join("robust_cases.txt")).unwrap();
    let limits = DecodeLimits::default();
    let mut cache: Option<(String, Variants)> = None;
    let (mut agree, mut total) = (0, 0);
    let mut disagree = Vec::new();
    for line in cases
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let f: Vec<&str> = line.split_whitespace().collect();
        if cache.as_ref().map(|c| c.0 != f[0]).unwrap_or(true) {
            let data = std::fs::read(td().join("decode").join(f[0])).unwrap();
            cache = Some((f[0].to_string(), variants(&data)));
        }
        let (_, bytes) = cache
            .as_ref()
            .unwrap()
            .1
            .iter()
            .find(|(t, _)| t == f[1])
            .unwrap();
        let r = decode_rgb(bytes, &limits);
        no_panic(&r, line);
        total += 1;
        let ok = match (&r, f[2]) {
            (Err(_), "ERR") => true,
            (Ok(img), w) if w != "ERR" => {
                let (w, h): (u32, u32) = (w.parse().unwrap(), f[3].parse().unwrap());
                (img.width, img.height) == (w, h)
                    && phash(&img.data) == u64::from_str_radix(f[4], 16).unwrap()
            }
            _ => false,
        };
        if ok {
            agree += 1;
        } else {
            let ours = match &r {
                Ok(i) => format!("ok {}x{}", i.width, i.height),
                Err(e) => format!("error: {e}"),
            };
            disagree.push(format!(
                "{} {}: pillow {} / ours {}",
                f[0],
                f[1],
                f[2..].join(" "),
                ours
            ));
        }
    }
    eprintln!("{agree} of {total} damaged files give Pillow's outcome");
    for d in &disagree {
        eprintln!("  {d}");
    }
    // Known difference: an RLE8 BMP missing its end-of-bitmap code decodes in Pillow (its RLE reader
    // stops once every pixel is filled); the `image` crate refuses it.
    let known = ["bmp_rle8.bmp cutend1", "bmp_rle8.bmp cutend2"];
    let unexpected: Vec<_> = disagree
        .iter()
        .filter(|d| !known.iter().any(|k| d.starts_with(k)))
        .collect();
    assert!(
        unexpected.is_empty(),
        "damaged files handled unlike Pillow: {unexpected:#?}"
    );
    assert!(total > 400);
}

#[test]
fn every_cut_point_and_flip_no_panic() {
    let limits = DecodeLimits::default();
    let mut n = 0;
    for entry in std::fs::read_dir(td().join("decode")).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        if data.len() > 20_000 {
            continue;
        }
        let step = (data.len() / 150).max(1);
        for cut in (0..data.len()).step_by(step) {
            no_panic(&decode_rgb(&data[..cut], &limits), "cut");
            n += 1;
        }
        for p in (0..data.len()).step_by(step) {
            for x in [0x01u8, 0x80, 0xFF] {
                let mut b = data.clone();
                b[p] ^= x;
                no_panic(&decode_rgb(&b, &limits), "flip");
                n += 1;
            }
        }
    }
    assert!(n > 10_000);
}

#[test]
fn decompression_bombs_refused_from_header() {
    let l = DecodeLimits::default();
    let r = decode_rgb(&monovlm_e2e::png_with_size(100_000, 100_000, 2), &l);
    assert!(
        matches!(
            r,
            Err(ImageError::TooLarge {
                width: 100_000,
                height: 100_000,
                ..
            })
        ),
        "{r:?}"
    );
    assert!(r.unwrap_err().to_string().contains("100000x100000"));
    // JPEG SOF claiming 65535x65535
    let mut j = vec![
        0xFF, 0xD8, 0xFF, 0xC0, 0, 11, 8, 0xFF, 0xFF, 0xFF, 0xFF, 1, 1, 0x11, 0,
    ];
    j.extend_from_slice(&[0xFF, 0xD9]);
    assert!(matches!(
        decode_rgb(&j, &l),
        Err(ImageError::TooLarge { .. })
    ));
    // GIF logical screen 65535x65535
    let mut g = b"GIF89a\xff\xff\xff\xff\x00\x00\x00".to_vec();
    g.extend_from_slice(&[0x2C, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 8, 0x00, 0x3B]);
    assert!(matches!(
        decode_rgb(&g, &l),
        Err(ImageError::TooLarge { .. })
    ));
    // BMP 60000x60000 24-bit
    let mut b = b"BM".to_vec();
    b.extend_from_slice(&[0; 12]);
    b.extend_from_slice(&40u32.to_le_bytes());
    b.extend_from_slice(&60000i32.to_le_bytes());
    b.extend_from_slice(&60000i32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&24u16.to_le_bytes());
    b.extend_from_slice(&[0; 24]);
    let r = decode_rgb(&b, &l);
    assert!(matches!(r, Err(ImageError::TooLarge { .. })), "{r:?}");
    // a small limit applies too
    let tight = DecodeLimits {
        max_pixels: 100,
        max_alloc_bytes: 1 << 30,
    };
    let img = std::fs::read(td().join("decode/png_rgb.png")).unwrap();
    assert!(matches!(
        decode_rgb(&img, &tight),
        Err(ImageError::TooLarge { .. })
    ));
    let tight = DecodeLimits {
        max_pixels: 1 << 30,
        max_alloc_bytes: 1000,
    };
    assert!(matches!(
        decode_rgb(&img, &tight),
        Err(ImageError::AllocLimit { .. })
    ));
    // zero-sized
    assert!(matches!(
        decode_rgb(&monovlm_e2e::png_with_size(0, 5, 2), &l),
        Err(ImageError::ZeroSize { .. }) | Err(ImageError::Corrupt { .. })
    ));
}
