//! Building blocks shared by every decoder: linear (optionally biased), norms, RoPE tables.

use crate::adapter::LoraDelta;
use crate::checkpoint::Weights;
use crate::error::{Error, Result};
use crate::spec::NormKind;
use candle_core::quantized::{ggml_file, QMatMul, QTensor};
use candle_core::{DType, Module, Tensor, D};

/// The weight of a [`Linear`]: a dense matrix in the compute dtype, or stored blocks (GGUF q8_0,
/// q4_k, …) multiplied by candle's quantized kernels (activations go through f32).
#[derive(Debug, Clone)]
pub enum LinearWeight {
    Dense(Tensor),
    Quantized(QMatMul),
    /// Uploaded to a Vulkan device with its bias, for layers whose activations stay on the host
    /// (the image front ends): inputs go up and outputs come back per call.
    #[cfg(feature = "vulkan")]
    Vulkan(std::sync::Arc<crate::vulkan::DeviceLinear>),
}

/// `y = x Wᵀ + b` with the bias kept in f32 until added.
#[derive(Debug, Clone)]
pub struct Linear {
    pub weight: LinearWeight,
    pub bias: Option<Tensor>,
    /// A LoRA update added to the output (adapter applied without merging).
    pub lora: Option<LoraDelta>,
    out: usize,
}

