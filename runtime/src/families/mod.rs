//! Family registry: config files → [`ModelSpec`] + tensor-name aliases. One file per family.

mod eve1;
mod eve2;
mod fuyu;
mod hovle;
mod internvl;
mod monointernvl;
mod solo;

use crate::checkpoint::{CheckpointTensors, ConfigView, HfFolder, NameAliases};
use crate::error::{Error, Result};
use crate::sequence::Tokenizer;
use crate::spec::{ModelSpec, Part, ResampleFilter, TemplateSpec};
use serde_json::Value;

/// A family as data: how to recognise its config and how to turn it into a spec.
pub struct FamilyDef {
    pub name: &'static str,
    pub description: &'static str,
    pub matches: fn(&serde_json::Value) -> bool,
    pub build: fn(&HfFolder, &Tokenizer) -> Result<(ModelSpec, NameAliases)>,
}

/// Every supported family; README and `--help` tables come from here.
pub const FAMILIES: &[FamilyDef] = &[
    fuyu::FAMILY,
    solo::FAMILY,
    eve2::FAMILY,
    eve1::FAMILY,
    hovle::FAMILY,
    monointernvl::FAMILY,
];

pub fn detect(folder: &HfFolder) -> Result<&'static FamilyDef> {
    FAMILIES
        .iter()
        .find(|f| (f.matches)(&folder.config))
        .ok_or_else(|| {
            let mt = folder
                .config
                .get("model_type")
                .and_then(|v| v.as_str())
                .unwrap_or("<none>");
            let arch = folder
                .config
                .get("architectures")
                .map(|v| v.to_string())
                .unwrap_or_default();
            Error::UnknownFamily(format!(
                "model_type `{mt}` {arch} in {} (supported: {})",
                folder.dir.join("config.json").display(),
                FAMILIES
                    .iter()
                    .map(|f| f.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
}

/// Reads `rope_theta` at the top level, in `text_config`, or in transformers 5's `rope_parameters`.
pub(crate) fn rope_theta(cfg: &crate::checkpoint::ConfigView, default: f64) -> Result<f64> {
    if let Some(t) = cfg.f64_opt("rope_theta")? {
        return Ok(t);
    }
    let nested = cfg
        .lookup("rope_parameters")
        .and_then(|p| p.get("rope_theta"))
        .and_then(|v| v.as_f64());
    Ok(nested.unwrap_or(default))
}

pub(crate) fn architectures(cfg: &serde_json::Value) -> Vec<String> {
    cfg.get("architectures")
        .and_then(|a| a.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Stop ids from `generation_config.json`'s `eos_token_id` (int or list).
pub(crate) fn generation_eos(folder: &HfFolder) -> Vec<u32> {
    let v = folder
        .generation_config
        .as_ref()
        .and_then(|g| g.get("eos_token_id"))
        .or_else(|| folder.config.get("eos_token_id"));
    match v {
        Some(serde_json::Value::Number(n)) => {
            n.as_u64().map(|x| vec![x as u32]).unwrap_or_default()
        }
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_u64().map(|x| x as u32))
            .collect(),
        _ => vec![],
    }
}

/// Vocabulary size from the embedding table (hub configs are sometimes padded or stale).
pub(crate) fn vocab_from_embed(
    folder: &HfFolder,
    aliases: &NameAliases,
    name: &str,
) -> Result<usize> {
    use crate::checkpoint::TensorSource;
    for c in aliases.candidates(name) {
        if let Some(s) = folder.tensors.shape(&c) {
            if s.len() == 2 {
                return Ok(s[0]);
            }
        }
    }
    // A fresh initialisation has no tensors yet: the config says how large the vocabulary is.
    if let CheckpointTensors::Memory(_) = &folder.tensors {
        if let Some(v) = ConfigView::new(&folder.dir, &folder.config).usize_opt("vocab_size")? {
            return Ok(v);
        }
    }
    Err(Error::MissingTensor {
        name: name.to_string(),
        tried: aliases.candidates(name).join(", "),
    })
}

/// A `[f32; 3]` from a JSON number (broadcast) or triplet, else `default`.
pub(crate) fn triplet(v: Option<&Value>, default: [f32; 3]) -> [f32; 3] {
    match v {
        Some(Value::Number(n)) => n.as_f64().map(|x| [x as f32; 3]).unwrap_or(default),
        Some(Value::Array(a)) if a.len() == 3 => {
            let f = |i: usize| a[i].as_f64().map(|x| x as f32).unwrap_or(default[i]);
            [f(0), f(1), f(2)]
        }
        _ => default,
    }
}

/// PIL's resample code (`resample` in a processor config: 2 bilinear, 3 bicubic, else the
/// default) for a reference that ran Pillow 13 or later (`pillow13`) or an earlier release.
pub(crate) fn pil_filter(
    code: Option<u64>,
    bicubic_default: bool,
    pillow13: bool,
) -> ResampleFilter {
    let bicubic = match code {
        Some(2) => false,
        Some(3) => true,
        _ => bicubic_default,
    };
    match (bicubic, pillow13) {
        (false, false) => ResampleFilter::Bilinear,
        (true, false) => ResampleFilter::Bicubic,
        (false, true) => ResampleFilter::BilinearPillow13,
        (true, true) => ResampleFilter::BicubicPillow13,
    }
}

/// The number after `key` in a processor folder name, glued or as the next part
/// (`eve-anyratio-res800-patch16`: `res` → 800; `eve-patch14-anypixel-672`: `anypixel` → 672).
pub(crate) fn number_after(name: &str, key: &str) -> Option<u32> {
    let parts: Vec<&str> = name.split(['-', '_', '/']).collect();
    parts.iter().enumerate().find_map(|(i, part)| {
        let rest = part.strip_prefix(key)?;
        if rest.is_empty() {
            parts.get(i + 1)?.parse().ok()
        } else {
            rest.parse().ok()
        }
    })
}

/// `CLIPImageProcessor` mean/std (EVE).
pub(crate) const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
pub(crate) const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_6, 0.275_777_1];
pub(crate) const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub(crate) const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// LLaVA's `SeparatorStyle.TWO` conversation (`vicuna_v1`, EVE's `qwen2`): `"{system} USER:
/// {q} ASSISTANT: {a}{sep2}USER: …"`, the image as `marker` in the first user message (prefixed
/// with `<image>\n` when the prompt has none). `sep2` ends an answer; `bos` starts the turn.
pub(crate) fn llava_two_template(system: &str, sep2: u32, bos: Option<u32>) -> TemplateSpec {
    let with_images = |text: String| Part::TextWithImages {
        text,
        marker: "<image>".into(),
        prefix: "<image>\n".into(),
    };
    let lead: Vec<Part> = bos.map(Part::Token).into_iter().collect();
    let first = format!("{system} USER: {{prompt}} ASSISTANT:");
    let later = "USER: {prompt} ASSISTANT:".to_string();
    let mut raw = lead.clone();
    raw.extend([Part::Images, Part::Text("{prompt}".into())]);
    TemplateSpec {
        chat_with_image: [lead.clone(), vec![with_images(first.clone())]].concat(),
        chat_text_only: [lead, vec![Part::Text(first)]].concat(),
        chat_follow_up: vec![with_images(later)],
        assistant_end: vec![Part::Token(sep2)],
        raw,
        strip_prompt: false,
    }
}

/// Defaults of a Llama-shaped decoder that differ between families' configs.
pub(crate) struct LlamaDefaults {
    pub norm_eps: f64,
    pub rope_theta: f64,
    pub max_position: usize,
}

/// A Llama/Mistral/Qwen2/InternLM2-shaped decoder from the usual HF config fields: RMSNorm, SwiGLU,
/// full rotary, separate projections, no biases, no sliding window. Families override what differs
/// with struct-update syntax, so the head arithmetic and its validation live in one place.
pub(crate) fn llama_decoder(
    cfg: &crate::checkpoint::ConfigView,
    names: crate::spec::DecoderNames,
    vocab: usize,
    defaults: LlamaDefaults,
) -> Result<crate::spec::DecoderSpec> {
    use crate::spec::{DecoderSpec, MlpKind, NormKind, QkvLayout};
    let hidden = cfg.usize("hidden_size")?;
    let heads = cfg.usize("num_attention_heads")?;
    let kv_heads = cfg.usize_opt("num_key_value_heads")?.unwrap_or(heads);
    if heads == 0 || kv_heads == 0 || heads % kv_heads != 0 {
        return Err(Error::config(
            cfg.path,
            "num_attention_heads must be a positive multiple of num_key_value_heads",
        ));
    }
    let head_dim = match cfg.usize_opt("head_dim")? {
        Some(h) if h > 0 => h,
        _ if hidden % heads == 0 => hidden / heads,
        _ => {
            return Err(Error::config(
                cfg.path,
                "hidden_size must be a multiple of num_attention_heads",
            ))
        }
    };
    Ok(DecoderSpec {
        hidden,
        layers: cfg.usize("num_hidden_layers")?,
        heads,
        kv_heads,
        head_dim,
        intermediate: cfg.usize("intermediate_size")?,
        vocab,
        norm: NormKind::Rms,
        norm_eps: cfg.f64_opt("rms_norm_eps")?.unwrap_or(defaults.norm_eps),
        qkv: QkvLayout::Separate,
        qkv_bias: false,
        o_bias: false,
        mlp_bias: false,
        qk_norm: false,
        mlp: MlpKind::SwiGlu,
        rope_theta: rope_theta(cfg, defaults.rope_theta)?,
        rotary_dim: head_dim,
        sliding_window: None,
        max_position: cfg
            .usize_opt("max_position_embeddings")?
            .unwrap_or(defaults.max_position),
        tie_embeddings: cfg.bool_or("tie_word_embeddings", false)?,
        names,
    })
}

/// rescale, mean and std from a CLIP-style `preprocessor_config.json`, CLIP's values by default.
pub(crate) fn clip_normalization(pp: Option<&Value>) -> (f32, [f32; 3], [f32; 3]) {
    let rescale = pp
        .and_then(|p| p.get("rescale_factor"))
        .and_then(|v| v.as_f64())
        .unwrap_or(1.0 / 255.0) as f32;
    let mean = triplet(pp.and_then(|p| p.get("image_mean")), CLIP_MEAN);
    let std = triplet(pp.and_then(|p| p.get("image_std")), CLIP_STD);
    (rescale, mean, std)
}

/// The vicuna_v1 / LLaVA system prompt both EVE generations use.
pub(crate) const VICUNA_SYSTEM: &str =
    "A chat between a curious user and an artificial intelligence \
assistant. The assistant gives helpful, detailed, and polite answers to the user's questions.";

/// EVE's token layout: one `<image>` (the −200 sentinel upstream) expands into every image row;
/// the rows carry id 0, as upstream writes over the sentinel.
pub(crate) fn eve_sequence(template: TemplateSpec) -> crate::spec::SequenceSpec {
    use crate::spec::{ImageLayout, Merge, SequenceSpec};
    SequenceSpec {
        layout: ImageLayout {
            start: None,
            patch: 0,
            row_sep: None,
            row_sep_after_last: false,
            end: None,
        },
        merge: Merge::Expand { sentinel: -200 },
        template,
        max_images: 1,
    }
}

#[cfg(test)]
mod tests {
    use super::number_after;

    #[test]
    fn processor_numbers_from_tower_names() {
        let v2 = "openai/eve-anyratio-res1600-patch16";
        assert_eq!(number_after(v2, "res"), Some(1600));
        assert_eq!(number_after(v2, "patch"), Some(16));
        let v1 = "openai/eve-patch14-anypixel-1344";
        assert_eq!(number_after(v1, "anypixel"), Some(1344));
        assert_eq!(number_after(v1, "patch"), Some(14));
        assert_eq!(number_after(v1, "res"), None);
        assert_eq!(number_after("", "res"), None);
    }
}
