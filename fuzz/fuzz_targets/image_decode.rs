//! Image decoding (every format Pillow-compatible decoding accepts) and then every fixture
//! family's preprocessing of the decoded image.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use runtime::image::{pilimage, preprocess, DecodeLimits};
use runtime::spec::PreprocessSpec;
use std::sync::OnceLock;

static SPECS: OnceLock<Vec<PreprocessSpec>> = OnceLock::new();

/// The decoder's limit checks are the same code at any size; a 1-megapixel cap (instead of the
/// default 100) keeps one execution fast enough for the fuzzer to explore: a 469-byte JPEG of
/// 19x63755 pixels took 6 s through six families' resizes under AddressSanitizer, and over the
/// 60 s limit on a busy machine, which libFuzzer reports as a hang. (That input did lead to a
/// real bug, the unbounded intermediate of a two-pass resize; the fix is tested in
/// tests/malformed at full size.)
const FUZZ_LIMITS: DecodeLimits = DecodeLimits {
    max_pixels: 1_000_000,
    max_alloc_bytes: 256 << 20,
};

fuzz_target!(|data: &[u8]| {
    let specs = SPECS.get_or_init(|| {
        common::load_fixture_models()
            .into_iter()
            .map(|m| m.spec.preprocess)
            .collect()
    });
    // The default limits must refuse (not crash on) whatever the fuzz limits refuse.
    let _ = pilimage::detect_format(data);
    let Ok(img) = pilimage::decode_rgb(data, &FUZZ_LIMITS) else {
        return;
    };
    for spec in specs {
        let _ = preprocess(spec, &img);
    }
});