impl Linear {
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        let out = weight.dim(0).unwrap_or(0);
        Linear {
            weight: LinearWeight::Dense(weight),
            bias,
            lora: None,
            out,
        }
    }

    /// A linear over block-quantized weights `[out, in]`.
    pub fn quantized(weight: QTensor, bias: Option<Tensor>) -> Result<Self> {
        let out = weight.shape().dims().first().copied().unwrap_or(0);
        Ok(Linear {
            weight: LinearWeight::Quantized(QMatMul::from_qtensor(weight)?),
            bias,
            lora: None,
            out,
        })
    }

    /// Loads `{name}.weight` `[out, in]` and, if `bias`, `{name}.bias` `[out]`. Weights the
    /// checkpoint stores block-quantized stay quantized.
    pub fn load(w: &Weights, name: &str, out: usize, inp: usize, bias: bool) -> Result<Self> {
        let wname = format!("{name}.weight");
        let bias = if bias {
            Some(w.get_as(&format!("{name}.bias"), &[out], DType::F32)?)
        } else {
            None
        };
        let mut lin = match w.get_quantized(&wname, &[out, inp])? {
            Some(q) => Linear::quantized(q, bias)?,
            None => Linear::new(w.get(&wname, &[out, inp])?, bias),
        };
        if let Some(d) = w.adapter(name) {
            let (da, db) = (d.a.dims(), d.b.dims());
            if da.len() != 2 || db.len() != 2 || da[1] != inp || db[0] != out || da[0] != db[1] {
                return Err(Error::TensorShape {
                    name: format!("{name} (LoRA A {da:?}, B {db:?})"),
                    actual: vec![
                        db.first().copied().unwrap_or(0),
                        da.get(1).copied().unwrap_or(0),
                    ],
                    expected: vec![out, inp],
                });
            }
            lin.lora = Some(d.clone());
        }
        Ok(lin)
    }

    pub fn out_features(&self) -> usize {
        self.out
    }

    /// Moves the weight, bias and LoRA update to a Vulkan device.
    #[cfg(feature = "vulkan")]
    pub fn offload(&mut self, ctx: &std::sync::Arc<crate::vulkan::VulkanContext>) -> Result<()> {
        if matches!(self.weight, LinearWeight::Vulkan(_)) {
            return Ok(());
        }
        let device = crate::vulkan::DeviceLinear::upload(ctx, self, "front-end linear")?;
        self.weight = LinearWeight::Vulkan(std::sync::Arc::new(device));
        self.bias = None;
        self.lora = None;
        Ok(())
    }

    /// The rows `idx` (a `u32` vector) of the weight as a new linear with bias `bias`; used to
    /// split fused QKV projections. Quantized rows are copied block for block (exact).
    pub fn select_rows(&self, idx: &Tensor, bias: Option<Tensor>) -> Result<Self> {
        let mut picked = self.select_weight_rows(idx, bias)?;
        picked.lora = self.lora.as_ref().map(|l| l.select_rows(idx)).transpose()?;
        Ok(picked)
    }

    fn select_weight_rows(&self, idx: &Tensor, bias: Option<Tensor>) -> Result<Self> {
        match &self.weight {
            LinearWeight::Dense(w) => Ok(Linear::new(
                w.index_select(&idx.to_device(w.device())?, 0)?,
                bias,
            )),
            LinearWeight::Quantized(QMatMul::QTensor(q)) => {
                let dims = q.shape().dims();
                let (rows, cols) = match dims {
                    [r, c] => (*r, *c),
                    _ => {
                        return Err(Error::Unsupported(format!(
                            "quantized linear weight of rank {}",
                            dims.len()
                        )))
                    }
                };
                let dtype = q.dtype();
                let row_bytes = cols / dtype.block_size() * dtype.type_size();
                let data = q.data()?;
                let picked: Vec<u32> = idx.to_vec1()?;
                let total = picked.len() * row_bytes;
                // u32 backing keeps the bytes 4-aligned, as candle's block reinterpretation needs.
                let mut buf = vec![0u32; total.div_ceil(4)];
                // SAFETY: `buf` owns at least `total` initialised bytes; u8 has no alignment.
                let bytes =
                    unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<u8>(), total) };
                for (k, &r) in picked.iter().enumerate() {
                    let r = r as usize;
                    if r >= rows {
                        return Err(Error::InvalidArgument(format!(
                            "row {r} of a {rows}-row weight"
                        )));
                    }
                    bytes[k * row_bytes..(k + 1) * row_bytes]
                        .copy_from_slice(&data[r * row_bytes..(r + 1) * row_bytes]);
                }
                let q = ggml_file::qtensor_from_ggml(
                    dtype,
                    bytes,
                    vec![picked.len(), cols],
                    &q.device(),
                )?;
                Linear::quantized(q, bias)
            }
            LinearWeight::Quantized(m) => {
                let w = m.dequantize_f16()?.to_dtype(DType::F32)?;
                Linear::new(w, None).select_rows(idx, bias)
            }
            #[cfg(feature = "vulkan")]
            LinearWeight::Vulkan(_) => Err(Error::Unsupported(
                "selecting rows of a linear already on a Vulkan device".into(),
            )),
        }
    }

    /// `x`: `[T, in]` → `[T, out]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = match &self.weight {
            LinearWeight::Dense(w) => {
                let x = if x.dtype() != w.dtype() {
                    x.to_dtype(w.dtype())?
                } else {
                    x.clone()
                };
                x.matmul(&w.t()?)?
            }
            LinearWeight::Quantized(m) => {
                let xf = x.to_dtype(DType::F32)?.contiguous()?;
                #[cfg(target_arch = "x86_64")]
                let ours = super::quant_cpu::try_forward(m, &xf)?;
                #[cfg(not(target_arch = "x86_64"))]
                let ours = None;
                let y = match ours {
                    Some(y) => y,
                    None => m.forward(&xf)?,
                };
                y.to_dtype(x.dtype())?
            }
            #[cfg(feature = "vulkan")]
            LinearWeight::Vulkan(d) => d.forward_host(x)?.to_dtype(x.dtype())?,
        };
        let y = match &self.bias {
            Some(b) => y.broadcast_add(&b.to_dtype(y.dtype())?)?,
            None => y,
        };
        match &self.lora {
            Some(l) => Ok((&y + l.forward(x)?.to_dtype(y.dtype())?)?),
            None => Ok(y),
        }
    }
}

/// RMSNorm or LayerNorm over the last dimension, computed in f32.
#[derive(Debug, Clone)]
pub struct Norm {
    pub kind: NormKind,
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    pub eps: f64,
}

