//! HF checkpoint → one self-contained GGUF file.
//!
//! Tensors whose concept llama.cpp has are stored under its names (`token_embd.weight`,
//! `blk.N.attn_q.weight`, `output_norm.weight`, `v.patch_embd.weight`), the rest under the
//! checkpoint's; a rename table in the metadata lets the runtime read the file exactly as it
//! reads safetensors. The decoder's hyper-parameters are written as `<family>.block_count`, … and
//! the vocabulary as `tokenizer.ggml.*`, and the file embeds what it needs to run without the
//! folder — `config.json`,
//! `preprocessor_config.json`, `generation_config.json` and the tokenizer files — as
//! `monovlm.file.<name>` metadata (UTF-8 text as strings, binary files such as `tokenizer.model` as
//! u8 arrays). Which tensor gets which type is decided by one function, [`tensor_type`]; the
//! resulting table is printed by the CLI and stored as JSON in `monovlm.quant_policy`.
//!
//! Output goes to a temporary file next to the target that is renamed at the end, so an
//! interrupted run never leaves a partial `.gguf` under the requested name.

pub mod gguf_writer;
pub mod quality;
pub mod text_only;

use candle_core::quantized::gguf_file::Value;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device};
use gguf_writer::PlannedTensor;
use runtime::checkpoint::gguf::{ggml_dtype_name, FILE_KEY_PREFIX};
use runtime::checkpoint::llama_names::{self, CHECKPOINT_NAMES_KEY, GGUF_NAMES_KEY};
use runtime::checkpoint::{HfFolder, TensorSource};
use runtime::sequence::Tokenizer;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum QuantizeError {
    #[error(transparent)]
    Runtime(#[from] runtime::Error),
    #[error("tensor math: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

pub type Result<T> = std::result::Result<T, QuantizeError>;

/// The `--type` of a conversion: the type of the decoder's weight matrices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantType {
    F32,
    F16,
    Bf16,
    Q8_0,
    Q6K,
    Q5K,
    Q4K,
    Q4_0,
}

impl QuantType {
    pub const ALL: [QuantType; 8] = [
        QuantType::F32,
        QuantType::F16,
        QuantType::Bf16,
        QuantType::Q8_0,
        QuantType::Q6K,
        QuantType::Q5K,
        QuantType::Q4K,
        QuantType::Q4_0,
    ];

    pub fn ggml(self) -> GgmlDType {
        match self {
            QuantType::F32 => GgmlDType::F32,
            QuantType::F16 => GgmlDType::F16,
            QuantType::Bf16 => GgmlDType::BF16,
            QuantType::Q8_0 => GgmlDType::Q8_0,
            QuantType::Q6K => GgmlDType::Q6K,
            QuantType::Q5K => GgmlDType::Q5K,
            QuantType::Q4K => GgmlDType::Q4K,
            QuantType::Q4_0 => GgmlDType::Q4_0,
        }
    }

    pub fn name(self) -> &'static str {
        ggml_dtype_name(self.ggml())
    }

    /// Whether this is a block-quantized type (not a float array).
    pub fn is_quantized(self) -> bool {
        !matches!(self, QuantType::F32 | QuantType::F16 | QuantType::Bf16)
    }

    /// llama.cpp's `general.file_type` (`enum llama_ftype`) for this conversion.
    pub fn file_type(self) -> u32 {
        match self {
            QuantType::F32 => 0,
            QuantType::F16 => 1,
            QuantType::Q4_0 => 2,
            QuantType::Q8_0 => 7,
            QuantType::Q4K => 15, // Q4_K_M: the output head is kept at q6_k
            QuantType::Q5K => 17, // Q5_K_M
            QuantType::Q6K => 18,
            QuantType::Bf16 => 32,
        }
    }
}

impl std::str::FromStr for QuantType {
    type Err = QuantizeError;
    fn from_str(s: &str) -> Result<Self> {
        let lower = s.to_ascii_lowercase();
        QuantType::ALL
            .into_iter()
            .find(|t| t.name() == lower)
            .ok_or_else(|| {
                let names: Vec<&str> = QuantType::ALL.iter().map(|t| t.name()).collect();
                QuantizeError::InvalidArgument(format!(
                    "unknown type `{s}` (one of {})",
                    names.join(", ")
                ))
            })
    }
}

/// The decision for one tensor.
#[derive(Debug, Clone)]
pub struct PolicyEntry {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: GgmlDType,
    /// Why, in a few words (shown in the table).
    pub reason: String,
}

