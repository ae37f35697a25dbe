//! Shared helpers for the integration tests (included with `mod common;`).
#![allow(dead_code)]

use std::path::PathBuf;

/// Directory of the committed test data.
pub fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("spm")
}

/// The golden fixtures folder: `$MONOVLM_FIXTURES`, else the first
/// `shared/fixtures` found walking up from the crate, else
/// `/work/shared/fixtures`.
pub fn fixtures_dir() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("MONOVLM_FIXTURES") {
        let p = PathBuf::from(p);
        if p.is_dir() {
            return Some(p);
        }
    }
    let mut dir = Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    while let Some(d) = dir {
        let cand = d.join("shared").join("fixtures");
        if cand.join("solo-tiny").is_dir() {
            return Some(cand);
        }
        dir = d.parent().map(|p| p.to_path_buf());
    }
    let fallback = PathBuf::from("/work/shared/fixtures");
    fallback.join("solo-tiny").is_dir().then_some(fallback)
}

/// Resolves "fixtures:<rel>" / "data:<rel>" references of reference.json.
pub fn resolve(reference: &str) -> Option<PathBuf> {
    let (kind, rel) = reference
        .split_once(':')
        .expect("reference with a kind prefix");
    match kind {
        "fixtures" => fixtures_dir().map(|d| d.join(rel)),
        "data" => Some(data_dir().join(rel)),
        "file" => Some(PathBuf::from(rel)),
        other => panic!("unknown reference kind {other}"),
    }
}

pub fn reference_json() -> serde_json::Value {
    let text = std::fs::read_to_string(data_dir().join("reference.json")).expect("reference.json");
    serde_json::from_str(&text).expect("valid reference.json")
}

pub fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .expect("id array")
        .iter()
        .map(|x| x.as_u64().expect("id") as u32)
        .collect()
}
