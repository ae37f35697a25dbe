//! A linear layer on the device: the weight in its stored encoding, an optional bias and an
//! optional LoRA update (`scale · B(A x)`, applied unmerged as on the CPU). The
//! decoder applies it to device activations; [`DeviceLinear::forward_host`] serves the parts that
//! keep their activations on the host (the lm_head over read-back hidden states, the image front
//! ends' patch embeddings and projector MLPs, whose reshapes stay on the CPU).

use super::buffers::{DeviceTensor, DeviceWeight};
use super::context::VulkanContext;
use super::ops::Batch;
use crate::decoder::layers::{Linear, LinearWeight};
use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor};
use std::sync::Arc;

pub struct DeviceLinear {
    ctx: Arc<VulkanContext>,
    pub(crate) weight: DeviceWeight,
    bias: Option<DeviceTensor>,
    /// Boxed: most linears have none.
    lora: Option<Box<DeviceLora>>,
}

/// `scale · B (A x)` with A `[r, in]` and B `[out, r]` (f32).
struct DeviceLora {
    a: DeviceWeight,
    b: DeviceWeight,
    scale: f32,
}

impl std::fmt::Debug for DeviceLinear {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "DeviceLinear({}×{} {:?} on {:?})",
            self.weight.rows, self.weight.cols, self.weight.wtype, self.ctx
        )
    }
}

impl DeviceLinear {
    /// Uploads `lin`'s weight, bias and LoRA update; `name` labels errors. Inference only: a
    /// training-time LoRA dropout is not applied.
    pub fn upload(ctx: &Arc<VulkanContext>, lin: &Linear, name: &str) -> Result<Self> {
        let lora = lin
            .lora
            .as_ref()
            .map(|l| -> Result<Box<DeviceLora>> {
                Ok(Box::new(DeviceLora {
                    a: ctx.upload_dense_weight(&l.a.to_dtype(DType::F32)?)?,
                    b: ctx.upload_dense_weight(&l.b.to_dtype(DType::F32)?)?,
                    scale: l.scale as f32,
                }))
            })
            .transpose()?;
        let weight = match &lin.weight {
            LinearWeight::Dense(t) => ctx.upload_dense_weight(t)?,
            LinearWeight::Quantized(q) => ctx.upload_qmatmul(q)?,
            LinearWeight::Vulkan(_) => {
                return Err(Error::InvalidArgument(format!(
                    "{name} is already on a Vulkan device"
                )))
            }
        };
        let bias = lin
            .bias
            .as_ref()
            .map(|b| ctx.upload_tensor(b))
            .transpose()?;
        Ok(DeviceLinear {
            ctx: ctx.clone(),
            weight,
            bias,
            lora,
        })
    }

    pub fn out_features(&self) -> usize {
        self.weight.rows
    }

    /// `x [T, K]` on the device → `[T, N]`.
    pub(crate) fn forward(&self, b: &mut Batch, x: &DeviceTensor) -> Result<DeviceTensor> {
        let y = b.matmul(x, &self.weight, self.bias.as_ref())?;
        match &self.lora {
            None => Ok(y),
            Some(l) => {
                let low = b.matmul(x, &l.a, None)?;
                let delta = b.matmul(&low, &l.b, None)?;
                let delta = b.scale(&delta, l.scale)?;
                b.add(&y, &delta)
            }
        }
    }

    /// `x [..., K]` on the host → `[..., N]` (f32) on the host, in passes of rows whose input
    /// and output each fit one storage binding.
    pub fn forward_host(&self, x: &Tensor) -> Result<Tensor> {
        let (k, n) = (self.weight.cols, self.weight.rows);
        let dims = x.dims().to_vec();
        if dims.last() != Some(&k) {
            return Err(Error::InvalidArgument(format!(
                "{dims:?} input for a {n}×{k} linear"
            )));
        }
        let rows = x.elem_count() / k.max(1);
        let values: Vec<f32> = x.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        let pass = (self.ctx.max_binding() as usize / (4 * n.max(k).max(1))).max(1);
        let mut out = Vec::with_capacity(rows * n);
        for r0 in (0..rows).step_by(pass) {
            let m = pass.min(rows - r0);
            let h = self.ctx.upload(&values[r0 * k..(r0 + m) * k], &[m, k])?;
            let mut b = self.ctx.batch();
            let y = self.forward(&mut b, &h)?;
            b.submit()?;
            out.extend(self.ctx.read(&y)?);
        }
        let mut shape = dims;
        if let Some(last) = shape.last_mut() {
            *last = n;
        }
        Ok(Tensor::from_vec(out, shape, &Device::Cpu)?)
    }
}
