//! `--text-only`: the decoder of a VLM as a plain llama.cpp text model (`llama` or `qwen2`
//! architecture, llama.cpp tensor and metadata names, tokenizer as `tokenizer.ggml.*`), so that
//! llama.cpp runs the very same weights we do and benchmarks compare like with like.
//!
//! Which decoders qualify is read off the family's [`DecoderSpec`], not a family list: RMSNorm,
//! separate q/k/v, SwiGLU, full-width RoPE, no q/k norms. q/k/v biases make it `qwen2` (NeoX
//! RoPE, weights as stored); otherwise it is `llama`, whose RoPE rotates adjacent pairs, so q and
//! k rows are permuted from the half-split layout the way llama.cpp's own converter does.
//! Modality-expert copies (EVE v2) and the image front end are left out: the text branch stays.

use crate::gguf_writer::PlannedTensor;
use crate::{
    progress_bar, tensor_type, write_atomically, PolicyEntry, QuantType, QuantizeError, Result,
};
use candle_core::quantized::gguf_file::Value;
use candle_core::quantized::QTensor;
use candle_core::{DType, Device, Tensor};
use runtime::checkpoint::{HfFolder, TensorSource};
use runtime::sequence::sentencepiece::{ModelProto, PieceType};
use runtime::sequence::Tokenizer;
use runtime::spec::{DecoderSpec, MlpKind, NormKind, QkvLayout};
use std::path::Path;

/// What a text-only export did.
#[derive(Debug, Clone)]
pub struct TextOnlySummary {
    pub family: String,
    /// llama.cpp architecture written: `llama` or `qwen2`.
    pub arch: &'static str,
    pub policy: Vec<PolicyEntry>,
    pub bytes: u64,
}

/// llama.cpp's token types (`llama_token_type`).
const TOKEN_NORMAL: i32 = 1;
const TOKEN_UNKNOWN: i32 = 2;
const TOKEN_CONTROL: i32 = 3;
const TOKEN_USER_DEFINED: i32 = 4;
const TOKEN_UNUSED: i32 = 5;
const TOKEN_BYTE: i32 = 6;

/// The llama.cpp architecture for `d`, or why there is none.
pub fn llama_cpp_arch(d: &DecoderSpec) -> std::result::Result<&'static str, String> {
    let mut missing = Vec::new();
    if d.norm != NormKind::Rms {
        missing.push("LayerNorm instead of RMSNorm");
    }
    if d.qkv != QkvLayout::Separate {
        missing.push("fused q/k/v");
    }
    if d.mlp != MlpKind::SwiGlu {
        missing.push("a non-SwiGLU MLP");
    }
    if d.qk_norm {
        missing.push("q/k norms");
    }
    if d.rotary_dim != d.head_dim {
        missing.push("partial RoPE");
    }
    if d.o_bias || d.mlp_bias {
        missing.push("output/MLP biases");
    }
    if !missing.is_empty() {
        return Err(missing.join(", "));
    }
    Ok(if d.qkv_bias { "qwen2" } else { "llama" })
}

/// `[rows, cols]` → rows regrouped per head from `[first half; second half]` to interleaved
/// pairs (llama.cpp's `permute` in its HF converter).
fn permute_for_pairwise_rope(w: &Tensor, heads: usize) -> Result<Tensor> {
    let (rows, cols) = w.dims2()?;
    let hd = rows / heads;
    Ok(w.reshape((heads, 2, hd / 2, cols))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((rows, cols))?)
}