impl Norm {
    pub fn load(w: &Weights, name: &str, dim: usize, kind: NormKind, eps: f64) -> Result<Self> {
        let weight = w.get_as(&format!("{name}.weight"), &[dim], DType::F32)?;
        let bias = match kind {
            NormKind::LayerNorm => Some(w.get_as(&format!("{name}.bias"), &[dim], DType::F32)?),
            NormKind::Rms => None,
        };
        Ok(Norm {
            kind,
            weight,
            bias,
            eps,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dtype = x.dtype();
        let xf = x.to_dtype(DType::F32)?.contiguous()?;
        let y = match self.kind {
            NormKind::Rms => {
                let ms = xf.sqr()?.mean_keepdim(D::Minus1)?;
                xf.broadcast_div(&(ms + self.eps)?.sqrt()?)?
                    .broadcast_mul(&self.weight)?
            }
            NormKind::LayerNorm => {
                let mu = xf.mean_keepdim(D::Minus1)?;
                let centered = xf.broadcast_sub(&mu)?;
                let var = centered.sqr()?.mean_keepdim(D::Minus1)?;
                let y = centered
                    .broadcast_div(&(var + self.eps)?.sqrt()?)?
                    .broadcast_mul(&self.weight)?;
                match &self.bias {
                    Some(b) => y.broadcast_add(b)?,
                    None => y,
                }
            }
        };
        Ok(y.to_dtype(dtype)?)
    }
}

/// Half-split ("rotate_half", NeoX) rotary embedding over the first `rotary_dim` dims of each head.
#[derive(Debug, Clone)]
pub struct Rope {
    inv_freq: Vec<f32>,
    rotary_dim: usize,
}

impl Rope {
    pub fn new(theta: f64, rotary_dim: usize) -> Self {
        // Mirrors transformers: inverse frequencies and angles in f32, so long positions round alike.
        let inv_freq = (0..rotary_dim / 2)
            .map(|i| (1.0 / theta.powf((2 * i) as f64 / rotary_dim as f64)) as f32)
            .collect();
        Rope {
            inv_freq,
            rotary_dim,
        }
    }

    pub fn rotary_dim(&self) -> usize {
        self.rotary_dim
    }

    /// cos/sin values, row-major `[positions, rotary_dim/2]`.
    pub fn tables_at(&self, positions: &[usize]) -> (Vec<f32>, Vec<f32>) {
        let half = self.rotary_dim / 2;
        let mut cos = Vec::with_capacity(positions.len() * half);
        let mut sin = Vec::with_capacity(positions.len() * half);
        for &p in positions {
            for &f in &self.inv_freq {
                let angle = (p as f32) * f;
                cos.push((angle as f64).cos() as f32);
                sin.push((angle as f64).sin() as f32);
            }
        }
        (cos, sin)
    }

    /// cos/sin tables `[T, rotary_dim/2]` for positions `start..start+len`.
    pub fn tables(
        &self,
        start: usize,
        len: usize,
        dtype: DType,
        device: &candle_core::Device,
    ) -> Result<(Tensor, Tensor)> {
        let half = self.rotary_dim / 2;
        let positions: Vec<usize> = (start..start + len).collect();
        let (cos, sin) = self.tables_at(&positions);
        let cos = Tensor::from_vec(cos, (len, half), device)?.to_dtype(dtype)?;
        let sin = Tensor::from_vec(sin, (len, half), device)?.to_dtype(dtype)?;
        Ok((cos, sin))
    }

    /// `x`: `[T, H, hd]`. `differentiable` picks plain tensor ops over candle's fused kernel,
    /// which has no backward pass.
    pub fn apply(
        &self,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        differentiable: bool,
    ) -> Result<Tensor> {
        let hd = x.dim(D::Minus1)?;
        let cos = cos.to_dtype(x.dtype())?;
        let sin = sin.to_dtype(x.dtype())?;
        if differentiable {
            let half = self.rotary_dim / 2;
            let (c, s) = (cos.unsqueeze(1)?, sin.unsqueeze(1)?); // [T, 1, half]
            let x1 = x.narrow(D::Minus1, 0, half)?;
            let x2 = x.narrow(D::Minus1, half, half)?;
            let r1 = (x1.broadcast_mul(&c)? - x2.broadcast_mul(&s)?)?;
            let r2 = (x2.broadcast_mul(&c)? + x1.broadcast_mul(&s)?)?;
            let mut parts = vec![r1, r2];
            if self.rotary_dim < hd {
                parts.push(x.narrow(D::Minus1, self.rotary_dim, hd - self.rotary_dim)?);
            }
            return Ok(Tensor::cat(&parts, D::Minus1)?);
        }
        if self.rotary_dim == hd {
            let y = candle_nn::rotary_emb::rope_thd(&x.unsqueeze(0)?.contiguous()?, &cos, &sin)?;
            return Ok(y.squeeze(0)?);
        }
        let rot = x
            .narrow(D::Minus1, 0, self.rotary_dim)?
            .unsqueeze(0)?
            .contiguous()?;
        let pass = x.narrow(D::Minus1, self.rotary_dim, hd - self.rotary_dim)?;
        let rot = candle_nn::rotary_emb::rope_thd(&rot, &cos, &sin)?.squeeze(0)?;
        Ok(Tensor::cat(&[&rot, &pass], D::Minus1)?)
    }
}
