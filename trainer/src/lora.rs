//! LoRA for training: which modules a `--targets q,k,v,o,gate,up,down` list means for a family,
//! A/B as `Var`s (A Kaiming-uniform, B zero, as PEFT), and merging an adapter into a base folder.

use crate::error::{Result, TrainError};
use crate::params::{copy_model_files, Params};
use candle_core::{DType, Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use runtime::adapter::{Adapters, LoraConfig, LoraDelta, LoraDropout};
use runtime::checkpoint::HfFolder;
use runtime::Model;
use std::collections::BTreeMap;
use std::path::Path;

pub struct LoraParams {
    pub config: LoraConfig,
    /// module → (A `[r, in]`, B `[out, r]`)
    pub modules: BTreeMap<String, (Var, Var)>,
}

/// The decoder module names (relative to a layer) a short target name stands for.
fn module_suffixes(model: &Model, target: &str) -> Vec<String> {
    let n = &model.spec.decoder.names;
    let pick = |s: &str, fused: &str| {
        if s.is_empty() {
            fused.to_string()
        } else {
            s.to_string()
        }
    };
    let named = match target {
        "q" => pick(&n.q, &n.qkv),
        "k" => pick(&n.k, &n.qkv),
        "v" => pick(&n.v, &n.qkv),
        "o" => n.o.clone(),
        "gate" => n.gate.clone(),
        "up" => n.up.clone(),
        "down" => n.down.clone(),
        // Anything else is taken as a module-name suffix, PEFT-style.
        other => other.to_string(),
    };
    if named.is_empty() {
        vec![]
    } else {
        vec![named]
    }
}

/// `(module, in, out)` of every linear the targets select, named as stored in `params`.
pub fn target_modules(
    model: &Model,
    params: &Params,
    targets: &[String],
) -> Result<Vec<(String, usize, usize)>> {
    let stored = |canonical: &str| -> Option<(String, Vec<usize>)> {
        model
            .aliases
            .candidates(canonical)
            .into_iter()
            .find_map(|c| {
                let w = format!("{c}.weight");
                params
                    .frozen
                    .get(&w)
                    .map(|t| t.dims().to_vec())
                    .or_else(|| params.trainable.get(&w).map(|v| v.dims().to_vec()))
                    .map(|d| (c, d))
            })
    };
    let names = &model.spec.decoder.names;
    let mut out: Vec<(String, usize, usize)> = Vec::new();
    for t in targets {
        let suffixes = module_suffixes(model, t);
        if suffixes.is_empty() {
            // A standard short name this family lacks (`gate` in a relu² MLP): nothing to adapt.
            continue;
        }
        let mut found = 0;
        for s in &suffixes {
            for i in 0..model.spec.decoder.layers {
                let canonical = format!("{}{s}", names.layer_prefix(i));
                if let Some((m, d)) = stored(&canonical) {
                    if d.len() == 2 && !out.iter().any(|(x, _, _)| *x == m) {
                        out.push((m, d[1], d[0]));
                        found += 1;
                    }
                }
            }
        }
        if found == 0
            && !out
                .iter()
                .any(|(m, _, _)| suffixes.iter().any(|s| m.ends_with(s.as_str())))
        {
            return Err(TrainError::Config(format!(
                "LoRA target `{t}` matched no weight of the checkpoint"
            )));
        }
    }
    if out.is_empty() {
        return Err(TrainError::Config(format!(
            "the LoRA targets {targets:?} select no weight of the {} decoder",
            model.spec.family
        )));
    }
    Ok(out)
}

impl LoraParams {
    /// Fresh adapters on `modules`: A ~ U(−1/√in, 1/√in) (PEFT's Kaiming-uniform with a = √5),
    /// B = 0, so training starts exactly at the base model.
    pub fn init(
        config: LoraConfig,
        modules: &[(String, usize, usize)],
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x10aa_10aa);
        let r = config.r;
        let mut out = BTreeMap::new();
        for (m, inp, outp) in modules {
            let bound = 1.0 / (*inp as f64).sqrt();
            let a: Vec<f32> = (0..r * inp)
                .map(|_| rng.random_range(-bound..bound) as f32)
                .collect();
            let a = Var::from_tensor(&Tensor::from_vec(a, (r, *inp), device)?)?;
            let b = Var::zeros((*outp, r), DType::F32, device)?;
            out.insert(m.clone(), (a, b));
        }
        Ok(LoraParams {
            config,
            modules: out,
        })
    }

    /// Loads a saved adapter for further training.
    pub fn from_adapters(a: &Adapters) -> Result<Self> {
        let mut modules = BTreeMap::new();
        for (m, d) in &a.modules {
            modules.insert(
                m.clone(),
                (Var::from_tensor(&d.a)?, Var::from_tensor(&d.b)?),
            );
        }
        Ok(LoraParams {
            config: a.config.clone(),
            modules,
        })
    }

    /// The runtime adapters: tracked (training forward, with seeded dropout) or detached.
    pub fn adapters(&self, tracked: bool, dropout_seed: Option<u64>) -> Adapters {
        let scale = self.config.scale();
        let p = self.config.lora_dropout as f32;
        let modules = self
            .modules
            .iter()
            .enumerate()
            .map(|(k, (m, (a, b)))| {
                let (a, b) = if tracked {
                    (a.as_tensor().clone(), b.as_tensor().clone())
                } else {
                    (a.as_tensor().detach(), b.as_tensor().detach())
                };
                let dropout = match dropout_seed {
                    Some(s) if p > 0.0 => Some(LoraDropout::new(p, s.wrapping_add(k as u64))),
                    _ => None,
                };
                (
                    m.clone(),
                    LoraDelta {
                        a,
                        b,
                        scale,
                        dropout,
                    },
                )
            })
            .collect();
        Adapters {
            config: self.config.clone(),
            modules,
        }
    }

    /// A and B as named trainable variables (`<module>.lora_A` / `.lora_B`) for the optimizer.
    pub fn vars(&self) -> BTreeMap<String, Var> {
        let mut v = BTreeMap::new();
        for (m, (a, b)) in &self.modules {
            v.insert(format!("{m}.lora_A"), a.clone());
            v.insert(format!("{m}.lora_B"), b.clone());
        }
        v
    }

    pub fn elements(&self) -> usize {
        self.modules
            .values()
            .map(|(a, b)| a.elem_count() + b.elem_count())
            .sum()
    }
}

