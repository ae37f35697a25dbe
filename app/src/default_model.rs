//! Which model to use when `--model` is not given: `$MONOVLM_MODEL`, else the self-trained default
//! model shipped in the repository's `assets/` (found next to the executable's source tree at build
//! time, or next to the executable for installed copies).

use anyhow::{bail, Result};
use std::path::{Path, PathBuf};

/// File name of the default model in `assets/`.
pub const DEFAULT_MODEL_FILE: &str = "monovlm-tiny-q8_0.gguf";

/// Candidate locations of the default model, in order.
pub fn candidates() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(p) = std::env::var("MONOVLM_MODEL") {
        if !p.is_empty() {
            out.push(PathBuf::from(p));
        }
    }
    out.push(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("assets")
            .join(DEFAULT_MODEL_FILE),
    );
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            out.push(dir.join(DEFAULT_MODEL_FILE));
            out.push(dir.join("assets").join(DEFAULT_MODEL_FILE));
        }
    }
    out
}

/// `explicit` if given, else the first existing default candidate.
pub fn resolve(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    let cands = candidates();
    if let Some(found) = cands.iter().find(|p| p.exists()) {
        return Ok(found.clone());
    }
    let tried: Vec<String> = cands.iter().map(|p| p.display().to_string()).collect();
    bail!(
        "no --model given and the default model was not found (tried {}); pass --model or set MONOVLM_MODEL",
        tried.join(", ")
    )
}
