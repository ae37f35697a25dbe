//! SOLO-7B (Chen et al. 2024): Mistral-7B with one Linear patch embedding, no vision encoder.
//!
//! - Preprocessing: long side rounded up to a multiple of 32 and capped at 1024, short side
//!   `ceil(int(long'·short/long)/32)·32` (upstream's `int()` kept), Pillow bilinear, ImageNet
//!   normalization, patches flattened (c, py, px).
//! - Tokens: `<vision>`, rows of `<vpatch>` separated by `<vrow_sep>` (between rows only), closed by
//!   `<vision>` again (the SFT/demo quirk), then `<s>[INST] … [/INST]`. Image rows are *added* to the
//!   `<vpatch>` embeddings.
//! - Decoder: plain Mistral (GQA, RoPE, SwiGLU, RMSNorm, sliding window with `i - j <= W`).
//! - Generation masks every SOLO-added token (`<vision>` … end of vocabulary) as the upstream demo.

use super::{architectures, generation_eos, rope_theta, vocab_from_embed, FamilyDef};
use crate::checkpoint::{ConfigView, HfFolder, NameAliases};
use crate::error::{Error, Result};
use crate::sequence::Tokenizer;
use crate::spec::*;

pub const FAMILY: FamilyDef = FamilyDef {
    name: "solo",
    description: "SOLO-7B (Mistral decoder, linear patch embedding, additive merge)",
    matches: |c| {
        c.get("vision_patch_size").is_some()
            || architectures(c).iter().any(|a| a == "SoloForCausalLM")
    },
    build,
};

/// SOLO's `MAX_RESOLUTION` (not in any config file).
const MAX_RESOLUTION: u32 = 1024;
const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

fn build(folder: &HfFolder, tok: &Tokenizer) -> Result<(ModelSpec, NameAliases)> {
    let path = folder.dir.join("config.json");
    let cfg = ConfigView::new(&path, &folder.config);
    let hidden = cfg.usize("hidden_size")?;
    let heads = cfg.usize("num_attention_heads")?;
    let kv_heads = cfg.usize_opt("num_key_value_heads")?.unwrap_or(heads);
    if heads == 0 || kv_heads == 0 || heads % kv_heads != 0 {
        return Err(Error::config(
            &path,
            "num_attention_heads must be a multiple of num_key_value_heads",
        ));
    }
    let head_dim = match cfg.usize_opt("head_dim")? {
        Some(h) => h,
        None if hidden % heads == 0 => hidden / heads,
        None => {
            return Err(Error::config(
                &path,
                "hidden_size must be a multiple of num_attention_heads",
            ))
        }
    };
    let aliases = NameAliases::default();
    let names = DecoderNames::llama("model.", "lm_head");
    let vocab = vocab_from_embed(folder, &aliases, &names.embed)?;
    let decoder = DecoderSpec {
        hidden,
        layers: cfg.usize("num_hidden_layers")?,
        heads,
        kv_heads,
        head_dim,
        intermediate: cfg.usize("intermediate_size")?,
        vocab,
        norm: NormKind::Rms,
        norm_eps: cfg.f64_opt("rms_norm_eps")?.unwrap_or(1e-6),
        qkv: QkvLayout::Separate,
        qkv_bias: false,
        o_bias: false,
        mlp_bias: false,
        qk_norm: false,
        mlp: MlpKind::SwiGlu,
        rope_theta: rope_theta(&cfg, 10000.0)?,
        rotary_dim: head_dim,
        sliding_window: cfg.usize_opt("sliding_window")?,
        max_position: cfg.usize_opt("max_position_embeddings")?.unwrap_or(32768),
        tie_embeddings: cfg.bool_or("tie_word_embeddings", false)?,
        names,
    };
    let patch = cfg.usize_opt("vision_patch_size")?.unwrap_or(32);
    let preprocess = PreprocessSpec {
        resize: ResizePolicy::LongSideRoundUp {
            multiple: patch as u32,
            cap: MAX_RESOLUTION,
        },
        filter: ResampleFilter::Bilinear,
        resample_exact: true,
        patch,
        order: PatchOrder::Chw,
        pad_value: None,
        rescale: 1.0 / 255.0,
        mean: IMAGENET_MEAN,
        std: IMAGENET_STD,
    };
    let vision = tok.require("<vision>")?;
    let eos = tok.require("</s>")?;
    let sequence = SequenceSpec {
        layout: ImageLayout {
            start: Some(vision),
            patch: tok.require("<vpatch>")?,
            row_sep: Some(tok.require("<vrow_sep>")?),
            row_sep_after_last: false,
            end: Some(vision),
        },
        merge: Merge::Add,
        template: TemplateSpec {
            chat_with_image: vec![
                Part::Images,
                Part::Text("<s>[INST] {prompt} [/INST]".into()),
            ],
            chat_text_only: vec![Part::Text("<s>[INST] {prompt} [/INST]".into())],
            chat_follow_up: vec![Part::Images, Part::Text("[INST] {prompt} [/INST]".into())],
            assistant_end: vec![Part::Token(eos)],
            raw: vec![Part::Images, Part::Text("{prompt}".into())],
            strip_prompt: true,
        },
        max_images: 8,
    };
    let mut stop_ids = generation_eos(folder);
    if !stop_ids.contains(&eos) {
        stop_ids.push(eos);
    }
    // The demo's `suppress_tokens = range(32000, len(tokenizer))`: every SOLO-added token.
    let added_tokens = vision..tok.len().max(vision as usize) as u32;
    let suppress = std::iter::once(added_tokens).collect();
    let spec = ModelSpec {
        family: FAMILY.name,
        decoder,
        preprocess,
        frontend: FrontendSpec::LinearPatch {
            weight: "model.embed_vision_patch.weight".into(),
            bias: None,
        },
        sequence,
        generation: GenerationSpec { stop_ids, suppress },
    };
    Ok((spec, aliases))
}
