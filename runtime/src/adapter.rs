//! LoRA adapters in PEFT's on-disk format (`adapter_config.json` + `adapter_model.safetensors`
//! with `base_model.model.<module>.lora_A.weight` `[r, in]` and `…lora_B.weight` `[out, r]`).
//! The decoder's linears pick up the delta of their module at load, so an adapter runs on top of
//! any base (f32, bf16, or quantized GGUF) without merging.

use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The fields of PEFT's `LoraConfig` we read and write.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoraConfig {
    #[serde(default = "lora_type")]
    pub peft_type: String,
    pub r: usize,
    pub lora_alpha: f64,
    #[serde(default)]
    pub lora_dropout: f64,
    /// Module-name suffixes (PEFT matches a target against the end of the module path).
    pub target_modules: Vec<String>,
    #[serde(default)]
    pub use_rslora: bool,
    #[serde(default)]
    pub fan_in_fan_out: bool,
    #[serde(default = "no_bias")]
    pub bias: String,
    #[serde(default)]
    pub base_model_name_or_path: Option<String>,
    #[serde(default = "causal_lm")]
    pub task_type: String,
    #[serde(default = "yes")]
    pub inference_mode: bool,
}

fn lora_type() -> String {
    "LORA".into()
}
fn no_bias() -> String {
    "none".into()
}
fn causal_lm() -> String {
    "CAUSAL_LM".into()
}
fn yes() -> bool {
    true
}

impl LoraConfig {
    pub fn new(r: usize, lora_alpha: f64, target_modules: Vec<String>) -> Self {
        LoraConfig {
            peft_type: lora_type(),
            r,
            lora_alpha,
            lora_dropout: 0.0,
            target_modules,
            use_rslora: false,
            fan_in_fan_out: false,
            bias: no_bias(),
            base_model_name_or_path: None,
            task_type: causal_lm(),
            inference_mode: true,
        }
    }

    /// The factor on `B·A`: `alpha / r`, or `alpha / √r` with rsLoRA.
    pub fn scale(&self) -> f64 {
        if self.use_rslora {
            self.lora_alpha / (self.r as f64).sqrt()
        } else {
            self.lora_alpha / self.r as f64
        }
    }

    /// Whether a module path (e.g. `model.layers.3.self_attn.q_proj`) is targeted.
    pub fn targets(&self, module: &str) -> bool {
        self.target_modules
            .iter()
            .any(|t| module == t || module.ends_with(&format!(".{t}")))
    }
}

/// Training-time dropout on the adapter's input, from a seeded stream (so runs repeat exactly).
#[derive(Debug, Clone)]
pub struct LoraDropout {
    pub p: f32,
    pub rng: Arc<Mutex<rand::rngs::StdRng>>,
}

impl LoraDropout {
    pub fn new(p: f32, seed: u64) -> Self {
        LoraDropout {
            p,
            rng: Arc::new(Mutex::new(rand::rngs::StdRng::seed_from_u64(seed))),
        }
    }

    fn apply(&self, x: &Tensor) -> Result<Tensor> {
        let n = x.elem_count();
        let keep = 1.0 - self.p;
        let mask: Vec<f32> = {
            let mut rng = self
                .rng
                .lock()
                .map_err(|_| Error::InvalidArgument("dropout stream poisoned".into()))?;
            (0..n)
                .map(|_| {
                    if rng.random::<f32>() < keep {
                        1.0 / keep
                    } else {
                        0.0
                    }
                })
                .collect()
        };
        let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
        Ok((x * mask)?)
    }
}

/// One module's low-rank update: `y += scale · (x Aᵀ) Bᵀ`.
#[derive(Debug, Clone)]
pub struct LoraDelta {
    /// `[r, in]`
    pub a: Tensor,
    /// `[out, r]`
    pub b: Tensor,
    pub scale: f64,
    pub dropout: Option<LoraDropout>,
}

impl LoraDelta {
    /// The update for `x` `[T, in]` → `[T, out]`, in `x`'s dtype.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let xin = match &self.dropout {
            Some(d) if d.p > 0.0 => d.apply(x)?,
            _ => x.clone(),
        };
        let a = self.a.to_dtype(x.dtype())?;
        let b = self.b.to_dtype(x.dtype())?;
        Ok((xin.matmul(&a.t()?)?.matmul(&b.t()?)? * self.scale)?)
    }

    /// The same update restricted to output rows `idx` (for fused projections split at load).
    pub fn select_rows(&self, idx: &Tensor) -> Result<Self> {
        Ok(LoraDelta {
            a: self.a.clone(),
            b: self.b.index_select(&idx.to_device(self.b.device())?, 0)?,
            scale: self.scale,
            dropout: self.dropout.clone(),
        })
    }

    /// `scale · B A` `[out, in]` in f32, to fold into the base weight.
    pub fn merged_delta(&self) -> Result<Tensor> {
        let a = self.a.to_dtype(DType::F32)?;
        let b = self.b.to_dtype(DType::F32)?;
        Ok((b.matmul(&a)? * self.scale)?)
    }
}

