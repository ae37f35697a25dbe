//! Pieces shared by the InternVL-based families (HoVLE, Mono-InternVL): InternLM2 stacks with the
//! grouped fused `wqkv`, InternVL dynamic tiling and the `internlm2-chat` prompt with
//! `<img><IMG_CONTEXT>…</img>`. Not a family itself.

use super::{
    generation_eos, llama_decoder, pil_filter, triplet, LlamaDefaults, IMAGENET_MEAN, IMAGENET_STD,
};
use crate::checkpoint::{ConfigView, HfFolder};
use crate::error::{Error, Result};
use crate::sequence::Tokenizer;
use crate::spec::*;
use serde_json::Value;
use std::path::Path;

/// The default system message of InternVL's `internlm2-chat` conversation template.
const INTERNLM2_CHAT_SYSTEM: &str = "你是由上海人工智能实验室联合商汤科技开发的书生多模态大模型，英文名叫InternVL, 是一个有用无害的人工智能助手。";

/// A nested config object (`llm_config`, `embedding_config`, `vision_config`).
pub(crate) fn sub<'a>(path: &Path, root: &'a Value, key: &str) -> Result<&'a Value> {
    root.get(key)
        .filter(|v| v.is_object())
        .ok_or_else(|| Error::config(path, format!("missing object `{key}`")))
}

/// Whether `llm_config.architectures` lists `arch`.
pub(crate) fn llm_arch_is(cfg: &Value, arch: &str) -> bool {
    cfg.get("llm_config")
        .map(super::architectures)
        .is_some_and(|a| a.iter().any(|x| x == arch))
}

/// InternLM2 tensor names under `layer` (`…layers.{i}.`), with `embed`, `final_norm`, `lm_head`.
pub(crate) fn internlm2_names(
    embed: &str,
    layer: &str,
    final_norm: &str,
    lm_head: &str,
) -> DecoderNames {
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

/// An InternLM2 stack from one of the nested configs (`default_eps` when it names none).
pub(crate) fn internlm2_spec(
    cfg: &ConfigView,
    vocab: usize,
    default_eps: f64,
    names: DecoderNames,
) -> Result<DecoderSpec> {
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
    let defaults = LlamaDefaults {
        norm_eps: default_eps,
        rope_theta: 10000.0,
        max_position: 32768,
    };
    Ok(DecoderSpec {
        qkv: QkvLayout::FusedGrouped,
        qkv_bias: bias,
        o_bias: bias,
        tie_embeddings: false,
        ..llama_decoder(cfg, names, vocab, defaults)?
    })
}

/// Rows of a 2-D tensor in the checkpoint (the output head's vocabulary).
pub(crate) fn rows_of(folder: &HfFolder, name: &str) -> Result<usize> {
    use crate::checkpoint::TensorSource;
    folder
        .tensors
        .shape(name)
        .and_then(|s| (s.len() == 2).then_some(s[0]))
        .ok_or_else(|| Error::MissingTensor {
            name: name.into(),
            tried: name.into(),
        })
}

/// The 2×2 pixel shuffle is the only `downsample_ratio` implemented.
pub(crate) fn require_half_downsample(top: &ConfigView, nested: &ConfigView) -> Result<()> {
    let ratio = top
        .f64_opt("downsample_ratio")?
        .or(nested.f64_opt("downsample_ratio")?)
        .unwrap_or(0.5);
    if ratio != 0.5 {
        return Err(Error::Unsupported(format!(
            "downsample_ratio {ratio} (only 0.5)"
        )));
    }
    Ok(())
}

/// InternVL dynamic tiling (`load_image(path, input_size=tile, max_num=max_dynamic_patch)`),
/// bicubic, ImageNet normalization, CHW patches. `pillow13`: the reference's Pillow release.
pub(crate) fn tiling_preprocess(
    folder: &HfFolder,
    top: &ConfigView,
    tile: usize,
    patch: usize,
    pillow13: bool,
) -> Result<PreprocessSpec> {
    if patch == 0 || tile == 0 || !tile.is_multiple_of(2 * patch) {
        return Err(Error::config(
            top.path,
            format!("image size {tile} is not a multiple of twice the patch size {patch}"),
        ));
    }
    let (min_tiles, max_tiles) = if top.bool_or("dynamic_image_size", true)? {
        (
            top.usize_opt("min_dynamic_patch")?.unwrap_or(1),
            top.usize_opt("max_dynamic_patch")?.unwrap_or(6),
        )
    } else {
        (1, 1)
    };
    let pp = folder.preprocessor_config.as_ref();
    Ok(PreprocessSpec {
        resize: ResizePolicy::Tiles {
            tile: tile as u32,
            min_tiles: min_tiles as u32,
            max_tiles: max_tiles as u32,
            thumbnail: top.bool_or("use_thumbnail", true)?,
        },
        filter: pil_filter(
            pp.and_then(|p| p.get("resample")).and_then(|v| v.as_u64()),
            true,
            pillow13,
        ),
        resample_exact: true,
        patch,
        order: PatchOrder::Chw,
        pad_value: None,
        rescale: 1.0 / 255.0,
        mean: triplet(pp.and_then(|p| p.get("image_mean")), IMAGENET_MEAN),
        std: triplet(pp.and_then(|p| p.get("image_std")), IMAGENET_STD),
    })
}

/// `internlm2-chat` (MPT style, sep `<|im_end|>` without a newline) after `<s>`; `<image>` in the
/// question (else prepended with a newline, as `chat()` does) becomes `<img>`, one
/// `<IMG_CONTEXT>` per image row, `</img>`. Returns the spec and the stop ids (`<|im_end|>`).
pub(crate) fn internlm2_chat(
    folder: &HfFolder,
    top: &ConfigView,
    tok: &Tokenizer,
    img_context_id: Option<usize>,
) -> Result<(SequenceSpec, Vec<u32>)> {
    let template = top.str_opt("template").unwrap_or("internlm2-chat");
    if template != "internlm2-chat" {
        return Err(Error::Unsupported(format!(
            "conversation template `{template}` (only internlm2-chat)"
        )));
    }
    let bos = tok.require("<s>")?;
    let im_end = tok.require("<|im_end|>")?;
    let context = tok.require("<IMG_CONTEXT>")?;
    if let Some(id) = img_context_id {
        if id as u32 != context {
            return Err(Error::config(
                top.path,
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
    Ok((sequence, stop_ids))
}
