//! Family registry: config files → [`ModelSpec`] + tensor-name aliases. One file per family.

mod fuyu;
mod solo;

use crate::checkpoint::{HfFolder, NameAliases};
use crate::error::{Error, Result};
use crate::sequence::Tokenizer;
use crate::spec::ModelSpec;

/// A family as data: how to recognise its config and how to turn it into a spec.
pub struct FamilyDef {
    pub name: &'static str,
    pub description: &'static str,
    pub matches: fn(&serde_json::Value) -> bool,
    pub build: fn(&HfFolder, &Tokenizer) -> Result<(ModelSpec, NameAliases)>,
}

/// Every supported family; README and `--help` tables come from here.
pub const FAMILIES: &[FamilyDef] = &[fuyu::FAMILY, solo::FAMILY];

pub fn detect(folder: &HfFolder) -> Result<&'static FamilyDef> {
    FAMILIES
        .iter()
        .find(|f| (f.matches)(&folder.config))
        .ok_or_else(|| {
            let mt = folder
                .config
                .get("model_type")
                .and_then(|v| v.as_str())
                .unwrap_or("<none>");
            let arch = folder
                .config
                .get("architectures")
                .map(|v| v.to_string())
                .unwrap_or_default();
            Error::UnknownFamily(format!(
                "model_type `{mt}` {arch} in {} (supported: {})",
                folder.dir.join("config.json").display(),
                FAMILIES
                    .iter()
                    .map(|f| f.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
}

/// Reads `rope_theta` at the top level, in `text_config`, or in transformers 5's `rope_parameters`.
pub(crate) fn rope_theta(cfg: &crate::checkpoint::ConfigView, default: f64) -> Result<f64> {
    if let Some(t) = cfg.f64_opt("rope_theta")? {
        return Ok(t);
    }
    let nested = cfg
        .lookup("rope_parameters")
        .and_then(|p| p.get("rope_theta"))
        .and_then(|v| v.as_f64());
    Ok(nested.unwrap_or(default))
}

pub(crate) fn architectures(cfg: &serde_json::Value) -> Vec<String> {
    cfg.get("architectures")
        .and_then(|a| a.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Stop ids from `generation_config.json`'s `eos_token_id` (int or list).
pub(crate) fn generation_eos(folder: &HfFolder) -> Vec<u32> {
    let v = folder
        .generation_config
        .as_ref()
        .and_then(|g| g.get("eos_token_id"))
        .or_else(|| folder.config.get("eos_token_id"));
    match v {
        Some(serde_json::Value::Number(n)) => {
            n.as_u64().map(|x| vec![x as u32]).unwrap_or_default()
        }
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_u64().map(|x| x as u32))
            .collect(),
        _ => vec![],
    }
}

/// Vocabulary size from the embedding table (hub configs are sometimes padded or stale).
pub(crate) fn vocab_from_embed(
    folder: &HfFolder,
    aliases: &NameAliases,
    name: &str,
) -> Result<usize> {
    use crate::checkpoint::TensorSource;
    for c in aliases.candidates(name) {
        if let Some(s) = folder.tensors.shape(&c) {
            if s.len() == 2 {
                return Ok(s[0]);
            }
        }
    }
    Err(Error::MissingTensor {
        name: name.to_string(),
        tried: aliases.candidates(name).join(", "),
    })
}
