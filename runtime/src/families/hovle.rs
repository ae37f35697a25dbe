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

use super::{generation_eos, pil_filter, triplet, FamilyDef, IMAGENET_MEAN, IMAGENET_STD};
use crate::checkpoint::{ConfigView, HfFolder, NameAliases, TensorSource};
use crate::error::{Error, Result};
use crate::sequence::Tokenizer;
use crate::spec::*;
use serde_json::Value;
use std::path::Path;

pub const FAMILY: FamilyDef = FamilyDef {
    name: "hovle",
    description: "HoVLE (holistic embedding layers + InternLM2 decoder, InternVL tiling)",
    matches: |c| {
        c.get("model_type").and_then(|v| v.as_str()) == Some("internvl_chat")
            && c.get("embedding_config").is_some_and(|e| e.is_object())
    },
    build,
};

/// The default system message of InternVL's `internlm2-chat` conversation template.
const INTERNLM2_CHAT_SYSTEM: &str = "你是由上海人工智能实验室联合商汤科技开发的书生多模态大模型，英文名叫InternVL, 是一个有用无害的人工智能助手。";

/// InternLM2 tensor names under `layer` (`…layers.{i}.`), with `embed`, `final_norm`, `lm_head`.
fn internlm2_names(embed: &str, layer: &str, final_norm: &str, lm_head: &str) -> DecoderNames {
    DecoderNames {
        embed: embed.into(),
        layer: layer.into(),
        attn_norm: "attention_norm".into(),
        q: String::new(),
        k: String::new(),
        v: String::new(),
        qkv: "attention.wqkv".into(),
        o: "attention.wo".into(),
        q_norm: String::new(),
        k_norm: String::new(),
        mlp_norm: "ffn_norm".into(),
        gate: "feed_forward.w1".into(),
        up: "feed_forward.w3".into(),
        down: "feed_forward.w2".into(),
        final_norm: final_norm.into(),
        lm_head: lm_head.into(),
        experts: None,
    }
}

/// An InternLM2 stack from one of the nested configs.
fn internlm2_spec(
    cfg: &ConfigView,
    vocab: usize,
    default_theta: f64,
    names: DecoderNames,
) -> Result<DecoderSpec> {
    let hidden = cfg.usize("hidden_size")?;
    let heads = cfg.usize("num_attention_heads")?;
    let kv_heads = cfg.usize_opt("num_key_value_heads")?.unwrap_or(heads);
    if heads == 0 || hidden % heads != 0 || kv_heads == 0 || heads % kv_heads != 0 {
        return Err(Error::config(
            cfg.path,
            "hidden_size, num_attention_heads and num_key_value_heads do not divide",
        ));
    }
    let act = cfg.str_opt("hidden_act").unwrap_or("silu");
    if act != "silu" {
        return Err(Error::Unsupported(format!("InternLM2 hidden_act `{act}`")));
    }
    // Dynamic NTK only changes RoPE past max_position_embeddings, which is also our context limit.
    if let Some(kind) = cfg
        .lookup("rope_scaling")
        .and_then(|r| r.get("type").or_else(|| r.get("rope_type")))
        .and_then(|t| t.as_str())
    {
        if kind != "dynamic" {
            return Err(Error::Unsupported(format!(
                "InternLM2 rope_scaling `{kind}`"
            )));
        }
    }
    let bias = cfg.bool_or("bias", false)? || cfg.bool_or("attention_bias", false)?;
    let head_dim = hidden / heads;
    Ok(DecoderSpec {
        hidden,
        layers: cfg.usize("num_hidden_layers")?,
        heads,
        kv_heads,
        head_dim,
        intermediate: cfg.usize("intermediate_size")?,
        vocab,
        norm: NormKind::Rms,
        norm_eps: cfg.f64_opt("rms_norm_eps")?.unwrap_or(1e-5),
        qkv: QkvLayout::FusedGrouped,
        qkv_bias: bias,
        o_bias: bias,
        mlp_bias: false,
        qk_norm: false,
        mlp: MlpKind::SwiGlu,
        rope_theta: cfg.f64_opt("rope_theta")?.unwrap_or(default_theta),
        rotary_dim: head_dim,
        sliding_window: None,
        max_position: cfg.usize_opt("max_position_embeddings")?.unwrap_or(32768),
        tie_embeddings: false,
        names,
    })
}

