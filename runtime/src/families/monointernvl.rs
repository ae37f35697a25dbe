//! Mono-InternVL (OpenGVLab `Mono-InternVL-2B`, `InternVLChatModel` with an
//! `InternLM2VEForCausalLM`): InternLM2 whose FFN has a visual expert, fed by a patch embedding.
//!
//! - Preprocessing: InternVL dynamic tiling (as HoVLE: CPython candidate order, tie rule,
//!   bicubic, row-major tiles, thumbnail last when more than one tile), ImageNet normalization,
//!   14×14 patches (CHW).
//! - Front end (`InternVisionPatchModel`, no transformer layers), per tile: conv14 (bias) + position
//!   table (its class row goes with the dropped class token) → 2×2 pixel shuffle → `mlp1`
//!   (LayerNorm → Linear → GELU → Linear): `(S/28)²` rows per tile.
//! - Tokens: `<s>` + internlm2-chat with `<image>` → `<img>` + `<IMG_CONTEXT>` per image row +
//!   `</img>`; image rows replace the `<IMG_CONTEXT>` embeddings. Stop on `<|im_end|>`.
//! - Deltas vs Llama: InternLM2 names with the grouped fused `wqkv`, and a second FFN
//!   (`feed_forward_ve`) used at image rows during prefill; norms and attention are shared, and
//!   generated tokens (text) use the text FFN.

use super::internvl::{
    internlm2_chat, internlm2_names, internlm2_spec, llm_arch_is, require_half_downsample, rows_of,
    sub, tiling_preprocess,
};
use super::FamilyDef;
use crate::checkpoint::{ConfigView, HfFolder, NameAliases};
use crate::error::{Error, Result};
use crate::sequence::Tokenizer;
use crate::spec::*;

pub const FAMILY: FamilyDef = FamilyDef {
    name: "mono-internvl",
    description: "Mono-InternVL (InternLM2 with visual FFN experts, InternVL tiling)",
    matches: |c| {
        c.get("model_type").and_then(|v| v.as_str()) == Some("internvl_chat")
            && llm_arch_is(c, "InternLM2VEForCausalLM")
    },
    build,
};

fn build(folder: &HfFolder, tok: &Tokenizer) -> Result<(ModelSpec, NameAliases)> {
    let path = folder.dir.join("config.json");
    let top = ConfigView::new(&path, &folder.config);
    let vis = ConfigView::new(&path, sub(&path, &folder.config, "vision_config")?);
    let llm = ConfigView::new(&path, sub(&path, &folder.config, "llm_config")?);
    let ps = top.str_opt("ps_version").unwrap_or("v2");
    if ps != "v2" {
        return Err(Error::Unsupported(format!(
            "pixel shuffle ps_version `{ps}` (only v2)"
        )));
    }
    if vis.usize_opt("num_hidden_layers")?.is_some_and(|n| n > 0)
        && !super::architectures(vis.value)
            .iter()
            .any(|a| a == "InternVisionPatchModel")
    {
        return Err(Error::Unsupported(
            "a vision model with transformer layers (only InternVisionPatchModel)".into(),
        ));
    }
    require_half_downsample(&top, &vis)?;

    let head = "language_model.output";
    let vocab = rows_of(folder, &format!("{head}.weight"))?;
    let mut names = internlm2_names(
        "language_model.model.tok_embeddings.weight",
        "language_model.model.layers.{i}.",
        "language_model.model.norm",
        head,
    );
    names.experts = Some(ExpertNames {
        mlp: Some(["w1", "w3", "w2"].map(|w| format!("feed_forward_ve.{w}"))),
        ..Default::default()
    });
    let decoder = internlm2_spec(&llm, vocab, 1e-6, names)?;

    let patch = vis.usize_opt("patch_size")?.unwrap_or(14);
    let tile = top
        .usize_opt("force_image_size")?
        .or(vis.usize_opt("image_size")?)
        .unwrap_or(448);
    // Same reference environment as the HoVLE goldens (Pillow 13 pass order).
    let preprocess = tiling_preprocess(folder, &top, tile, patch, true)?;
    let (sequence, stop_ids) =
        internlm2_chat(folder, &top, tok, top.usize_opt("img_context_token_id")?)?;
    let ve = "vision_model.embeddings.";
    let spec = ModelSpec {
        family: FAMILY.name,
        decoder,
        preprocess,
        frontend: FrontendSpec::PixelShuffle {
            patch_conv: ConvNames {
                weight: format!("{ve}patch_embedding.weight"),
                bias: Some(format!("{ve}patch_embedding.bias")),
            },
            position_embedding: format!("{ve}position_embedding"),
            mlp: MlpNames {
                norm: Some("mlp1.0".into()),
                fc1: "mlp1.1".into(),
                fc2: "mlp1.3".into(),
            },
            mlp_norm_eps: 1e-5,
        },
        sequence,
        generation: GenerationSpec {
            stop_ids,
            suppress: vec![],
        },
    };
    Ok((spec, NameAliases::default()))
}
