//! `quality::compare` on the golden fixtures: zero against itself, small but non-zero against its
//! own q8_0 conversion, and larger for a coarser type.

use quantize::quality::{compare, Case};
use quantize::{quantize, Options, QuantType};
use runtime::{LoadOptions, Model};
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    std::env::var("MONOVLM_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures"))
}

fn cases(dir: &std::path::Path) -> Vec<Case> {
    let bytes = std::fs::read(dir.join("images/wide.png")).unwrap();
    let img = runtime::image::pilimage::decode_rgb(&bytes, &Default::default()).unwrap();
    vec![
        Case {
            name: "wide".into(),
            image: Some(img),
            prompt: "What is in the image?".into(),
        },
        Case {
            name: "text".into(),
            image: None,
            prompt: "Hello there".into(),
        },
    ]
}

#[test]
fn quantized_models_are_measured_against_the_reference() {
    let dir = fixtures().join("fuyu-tiny");
    let reference = Model::load(&dir.join("model"), &LoadOptions::default()).unwrap();
    let cases = cases(&dir);
    let same = compare(&reference, &reference, &cases, 6).unwrap();
    assert_eq!(same.positions, 14);
    assert_eq!(same.mean_kl, 0.0);
    assert_eq!(same.top1_agree, 1.0);
    assert_eq!(same.max_abs_dlogit, 0.0);

    let tmp = tempfile::tempdir().unwrap();
    let mut kls = Vec::new();
    for t in [QuantType::Q8_0, QuantType::Q4_0] {
        let out = tmp.path().join(format!("{}.gguf", t.name()));
        quantize(
            &dir.join("model"),
            &out,
            &Options {
                target: t,
                progress: false,
            },
        )
        .unwrap();
        let cand = Model::load(&out, &LoadOptions::default()).unwrap();
        let q = compare(&reference, &cand, &cases, 6).unwrap();
        assert!(
            q.mean_kl > 0.0 && q.max_abs_dlogit > 0.0,
            "{}: {q:?}",
            t.name()
        );
        assert!(q.mean_kl.is_finite() && q.max_kl >= q.mean_kl);
        kls.push(q.mean_kl);
    }
    assert!(
        kls[0] < kls[1],
        "q8_0 KL {} should be below q4_0 KL {}",
        kls[0],
        kls[1]
    );
}