fn is_vision_or_frontend(name: &str) -> bool {
    ["vision", "patch", "mm_projector", "mlp1.", "pixel_shuffle"]
        .iter()
        .any(|k| name.contains(k))
}

fn is_embedding(name: &str) -> bool {
    ["embed_tokens", "tok_embeddings", "text_embeddings", "wte."]
        .iter()
        .any(|k| name.contains(k))
}

/// The output head (`lm_head`, InternLM2's `output`).
fn is_output_head(name: &str) -> bool {
    name == "lm_head.weight"
        || name.ends_with(".lm_head.weight")
        || name == "output.weight"
        || name.ends_with(".output.weight")
}

/// A weight matrix inside a numbered transformer block (`…layers.N.…`, HoVLE's `encoder.N.…`).
fn is_block_matrix(name: &str) -> bool {
    let parts: Vec<&str> = name.split('.').collect();
    parts.windows(2).any(|w| {
        matches!(w[0], "layers" | "encoder" | "h" | "blocks")
            && w[1].chars().all(|c| c.is_ascii_digit())
    })
}

/// Whether `dtype` can hold a matrix whose rows have `row` elements (rows are quantized block by
/// block: q*_k need multiples of 256, q4_0/q8_0 of 32).
pub fn fits(dtype: GgmlDType, row: usize) -> bool {
    row.is_multiple_of(dtype.block_size())
}

/// The storage type of one tensor — the whole per-tensor policy:
///
/// - 1-D tensors (norms, biases, class/split embeddings) stay f32.
/// - Float targets (f32/f16/bf16): every other tensor takes the target type.
/// - Quantized targets: only 2-D weight matrices of the decoder's blocks and its output head are
///   quantized. The head keeps at least q6_k for 4/5-bit targets (llama.cpp's `_M` mixes do the
///   same). Token embeddings and the vision front end (patch embeddings, projectors, vision towers)
///   stay f16: they are small next to the decoder and feed every token.
/// - A matrix whose row length is not a multiple of the type's block size falls back to the next
///   type that fits: q8_0 (block 32), then f16.
pub fn tensor_type(name: &str, shape: &[usize], target: QuantType) -> (GgmlDType, String) {
    if shape.len() < 2 {
        return (GgmlDType::F32, "1-D".into());
    }
    if !target.is_quantized() {
        return (target.ggml(), "float target".into());
    }
    let is_head = is_output_head(name);
    let decoder_matrix = shape.len() == 2
        && name.ends_with(".weight")
        && !is_vision_or_frontend(name)
        && !is_embedding(name)
        && (is_head || is_block_matrix(name));
    if !decoder_matrix {
        let why = if is_vision_or_frontend(name) {
            "front end"
        } else if is_embedding(name) {
            "embedding"
        } else {
            "other"
        };
        return (GgmlDType::F16, why.into());
    }
    let wanted = match target {
        QuantType::Q4_0 | QuantType::Q4K | QuantType::Q5K if is_head => GgmlDType::Q6K,
        _ => target.ggml(),
    };
    let row = shape[shape.len() - 1];
    let reason = if is_head { "output head" } else { "decoder" };
    for (i, t) in [wanted, GgmlDType::Q8_0, GgmlDType::F16]
        .into_iter()
        .enumerate()
    {
        if fits(t, row) {
            let why = if i == 0 {
                reason.to_string()
            } else {
                format!(
                    "{reason}; row {row} not a multiple of {}",
                    wanted.block_size()
                )
            };
            return (t, why);
        }
    }
    (GgmlDType::F16, reason.into())
}

/// The policy over every tensor of a checkpoint, in name order.
pub fn plan(source: &dyn TensorSource, target: QuantType) -> Vec<PolicyEntry> {
    source
        .names()
        .into_iter()
        .map(|name| {
            let shape = source.shape(&name).unwrap_or_default();
            let (dtype, reason) = tensor_type(&name, &shape, target);
            PolicyEntry {
                name,
                shape,
                dtype,
                reason,
            }
        })
        .collect()
}

