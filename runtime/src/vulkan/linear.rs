//! A linear layer on the device: the weight in its stored encoding and an optional bias. The
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
    /// Uploads `lin`'s weight and bias; `name` labels errors.
    pub fn upload(ctx: &Arc<VulkanContext>, lin: &Linear, name: &str) -> Result<Self> {
        if lin.lora.is_some() {
            return Err(Error::Unsupported(format!(
                "{name}: LoRA adapters do not run on Vulkan yet (merge the adapter, or use --device cpu)"
            )));
        }
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
        })
    }

    pub fn out_features(&self) -> usize {
        self.weight.rows
    }

    /// `x [T, K]` on the device → `[T, N]`.
    pub(crate) fn forward(&self, b: &mut Batch, x: &DeviceTensor) -> Result<DeviceTensor> {
        b.matmul(x, &self.weight, self.bias.as_ref())
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