/// Writes the decoder of the VLM in `dir` as a llama.cpp text model.
pub fn export_text_only(
    dir: &Path,
    out: &Path,
    target: QuantType,
    progress: bool,
) -> Result<TextOnlySummary> {
    let folder = HfFolder::open(dir)?;
    let tokenizer = Tokenizer::from_dir(dir)?;
    let family = runtime::families::detect(&folder)?;
    let (spec, aliases) = (family.build)(&folder, &tokenizer)?;
    let d = &spec.decoder;
    let arch = llama_cpp_arch(d).map_err(|why| {
        QuantizeError::InvalidArgument(format!(
            "--text-only: the {} decoder has no llama.cpp text architecture ({why})",
            family.name
        ))
    })?;
    let n = &d.names;

    // (gguf name, checkpoint name, heads for the pair permutation)
    let mut plan: Vec<(String, String, Option<usize>)> = Vec::new();
    let mut need = |gguf: String, hf: String, permute: Option<usize>| -> Result<()> {
        let found =
            aliases
                .find(&folder.tensors, &hf)
                .ok_or_else(|| runtime::Error::MissingTensor {
                    tried: aliases.candidates(&hf).join(", "),
                    name: hf.clone(),
                })?;
        plan.push((gguf, found, permute));
        Ok(())
    };
    need("token_embd.weight".into(), n.embed.clone(), None)?;
    let pairwise = arch == "llama";
    for i in 0..d.layers {
        let p = n.layer_prefix(i);
        let b = format!("blk.{i}.");
        need(
            format!("{b}attn_norm.weight"),
            format!("{p}{}.weight", n.attn_norm),
            None,
        )?;
        let parts = [
            ("attn_q", &n.q, pairwise.then_some(d.heads)),
            ("attn_k", &n.k, pairwise.then_some(d.kv_heads)),
            ("attn_v", &n.v, None),
            ("attn_output", &n.o, None),
            ("ffn_gate", &n.gate, None),
            ("ffn_up", &n.up, None),
            ("ffn_down", &n.down, None),
        ];
        for (short, hf, permute) in parts {
            need(
                format!("{b}{short}.weight"),
                format!("{p}{hf}.weight"),
                permute,
            )?;
        }
        if d.qkv_bias {
            for (short, hf) in [("attn_q", &n.q), ("attn_k", &n.k), ("attn_v", &n.v)] {
                need(format!("{b}{short}.bias"), format!("{p}{hf}.bias"), None)?;
            }
        }
        need(
            format!("{b}ffn_norm.weight"),
            format!("{p}{}.weight", n.mlp_norm),
            None,
        )?;
    }
    need(
        "output_norm.weight".into(),
        format!("{}.weight", n.final_norm),
        None,
    )?;
    if !d.tie_embeddings {
        need(
            "output.weight".into(),
            format!("{}.weight", n.lm_head),
            None,
        )?;
    }

    let mut metadata = vec![
        (
            "general.architecture".to_string(),
            Value::String(arch.into()),
        ),
        (
            "general.name".into(),
            Value::String(format!(
                "{} (text decoder of a {} checkpoint)",
                dir.file_name()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                family.name
            )),
        ),
        ("general.file_type".into(), Value::U32(target.file_type())),
        ("general.quantization_version".into(), Value::U32(2)),
        ("general.alignment".into(), Value::U32(32)),
        (
            "monovlm.text_only_of".into(),
            Value::String(family.name.into()),
        ),
    ];
    metadata.extend(decoder_metadata(arch, d));
    let eos = spec.generation.stop_ids.first().copied();
    match tokenizer_metadata(dir, &tokenizer, d.vocab, arch, eos)? {
        LlamaVocabulary::Metadata(md) => metadata.extend(md),
        LlamaVocabulary::Unsupported(why) => {
            return Err(QuantizeError::InvalidArgument(format!(
                "--text-only: {why}"
            )))
        }
    }

    let bar = progress_bar(
        plan.len(),
        format!("text-only {arch} {}", target.name()),
        progress,
    )?;
    // The policy is decided on the checkpoint's name (what it is), stored under llama.cpp's.
    let mut policy = Vec::with_capacity(plan.len());
    for (gguf, hf, _) in &plan {
        let shape = folder.tensors.shape(hf).unwrap_or_default();
        let (dtype, reason) = tensor_type(hf, &shape, target);
        policy.push(PolicyEntry {
            name: gguf.clone(),
            shape,
            dtype,
            reason,
        });
    }
    let planned: Vec<PlannedTensor> = policy
        .iter()
        .map(|e| PlannedTensor {
            name: e.name.clone(),
            shape: e.shape.clone(),
            dtype: e.dtype,
        })
        .collect();
    let bytes = write_atomically(out, &metadata, &planned, |i| {
        let (gguf, hf, permute) = &plan[i];
        bar.set_message(gguf.clone());
        let mut t = folder.tensors.load(hf, DType::F32, &Device::Cpu)?;
        if let Some(heads) = permute {
            t = permute_for_pairwise_rope(&t, *heads)?;
        }
        let q = QTensor::quantize(&t, policy[i].dtype)?;
        bar.inc(1);
        Ok(q)
    })?;
    bar.finish_and_clear();
    Ok(TextOnlySummary {
        family: family.name.to_string(),
        arch,
        policy,
        bytes,
    })
}