/// Folds a PEFT adapter into a base HF folder: `W += scale · B A` for each adapted module; every
/// other tensor and file is copied unchanged.
pub fn merge_into_folder(base: &Path, adapter: &Path, out: &Path) -> Result<usize> {
    if base.is_file() {
        return Err(TrainError::Config(
            "merge-lora needs the base model as an HF folder (merge first, then quantize)".into(),
        ));
    }
    let folder = HfFolder::open(base)?;
    let adapters = Adapters::load_peft(adapter, &Device::Cpu)?;
    let mut tensors = crate::params::load_all(&folder.tensors, DType::F32, &Device::Cpu)?;
    let mut merged = 0;
    for (m, d) in &adapters.modules {
        let wname = format!("{m}.weight");
        let Some(w) = tensors.get(&wname) else {
            return Err(TrainError::Config(format!(
                "the adapter targets `{m}`, which {} does not have",
                base.display()
            )));
        };
        let delta = d.merged_delta()?;
        if delta.dims() != w.dims() {
            return Err(TrainError::Config(format!(
                "adapter delta for `{m}` is {:?}, the weight {:?}",
                delta.dims(),
                w.dims()
            )));
        }
        let new = (w + delta)?;
        tensors.insert(wname, new);
        merged += 1;
    }
    copy_model_files(base, out)?;
    runtime::checkpoint::write_safetensors(&out.join("model.safetensors"), &tensors)?;
    Ok(merged)
}