/// PEFT's tensor-name prefix.
pub const PEFT_PREFIX: &str = "base_model.model.";

/// A set of LoRA deltas keyed by module path (the checkpoint's tensor name without `.weight`).
#[derive(Debug, Clone)]
pub struct Adapters {
    pub config: LoraConfig,
    pub modules: BTreeMap<String, LoraDelta>,
}

impl Adapters {
    pub fn get(&self, module: &str) -> Option<&LoraDelta> {
        self.modules.get(module)
    }

    /// Reads a PEFT adapter folder.
    pub fn load_peft(dir: &Path, device: &Device) -> Result<Self> {
        let cfg_path = dir.join("adapter_config.json");
        let bytes = std::fs::read(&cfg_path).map_err(|e| Error::io(&cfg_path, e))?;
        let config: LoraConfig = serde_json::from_slice(&bytes).map_err(|e| Error::Json {
            path: cfg_path.clone(),
            message: e.to_string(),
        })?;
        if config.peft_type != "LORA" {
            return Err(Error::config(
                &cfg_path,
                format!(
                    "peft_type `{}` is not supported (LORA only)",
                    config.peft_type
                ),
            ));
        }
        if config.r == 0 || !config.lora_alpha.is_finite() {
            return Err(Error::config(
                &cfg_path,
                "r must be > 0 and lora_alpha finite",
            ));
        }
        if config.fan_in_fan_out {
            return Err(Error::config(
                &cfg_path,
                "fan_in_fan_out adapters (GPT-2 Conv1D) are not supported",
            ));
        }
        let st_path = dir.join("adapter_model.safetensors");
        let files =
            crate::checkpoint::SafetensorsFiles::open_files(std::slice::from_ref(&st_path))?;
        use crate::checkpoint::TensorSource;
        let mut modules = BTreeMap::new();
        for name in files.names() {
            let Some(rest) = name.strip_prefix(PEFT_PREFIX) else {
                continue;
            };
            let Some(module) = rest.strip_suffix(".lora_A.weight") else {
                continue;
            };
            let b_name = format!("{PEFT_PREFIX}{module}.lora_B.weight");
            let (Some(sa), Some(sb)) = (files.shape(&name), files.shape(&b_name)) else {
                return Err(Error::config(
                    &st_path,
                    format!("`{name}` has no matching `{b_name}`"),
                ));
            };
            if sa.len() != 2 || sb.len() != 2 || sa[0] != config.r || sb[1] != config.r {
                return Err(Error::config(
                    &st_path,
                    format!(
                        "{module}: lora_A {sa:?} / lora_B {sb:?} do not have rank {}",
                        config.r
                    ),
                ));
            }
            let a = files.load(&name, DType::F32, device)?;
            let b = files.load(&b_name, DType::F32, device)?;
            modules.insert(
                module.to_string(),
                LoraDelta {
                    a,
                    b,
                    scale: config.scale(),
                    dropout: None,
                },
            );
        }
        if modules.is_empty() {
            return Err(Error::config(
                &st_path,
                "no `base_model.model.*.lora_A.weight` tensors",
            ));
        }
        Ok(Adapters { config, modules })
    }

    /// Writes `dir/adapter_config.json` and `dir/adapter_model.safetensors` (f32).
    pub fn save_peft(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let mut tensors = BTreeMap::new();
        for (m, d) in &self.modules {
            tensors.insert(
                format!("{PEFT_PREFIX}{m}.lora_A.weight"),
                d.a.to_dtype(DType::F32)?.to_device(&Device::Cpu)?,
            );
            tensors.insert(
                format!("{PEFT_PREFIX}{m}.lora_B.weight"),
                d.b.to_dtype(DType::F32)?.to_device(&Device::Cpu)?,
            );
        }
        crate::checkpoint::write_safetensors(&dir.join("adapter_model.safetensors"), &tensors)?;
        let cfg = serde_json::to_vec_pretty(&self.config)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let cfg_path = dir.join("adapter_config.json");
        std::fs::write(&cfg_path, cfg).map_err(|e| Error::io(&cfg_path, e))?;
        Ok(())
    }
}