/// llama.cpp's hyper-parameter keys (`<arch>.block_count`, `<arch>.attention.head_count`, …) for
/// the decoder `d`.
pub(crate) fn decoder_metadata(arch: &str, d: &DecoderSpec) -> Vec<(String, Value)> {
    let eps_key = match d.norm {
        NormKind::Rms => "attention.layer_norm_rms_epsilon",
        _ => "attention.layer_norm_epsilon",
    };
    [
        ("context_length", Value::U32(d.max_position as u32)),
        ("embedding_length", Value::U32(d.hidden as u32)),
        ("block_count", Value::U32(d.layers as u32)),
        ("feed_forward_length", Value::U32(d.intermediate as u32)),
        ("attention.head_count", Value::U32(d.heads as u32)),
        ("attention.head_count_kv", Value::U32(d.kv_heads as u32)),
        (eps_key, Value::F32(d.norm_eps as f32)),
        ("rope.freq_base", Value::F32(d.rope_theta as f32)),
        ("rope.dimension_count", Value::U32(d.rotary_dim as u32)),
    ]
    .into_iter()
    .map(|(k, v)| (format!("{arch}.{k}"), v))
    .collect()
}

/// The vocabulary in llama.cpp's terms, or why llama.cpp has none for it.
pub(crate) enum LlamaVocabulary {
    Metadata(Vec<(String, Value)>),
    /// A vocabulary llama.cpp's tokenizers cannot express (the runtime still reads the
    /// embedded tokenizer files).
    Unsupported(String),
}

