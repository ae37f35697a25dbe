//! llama.cpp's tensor names for the concepts it shares with our checkpoints: `token_embd.weight`,
//! `blk.N.attn_q.weight`, `output_norm.weight`, `v.patch_embd.weight`, … GGUF files written by
//! `monovlm quantize` use them (so GGUF tools show familiar names) and record which checkpoint
//! tensor each one was in two parallel string arrays; the loader renames them back, so the family
//! code reads a GGUF exactly as it reads safetensors. Tensors with no llama.cpp concept (modality
//! experts, HoVLE's holistic layers, EVE's cross-attention front end) keep the checkpoint's name.

use crate::error::{Error, Result};
use crate::spec::{DecoderNames, DecoderSpec, FrontendSpec, ModelSpec};

/// GGUF names of the renamed tensors, in the file.
pub const GGUF_NAMES_KEY: &str = "monovlm.tensor_names.gguf";
/// The checkpoint name of each entry of [`GGUF_NAMES_KEY`], at the same index.
pub const CHECKPOINT_NAMES_KEY: &str = "monovlm.tensor_names.checkpoint";

/// The per-layer modules of a decoder, by llama.cpp's short name.
pub fn layer_modules(n: &DecoderNames) -> [(&'static str, &str); 12] {
    [
        ("attn_norm", &n.attn_norm),
        ("attn_q", &n.q),
        ("attn_k", &n.k),
        ("attn_v", &n.v),
        ("attn_qkv", &n.qkv),
        ("attn_output", &n.o),
        ("attn_q_norm", &n.q_norm),
        ("attn_k_norm", &n.k_norm),
        ("ffn_norm", &n.mlp_norm),
        ("ffn_gate", &n.gate),
        ("ffn_up", &n.up),
        ("ffn_down", &n.down),
    ]
}

/// `(checkpoint name, llama.cpp name)` for every weight and bias the decoder `d` may have.
/// Names are canonical (before the family's aliases); the caller keeps those the checkpoint holds.
pub fn decoder_names(d: &DecoderSpec) -> Vec<(String, String)> {
    let n = &d.names;
    let mut out = vec![(n.embed.clone(), "token_embd.weight".to_string())];
    let both = |out: &mut Vec<(String, String)>, module: &str, gguf: &str| {
        for suffix in ["weight", "bias"] {
            out.push((format!("{module}.{suffix}"), format!("{gguf}.{suffix}")));
        }
    };
    for i in 0..d.layers {
        let prefix = n.layer_prefix(i);
        for (short, module) in layer_modules(n) {
            if !module.is_empty() {
                both(
                    &mut out,
                    &format!("{prefix}{module}"),
                    &format!("blk.{i}.{short}"),
                );
            }
        }
    }
    if !n.final_norm.is_empty() {
        both(&mut out, &n.final_norm, "output_norm");
    }
    if !n.lm_head.is_empty() {
        both(&mut out, &n.lm_head, "output");
    }
    out
}

/// `(checkpoint name, llama.cpp name)` for a whole model: the decoder, and the image front end's
/// patch embedding, position table and class vector (clip.cpp's `v.` names).
pub fn model_names(spec: &ModelSpec) -> Vec<(String, String)> {
    let mut out = decoder_names(&spec.decoder);
    let mut frontend = &spec.frontend;
    if let FrontendSpec::Holistic { image, .. } = frontend {
        frontend = image;
    }
    let mut push = |name: &str, gguf: &str| out.push((name.to_string(), gguf.to_string()));
    fn patch(weight: &str, bias: Option<&String>, push: &mut dyn FnMut(&str, &str)) {
        push(weight, "v.patch_embd.weight");
        if let Some(b) = bias {
            push(b, "v.patch_embd.bias");
        }
    }
    match frontend {
        FrontendSpec::LinearPatch { weight, bias } => patch(weight, bias.as_ref(), &mut push),
        FrontendSpec::DenseConv {
            patch_conv: conv,
            class_embedding,
            ..
        }
        | FrontendSpec::PooledCrossAttn {
            patch_conv: conv,
            class_embedding,
            ..
        } => {
            patch(&conv.weight, conv.bias.as_ref(), &mut push);
            push(class_embedding, "v.class_embd");
        }
        FrontendSpec::PixelShuffle {
            patch_conv: conv,
            position_embedding,
            ..
        } => {
            patch(&conv.weight, conv.bias.as_ref(), &mut push);
            push(position_embedding, "v.position_embd.weight");
        }
        FrontendSpec::Holistic { .. } => {}
    }
    out
}

/// The rename recorded in a GGUF (`gguf name → checkpoint name`), checked: equal lengths, no name
/// used twice on either side. Only renamed tensors are listed.
pub fn read_renames(gguf: &[String], checkpoint: &[String]) -> Result<Vec<(String, String)>> {
    if gguf.len() != checkpoint.len() {
        return Err(Error::InvalidArgument(format!(
            "{GGUF_NAMES_KEY} has {} names but {CHECKPOINT_NAMES_KEY} has {}",
            gguf.len(),
            checkpoint.len()
        )));
    }
    for side in [gguf, checkpoint] {
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = side.iter().find(|n| !seen.insert(n.as_str())) {
            return Err(Error::InvalidArgument(format!(
                "tensor name `{dup}` appears twice in the rename table"
            )));
        }
    }
    Ok(gguf
        .iter()
        .cloned()
        .zip(checkpoint.iter().cloned())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rename_tables_must_pair_up_and_be_unique() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let ok = read_renames(
            &s(&["token_embd.weight"]),
            &s(&["model.embed_tokens.weight"]),
        );
        assert_eq!(ok.unwrap().len(), 1);
        let e = read_renames(&s(&["a", "b"]), &s(&["c"])).unwrap_err();
        assert!(e.to_string().contains("2 names"), "{e}");
        let e = read_renames(&s(&["a", "a"]), &s(&["c", "d"])).unwrap_err();
        assert!(e.to_string().contains("`a` appears twice"), "{e}");
        let e = read_renames(&s(&["a", "b"]), &s(&["c", "c"])).unwrap_err();
        assert!(e.to_string().contains("`c` appears twice"), "{e}");
    }
}
