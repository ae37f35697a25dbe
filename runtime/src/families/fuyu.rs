//! Fuyu-8B (Adept): a Persimmon decoder fed raw 30×30 patches.
//!
//! - Preprocessing: resize only when larger than 1920×1080 (bilinear, sizes truncated), pad
//!   bottom/right with raw value 1.0 *before* rescale, normalize 0.5/0.5, crop to a multiple of 30;
//!   patches flattened (py, px, c).
//! - Tokens: per patch row `|SPEAKER|`×cols + `|NEWLINE|` (after every row), then `<s>`, the prompt
//!   and the `<0x04>` answer marker. Image rows *replace* the `|SPEAKER|` embeddings.
//! - Decoder deltas vs Llama: LayerNorm with bias, fused per-head QKV, per-head q/k LayerNorm,
//!   50 % partial rotary (θ 25000), relu² MLP, biases everywhere but lm_head.
//! - The reference for the golden tests is transformers 5.23 (`FuyuProcessor`, torchvision resize);
//!   hub checkpoints use the legacy `language_model.model.*` names, transformers ≥ 5 `model.language_model.*`.

use super::{generation_eos, rope_theta, vocab_from_embed, FamilyDef};
use crate::checkpoint::{ConfigView, HfFolder, NameAliases};
use crate::error::{Error, Result};
use crate::sequence::Tokenizer;
use crate::spec::*;
use serde_json::Value;

pub const FAMILY: FamilyDef = FamilyDef {
    name: "fuyu",
    description: "Fuyu-8B (Persimmon decoder, linear patch embedding)",
    matches: |c| c.get("model_type").and_then(|v| v.as_str()) == Some("fuyu"),
    build,
};

fn aliases() -> NameAliases {
    NameAliases::new(&[
        ("language_model.model.", "model.language_model."),
        ("language_model.lm_head.", "lm_head."),
        ("vision_embed_tokens.", "model.vision_embed_tokens."),
    ])
}

/// `image_mean`/`image_std` are scalars in Fuyu's processor config, triplets elsewhere.
fn triplet(v: Option<&Value>, default: f32) -> [f32; 3] {
    match v {
        Some(Value::Number(n)) => [n.as_f64().unwrap_or(default as f64) as f32; 3],
        Some(Value::Array(a)) if a.len() == 3 => {
            let f = |i: usize| a[i].as_f64().unwrap_or(default as f64) as f32;
            [f(0), f(1), f(2)]
        }
        _ => [default; 3],
    }
}

fn hw(v: Option<&Value>, default: (u32, u32)) -> (u32, u32) {
    let get = |k| {
        v.and_then(|s| s.get(k))
            .and_then(|x: &Value| x.as_u64())
            .map(|x| x as u32)
    };
    (
        get("height").unwrap_or(default.0),
        get("width").unwrap_or(default.1),
    )
}

