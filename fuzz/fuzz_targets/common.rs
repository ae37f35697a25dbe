//! Shared by the targets: a private scratch directory per process and the fixture models.
#![allow(dead_code)]

use std::path::PathBuf;

/// A scratch directory unique to this fuzzing process (libFuzzer may run several with -jobs).
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("monovlm-fuzz-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The tiny fixture models: `$MONOVLM_FIXTURES`, else `../shared/fixtures` beside the repository
/// (the layout of a checkout with shared/ next to it), else `/work/shared/fixtures`.
pub fn fixture_models() -> Vec<PathBuf> {
    let root = std::env::var_os("MONOVLM_FIXTURES")
        .map(PathBuf::from)
        .or_else(|| {
            let here = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures");
            here.is_dir().then_some(here)
        })
        .unwrap_or_else(|| PathBuf::from("/work/shared/fixtures"));
    let mut out: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("fixtures at {}: {e} (set MONOVLM_FIXTURES)", root.display()))
        .filter_map(|e| e.ok().map(|e| e.path().join("model")))
        .filter(|p| p.join("config.json").is_file())
        .collect();
    out.sort();
    assert!(
        !out.is_empty(),
        "no fixture models under {}",
        root.display()
    );
    out
}

/// Every fixture model, loaded (once per process by the targets that keep them).
pub fn load_fixture_models() -> Vec<runtime::Model> {
    fixture_models()
        .iter()
        .map(|p| {
            runtime::Model::load(p, &runtime::LoadOptions::default())
                .unwrap_or_else(|e| panic!("fixture {}: {e}", p.display()))
        })
        .collect()
}