/// The policy as a text table (tensor, shape, type, why).
pub fn policy_table(entries: &[PolicyEntry]) -> String {
    let w = entries
        .iter()
        .map(|e| e.name.len())
        .max()
        .unwrap_or(6)
        .max(6);
    let mut s = format!("{:<w$}  {:<16}  {:<5}  why\n", "tensor", "shape", "type");
    for e in entries {
        let shape = format!("{:?}", e.shape);
        s.push_str(&format!(
            "{:<w$}  {:<16}  {:<5}  {}\n",
            e.name,
            shape,
            ggml_dtype_name(e.dtype),
            e.reason
        ));
    }
    s
}

/// The policy as stored in `monovlm.quant_policy`: `{"type": …, "tensors": {name: type}}`.
pub fn policy_json(target: QuantType, entries: &[PolicyEntry]) -> String {
    let tensors: serde_json::Map<String, serde_json::Value> = entries
        .iter()
        .map(|e| (e.name.clone(), ggml_dtype_name(e.dtype).into()))
        .collect();
    serde_json::json!({ "type": target.name(), "tensors": tensors }).to_string()
}

/// Checkpoint files embedded as `monovlm.file.<name>` when present.
pub const EMBEDDED_FILES: &[&str] = &[
    "config.json",
    "preprocessor_config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer.model",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
];

#[derive(Debug, Clone)]
pub struct Options {
    pub target: QuantType,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

/// What a conversion did.
#[derive(Debug, Clone)]
pub struct Summary {
    pub family: String,
    pub policy: Vec<PolicyEntry>,
    pub embedded: Vec<String>,
    /// Tensors stored under llama.cpp names (`blk.N.attn_q.weight`, …).
    pub renamed: usize,
    /// Why the vocabulary is not also stored as `tokenizer.ggml.*` (`None`: it is).
    pub llama_tokenizer_skipped: Option<String>,
    pub bytes: u64,
}

/// Converts the HF folder `dir` into the GGUF file `out`.
pub fn quantize(dir: &Path, out: &Path, opts: &Options) -> Result<Summary> {
    let folder = HfFolder::open(dir)?;
    let tokenizer = Tokenizer::from_dir(dir)?;
    let detected = runtime::families::detect(&folder)?;
    let family = detected.name.to_string();
    let (spec, aliases) = (detected.build)(&folder, &tokenizer)?;
    let policy = plan(&folder.tensors, opts.target);
    let renames = llama_cpp_renames(&folder, &spec, &aliases)?;

    let mut metadata: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::String(family.clone())),
        (
            "general.name".into(),
            Value::String(
                dir.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| family.clone()),
            ),
        ),
        (
            "general.file_type".into(),
            Value::U32(opts.target.file_type()),
        ),
        ("general.quantization_version".into(), Value::U32(2)),
        ("general.alignment".into(), Value::U32(32)),
        (
            "monovlm.quant_type".into(),
            Value::String(opts.target.name().into()),
        ),
        (
            "monovlm.quant_policy".into(),
            Value::String(policy_json(opts.target, &policy)),
        ),
    ];
    metadata.extend(text_only::decoder_metadata(&family, &spec.decoder));
    let (gguf_names, checkpoint_names): (Vec<Value>, Vec<Value>) = renames
        .iter()
        .map(|(c, g)| (Value::String(g.clone()), Value::String(c.clone())))
        .unzip();
    metadata.push((GGUF_NAMES_KEY.into(), Value::Array(gguf_names)));
    metadata.push((CHECKPOINT_NAMES_KEY.into(), Value::Array(checkpoint_names)));
    // The vocabulary as llama.cpp spells it, beside the embedded tokenizer files the runtime
    // reads (those keep every normalisation detail; a vocabulary type llama.cpp has no name
    // for is left to them alone).
    let pre = text_only::llama_cpp_arch(&spec.decoder).unwrap_or("");
    let eos = spec.generation.stop_ids.first().copied();
    let llama_tokenizer_skipped =
        match text_only::tokenizer_metadata(dir, &tokenizer, spec.decoder.vocab, pre, eos)? {
            text_only::LlamaVocabulary::Metadata(md) => {
                metadata.extend(md);
                None
            }
            text_only::LlamaVocabulary::Unsupported(why) => Some(why),
        };
    let mut embedded = Vec::new();
    for name in EMBEDDED_FILES {
        let path = dir.join(name);
        if !path.is_file() {
            continue;
        }
        let bytes = std::fs::read(&path).map_err(|source| QuantizeError::Io {
            path: path.clone(),
            source,
        })?;
        let value = match String::from_utf8(bytes) {
            Ok(text) if *name != "tokenizer.model" => Value::String(text),
            Ok(text) => Value::Array(text.into_bytes().into_iter().map(Value::U8).collect()),
            Err(e) => Value::Array(e.into_bytes().into_iter().map(Value::U8).collect()),
        };
        metadata.push((format!("{FILE_KEY_PREFIX}{name}"), value));
        embedded.push(name.to_string());
    }

    let bar = progress_bar(
        policy.len(),
        format!("quantizing to {}", opts.target.name()),
        opts.progress,
    )?;
    let planned: Vec<PlannedTensor> = policy
        .iter()
        .map(|e| PlannedTensor {
            name: renames.get(&e.name).unwrap_or(&e.name).clone(),
            shape: e.shape.clone(),
            dtype: e.dtype,
        })
        .collect();
    let bytes = write_atomically(out, &metadata, &planned, |i| {
        let e = &policy[i];
        bar.set_message(e.name.clone());
        let t = folder.tensors.load(&e.name, DType::F32, &Device::Cpu)?;
        let q = QTensor::quantize(&t, e.dtype)?;
        bar.inc(1);
        Ok(q)
    })?;
    bar.finish_and_clear();
    Ok(Summary {
        family,
        policy,
        embedded,
        renamed: renames.len(),
        llama_tokenizer_skipped,
        bytes,
    })
}

