//! Device memory: f32 activation tensors, and weight matrices uploaded once in their stored form
//! (dense f32/f16/bf16 or raw GGML blocks, decoded inside the matmul kernels). Only small results
//! (logits, a prompt's hidden states) are read back.

use super::context::VulkanContext;
use crate::error::{Error, Result};
use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Tensor};

/// Bytes per upload chunk when converting host values (bounds the temporary copy).
const UPLOAD_CHUNK: usize = 16 << 20;

/// f32 values on the device with a row-major shape. Cloning shares the buffer.
#[derive(Debug, Clone)]
pub struct DeviceTensor {
    pub(crate) buf: wgpu::Buffer,
    pub shape: Vec<usize>,
}

impl DeviceTensor {
    pub fn elems(&self) -> usize {
        self.shape.iter().product()
    }

    /// The first `n` rows (of the leading dimension), sharing the buffer.
    pub fn rows(&self, n: usize) -> Result<DeviceTensor> {
        let mut shape = self.shape.clone();
        match shape.first_mut() {
            Some(first) if n <= *first => *first = n,
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "{n} rows of a {:?} tensor",
                    self.shape
                )))
            }
        }
        Ok(DeviceTensor {
            buf: self.buf.clone(),
            shape,
        })
    }

    /// The same values viewed with another shape of equal size.
    pub fn reshaped(&self, shape: &[usize]) -> Result<DeviceTensor> {
        if shape.iter().product::<usize>() != self.elems() {
            return Err(Error::InvalidArgument(format!(
                "cannot view {:?} as {shape:?}",
                self.shape
            )));
        }
        Ok(DeviceTensor {
            buf: self.buf.clone(),
            shape: shape.to_vec(),
        })
    }
}

/// How a weight matrix's bytes encode its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WeightType {
    F32,
    F16,
    Bf16,
    /// GGML blocks of 32: f16 scale + 32 × i8.
    Q8_0,
    /// GGML blocks of 32: f16 scale + 16 bytes of nibbles.
    Q4_0,
    /// GGML super-blocks of 256 with 6-bit sub-block scales and mins.
    Q4K,
    /// GGML super-blocks of 256 with 6-bit values and i8 sub-block scales.
    Q6K,
}

impl WeightType {
    /// Bytes of one row of `cols` values, or `None` when `cols` is not a whole number of blocks.
    pub fn row_bytes(self, cols: usize) -> Option<usize> {
        let (block, bytes) = match self {
            WeightType::F32 => (1, 4),
            WeightType::F16 | WeightType::Bf16 => (1, 2),
            WeightType::Q8_0 => (32, 34),
            WeightType::Q4_0 => (32, 18),
            WeightType::Q4K => (256, 144),
            WeightType::Q6K => (256, 210),
        };
        cols.is_multiple_of(block).then(|| cols / block * bytes)
    }

    fn from_ggml(t: GgmlDType) -> Option<Self> {
        Some(match t {
            GgmlDType::F32 => WeightType::F32,
            GgmlDType::F16 => WeightType::F16,
            GgmlDType::BF16 => WeightType::Bf16,
            GgmlDType::Q8_0 => WeightType::Q8_0,
            GgmlDType::Q4_0 => WeightType::Q4_0,
            GgmlDType::Q4K => WeightType::Q4K,
            GgmlDType::Q6K => WeightType::Q6K,
            _ => return None,
        })
    }
}

/// Consecutive rows `row0..row0 + rows` of a weight, in one buffer.
#[derive(Debug, Clone)]
pub(crate) struct WeightPart {
    pub(crate) buf: wgpu::Buffer,
    pub(crate) row0: usize,
    pub(crate) rows: usize,
}

/// A `[rows, cols]` weight matrix (`y = x Wᵀ` has `rows` outputs) in its stored encoding, split
/// into parts of whole rows where it exceeds the adapter's largest storage binding (a 7B model's
/// f16 lm_head is 250 MiB; lavapipe binds 128 MiB).
#[derive(Debug, Clone)]
pub struct DeviceWeight {
    pub(crate) parts: Vec<WeightPart>,
    pub wtype: WeightType,
    pub rows: usize,
    pub cols: usize,
}

