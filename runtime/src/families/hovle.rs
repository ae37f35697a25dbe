//! HoVLE (OpenGVLab `HoVLE`, `InternVLChatModel` with an `embedding_config`): a holistic embedding
//! module (own text table, image path and InternLM2 layers) in front of InternLM2-chat.
//!
//! - Preprocessing: InternVL dynamic tiling — the `cols × rows` grid (1..=max_dynamic_patch tiles)
//!   closest to the aspect ratio (CPython's candidate order and tie rule), Pillow bicubic resize to
//!   `S·cols × S·rows`, row-major tiles, then a bicubic `S × S` thumbnail when there is more than
//!   one tile; ImageNet normalization, 14×14 patches (CHW).
//! - Front end, per tile: conv14 (bias) + position table (class row unused) → 2×2 pixel shuffle →
//!   Linear → GELU → Linear: `(S/28)²` rows per tile.
//! - Tokens: `<s>` + internlm2-chat (`<|im_start|>system\n{system}<|im_end|><|im_start|>user\n
//!   <image>\n{q}<|im_end|><|im_start|>assistant\n`) with `<image>` → `<img>` + `<IMG_CONTEXT>` per
//!   image row + `</img>`; image rows replace the `<IMG_CONTEXT>` embeddings. Stop on `<|im_end|>`.
//! - Deltas vs Llama: text rows come from the embedding module's own table, and every position
//!   first passes its InternLM2 layers (own heads/θ, no final norm, own KV cache); InternLM2 names
//!   with the grouped fused `wqkv`. The LLM's `tok_embeddings` are unused.

use super::internvl::{
    internlm2_chat, internlm2_names, internlm2_spec, require_half_downsample, rows_of, sub,
    tiling_preprocess,
};
use super::FamilyDef;
use crate::checkpoint::{ConfigView, HfFolder, NameAliases};
use crate::error::{Error, Result};
use crate::sequence::Tokenizer;
use crate::spec::*;

pub const FAMILY: FamilyDef = FamilyDef {
    name: "hovle",
    description: "HoVLE (holistic embedding layers + InternLM2 decoder, InternVL tiling)",
    matches: |c| {
        c.get("model_type").and_then(|v| v.as_str()) == Some("internvl_chat")
            && c.get("embedding_config").is_some_and(|e| e.is_object())
    },
    build,
};

fn build(folder: &HfFolder, tok: &Tokenizer) -> Result<(ModelSpec, NameAliases)> {
    let path = folder.dir.join("config.json");
    let top = ConfigView::new(&path, &folder.config);
    let emb = ConfigView::new(&path, sub(&path, &folder.config, "embedding_config")?);
    let llm = ConfigView::new(&path, sub(&path, &folder.config, "llm_config")?);

    // Variants this runtime does not implement are refused rather than run wrong.
    let loc = emb.str_opt("pixel_shuffle_loc").unwrap_or("pre");
    if loc != "pre" {
        return Err(Error::Unsupported(format!(
            "HoVLE pixel_shuffle_loc `{loc}` (only \"pre\")"
        )));
    }
    if !emb.bool_or("use_pixel_shuffle_proj", true)? || emb.bool_or("use_ls", false)? {
        return Err(Error::Unsupported(
            "HoVLE without use_pixel_shuffle_proj or with use_ls".into(),
        ));
    }
    if top.bool_or("normalize_encoder_output", false)? {
        return Err(Error::Unsupported(
            "HoVLE with normalize_encoder_output".into(),
        ));
    }
    if emb
        .lookup("special_token_maps")
        .is_some_and(|m| m.as_object().is_some_and(|o| !o.is_empty()))
    {
        return Err(Error::Unsupported(
            "HoVLE with special_token_maps (a second embedding table)".into(),
        ));
    }
    require_half_downsample(&top, &emb)?;

    let text_table = "embedding_model.llm_text_embeddings.weight";
    let head = "language_model.output";
    let vocab = rows_of(folder, &format!("{head}.weight"))?;
    let llm_vocab = emb.usize_opt("llm_vocab_size")?.unwrap_or(vocab);
    if llm_vocab != vocab {
        return Err(Error::config(
            &path,
            format!("llm_vocab_size {llm_vocab} differs from the output head's {vocab} rows"),
        ));
    }
    // Class defaults: InternLM2Config 1e-6, HolisticEmbeddingConfig 1e-5.
    let decoder = internlm2_spec(
        &llm,
        vocab,
        1e-6,
        internlm2_names(
            text_table,
            "language_model.model.layers.{i}.",
            "language_model.model.norm",
            head,
        ),
    )?;
    let pre = internlm2_spec(
        &emb,
        vocab,
        1e-5,
        internlm2_names(text_table, "embedding_model.encoder.{i}.", "", ""),
    )?;

    let patch = emb.usize_opt("patch_size")?.unwrap_or(14);
    let tile = top
        .usize_opt("force_image_size")?
        .or(emb.usize_opt("image_size")?)
        .unwrap_or(448);
    // The goldens follow Pillow 13's pass order (tall thumbnails resize vertically first).
    let preprocess = tiling_preprocess(folder, &top, tile, patch, true)?;
    let (sequence, stop_ids) =
        internlm2_chat(folder, &top, tok, emb.usize_opt("img_context_token_id")?)?;
    let ve = "embedding_model.vision_embeddings.";
    let spec = ModelSpec {
        family: FAMILY.name,
        decoder,
        preprocess,
        frontend: FrontendSpec::Holistic {
            image: Box::new(FrontendSpec::PixelShuffle {
                patch_conv: ConvNames {
                    weight: format!("{ve}patch_embedding.weight"),
                    bias: Some(format!("{ve}patch_embedding.bias")),
                },
                position_embedding: format!("{ve}position_embedding"),
                mlp: MlpNames {
                    norm: None,
                    fc1: "embedding_model.pixel_shuffle_proj.0".into(),
                    fc2: "embedding_model.pixel_shuffle_proj.2".into(),
                },
                mlp_norm_eps: 1e-5,
            }),
            layers: Box::new(pre),
        },
        sequence,
        generation: GenerationSpec {
            stop_ids,
            suppress: vec![],
        },
    };
    Ok((spec, NameAliases::default()))
}