/// Checkpoint name → llama.cpp name for every tensor of the checkpoint whose concept llama.cpp
/// has (`runtime::checkpoint::llama_names`), checked to leave every name in the file unique.
fn llama_cpp_renames(
    folder: &HfFolder,
    spec: &runtime::spec::ModelSpec,
    aliases: &runtime::checkpoint::NameAliases,
) -> Result<BTreeMap<String, String>> {
    let mut renames = BTreeMap::new();
    for (canonical, gguf) in llama_names::model_names(spec) {
        if let Some(stored) = aliases.find(&folder.tensors, &canonical) {
            renames.insert(stored, gguf);
        }
    }
    let mut seen = std::collections::HashSet::new();
    for name in folder.tensors.names() {
        let written = renames.get(&name).unwrap_or(&name);
        if !seen.insert(written.clone()) {
            return Err(QuantizeError::InvalidArgument(format!(
                "two tensors would be written as `{written}`; the checkpoint already uses a llama.cpp name"
            )));
        }
    }
    Ok(renames)
}

/// The per-tensor bar of a conversion on stderr (hidden when `show` is false).
pub(crate) fn progress_bar(
    tensors: usize,
    prefix: String,
    show: bool,
) -> Result<indicatif::ProgressBar> {
    let bar = if show {
        indicatif::ProgressBar::new(tensors as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix} [{bar:40}] {pos}/{len} tensors {elapsed_precise} {wide_msg}",
        )
        .map_err(|e| QuantizeError::InvalidArgument(e.to_string()))?
        .progress_chars("=> "),
    );
    bar.set_prefix(prefix);
    Ok(bar)
}

/// Writes the GGUF to a temporary file beside `out` and renames it into place; returns its size.
/// Tensor `i` of `tensors` is produced by `produce(i)` while the file is written.
pub(crate) fn write_atomically(
    out: &Path,
    metadata: &[(String, Value)],
    tensors: &[PlannedTensor],
    produce: impl FnMut(usize) -> Result<QTensor>,
) -> Result<u64> {
    let tmp = temp_path(out);
    let result = write_gguf(&tmp, metadata, tensors, produce).and_then(|()| {
        std::fs::rename(&tmp, out).map_err(|source| QuantizeError::Io {
            path: out.to_path_buf(),
            source,
        })
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    Ok(std::fs::metadata(out)
        .map_err(|source| QuantizeError::Io {
            path: out.to_path_buf(),
            source,
        })?
        .len())
}

/// `dir/.name.tmp-PID`: same folder (so the rename is atomic), hidden, unique per process.
fn temp_path(out: &Path) -> PathBuf {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model.gguf".into());
    out.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

fn write_gguf(
    path: &Path,
    metadata: &[(String, Value)],
    tensors: &[PlannedTensor],
    produce: impl FnMut(usize) -> Result<QTensor>,
) -> Result<()> {
    let io = |source| QuantizeError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::create(path).map_err(io)?;
    let w = std::io::BufWriter::new(file);
    let mut w = gguf_writer::write_streaming(w, path, metadata, tensors, produce)?;
    w.flush().map_err(io)?;
    let file = w.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)?;
    Ok(())
}
