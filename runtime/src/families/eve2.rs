//! EVE v2 (BAAI `EVE-7B-HD-v2.0`, `model_type: "eve-qwen2"`): Qwen2.5 with modality experts, fed
//! by a two-conv vision tokenizer.
//!
//! - Preprocessing: area target `r = √(W·H)/max_size`, each side `max(⌈side/r/32⌉·32, 32)` in
//!   float64 (scales up or down), Pillow bicubic, CLIP normalization, 16×16 patches (CHW).
//! - Front end: conv16 (bias) → erf-GELU → conv 2×2 (bias) → `[CLS, row, SPLIT, …, row, SPLIT]`
//!   with learned class and split vectors; no projector.
//! - Tokens: LLaVA "TWO" template (`qwen2` conv: `"{system} USER: <image>\n{q} ASSISTANT:"`, answers
//!   end with `<|im_end|>`), each chunk around `<image>` tokenized on its own, no BOS. The `<image>`
//!   sentinel (-200) expands to every image row; image rows carry id 0 (upstream writes 0 there).
//! - Decoder deltas vs Llama: QKV bias, θ 1e6, and in every layer a `moe_*` copy of both norms,
//!   q/k/v/o and the MLP (per `moe_part`) used at image rows; attention itself is shared, and
//!   generated tokens (text) use the text weights.
//! - The embedding/head tables are padded past the tokenizer; upstream truncates them to
//!   `len(tokenizer)`, so those ids are suppressed here.

use super::{
    clip_normalization, eve_sequence, generation_eos, llama_decoder, llava_two_template,
    number_after, pil_filter, vocab_from_embed, FamilyDef, LlamaDefaults, VICUNA_SYSTEM,
};
use crate::checkpoint::{ConfigView, HfFolder, NameAliases};
use crate::error::{Error, Result};
use crate::sequence::Tokenizer;
use crate::spec::*;

pub const FAMILY: FamilyDef = FamilyDef {
    name: "eve2",
    description: "EVE v2 (Qwen2.5 decoder with modality experts, conv-GELU-conv front end)",
    matches: |c| c.get("model_type").and_then(|v| v.as_str()) == Some("eve-qwen2"),
    build,
};

/// The expert copies named by `moe_part` (`layernorm`, `self_attn`, `mlp`, joined by `-`).
fn experts(cfg: &ConfigView) -> Result<Option<ExpertNames>> {
    if !cfg.bool_or("add_moe", false)? {
        return Ok(None);
    }
    let part = cfg.str_opt("moe_part").unwrap_or("layernorm-self_attn-mlp");
    let mut e = ExpertNames::default();
    for p in part.split('-') {
        match p {
            "layernorm" => {
                e.attn_norm = Some("moe_input_layernorm".into());
                e.mlp_norm = Some("moe_post_attention_layernorm".into());
            }
            "self_attn" => {
                e.attn = Some(["q", "k", "v", "o"].map(|x| format!("self_attn.moe_{x}_proj")));
            }
            "mlp" => {
                e.mlp = Some(["gate", "up", "down"].map(|x| format!("moe_mlp.{x}_proj")));
            }
            other => {
                return Err(Error::config(
                    cfg.path,
                    format!("unknown moe_part `{other}` (layernorm, self_attn, mlp)"),
                ))
            }
        }
    }
    Ok(Some(e))
}

fn build(folder: &HfFolder, tok: &Tokenizer) -> Result<(ModelSpec, NameAliases)> {
    let path = folder.dir.join("config.json");
    let cfg = ConfigView::new(&path, &folder.config);
    if cfg.bool_or("use_sliding_window", false)? {
        return Err(Error::Unsupported(
            "EVE v2 with use_sliding_window is not supported".into(),
        ));
    }
    let aliases = NameAliases::default();
    let mut names = DecoderNames::llama("model.", "lm_head");
    names.experts = experts(&cfg)?;
    let vocab = vocab_from_embed(folder, &aliases, &names.embed)?;
    let defaults = LlamaDefaults {
        norm_eps: 1e-6,
        rope_theta: 1e6,
        max_position: 32768,
    };
    // Qwen2: biases on q, k and v only.
    let decoder = DecoderSpec {
        qkv_bias: true,
        ..llama_decoder(&cfg, names, vocab, defaults)?
    };

    // The processor lives in the `mm_vision_tower` folder upstream; hub repos do not ship it, so
    // fall back to the numbers in its name (`eve-anyratio-res1600-patch16`).
    let tower = cfg.str_opt("mm_vision_tower").unwrap_or("");
    let pp = folder.preprocessor_config.as_ref();
    let num = |k: &str| pp.and_then(|p| p.get(k)).and_then(|v| v.as_u64());
    let max_size = num("max_size")
        .map(|v| v as u32)
        .or_else(|| number_after(tower, "res"))
        .ok_or_else(|| {
            Error::config(
                &path,
                "no preprocessor_config.json `max_size` and no `resN` in mm_vision_tower",
            )
        })?;
    let patch = num("patch_stride")
        .map(|v| v as u32)
        .or_else(|| number_after(tower, "patch"))
        .unwrap_or(16);
    let dense = num("dense_stride").unwrap_or(2) as u32;
    if patch == 0 || dense != 2 || max_size == 0 {
        return Err(Error::config(
            &path,
            format!("unsupported EVE v2 processor: max_size {max_size}, patch_stride {patch}, dense_stride {dense} (needs 2)"),
        ));
    }
    let (rescale, mean, std) = clip_normalization(pp);
    let preprocess = PreprocessSpec {
        resize: ResizePolicy::AreaTarget {
            max_size,
            multiple: patch * dense,
        },
        // The reference ran Pillow 10.4 (horizontal pass first).
        filter: pil_filter(num("resample"), true, false),
        resample_exact: true,
        patch: patch as usize,
        order: PatchOrder::Chw,
        pad_value: None,
        rescale,
        mean,
        std,
    };

    let im_end = tok.require("<|im_end|>")?;
    let sequence = eve_sequence(
        // EVEv2's `qwen2` conversation keeps the vicuna system message.
        llava_two_template(VICUNA_SYSTEM, im_end, None),
    );
    let mut stop_ids = generation_eos(folder);
    if !stop_ids.contains(&im_end) {
        stop_ids.push(im_end);
    }
    // `resize_token_embeddings(len(tokenizer))` drops the padded rows upstream.
    let suppress = if tok.len() < vocab {
        std::iter::once(tok.len() as u32..vocab as u32).collect()
    } else {
        vec![]
    };
    let tower = "model.vision_tower.";
    let spec = ModelSpec {
        family: FAMILY.name,
        decoder,
        preprocess,
        frontend: FrontendSpec::DenseConv {
            patch_conv: ConvNames {
                weight: format!("{tower}patch_embedding.0.weight"),
                bias: Some(format!("{tower}patch_embedding.0.bias")),
            },
            dense_conv: ConvNames {
                weight: format!("{tower}patch_embedding.2.weight"),
                bias: Some(format!("{tower}patch_embedding.2.bias")),
            },
            class_embedding: format!("{tower}class_embedding"),
            split_embedding: format!("{tower}split_embedding"),
        },
        sequence,
        generation: GenerationSpec { stop_ids, suppress },
    };
    Ok((spec, aliases))
}
