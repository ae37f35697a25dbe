//! AdamW with decoupled weight decay, warmup + cosine learning rate, global-norm gradient
//! clipping. The moments are plain tensors keyed by parameter name, so they save and resume.

use crate::error::Result;
use candle_core::{Device, Tensor, Var};
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone, Copy)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }
}

pub struct AdamW {
    pub config: AdamWConfig,
    /// Steps taken (for bias correction).
    pub t: u64,
    m: BTreeMap<String, Tensor>,
    v: BTreeMap<String, Tensor>,
}

impl AdamW {
    pub fn new(config: AdamWConfig) -> Self {
        AdamW {
            config,
            t: 0,
            m: BTreeMap::new(),
            v: BTreeMap::new(),
        }
    }

    /// One update of every parameter with a gradient. Weight decay only on matrices (not on norm
    /// scales and biases), as is usual for transformers.
    pub fn step(
        &mut self,
        params: &BTreeMap<String, Var>,
        grads: &BTreeMap<String, Tensor>,
        lr: f64,
    ) -> Result<()> {
        self.t += 1;
        let c = self.config;
        let bc1 = 1.0 - c.beta1.powi(self.t as i32);
        let bc2 = 1.0 - c.beta2.powi(self.t as i32);
        for (name, var) in params {
            let Some(g) = grads.get(name) else { continue };
            let m = match self.m.get(name) {
                Some(m) => ((m * c.beta1)? + (g * (1.0 - c.beta1))?)?,
                None => (g * (1.0 - c.beta1))?,
            };
            let v = match self.v.get(name) {
                Some(v) => ((v * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?,
                None => (g.sqr()? * (1.0 - c.beta2))?,
            };
            let update = ((&m / bc1)? / ((&v / bc2)?.sqrt()? + c.eps)?)?;
            let theta = var.as_tensor();
            let decayed = if theta.rank() >= 2 && c.weight_decay > 0.0 {
                (theta * (1.0 - lr * c.weight_decay))?
            } else {
                theta.clone()
            };
            var.set(&(decayed - (update * lr)?)?)?;
            self.m.insert(name.clone(), m);
            self.v.insert(name.clone(), v);
        }
        Ok(())
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let mut all = BTreeMap::new();
        for (n, t) in &self.m {
            all.insert(format!("m.{n}"), t.clone());
        }
        for (n, t) in &self.v {
            all.insert(format!("v.{n}"), t.clone());
        }
        all.insert(
            "t".to_string(),
            Tensor::new(&[self.t as f32], &Device::Cpu)?,
        );
        runtime::checkpoint::write_safetensors(path, &all)?;
        Ok(())
    }

    pub fn load(config: AdamWConfig, path: &Path, device: &Device) -> Result<Self> {
        let all = candle_core::safetensors::load(path, device)?;
        let mut opt = AdamW::new(config);
        for (k, t) in all {
            if let Some(n) = k.strip_prefix("m.") {
                opt.m.insert(n.to_string(), t);
            } else if let Some(n) = k.strip_prefix("v.") {
                opt.v.insert(n.to_string(), t);
            } else if k == "t" {
                opt.t = t.to_vec1::<f32>()?.first().copied().unwrap_or(0.0) as u64;
            }
        }
        Ok(opt)
    }
}

/// Linear warmup to `peak` over `warmup` steps, then cosine decay to `peak · min_ratio` at `total`.
pub fn learning_rate(step: usize, total: usize, warmup: usize, peak: f64, min_ratio: f64) -> f64 {
    if warmup > 0 && step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let span = total.saturating_sub(warmup).max(1);
    let progress = ((step - warmup.min(step)) as f64 / span as f64).min(1.0);
    let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
    peak * (min_ratio + (1.0 - min_ratio) * cosine)
}

/// Scales `grads` in place so their global L2 norm is at most `max_norm`; returns the norm
/// before clipping.
pub fn clip_global_norm(grads: &mut BTreeMap<String, Tensor>, max_norm: f64) -> Result<f64> {
    let mut sq = 0f64;
    for g in grads.values() {
        sq += g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
    }
    let norm = sq.sqrt();
    if max_norm > 0.0 && norm > max_norm {
        let s = max_norm / (norm + 1e-6);
        for g in grads.values_mut() {
            *g = (&*g * s)?;
        }
    }
    Ok(norm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_then_decays_to_the_floor() {
        let lr = |s| learning_rate(s, 100, 10, 1.0, 0.1);
        assert!((lr(0) - 0.1).abs() < 1e-12);
        assert!((lr(9) - 1.0).abs() < 1e-12);
        assert!((lr(10) - 1.0).abs() < 1e-12);
        assert!(lr(55) < lr(20) && lr(55) > 0.1);
        assert!((lr(100) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn adamw_minimises_a_quadratic() {
        let x = Var::new(&[3.0f32, -2.0], &Device::Cpu).unwrap();
        let params = BTreeMap::from([("x".to_string(), x.clone())]);
        let mut opt = AdamW::new(AdamWConfig {
            weight_decay: 0.0,
            ..Default::default()
        });
        for _ in 0..300 {
            let loss = x.as_tensor().sqr().unwrap().sum_all().unwrap();
            let g = loss.backward().unwrap();
            let grads = BTreeMap::from([("x".to_string(), g.get(&x).unwrap().clone())]);
            opt.step(&params, &grads, 0.05).unwrap();
        }
        let v: Vec<f32> = x.as_tensor().to_vec1().unwrap();
        assert!(v.iter().all(|a| a.abs() < 0.05), "{v:?}");
    }
}
