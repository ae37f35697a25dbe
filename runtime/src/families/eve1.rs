//! EVE v1 (BAAI `EVE-7B-v1.0` / `-HD-v1.0`, `model_type: "eve"`): Vicuna-7B fed by a small vision
//! tokenizer with cross-attention pooling.
//!
//! - Preprocessing: long side exactly `image_size`; short side `⌈S·short/long/p⌉·p·r` (S =
//!   `image_size_clip`, p = `patch_stride_clip`, r = `image_size/S`), Pillow bicubic, CLIP
//!   normalization, 14×14 patches (CHW). Upstream pastes onto a square canvas with a mask and crops
//!   back at patch granularity, so the padding never reaches the model and is skipped here.
//! - Front end: conv14 (no bias) → 2×2 average pool queried against its 4 unpooled cells → class
//!   vector queried against all of them → `[CLS, row, SPLIT, …, row, SPLIT]` → mlp2x_gelu projector.
//! - Tokens: `<s>` + vicuna_v1 (`"{system} USER: <image>\n{q} ASSISTANT:"`, answers end with
//!   `</s>`), chunks around `<image>` tokenized separately by the slow SentencePiece tokenizer (each
//!   chunk gets the dummy prefix, BOS only once); the -200 sentinel expands to every image row.
//! - Decoder: plain Llama-2 (MHA, θ 10000, RMSNorm 1e-5), untied head. Training-only tensors
//!   (`vision_clip.*`, `vision_tower_compressor.*`, `rotary_emb.inv_freq`) are ignored.

use super::{
    clip_normalization, eve_sequence, generation_eos, llama_decoder, llava_two_template,
    number_after, pil_filter, vocab_from_embed, FamilyDef, LlamaDefaults, VICUNA_SYSTEM,
};
use crate::checkpoint::{ConfigView, HfFolder, NameAliases};
use crate::error::{Error, Result};
use crate::sequence::Tokenizer;
use crate::spec::*;

pub const FAMILY: FamilyDef = FamilyDef {
    name: "eve1",
    description: "EVE v1 (Vicuna decoder, conv + cross-attention vision tokenizer)",
    matches: |c| c.get("model_type").and_then(|v| v.as_str()) == Some("eve"),
    build,
};

/// vicuna_v1's system message (LLaVA/EVE `conversation.py`).
/// Heads of the vision tokenizer's cross-attentions: a constant of the upstream module.
const VISION_HEADS: usize = 8;
/// `image_size_clip` of every released processor (CLIP ViT-L/14-336).
const DEFAULT_CLIP_SIZE: u32 = 336;

fn build(folder: &HfFolder, tok: &Tokenizer) -> Result<(ModelSpec, NameAliases)> {
    let path = folder.dir.join("config.json");
    let cfg = ConfigView::new(&path, &folder.config);
    if cfg.lookup("rope_scaling").is_some() {
        return Err(Error::Unsupported(
            "EVE v1 with rope_scaling is not supported".into(),
        ));
    }
    let projector = cfg.str_opt("mm_projector_type").unwrap_or("mlp2x_gelu");
    if projector != "mlp2x_gelu" {
        return Err(Error::Unsupported(format!(
            "EVE v1 projector `{projector}` (only mlp2x_gelu)"
        )));
    }
    let aliases = NameAliases::default();
    let names = DecoderNames::llama("model.", "lm_head");
    let vocab = vocab_from_embed(folder, &aliases, &names.embed)?;
    let defaults = LlamaDefaults {
        norm_eps: 1e-5,
        rope_theta: 10000.0,
        max_position: 4096,
    };
    let decoder = llama_decoder(&cfg, names, vocab, defaults)?;

    // The processor lives in the `mm_vision_tower` folder upstream (not on the hub); fall back to
    // the numbers in its name (`eve-patch14-anypixel-672`).
    let tower = cfg.str_opt("mm_vision_tower").unwrap_or("");
    let pp = folder.preprocessor_config.as_ref();
    let num = |k: &str| {
        pp.and_then(|p| p.get(k))
            .and_then(|v| v.as_u64())
            .map(|v| v as u32)
    };
    let image_size = num("image_size")
        .or_else(|| number_after(tower, "anypixel"))
        .ok_or_else(|| {
            Error::config(
                &path,
                "no preprocessor_config.json `image_size` and no `anypixelN` in mm_vision_tower",
            )
        })?;
    let patch = num("patch_stride")
        .or_else(|| number_after(tower, "patch"))
        .unwrap_or(14);
    let clip_size = num("image_size_clip").unwrap_or(DEFAULT_CLIP_SIZE);
    let clip_patch = num("patch_stride_clip").unwrap_or(patch);
    let conv_stride = num("conv_stride").unwrap_or(2);
    let scale = if clip_size > 0 && image_size % clip_size == 0 {
        image_size / clip_size
    } else {
        0
    };
    // The short side must stay a whole number of 2×2-pooled patches.
    if scale == 0 || patch == 0 || conv_stride != 2 || (clip_patch * scale) % (patch * 2) != 0 {
        return Err(Error::config(
            &path,
            format!(
                "unsupported EVE v1 processor: image_size {image_size}, image_size_clip {clip_size}, \
                 patch_stride {patch}, patch_stride_clip {clip_patch}, conv_stride {conv_stride}"
            ),
        ));
    }
    let (rescale, mean, std) = clip_normalization(pp);
    let preprocess = PreprocessSpec {
        resize: ResizePolicy::LongSideFixed {
            base: clip_size,
            patch: clip_patch,
            scale,
        },
        // The reference ran Pillow 10.4 (horizontal pass first).
        filter: pil_filter(
            pp.and_then(|p| p.get("resample")).and_then(|v| v.as_u64()),
            true,
            false,
        ),
        resample_exact: true,
        patch: patch as usize,
        order: PatchOrder::Chw,
        pad_value: None,
        rescale,
        mean,
        std,
    };

    let bos = tok.require("<s>")?;
    let eos = tok.require("</s>")?;
    let sequence = eve_sequence(llava_two_template(VICUNA_SYSTEM, eos, Some(bos)));
    let mut stop_ids = generation_eos(folder);
    if !stop_ids.contains(&eos) {
        stop_ids.push(eos);
    }
    let suppress = if tok.len() < vocab {
        std::iter::once(tok.len() as u32..vocab as u32).collect()
    } else {
        vec![]
    };
    let vt = "model.vision_tower.";
    let cross = |which: &str| CrossAttnNames {
        q_norm: format!("{vt}{which}.q.0"),
        q: format!("{vt}{which}.q.1"),
        kv_norm: format!("{vt}{which}.kv.0"),
        kv: format!("{vt}{which}.kv.1"),
        proj: format!("{vt}{which}.proj"),
    };
    let spec = ModelSpec {
        family: FAMILY.name,
        decoder,
        preprocess,
        frontend: FrontendSpec::PooledCrossAttn {
            patch_conv: ConvNames {
                weight: format!("{vt}patch_embedding.weight"),
                bias: None,
            },
            local: cross("local_attention"),
            global: cross("global_attention"),
            heads: VISION_HEADS,
            norm_eps: 1e-5,
            class_embedding: format!("{vt}class_embedding"),
            split_embedding: format!("{vt}split_embedding"),
            projector: MlpNames {
                norm: None,
                fc1: "model.mm_projector.0".into(),
                fc2: "model.mm_projector.2".into(),
            },
        },
        sequence,
        generation: GenerationSpec { stop_ids, suppress },
    };
    Ok((spec, aliases))
}