fn sub<'a>(path: &Path, root: &'a Value, key: &str) -> Result<&'a Value> {
    root.get(key)
        .filter(|v| v.is_object())
        .ok_or_else(|| Error::config(path, format!("missing object `{key}`")))
}

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
    let ratio = top
        .f64_opt("downsample_ratio")?
        .or(emb.f64_opt("downsample_ratio")?)
        .unwrap_or(0.5);
    if ratio != 0.5 {
        return Err(Error::Unsupported(format!(
            "downsample_ratio {ratio} (only 0.5)"
        )));
    }

    let text_table = "embedding_model.llm_text_embeddings.weight";
    let head = "language_model.output";
    let vocab = folder
        .tensors
        .shape(&format!("{head}.weight"))
        .and_then(|s| (s.len() == 2).then_some(s[0]))
        .ok_or_else(|| Error::MissingTensor {
            name: format!("{head}.weight"),
            tried: format!("{head}.weight"),
        })?;
    let llm_vocab = emb.usize_opt("llm_vocab_size")?.unwrap_or(vocab);
    if llm_vocab != vocab {
        return Err(Error::config(
            &path,
            format!("llm_vocab_size {llm_vocab} differs from the output head's {vocab} rows"),
        ));
    }
    let decoder = internlm2_spec(
        &llm,
        vocab,
        10000.0,
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
        10000.0,
        internlm2_names(text_table, "embedding_model.encoder.{i}.", "", ""),
    )?;

    let patch = emb.usize_opt("patch_size")?.unwrap_or(14);
    let tile = top
        .usize_opt("force_image_size")?
        .or(emb.usize_opt("image_size")?)
        .unwrap_or(448);
    if patch == 0 || tile % (2 * patch) != 0 {
        return Err(Error::config(
            &path,
            format!("image size {tile} is not a multiple of twice the patch size {patch}"),
        ));
    }
    let dynamic = top.bool_or("dynamic_image_size", true)?;
    let (min_tiles, max_tiles) = if dynamic {
        (
            top.usize_opt("min_dynamic_patch")?.unwrap_or(1),
            top.usize_opt("max_dynamic_patch")?.unwrap_or(6),
        )
    } else {
        (1, 1)
    };
    let pp = folder.preprocessor_config.as_ref();
    let preprocess = PreprocessSpec {
        resize: ResizePolicy::Tiles {
            tile: tile as u32,
            min_tiles: min_tiles as u32,
            max_tiles: max_tiles as u32,
            thumbnail: top.bool_or("use_thumbnail", true)?,
        },
        // The goldens follow Pillow 13's pass order (tall thumbnails resize vertically first).
        filter: pil_filter(
            pp.and_then(|p| p.get("resample")).and_then(|v| v.as_u64()),
            true,
            true,
        ),
        resample_exact: true,
        patch,
        order: PatchOrder::Chw,
        pad_value: None,
        rescale: 1.0 / 255.0,
        mean: triplet(pp.and_then(|p| p.get("image_mean")), IMAGENET_MEAN),
        std: triplet(pp.and_then(|p| p.get("image_std")), IMAGENET_STD),
    };

    let template = top.str_opt("template").unwrap_or("internlm2-chat");
    if template != "internlm2-chat" {
        return Err(Error::Unsupported(format!(
            "conversation template `{template}` (only internlm2-chat)"
        )));
    }
    let bos = tok.require("<s>")?;
    let im_end = tok.require("<|im_end|>")?;
    let context = tok.require("<IMG_CONTEXT>")?;
    if let Some(id) = emb.usize_opt("img_context_token_id")? {
        if id as u32 != context {
            return Err(Error::config(
                &path,
                format!(
                    "img_context_token_id {id} is not the tokenizer's <IMG_CONTEXT> ({context})"
                ),
            ));
        }
    }
    let with_images = |text: String| Part::TextWithImages {
        text,
        marker: "<image>".into(),
        prefix: "<image>\n".into(),
    };
    let first = format!(
        "<|im_start|>system\n{INTERNLM2_CHAT_SYSTEM}<|im_end|><|im_start|>user\n{{prompt}}<|im_end|><|im_start|>assistant\n"
    );
    let later = "<|im_start|>user\n{prompt}<|im_end|><|im_start|>assistant\n".to_string();
    let sequence = SequenceSpec {
        layout: ImageLayout {
            start: Some(tok.require("<img>")?),
            patch: context,
            row_sep: None,
            row_sep_after_last: false,
            end: Some(tok.require("</img>")?),
        },
        merge: Merge::Replace,
        template: TemplateSpec {
            chat_with_image: vec![Part::Token(bos), with_images(first.clone())],
            chat_text_only: vec![Part::Token(bos), Part::Text(first)],
            chat_follow_up: vec![with_images(later)],
            assistant_end: vec![Part::Token(im_end)],
            raw: vec![
                Part::Token(bos),
                Part::Images,
                Part::Text("{prompt}".into()),
            ],
            strip_prompt: false,
        },
        max_images: 1,
    };
    // `chat()` stops on the template separator.
    let mut stop_ids = generation_eos(folder);
    if !stop_ids.contains(&im_end) {
        stop_ids.push(im_end);
    }
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