/// `tokenizer.ggml.*`: SentencePiece vocabularies (a `tokenizer.model`, or a `tokenizer.json`
/// Unigram or BPE with byte fallback) as llama.cpp's `llama` tokenizer with scores and token types;
/// byte-level BPE (Qwen2) as `gpt2` with merges. The list is padded to the embedding's rows with
/// unused `[PADn]` entries, as llama.cpp's converter does. Unreadable or malformed tokenizer files
/// are errors.
pub(crate) fn tokenizer_metadata(
    dir: &Path,
    tokenizer: &Tokenizer,
    vocab_rows: usize,
    arch: &str,
    eos: Option<u32>,
) -> Result<LlamaVocabulary> {
    let mut tokens: Vec<Option<(String, f32, i32)>> = Vec::new();
    let mut merges: Option<Vec<String>> = None;
    let mut set = |id: usize, text: String, score: f32, ty: i32| {
        if tokens.len() <= id {
            tokens.resize(id + 1, None);
        }
        tokens[id] = Some((text, score, ty));
    };
    let io = |path: &Path, source| QuantizeError::Io {
        path: path.to_path_buf(),
        source,
    };
    let spm = dir.join("tokenizer.model");
    let json = dir.join("tokenizer.json");
    let mut model = "llama";
    if spm.is_file() {
        let bytes = std::fs::read(&spm).map_err(|e| io(&spm, e))?;
        let proto = ModelProto::parse(&bytes)
            .map_err(|e| QuantizeError::InvalidArgument(format!("{}: {e}", spm.display())))?;
        for (id, p) in proto.pieces.iter().enumerate() {
            let ty = match p.kind {
                PieceType::Normal => TOKEN_NORMAL,
                PieceType::Unknown => TOKEN_UNKNOWN,
                PieceType::Control => TOKEN_CONTROL,
                PieceType::UserDefined => TOKEN_USER_DEFINED,
                PieceType::Unused => TOKEN_UNUSED,
                PieceType::Byte => TOKEN_BYTE,
            };
            set(id, p.piece.clone(), p.score, ty);
        }
        let added = dir.join("added_tokens.json");
        if added.is_file() {
            let text = std::fs::read_to_string(&added).map_err(|e| io(&added, e))?;
            let map: std::collections::BTreeMap<String, u32> = serde_json::from_str(&text)
                .map_err(|e| QuantizeError::InvalidArgument(format!("{}: {e}", added.display())))?;
            for (text, id) in map {
                set(id as usize, text, 0.0, TOKEN_USER_DEFINED);
            }
        }
    } else if json.is_file() {
        let text = std::fs::read_to_string(&json).map_err(|e| io(&json, e))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| QuantizeError::InvalidArgument(format!("{}: {e}", json.display())))?;
        let m = &v["model"];
        let byte_fallback = m["byte_fallback"].as_bool().unwrap_or(false);
        let kind = m["type"].as_str().unwrap_or("unknown");
        if kind == "Unigram" {
            // A SentencePiece unigram vocabulary (Fuyu/Persimmon): `[piece, log-probability]`
            // rows, which llama.cpp's SentencePiece (`llama`) tokenizer takes as scores.
            let unk = m["unk_id"].as_u64();
            for (id, row) in m["vocab"].as_array().into_iter().flatten().enumerate() {
                let (Some(text), Some(score)) = (row[0].as_str(), row[1].as_f64()) else {
                    continue;
                };
                let byte = byte_fallback && text.len() == 6 && text.starts_with("<0x");
                let ty = if Some(id as u64) == unk {
                    TOKEN_UNKNOWN
                } else if byte {
                    TOKEN_BYTE
                } else {
                    TOKEN_NORMAL
                };
                set(id, text.to_string(), score as f32, ty);
            }
        } else if kind != "BPE" {
            return Ok(LlamaVocabulary::Unsupported(format!(
                "{} holds a {kind} model; only BPE, Unigram and SentencePiece vocabularies convert",
                json.display(),
            )));
        }
        if kind == "BPE" && !byte_fallback {
            model = "gpt2";
            let list = m["merges"].as_array().cloned().unwrap_or_default();
            merges = Some(
                list.iter()
                    .filter_map(|x| match x {
                        serde_json::Value::String(s) => Some(s.clone()),
                        serde_json::Value::Array(p) => Some(
                            p.iter()
                                .filter_map(|s| s.as_str())
                                .collect::<Vec<_>>()
                                .join(" "),
                        ),
                        _ => None,
                    })
                    .collect(),
            );
        }
        if let Some(map) = m["vocab"].as_object() {
            for (text, id) in map {
                if let Some(id) = id.as_u64() {
                    let byte = byte_fallback && text.len() == 6 && text.starts_with("<0x");
                    let ty = if byte { TOKEN_BYTE } else { TOKEN_NORMAL };
                    // Merge priority for SentencePiece-style vocabularies: earlier ids first.
                    set(id as usize, text.clone(), -(id as f32), ty);
                }
            }
        }
        for a in v["added_tokens"].as_array().into_iter().flatten() {
            if let (Some(id), Some(text)) = (a["id"].as_u64(), a["content"].as_str()) {
                let special = a["special"].as_bool().unwrap_or(false);
                let ty = if special {
                    TOKEN_CONTROL
                } else {
                    TOKEN_USER_DEFINED
                };
                set(id as usize, text.to_string(), 0.0, ty);
            }
        }
    } else {
        return Ok(LlamaVocabulary::Unsupported(format!(
            "{} has neither tokenizer.model nor tokenizer.json",
            dir.display()
        )));
    }
    if tokens.len() > vocab_rows {
        return Ok(LlamaVocabulary::Unsupported(format!(
            "the tokenizer has {} tokens but the embedding only {vocab_rows} rows",
            tokens.len()
        )));
    }
    tokens.resize(vocab_rows, None);
    let mut texts = Vec::with_capacity(vocab_rows);
    let mut scores = Vec::with_capacity(vocab_rows);
    let mut types = Vec::with_capacity(vocab_rows);
    for (id, t) in tokens.into_iter().enumerate() {
        let (text, score, ty) = t.unwrap_or_else(|| (format!("[PAD{id}]"), 0.0, TOKEN_UNUSED));
        texts.push(Value::String(text));
        scores.push(Value::F32(score));
        types.push(Value::I32(ty));
    }
    let mut md = vec![
        (
            "tokenizer.ggml.model".to_string(),
            Value::String(model.into()),
        ),
        ("tokenizer.ggml.tokens".into(), Value::Array(texts)),
        ("tokenizer.ggml.token_type".into(), Value::Array(types)),
    ];
    if model == "llama" {
        md.push(("tokenizer.ggml.scores".into(), Value::Array(scores)));
    }
    if let Some(m) = merges {
        md.push((
            "tokenizer.ggml.merges".into(),
            Value::Array(m.into_iter().map(Value::String).collect()),
        ));
        let pre = if arch == "qwen2" { "qwen2" } else { "default" };
        md.push(("tokenizer.ggml.pre".into(), Value::String(pre.into())));
    }
    for (key, token) in [
        ("tokenizer.ggml.bos_token_id", "<s>"),
        ("tokenizer.ggml.unknown_token_id", "<unk>"),
    ] {
        if let Some(id) = tokenizer.token_to_id(token) {
            md.push((key.into(), Value::U32(id)));
        }
    }
    if let Some(id) = eos {
        md.push(("tokenizer.ggml.eos_token_id".into(), Value::U32(id)));
    }
    Ok(LlamaVocabulary::Metadata(md))
}