impl VulkanContext {
    /// A zero-initialised buffer of `bytes` (at least 4: bindings cannot be empty).
    pub(crate) fn alloc_bytes(&self, bytes: usize, label: &str) -> Result<wgpu::Buffer> {
        let size = (bytes.max(4).div_ceil(4) * 4) as u64;
        if size > self.max_binding() {
            return Err(Error::Vulkan(format!(
                "{}: {label} needs {size} bytes in one buffer; the adapter allows {}",
                self.info.name,
                self.max_binding()
            )));
        }
        Ok(self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        }))
    }

    /// An f32 tensor of `shape` (zeros).
    pub fn zeros(&self, shape: &[usize]) -> Result<DeviceTensor> {
        let n: usize = shape.iter().product();
        Ok(DeviceTensor {
            buf: self.alloc_bytes(n * 4, "activations")?,
            shape: shape.to_vec(),
        })
    }

    /// Writes `bytes` at the start of `buf` (a multiple of 4 bytes is written; the tail is padded).
    fn write_bytes(&self, buf: &wgpu::Buffer, bytes: &[u8]) {
        let whole = bytes.len() / 4 * 4;
        for (i, chunk) in bytes[..whole].chunks(UPLOAD_CHUNK).enumerate() {
            self.queue
                .write_buffer(buf, (i * UPLOAD_CHUNK) as u64, chunk);
        }
        if whole < bytes.len() {
            let mut tail = [0u8; 4];
            tail[..bytes.len() - whole].copy_from_slice(&bytes[whole..]);
            self.queue.write_buffer(buf, whole as u64, &tail);
        }
    }

    /// Uploads f32 values with `shape`.
    pub fn upload(&self, values: &[f32], shape: &[usize]) -> Result<DeviceTensor> {
        if shape.iter().product::<usize>() != values.len() {
            return Err(Error::InvalidArgument(format!(
                "{} values for shape {shape:?}",
                values.len()
            )));
        }
        let t = self.zeros(shape)?;
        for (i, chunk) in values.chunks(UPLOAD_CHUNK / 4).enumerate() {
            let bytes: Vec<u8> = chunk.iter().flat_map(|v| v.to_le_bytes()).collect();
            self.queue
                .write_buffer(&t.buf, (i * UPLOAD_CHUNK) as u64, &bytes);
        }
        self.check()?;
        Ok(t)
    }

    /// Uploads a candle tensor's values as f32 (any dtype, any shape).
    pub fn upload_tensor(&self, t: &Tensor) -> Result<DeviceTensor> {
        let values: Vec<f32> = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        self.upload(&values, t.dims())
    }

    /// Reads a tensor back (waits for all submitted work).
    pub fn read(&self, t: &DeviceTensor) -> Result<Vec<f32>> {
        let bytes = (t.elems() * 4) as u64;
        if bytes == 0 {
            return Ok(Vec::new());
        }
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor::default());
        enc.copy_buffer_to_buffer(&t.buf, 0, &staging, 0, bytes);
        self.queue.submit([enc.finish()]);
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.wait()?;
        rx.recv()
            .map_err(|_| Error::Vulkan(format!("{}: readback was dropped", self.info.name)))?
            .map_err(|e| Error::Vulkan(format!("{}: readback failed: {e}", self.info.name)))?;
        let view = staging
            .get_mapped_range(..)
            .map_err(|e| Error::Vulkan(format!("{}: readback failed: {e}", self.info.name)))?;
        let out = view
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        drop(view);
        staging.unmap();
        Ok(out)
    }

    /// Buffers for a `rows × cols` weight of `wtype`, split by rows to fit the binding limit.
    fn alloc_weight(
        &self,
        wtype: WeightType,
        rows: usize,
        cols: usize,
    ) -> Result<(Vec<WeightPart>, usize)> {
        let row_bytes = wtype.row_bytes(cols).ok_or_else(|| {
            Error::Unsupported(format!(
                "a {rows}×{cols} weight cannot be stored as {wtype:?} (columns are not whole blocks)"
            ))
        })?;
        let per_part = (self.max_binding() as usize / row_bytes.max(1)).min(rows.max(1));
        if per_part == 0 {
            return Err(Error::Vulkan(format!(
                "{}: one {cols}-column row of a {wtype:?} weight exceeds the largest binding",
                self.info.name
            )));
        }
        let mut parts = Vec::new();
        let mut row0 = 0;
        while row0 < rows || parts.is_empty() {
            let n = per_part.min(rows - row0);
            parts.push(WeightPart {
                buf: self.alloc_bytes(n * row_bytes, "weight")?,
                row0,
                rows: n,
            });
            row0 += n.max(1);
        }
        Ok((parts, row_bytes))
    }

    /// Uploads `rows × cols` weights already encoded as `wtype` (raw GGML blocks for quant types).
    pub fn upload_weight_bytes(
        &self,
        wtype: WeightType,
        rows: usize,
        cols: usize,
        bytes: &[u8],
    ) -> Result<DeviceWeight> {
        let (parts, row_bytes) = self.alloc_weight(wtype, rows, cols)?;
        if bytes.len() != rows * row_bytes {
            return Err(Error::InvalidArgument(format!(
                "{wtype:?} weight {rows}×{cols}: {} bytes, expected {}",
                bytes.len(),
                rows * row_bytes
            )));
        }
        for part in &parts {
            let range = part.row0 * row_bytes..(part.row0 + part.rows) * row_bytes;
            self.write_bytes(&part.buf, &bytes[range]);
        }
        self.check()?;
        Ok(DeviceWeight {
            parts,
            wtype,
            rows,
            cols,
        })
    }

    /// Uploads a row-major f32 matrix (an embedding table for [`super::Batch::gather`]).
    pub fn upload_matrix(&self, values: &[f32], rows: usize, cols: usize) -> Result<DeviceWeight> {
        if values.len() != rows * cols {
            return Err(Error::InvalidArgument(format!(
                "{} values for a {rows}×{cols} matrix",
                values.len()
            )));
        }
        let (parts, _) = self.alloc_weight(WeightType::F32, rows, cols)?;
        for part in &parts {
            let mine = &values[part.row0 * cols..(part.row0 + part.rows) * cols];
            for (i, chunk) in mine.chunks(UPLOAD_CHUNK / 4).enumerate() {
                let bytes: Vec<u8> = chunk.iter().flat_map(|v| v.to_le_bytes()).collect();
                self.queue
                    .write_buffer(&part.buf, (i * UPLOAD_CHUNK) as u64, &bytes);
            }
        }
        self.check()?;
        Ok(DeviceWeight {
            parts,
            wtype: WeightType::F32,
            rows,
            cols,
        })
    }

    /// Uploads a dense `[rows, cols]` candle weight in its dtype (f32, f16, bf16; other dtypes
    /// as f32).
    pub fn upload_dense_weight(&self, w: &Tensor) -> Result<DeviceWeight> {
        let (rows, cols) = w.dims2()?;
        let w = w.contiguous()?;
        let (wtype, bytes): (WeightType, Vec<u8>) = match w.dtype() {
            DType::F16 => (
                WeightType::F16,
                w.flatten_all()?
                    .to_vec1::<half::f16>()?
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
            ),
            DType::BF16 => (
                WeightType::Bf16,
                w.flatten_all()?
                    .to_vec1::<half::bf16>()?
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
            ),
            _ => (
                WeightType::F32,
                w.to_dtype(DType::F32)?
                    .flatten_all()?
                    .to_vec1::<f32>()?
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
            ),
        };
        self.upload_weight_bytes(wtype, rows, cols, &bytes)
    }

    /// Uploads a block-quantized `[rows, cols]` weight as raw blocks. GGML types without a kernel
    /// here (q4_1, q5_*, q2_K, q3_K, q5_K, q8_K) are dequantized to f16 on the way: correct
    /// numbers at more memory.
    pub fn upload_qtensor(&self, q: &QTensor) -> Result<DeviceWeight> {
        let (rows, cols) = match q.shape().dims() {
            [r, c] => (*r, *c),
            d => {
                return Err(Error::Unsupported(format!(
                    "quantized weight of shape {d:?} (expected a matrix)"
                )))
            }
        };
        match WeightType::from_ggml(q.dtype()) {
            Some(t) => self.upload_weight_bytes(t, rows, cols, &q.data()?),
            None => self.upload_dense_weight(&q.dequantize_f16(&candle_core::Device::Cpu)?),
        }
    }

    /// Uploads the weight of a CPU linear layer.
    pub fn upload_qmatmul(&self, m: &QMatMul) -> Result<DeviceWeight> {
        match m {
            QMatMul::QTensor(q) => self.upload_qtensor(q),
            QMatMul::Tensor(t) | QMatMul::TensorF16(t) => self.upload_dense_weight(t),
        }
    }
}
