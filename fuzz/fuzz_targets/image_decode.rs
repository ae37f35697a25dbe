//! Image decoding (every format Pillow-compatible decoding accepts) and then every fixture
//! family's preprocessing of the decoded image.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use runtime::image::{pilimage, preprocess, DecodeLimits};
use runtime::spec::PreprocessSpec;
use std::sync::OnceLock;

static SPECS: OnceLock<Vec<PreprocessSpec>> = OnceLock::new();

/// The decoder's limit checks are the same code at any size; a 4-megapixel cap (instead of the
/// default 100) keeps one execution fast enough for the fuzzer to explore (a 100-megapixel image
/// takes seconds to decode and resize, which libFuzzer would see as a hang, not a bug).
const FUZZ_LIMITS: DecodeLimits = DecodeLimits {
    max_pixels: 4_000_000,
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
