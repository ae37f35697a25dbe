//! The parameters being trained: every tensor of the checkpoint in f32, the trainable ones as
//! candle `Var`s. The model is rebuilt from them for each step (through the runtime's own
//! loaders), so training and inference share one model definition.

use crate::error::{Result, TrainError};
use candle_core::{DType, Device, Tensor, Var};
use runtime::checkpoint::{MemoryTensors, TensorSource, Weights};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

pub struct Params {
    pub frozen: BTreeMap<String, Tensor>,
    pub trainable: BTreeMap<String, Var>,
}

impl Params {
    /// Loads every tensor of `src` in `dtype` on `device`; `trainable(name)` picks the `Var`s.
    pub fn load(
        src: &dyn TensorSource,
        device: &Device,
        dtype: DType,
        trainable: impl Fn(&str) -> bool,
    ) -> Result<Self> {
        let mut frozen = BTreeMap::new();
        let mut vars = BTreeMap::new();
        for (name, t) in load_all(src, dtype, device)? {
            if trainable(&name) {
                vars.insert(name, Var::from_tensor(&t)?);
            } else {
                frozen.insert(name, t);
            }
        }
        Ok(Params {
            frozen,
            trainable: vars,
        })
    }

    /// The current values, trainable ones still attached to their `Var` (for a training forward).
    pub fn tracked(&self) -> MemoryTensors {
        let mut m = self.frozen.clone();
        for (n, v) in &self.trainable {
            m.insert(n.clone(), v.as_tensor().clone());
        }
        MemoryTensors::new(m)
    }

    /// The current values with no autograd tracking (evaluation, saving).
    pub fn detached(&self) -> BTreeMap<String, Tensor> {
        let mut m = self.frozen.clone();
        for (n, v) in &self.trainable {
            m.insert(n.clone(), v.as_tensor().detach());
        }
        m
    }

    pub fn trainable_elements(&self) -> usize {
        self.trainable.values().map(|v| v.elem_count()).sum()
    }

    pub fn total_elements(&self) -> usize {
        self.trainable_elements() + self.frozen.values().map(|t| t.elem_count()).sum::<usize>()
    }
}

/// Every tensor of `src`, by name, in `dtype` on `device`.
pub fn load_all(
    src: &dyn TensorSource,
    dtype: DType,
    device: &Device,
) -> Result<BTreeMap<String, Tensor>> {
    let mut all = BTreeMap::new();
    for name in src.names() {
        let t = src.load(&name, dtype, device)?;
        all.insert(name, t);
    }
    Ok(all)
}

/// A source that remembers which tensors were read (to learn which belong to the front end).
pub struct Recording<'a> {
    inner: &'a dyn TensorSource,
    pub read: Mutex<Vec<String>>,
}

impl<'a> Recording<'a> {
    pub fn new(inner: &'a dyn TensorSource) -> Self {
        Recording {
            inner,
            read: Mutex::new(Vec::new()),
        }
    }

    fn note(&self, name: &str) {
        if let Ok(mut r) = self.read.lock() {
            r.push(name.to_string());
        }
    }
}

impl TensorSource for Recording<'_> {
    fn contains(&self, name: &str) -> bool {
        self.inner.contains(name)
    }
    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.inner.shape(name)
    }
    fn load(&self, name: &str, dtype: DType, device: &Device) -> runtime::Result<Tensor> {
        self.note(name);
        self.inner.load(name, dtype, device)
    }
    fn load_quantized(
        &self,
        name: &str,
        device: &Device,
    ) -> runtime::Result<Option<candle_core::quantized::QTensor>> {
        self.note(name);
        self.inner.load_quantized(name, device)
    }
    fn names(&self) -> Vec<String> {
        self.inner.names()
    }
    fn dtype_name(&self, name: &str) -> Option<String> {
        self.inner.dtype_name(name)
    }
    fn materialize(&self, name: &str, shape: &[usize]) -> runtime::Result<()> {
        self.inner.materialize(name, shape)
    }
}

/// Names of the tensors the image front end of `model` reads from `src`.
pub fn frontend_tensor_names(
    model: &runtime::Model,
    src: &dyn TensorSource,
) -> Result<Vec<String>> {
    let rec = Recording::new(src);
    let w = Weights {
        source: &rec,
        aliases: model.aliases.clone(),
        dtype: DType::F32,
        device: Device::Cpu,
        adapters: None,
    };
    let patch_dim = model.spec.preprocess.patch * model.spec.preprocess.patch * 3;
    runtime::frontend::Frontend::load(
        &model.spec.frontend,
        &w,
        patch_dim,
        model.spec.decoder.hidden,
    )?;
    let mut names = rec.read.into_inner().unwrap_or_default();
    names.sort();
    names.dedup();
    if names.is_empty() {
        return Err(TrainError::Config(format!(
            "the {} front end reads no tensors: nothing to train with --method frontend",
            model.spec.family
        )));
    }
    Ok(names)
}

/// Files of an HF folder that are not weights (configs, tokenizer, templates), to copy along.
pub fn copy_model_files(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).map_err(|e| TrainError::io(to, e))?;
    let entries = std::fs::read_dir(from).map_err(|e| TrainError::io(from, e))?;
    for e in entries {
        let e = e.map_err(|e| TrainError::io(from, e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        let is_weights = name.ends_with(".safetensors")
            || name == "model.safetensors.index.json"
            || name.ends_with(".bin")
            || name.ends_with(".gguf");
        let keep = name.ends_with(".json")
            || name.ends_with(".model")
            || name.ends_with(".txt")
            || name.ends_with(".jinja")
            || name.ends_with(".tiktoken");
        if keep && !is_weights && e.path().is_file() {
            std::fs::copy(e.path(), to.join(&name)).map_err(|err| TrainError::io(e.path(), err))?;
        }
    }
    Ok(())
}

/// Writes an HF folder: the config/tokenizer files of `template_dir` and `tensors` as
/// `model.safetensors`.
pub fn save_hf_folder(
    template_dir: &Path,
    tensors: &BTreeMap<String, Tensor>,
    out: &Path,
) -> Result<()> {
    copy_model_files(template_dir, out)?;
    runtime::checkpoint::write_safetensors(&out.join("model.safetensors"), tensors)?;
    Ok(())
}
