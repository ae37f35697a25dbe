//! Checkpoint access: a Hugging Face folder (config files, tokenizer files, safetensors shards).
//!
//! Tensors are read through the [`TensorSource`] trait so that the model builders do not care whether
//! weights come from safetensors shards or (later) a GGUF file. Families describe their tensor names
//! with canonical names plus [`NameAliases`], so legacy and current hub layouts both load.

pub mod gguf;
pub mod llama_names;
mod memory;
mod safetensors;

pub use self::gguf::GgufFile;
pub use self::memory::{FreshInit, MemoryTensors};
pub use self::safetensors::{write_safetensors, SafetensorsFiles};

use crate::error::{Error, Result};
use candle_core::quantized::QTensor;
use candle_core::{DType, Device, Tensor};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Something that can hand out named tensors.
pub trait TensorSource: Send + Sync {
    fn contains(&self, name: &str) -> bool;
    fn shape(&self, name: &str) -> Option<Vec<usize>>;
    /// Loads a tensor converted to `dtype` on `device`.
    fn load(&self, name: &str, dtype: DType, device: &Device) -> Result<Tensor>;
    /// The tensor as stored blocks when the source holds it block-quantized (GGUF q8_0, q4_k, …),
    /// for quantized matmuls; `None` for dense tensors (load those with [`TensorSource::load`]).
    fn load_quantized(&self, _name: &str, _device: &Device) -> Result<Option<QTensor>> {
        Ok(None)
    }
    fn names(&self) -> Vec<String>;
    /// Storage dtypes present, for `inspect`.
    fn dtype_name(&self, name: &str) -> Option<String>;
    /// Called before `name` is read with the shape the model expects: a source that creates
    /// tensors on demand (a fresh initialisation) makes it now. Stored checkpoints do nothing.
    fn materialize(&self, _name: &str, _shape: &[usize]) -> Result<()> {
        Ok(())
    }
}

/// Prefix rewrites tried in order when a canonical name is absent (e.g. Fuyu's legacy
/// `language_model.model.` ↔ transformers ≥ 5 `model.language_model.`).
#[derive(Debug, Clone, Default)]
pub struct NameAliases(pub Vec<(String, String)>);

impl NameAliases {
    pub fn new(pairs: &[(&str, &str)]) -> Self {
        NameAliases(
            pairs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        )
    }

    /// The first spelling of `name` that `source` holds.
    pub fn find(&self, source: &dyn TensorSource, name: &str) -> Option<String> {
        self.candidates(name)
            .into_iter()
            .find(|c| source.contains(c))
    }

    /// All candidate spellings of `name`, canonical first.
    pub fn candidates(&self, name: &str) -> Vec<String> {
        let mut out = vec![name.to_string()];
        for (from, to) in &self.0 {
            if let Some(rest) = name.strip_prefix(from.as_str()) {
                let alt = format!("{to}{rest}");
                if !out.contains(&alt) {
                    out.push(alt);
                }
            }
        }
        out
    }
}

/// Typed access to a checkpoint's tensors: resolves aliases, checks shapes, converts dtype.
pub struct Weights<'a> {
    pub source: &'a dyn TensorSource,
    pub aliases: NameAliases,
    pub dtype: DType,
    pub device: Device,
    /// LoRA deltas the decoder's linears pick up by module name.
    pub adapters: Option<&'a crate::adapter::Adapters>,
}

impl<'a> Weights<'a> {
    fn resolve(&self, name: &str) -> Option<String> {
        self.aliases.find(self.source, name)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.resolve(name).is_some()
    }

