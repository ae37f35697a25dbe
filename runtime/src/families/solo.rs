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

use super::{
    architectures, generation_eos, llama_decoder, vocab_from_embed, FamilyDef, LlamaDefaults,
    IMAGENET_MEAN, IMAGENET_STD,
};
use crate::checkpoint::{ConfigView, HfFolder, NameAliases};
use crate::error::Result;
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

fn build(folder: &HfFolder, tok: &Tokenizer) -> Result<(ModelSpec, NameAliases)> {
    let path = folder.dir.join("config.json");
    let cfg = ConfigView::new(&path, &folder.config);
    let aliases = NameAliases::default();
    let names = DecoderNames::llama("model.", "lm_head");
    let vocab = vocab_from_embed(folder, &aliases, &names.embed)?;
    let defaults = LlamaDefaults {
        norm_eps: 1e-6,
        rope_theta: 10000.0,
        max_position: 32768,
    };
    let decoder = DecoderSpec {
        sliding_window: cfg.usize_opt("sliding_window")?,
        ..llama_decoder(&cfg, names, vocab, defaults)?
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
