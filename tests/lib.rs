//! End-to-end tests across crates live in `tests/*.rs`; this library holds their shared helpers.

use std::path::PathBuf;

/// The golden fixtures: `$MONOVLM_FIXTURES`, else `shared/fixtures` beside the repository.
pub fn fixtures_root() -> PathBuf {
    if let Ok(p) = std::env::var("MONOVLM_FIXTURES") {
        return PathBuf::from(p);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures")
}

/// One fixture folder; panics with a clear message when the fixtures are not checked out.
pub fn fixture(name: &str) -> PathBuf {
    let p = fixtures_root().join(name);
    assert!(
        p.join("cases.json").exists(),
        "fixture {} not found: set MONOVLM_FIXTURES or check out shared/ beside the repository",
        p.display()
    );
    p
}

/// Copies a fixture's model folder into a fresh temporary directory (for corruption tests).
pub fn copy_model(name: &str) -> tempfile::TempDir {
    let src = fixture(name).join("model");
    let dst = tempfile::tempdir().expect("tempdir");
    for entry in std::fs::read_dir(&src).expect("read fixture model") {
        let entry = entry.expect("dir entry");
        std::fs::copy(entry.path(), dst.path().join(entry.file_name())).expect("copy");
    }
    dst
}