    /// The adapter delta for module `name` (any alias spelling), if an adapter targets it.
    pub fn adapter(&self, name: &str) -> Option<&'a crate::adapter::LoraDelta> {
        let adapters = self.adapters?;
        self.aliases
            .candidates(name)
            .iter()
            .find_map(|c| adapters.get(c))
    }

    pub fn shape(&self, name: &str) -> Result<Vec<usize>> {
        let found = self.resolve(name).ok_or_else(|| self.missing(name))?;
        Ok(self.source.shape(&found).unwrap_or_default())
    }

    fn missing(&self, name: &str) -> Error {
        Error::MissingTensor {
            name: name.to_string(),
            tried: self.aliases.candidates(name).join(", "),
        }
    }

    /// Loads `name`, checking its shape against `expected`.
    pub fn get(&self, name: &str, expected: &[usize]) -> Result<Tensor> {
        self.get_as(name, expected, self.dtype)
    }

    /// Like [`Weights::get`] but in a given dtype (norms and biases stay f32 for accuracy).
    pub fn get_as(&self, name: &str, expected: &[usize], dtype: DType) -> Result<Tensor> {
        let found = self.resolve(name).ok_or_else(|| self.missing(name))?;
        self.source.materialize(&found, expected)?;
        let actual = self.source.shape(&found).unwrap_or_default();
        if actual != expected {
            return Err(Error::TensorShape {
                name: found,
                actual,
                expected: expected.to_vec(),
            });
        }
        self.source.load(&found, dtype, &self.device)
    }

    /// Loads `name` as stored blocks if the source holds it block-quantized, checking its shape.
    pub fn get_quantized(&self, name: &str, expected: &[usize]) -> Result<Option<QTensor>> {
        let found = self.resolve(name).ok_or_else(|| self.missing(name))?;
        self.source.materialize(&found, expected)?;
        let actual = self.source.shape(&found).unwrap_or_default();
        if actual != expected {
            return Err(Error::TensorShape {
                name: found,
                actual,
                expected: expected.to_vec(),
            });
        }
        self.source.load_quantized(&found, &self.device)
    }

    /// Loads `name` if present (optional biases).
    pub fn get_opt(&self, name: &str, expected: &[usize]) -> Result<Option<Tensor>> {
        if self.contains(name) {
            self.get_as(name, expected, DType::F32).map(Some)
        } else {
            Ok(None)
        }
    }
}

/// A Hugging Face checkpoint folder as the hub ships it, or the same content read back from a
/// self-contained GGUF file (then `dir` is the file's path and the configs come from its metadata).
pub struct HfFolder {
    pub dir: PathBuf,
    pub config: Value,
    pub preprocessor_config: Option<Value>,
    pub generation_config: Option<Value>,
    pub tensors: CheckpointTensors,
}

impl HfFolder {
    pub fn open(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::config(
                dir,
                "not a model folder (expected a directory with config.json, or a .gguf file)",
            ));
        }
        let config = read_json(&dir.join("config.json"))?;
        if !config.is_object() {
            return Err(Error::config(
                dir.join("config.json"),
                "expected a JSON object",
            ));
        }
        let preprocessor_config = read_json_opt(&dir.join("preprocessor_config.json"))?;
        let generation_config = read_json_opt(&dir.join("generation_config.json"))?;
        let tensors = SafetensorsFiles::open_folder(dir)?;
        Ok(HfFolder {
            dir: dir.to_path_buf(),
            config,
            preprocessor_config,
            generation_config,
            tensors: CheckpointTensors::Safetensors(tensors),
        })
    }

    /// Reads a GGUF written by `monovlm quantize`: configs from its embedded files, tensors mapped.
    /// Returns the file too, for the embedded tokenizer files.
    pub fn open_gguf(path: &Path) -> Result<(Self, std::sync::Arc<GgufFile>)> {
        let mut file = GgufFile::open(path)?;
        file.restore_checkpoint_names()?;
        let file = std::sync::Arc::new(file);
        let config = file.embedded_json("config.json")?.ok_or_else(|| {
            Error::config(
                path,
                "this GGUF has no embedded config.json (monovlm.file.config.json); \
                 convert the checkpoint with `monovlm quantize`",
            )
        })?;
        if !config.is_object() {
            return Err(Error::config(
                path.join("config.json"),
                "expected a JSON object",
            ));
        }
        let folder = HfFolder {
            dir: path.to_path_buf(),
            config,
            preprocessor_config: file.embedded_json("preprocessor_config.json")?,
            generation_config: file.embedded_json("generation_config.json")?,
            tensors: CheckpointTensors::Gguf(file.clone()),
        };
        Ok((folder, file))
    }
}