fn build(folder: &HfFolder, tok: &Tokenizer) -> Result<(ModelSpec, NameAliases)> {
    let path = folder.dir.join("config.json");
    let cfg = ConfigView::new(&path, &folder.config);
    let act = cfg.str_opt("hidden_act").unwrap_or("relu2");
    if act != "relu2" {
        return Err(Error::config(
            &path,
            format!("Fuyu expects hidden_act relu2, got `{act}`"),
        ));
    }
    let hidden = cfg.usize("hidden_size")?;
    let heads = cfg.usize("num_attention_heads")?;
    if heads == 0 || hidden % heads != 0 {
        return Err(Error::config(
            &path,
            "hidden_size must be a multiple of num_attention_heads",
        ));
    }
    let head_dim = hidden / heads;
    let partial = cfg.f64_opt("partial_rotary_factor")?.unwrap_or(0.5);
    let rotary_dim = ((head_dim as f64 * partial) as usize) & !1;
    let aliases = aliases();
    let names = DecoderNames {
        embed: "language_model.model.embed_tokens.weight".into(),
        layer: "language_model.model.layers.{i}.".into(),
        attn_norm: "input_layernorm".into(),
        q: String::new(),
        k: String::new(),
        v: String::new(),
        qkv: "self_attn.query_key_value".into(),
        o: "self_attn.dense".into(),
        q_norm: "self_attn.q_layernorm".into(),
        k_norm: "self_attn.k_layernorm".into(),
        mlp_norm: "post_attention_layernorm".into(),
        gate: String::new(),
        up: "mlp.dense_h_to_4h".into(),
        down: "mlp.dense_4h_to_h".into(),
        final_norm: "language_model.model.final_layernorm".into(),
        lm_head: "language_model.lm_head".into(),
        experts: None,
    };
    let vocab = vocab_from_embed(folder, &aliases, &names.embed)?;
    let decoder = DecoderSpec {
        hidden,
        layers: cfg.usize("num_hidden_layers")?,
        heads,
        kv_heads: heads,
        head_dim,
        intermediate: cfg.usize("intermediate_size")?,
        vocab,
        norm: NormKind::LayerNorm,
        norm_eps: cfg.f64_opt("layer_norm_eps")?.unwrap_or(1e-5),
        qkv: QkvLayout::FusedPerHead,
        qkv_bias: true,
        o_bias: true,
        mlp_bias: true,
        qk_norm: cfg.bool_or("qk_layernorm", true)?,
        mlp: MlpKind::Relu2,
        rope_theta: rope_theta(&cfg, 25000.0)?,
        rotary_dim,
        sliding_window: None,
        max_position: cfg.usize_opt("max_position_embeddings")?.unwrap_or(16384),
        tie_embeddings: cfg.bool_or("tie_word_embeddings", false)?,
        names,
    };

    let pp = folder.preprocessor_config.as_ref();
    let (max_h, max_w) = hw(pp.and_then(|p| p.get("size")), (1080, 1920));
    let (ph, pw) = hw(pp.and_then(|p| p.get("patch_size")), (30, 30));
    let cfg_patch = cfg.usize_opt("patch_size")?.unwrap_or(30) as u32;
    if ph != pw || ph != cfg_patch {
        return Err(Error::config(
            &path,
            format!("inconsistent patch sizes: config {cfg_patch}, processor {ph}x{pw}"),
        ));
    }
    let filter = match pp.and_then(|p| p.get("resample")).and_then(|v| v.as_u64()) {
        Some(3) => ResampleFilter::Bicubic,
        _ => ResampleFilter::Bilinear,
    };
    let num = |k: &str, d: f64| {
        pp.and_then(|p| p.get(k))
            .and_then(|v| v.as_f64())
            .unwrap_or(d)
    };
    let preprocess = PreprocessSpec {
        resize: ResizePolicy::FitWithin { max_w, max_h },
        filter,
        // The reference resizes with torchvision's uint8 antialias kernel, which can differ from
        // Pillow's by one or two LSB.
        resample_exact: false,
        patch: ph as usize,
        order: PatchOrder::Hwc,
        pad_value: Some(num("padding_value", 1.0) as f32),
        rescale: num("rescale_factor", 1.0 / 255.0) as f32,
        mean: triplet(pp.and_then(|p| p.get("image_mean")), 0.5),
        std: triplet(pp.and_then(|p| p.get("image_std")), 0.5),
    };

    // Placeholder from the tokenizer; `image_token_id` in newer configs must agree.
    let speaker = tok.require("|SPEAKER|")?;
    if let Some(id) = cfg.usize_opt("image_token_id")? {
        if id as u32 != speaker {
            return Err(Error::config(
                &path,
                format!("image_token_id {id} is not the tokenizer's |SPEAKER| ({speaker})"),
            ));
        }
    }
    let newline = tok.require("|NEWLINE|")?;
    let bos = tok.require("<s>")?;
    let end_of_text = tok.require("|ENDOFTEXT|")?;
    let sequence = SequenceSpec {
        layout: ImageLayout {
            start: None,
            patch: speaker,
            row_sep: Some(newline),
            row_sep_after_last: true,
            end: None,
        },
        merge: Merge::Replace,
        template: TemplateSpec {
            chat_with_image: vec![
                Part::Images,
                Part::Token(bos),
                Part::Text("{prompt}<0x04>".into()),
            ],
            // FuyuProcessor without an image is plain tokenization with the tokenizer's BOS.
            chat_text_only: vec![Part::TextWithSpecials("{prompt}".into())],
            chat_follow_up: vec![Part::Images, Part::Text("{prompt}<0x04>".into())],
            assistant_end: vec![],
            raw: vec![Part::Images, Part::Text("{prompt}".into())],
            strip_prompt: false,
        },
        max_images: 1,
    };
    let mut stop_ids = generation_eos(folder);
    if !stop_ids.contains(&end_of_text) {
        stop_ids.push(end_of_text);
    }
    let spec = ModelSpec {
        family: FAMILY.name,
        decoder,
        preprocess,
        frontend: FrontendSpec::LinearPatch {
            weight: "vision_embed_tokens.weight".into(),
            bias: Some("vision_embed_tokens.bias".into()),
        },
        sequence,
        generation: GenerationSpec {
            stop_ids,
            suppress: vec![],
        },
    };
    Ok((spec, aliases))
}
