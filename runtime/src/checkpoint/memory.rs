//! Tensors held in memory: a trainer's parameters, or a fresh random initialisation whose tensors
//! are created on first request with the shape the model asks for (so a new model of any family
//! needs no hand-written list of its weights).

use super::TensorSource;
use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::sync::RwLock;

/// How a fresh model's weights are drawn: matrices ~ N(0, std²), 1-D `*.weight` (norm scales) = 1,
/// `*.bias` = 0. Each tensor's stream is seeded from (seed, name), so the result does not depend on
/// the order the model asks for them.
#[derive(Debug, Clone, Copy)]
pub struct FreshInit {
    pub std: f64,
    pub seed: u64,
}

pub struct MemoryTensors {
    tensors: RwLock<BTreeMap<String, Tensor>>,
    fresh: Option<FreshInit>,
}

impl MemoryTensors {
    pub fn new(tensors: BTreeMap<String, Tensor>) -> Self {
        MemoryTensors {
            tensors: RwLock::new(tensors),
            fresh: None,
        }
    }

    /// An empty source that creates every tensor the model requests.
    pub fn fresh(init: FreshInit) -> Self {
        MemoryTensors {
            tensors: RwLock::new(BTreeMap::new()),
            fresh: Some(init),
        }
    }

    /// The tensors held (for a fresh source: those created so far).
    pub fn snapshot(&self) -> BTreeMap<String, Tensor> {
        self.tensors.read().map(|m| m.clone()).unwrap_or_default()
    }

    fn get(&self, name: &str) -> Option<Tensor> {
        self.tensors.read().ok()?.get(name).cloned()
    }
}

fn name_seed(seed: u64, name: &str) -> u64 {
    // FNV-1a over the name, mixed with the seed.
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for b in name.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn init_tensor(init: &FreshInit, name: &str, shape: &[usize]) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let data: Vec<f32> = if name.ends_with(".bias") {
        vec![0.0; n]
    } else if shape.len() == 1 {
        vec![1.0; n]
    } else {
        let mut rng = rand::rngs::StdRng::seed_from_u64(name_seed(init.seed, name));
        // Box–Muller pairs.
        let mut v = Vec::with_capacity(n + 1);
        while v.len() < n {
            let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
            let u2: f64 = rng.random::<f64>();
            let r = (-2.0 * u1.ln()).sqrt() * init.std;
            let t = std::f64::consts::TAU * u2;
            v.push((r * t.cos()) as f32);
            v.push((r * t.sin()) as f32);
        }
        v.truncate(n);
        v
    };
    Ok(Tensor::from_vec(data, shape, &Device::Cpu)?)
}

impl TensorSource for MemoryTensors {
    fn contains(&self, name: &str) -> bool {
        self.fresh.is_some() || self.get(name).is_some()
    }

    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.get(name).map(|t| t.dims().to_vec())
    }

    fn materialize(&self, name: &str, shape: &[usize]) -> Result<()> {
        let Some(init) = &self.fresh else {
            return Ok(());
        };
        if self.get(name).is_some() {
            return Ok(());
        }
        let t = init_tensor(init, name, shape)?;
        self.tensors
            .write()
            .map_err(|_| Error::InvalidArgument("tensor map poisoned".into()))?
            .insert(name.to_string(), t);
        Ok(())
    }

    fn load(&self, name: &str, dtype: DType, device: &Device) -> Result<Tensor> {
        let t = self.get(name).ok_or_else(|| Error::MissingTensor {
            name: name.to_string(),
            tried: name.to_string(),
        })?;
        Ok(t.to_dtype(dtype)?.to_device(device)?)
    }

    fn names(&self) -> Vec<String> {
        self.tensors
            .read()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn dtype_name(&self, name: &str) -> Option<String> {
        self.get(name)
            .map(|t| format!("{:?}", t.dtype()).to_lowercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_tensors_follow_the_init_rules_and_are_order_independent() {
        let init = FreshInit { std: 0.02, seed: 7 };
        let a = MemoryTensors::fresh(init);
        a.materialize("x.weight", &[64, 32]).unwrap();
        a.materialize("n.weight", &[32]).unwrap();
        a.materialize("x.bias", &[64]).unwrap();
        let b = MemoryTensors::fresh(init);
        b.materialize("x.bias", &[64]).unwrap();
        b.materialize("x.weight", &[64, 32]).unwrap();
        let w = |s: &MemoryTensors, n: &str| -> Vec<f32> {
            s.load(n, DType::F32, &Device::Cpu)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap()
        };
        assert_eq!(w(&a, "x.weight"), w(&b, "x.weight"));
        assert!(w(&a, "n.weight").iter().all(|&v| v == 1.0));
        assert!(w(&a, "x.bias").iter().all(|&v| v == 0.0));
        let v = w(&a, "x.weight");
        let mean = v.iter().sum::<f32>() / v.len() as f32;
        let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / v.len() as f32).sqrt();
        assert!(
            mean.abs() < 0.003 && (sd - 0.02).abs() < 0.002,
            "{mean} {sd}"
        );
    }
}