/// The tensors of a checkpoint: safetensors shards, or a GGUF file (shared with the tokenizer
/// loader, which reads its embedded files).
pub enum CheckpointTensors {
    Safetensors(SafetensorsFiles),
    Gguf(std::sync::Arc<GgufFile>),
    /// Parameters held in memory (training), or a fresh initialisation.
    Memory(std::sync::Arc<MemoryTensors>),
}

impl CheckpointTensors {
    fn inner(&self) -> &dyn TensorSource {
        match self {
            CheckpointTensors::Safetensors(s) => s,
            CheckpointTensors::Gguf(g) => &**g,
            CheckpointTensors::Memory(m) => &**m,
        }
    }
}

impl TensorSource for CheckpointTensors {
    fn contains(&self, name: &str) -> bool {
        self.inner().contains(name)
    }
    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.inner().shape(name)
    }
    fn load(&self, name: &str, dtype: DType, device: &Device) -> Result<Tensor> {
        self.inner().load(name, dtype, device)
    }
    fn load_quantized(&self, name: &str, device: &Device) -> Result<Option<QTensor>> {
        self.inner().load_quantized(name, device)
    }
    fn names(&self) -> Vec<String> {
        self.inner().names()
    }
    fn dtype_name(&self, name: &str) -> Option<String> {
        self.inner().dtype_name(name)
    }
    fn materialize(&self, name: &str, shape: &[usize]) -> Result<()> {
        self.inner().materialize(name, shape)
    }
}

/// Reads a JSON file, with errors naming the file.
pub fn read_json(path: &Path) -> Result<Value> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Json {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

pub fn read_json_opt(path: &Path) -> Result<Option<Value>> {
    if path.exists() {
        read_json(path).map(Some)
    } else {
        Ok(None)
    }
}

/// Small typed accessors over `serde_json::Value` configs that produce errors naming the field.
pub struct ConfigView<'a> {
    pub path: &'a Path,
    pub value: &'a Value,
}

impl<'a> ConfigView<'a> {
    pub fn new(path: &'a Path, value: &'a Value) -> Self {
        ConfigView { path, value }
    }

    /// Looks a key up at the top level, then in `text_config` (newer transformers nest LM fields).
    pub fn lookup(&self, key: &str) -> Option<&'a Value> {
        let v = self.value.get(key).filter(|v| !v.is_null());
        v.or_else(|| {
            self.value
                .get("text_config")
                .and_then(|t| t.get(key))
                .filter(|v| !v.is_null())
        })
    }

    pub fn usize(&self, key: &str) -> Result<usize> {
        self.usize_opt(key)?
            .ok_or_else(|| Error::config(self.path, format!("missing field `{key}`")))
    }

    pub fn usize_opt(&self, key: &str) -> Result<Option<usize>> {
        match self.lookup(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .filter(|&n| n <= (1 << 40))
                .map(|n| Some(n as usize))
                .ok_or_else(|| {
                    Error::config(
                        self.path,
                        format!("field `{key}` must be a non-negative integer, got {v}"),
                    )
                }),
        }
    }

    pub fn f64(&self, key: &str) -> Result<f64> {
        self.f64_opt(key)?
            .ok_or_else(|| Error::config(self.path, format!("missing field `{key}`")))
    }

    pub fn f64_opt(&self, key: &str) -> Result<Option<f64>> {
        match self.lookup(key) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .filter(|x| x.is_finite())
                .map(Some)
                .ok_or_else(|| {
                    Error::config(
                        self.path,
                        format!("field `{key}` must be a number, got {v}"),
                    )
                }),
        }
    }

    pub fn bool_or(&self, key: &str, default: bool) -> Result<bool> {
        match self.lookup(key) {
            None => Ok(default),
            Some(v) => v.as_bool().ok_or_else(|| {
                Error::config(
                    self.path,
                    format!("field `{key}` must be true or false, got {v}"),
                )
            }),
        }
    }

    pub fn str_opt(&self, key: &str) -> Option<&'a str> {
        self.lookup(key).and_then(|v| v.as_str())
    }
}
