use super::orientation::{exif_orientation, xmp_orientation};
use super::*;

fn img(w: u32, h: u32, seed: u32) -> RgbImage {
    let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
    let data = (0..w as usize * h as usize * 3)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s >> 24) as u8
        })
        .collect();
    RgbImage {
        width: w,
        height: h,
        data,
    }
}

#[test]
fn resize_identity_and_zero() {
    let a = img(5, 4, 1);
    for f in [
        Filter::Nearest,
        Filter::Box,
        Filter::Bilinear,
        Filter::Hamming,
        Filter::Bicubic,
        Filter::Lanczos,
    ] {
        assert_eq!(resize(&a, 5, 4, f), a);
        assert_eq!(resize(&a, 0, 3, f).data.len(), 0);
    }
}

#[test]
fn resize_constant_stays_constant() {
    let a = RgbImage {
        width: 7,
        height: 9,
        data: vec![77; 7 * 9 * 3],
    };
    for f in [
        Filter::Box,
        Filter::Bilinear,
        Filter::Hamming,
        Filter::Bicubic,
        Filter::Lanczos,
    ] {
        for (w, h) in [(3, 2), (14, 30), (1, 1), (100, 1)] {
            let r = resize(&a, w, h, f);
            assert!(r.data.iter().all(|&v| v == 77), "{f:?} {w}x{h}");
        }
    }
}

#[test]
fn resize_extreme_sizes_no_panic() {
    let a = img(1, 100_000, 3);
    let r = resize(&a, 3, 2, Filter::Lanczos);
    assert_eq!(r.data.len(), 18);
    let b = img(100_000, 1, 4);
    let r = resize(&b, 1, 5, Filter::Bicubic);
    assert_eq!(r.data.len(), 15);
    let r = resize(&img(1, 1, 5), 300, 2, Filter::Hamming);
    assert_eq!(r.data.len(), 1800);
}

#[test]
fn pass_order_rule() {
    // 12x1200 -> 10x1080 is vertical first in Pillow 13; both orders must still run.
    let a = img(12, 120, 9);
    let v = resize_with_order(&a, 10, 108, Filter::Bilinear, PassOrder::VerticalFirst);
    let p = resize(&a, 10, 108, Filter::Bilinear);
    assert_eq!(v, p);
    let h = resize_with_order(&a, 10, 108, Filter::Bilinear, PassOrder::HorizontalFirst);
    assert_eq!(h.data.len(), p.data.len());
}

#[test]
fn orientation_transforms() {
    // 3x2 image with distinct pixels; check corners after each transform.
    let a = RgbImage {
        width: 3,
        height: 2,
        data: (0..18).collect(),
    };
    let px = |im: &RgbImage, x: u32, y: u32| im.pixel(x, y)[0] / 3;
    // pixel ids: row0 = 0 1 2, row1 = 3 4 5
    let r = apply_orientation(a.clone(), 6); // rotate 90 clockwise
    assert_eq!((r.width, r.height), (2, 3));
    assert_eq!([px(&r, 0, 0), px(&r, 1, 0), px(&r, 0, 2)], [3, 0, 5]);
    let r = apply_orientation(a.clone(), 8); // rotate 90 counter-clockwise
    assert_eq!([px(&r, 0, 0), px(&r, 1, 0), px(&r, 0, 2)], [2, 5, 0]);
    let r = apply_orientation(a.clone(), 3);
    assert_eq!(px(&r, 0, 0), 5);
    let r = apply_orientation(a.clone(), 5);
    assert_eq!([px(&r, 1, 0), px(&r, 0, 2)], [3, 2]);
    let r = apply_orientation(a, 7);
    assert_eq!(px(&r, 0, 0), 5);
}

#[test]
fn exif_parsing() {
    let mut e = b"Exif\0\0II*\0\x08\0\0\0\x01\0\x12\x01\x03\0\x01\0\0\0\x06\0\0\0\0\0\0\0".to_vec();
    assert_eq!(exif_orientation(&e), Some(6));
    e[6] = b'X';
    assert_eq!(exif_orientation(&e), None);
    assert_eq!(
        exif_orientation(b"Exif\0\0MM\0*\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01\0\x03\0\0"),
        Some(3)
    );
    assert_eq!(xmp_orientation(b"<x tiff:Orientation=\"8\"/>"), Some(8));
    assert_eq!(
        xmp_orientation(b"<tiff:Orientation>3</tiff:Orientation>"),
        Some(3)
    );
    assert_eq!(xmp_orientation(b"tiff:Orientation"), None);
}

#[test]
fn decode_errors() {
    let l = DecodeLimits::default();
    assert!(matches!(
        decode_rgb(b"", &l),
        Err(ImageError::UnknownFormat)
    ));
    assert!(matches!(
        decode_rgb(b"hello world", &l),
        Err(ImageError::UnknownFormat)
    ));
    assert!(decode_rgb(b"\x89PNG\r\n\x1a\n", &l).is_err());
    assert!(decode_rgb(b"GIF89a\x01\0\x01\0", &l).is_err());
    assert!(decode_rgb(&[0xFF, 0xD8, 0xFF, 0xE0], &l).is_err());
}

#[test]
fn chw() {
    let a = RgbImage {
        width: 2,
        height: 1,
        data: vec![1, 2, 3, 4, 5, 6],
    };
    assert_eq!(to_chw_f32(&a), vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
}
