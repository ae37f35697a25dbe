//! Ops on device tensors. A [`Batch`] records kernels into one command encoder; nothing runs
//! until [`Batch::submit`] (and a [`VulkanContext::read`] waits for it). Every op allocates its
//! output, so inputs are never overwritten behind a caller's back.

use super::buffers::{DeviceTensor, DeviceWeight, WeightType};
use super::context::VulkanContext;
use super::kernels::Kernel;
use crate::error::{Error, Result};
use wgpu::util::DeviceExt;

/// Threads per workgroup of the one-thread-per-element kernels.
const ELEMENTWISE_WG: usize = 256;
/// Threads per workgroup of the mat-vec kernel.
const MATVEC_WG: usize = 64;
/// Head dims the attention kernel keeps in registers (4 per thread × 64 threads).
pub const MAX_HEAD_DIM: usize = 256;
/// Head dims the tiled attention kernel (v2) handles; larger ones take v1.
const TILED_ATTENTION_MAX_HEAD_DIM: usize = 128;

/// Where each query of an attention call sits and what it may see.
#[derive(Debug, Clone, Copy)]
pub struct AttentionShape {
    /// Absolute position of query row 0 (the cache held `start` positions before this call).
    pub start: usize,
    /// Key j is visible from position i iff `0 <= i - j <= window`.
    pub window: Option<usize>,
}

/// Row indices on the device (ascending and distinct), picking rows out of a `total`-row tensor.
pub struct RowIndex {
    buf: wgpu::Buffer,
    len: usize,
    total: usize,
}

impl RowIndex {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// One recorded sequence of kernels on a device.
pub struct Batch<'c> {
    /// The open compute pass that consecutive kernels share (wgpu orders their buffer uses
    /// between dispatches); closed before a copy and at submit. Declared before the encoder,
    /// so that a batch dropped unsubmitted closes its pass before the encoder goes.
    pass: Option<wgpu::ComputePass<'static>>,
    ctx: &'c VulkanContext,
    encoder: wgpu::CommandEncoder,
}

fn u(v: usize, what: &str) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::Unsupported(format!("{what} {v} exceeds 32 bits")))
}

fn same_shape(a: &DeviceTensor, b: &DeviceTensor, op: &str) -> Result<()> {
    if a.shape != b.shape {
        return Err(Error::InvalidArgument(format!(
            "{op}: shapes {:?} and {:?} differ",
            a.shape, b.shape
        )));
    }
    Ok(())
}

/// `(rows, values per row)` of a tensor seen as rows of its leading dimension.
fn leading_rows(t: &DeviceTensor) -> (usize, usize) {
    let rows = t.shape.first().copied().unwrap_or(1);
    (rows, t.elems() / rows.max(1))
}

/// `(rows, cols)` of a tensor seen as rows of its last dimension.
fn rows_cols(t: &DeviceTensor) -> (usize, usize) {
    let cols = t.shape.last().copied().unwrap_or(1);
    (t.elems() / cols.max(1), cols)
}

impl VulkanContext {
    pub fn batch(&self) -> Batch<'_> {
        Batch {
            pass: None,
            ctx: self,
            encoder: self
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor::default()),
        }
    }

    /// cos/sin tables `[positions, rotary_dim/2]` for RoPE, computed on the host exactly as the CPU
    /// decoder computes them.
    pub fn rope_tables(
        &self,
        rope: &crate::decoder::layers::Rope,
        positions: &[usize],
    ) -> Result<(DeviceTensor, DeviceTensor)> {
        let (cos, sin) = rope.tables_at(positions);
        let half = rope.rotary_dim() / 2;
        Ok((
            self.upload(&cos, &[positions.len(), half])?,
            self.upload(&sin, &[positions.len(), half])?,
        ))
    }
}

impl<'c> Batch<'c> {
    /// The device this batch records for.
    pub fn context(&self) -> &'c VulkanContext {
        self.ctx
    }

    /// Splits `groups` workgroups over x and y (each at most the device's per-dimension limit).
    fn grid(&self, groups: usize) -> Result<(u32, u32)> {
        let max = self.ctx.limits.max_compute_workgroups_per_dimension as usize;
        let x = groups.clamp(1, max);
        let y = groups.div_ceil(x);
        if y > max {
            return Err(Error::Unsupported(format!(
                "{groups} workgroups exceed the device's dispatch limits"
            )));
        }
        Ok((x as u32, y as u32))
    }

    fn dispatch(
        &mut self,
        kernel: Kernel,
        params: &[u32],
        bindings: &[(u32, &wgpu::Buffer)],
        groups: (u32, u32, u32),
    ) -> Result<()> {
        let ctx = self.ctx;
        let pipeline = ctx.kernels.get(&ctx.device, kernel);
        // Uniform structs are padded to 16 bytes.
        let mut words = params.to_vec();
        words.resize(params.len().div_ceil(4).max(1) * 4, 0);
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        let uniform = ctx
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("params"),
                contents: &bytes,
                usage: wgpu::BufferUsages::UNIFORM,
            });
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: uniform.as_entire_binding(),
        }];
        entries.extend(bindings.iter().map(|(b, buf)| wgpu::BindGroupEntry {
            binding: *b,
            resource: buf.as_entire_binding(),
        }));
        let bind_group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        let encoder = &mut self.encoder;
        let pass = self.pass.get_or_insert_with(|| {
            encoder
                .begin_compute_pass(&wgpu::ComputePassDescriptor::default())
                .forget_lifetime()
        });
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups(groups.0, groups.1, groups.2);
        if let Some(profile) = &ctx.profile {
            self.pass = None;
            let fresh = ctx
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor::default());
            let recorded = std::mem::replace(&mut self.encoder, fresh);
            let started = std::time::Instant::now();
            ctx.queue.submit([recorded.finish()]);
            ctx.wait()?;
            profile.record(format!("{kernel:?} {groups:?}"), started.elapsed());
        }
        ctx.check()
    }

    /// A one-thread-per-element kernel over `n` outputs.
    fn elementwise(
        &mut self,
        kernel: Kernel,
        a: &DeviceTensor,
        b: Option<&DeviceTensor>,
        scalar: f32,
    ) -> Result<DeviceTensor> {
        let out = self.ctx.zeros(&a.shape)?;
        let n = a.elems();
        let (x, y) = self.grid(n.div_ceil(ELEMENTWISE_WG))?;
        let params = [u(n, "elements")?, scalar.to_bits()];
        let mut bind = vec![(1, &a.buf)];
        if let Some(b) = b {
            same_shape(a, b, "elementwise")?;
            bind.push((2, &b.buf));
        }
        bind.push((3, &out.buf));
        self.dispatch(kernel, &params, &bind, (x, y, 1))?;
        Ok(out)
    }

    /// Rows of the f32 matrix `table` `[vocab, dim]` picked by `ids`: `[ids.len(), dim]`.
    pub fn gather(&mut self, table: &DeviceWeight, ids: &[u32]) -> Result<DeviceTensor> {
        if table.wtype != WeightType::F32 {
            return Err(Error::Unsupported(format!(
                "gather from a {:?} table (f32 only)",
                table.wtype
            )));
        }
        let (vocab, dim) = (table.rows, table.cols);
        if let Some(bad) = ids.iter().find(|&&i| i as usize >= vocab) {
            return Err(Error::InvalidArgument(format!(
                "token id {bad} is outside the vocabulary of {vocab}"
            )));
        }
        let idx = self.ctx.upload_u32(ids)?;
        let out = self.ctx.zeros(&[ids.len(), dim])?;
        let (x, y) = self.grid((ids.len() * dim).div_ceil(ELEMENTWISE_WG))?;
        for part in &table.parts {
            let params = [
                u(ids.len(), "rows")?,
                u(dim, "dim")?,
                u(part.row0, "row")?,
                u(part.rows, "rows")?,
            ];
            self.dispatch(
                Kernel::Gather,
                &params,
                &[(1, &idx), (2, &part.buf), (3, &out.buf)],
                (x, y, 1),
            )?;
        }
        Ok(out)
    }

    /// Rows `idx` of `x` (rows of its leading dimension): `[idx.len(), …]`.
    pub fn gather_rows(&mut self, x: &DeviceTensor, idx: &RowIndex) -> Result<DeviceTensor> {
        let (rows, dim) = leading_rows(x);
        if rows != idx.total {
            return Err(Error::InvalidArgument(format!(
                "gather: an index over {} rows applied to {:?}",
                idx.total, x.shape
            )));
        }
        let mut shape = x.shape.clone();
        shape[0] = idx.len;
        let out = self.ctx.zeros(&shape)?;
        self.move_rows(Kernel::Gather, x, idx, &out, rows, dim)?;
        Ok(out)
    }

    /// Writes the rows of `src` to rows `idx` of `dst` (the inverse of [`Batch::gather_rows`]).
    pub fn scatter_rows(
        &mut self,
        src: &DeviceTensor,
        idx: &RowIndex,
        dst: &DeviceTensor,
    ) -> Result<()> {
        let (rows, dim) = leading_rows(dst);
        if rows != idx.total || src.shape[0] != idx.len || src.shape[1..] != dst.shape[1..] {
            return Err(Error::InvalidArgument(format!(
                "scatter of {:?} into rows of {:?} by an index of {} of {} rows",
                src.shape, dst.shape, idx.len, idx.total
            )));
        }
        self.move_rows(Kernel::Scatter, src, idx, dst, rows, dim)
    }

    fn move_rows(
        &mut self,
        kernel: Kernel,
        from: &DeviceTensor,
        idx: &RowIndex,
        to: &DeviceTensor,
        rows: usize,
        dim: usize,
    ) -> Result<()> {
        if idx.len == 0 || dim == 0 {
            return Ok(());
        }
        let (x, y) = self.grid((idx.len * dim).div_ceil(ELEMENTWISE_WG))?;
        let params = [u(idx.len, "rows")?, u(dim, "dim")?, 0, u(rows, "rows")?];
        self.dispatch(
            kernel,
            &params,
            &[(1, &idx.buf), (2, &from.buf), (3, &to.buf)],
            (x, y, 1),
        )
    }

    /// RMSNorm over the last dimension.
    pub fn rms_norm(
        &mut self,
        x: &DeviceTensor,
        weight: &DeviceTensor,
        eps: f64,
    ) -> Result<DeviceTensor> {
        self.norm(Kernel::RmsNorm, x, weight, None, eps)
    }

    /// LayerNorm over the last dimension, with an optional bias.
    pub fn layer_norm(
        &mut self,
        x: &DeviceTensor,
        weight: &DeviceTensor,
        bias: Option<&DeviceTensor>,
        eps: f64,
    ) -> Result<DeviceTensor> {
        self.norm(Kernel::LayerNorm, x, weight, bias, eps)
    }

    fn norm(
        &mut self,
        kernel: Kernel,
        x: &DeviceTensor,
        weight: &DeviceTensor,
        bias: Option<&DeviceTensor>,
        eps: f64,
    ) -> Result<DeviceTensor> {
        let (rows, dim) = rows_cols(x);
        for p in std::iter::once(weight).chain(bias) {
            if p.elems() != dim {
                return Err(Error::InvalidArgument(format!(
                    "norm over {dim} values with a {:?} parameter",
                    p.shape
                )));
            }
        }
        let out = self.ctx.zeros(&x.shape)?;
        let (gx, gy) = self.grid(rows)?;
        let params = [
            u(rows, "rows")?,
            u(dim, "dim")?,
            (eps as f32).to_bits(),
            bias.is_some() as u32,
        ];
        let mut bind = vec![(1, &x.buf), (2, &weight.buf)];
        if kernel == Kernel::LayerNorm {
            bind.push((3, bias.map_or(&self.ctx.dummy, |b| &b.buf)));
        }
        bind.push((4, &out.buf));
        self.dispatch(kernel, &params, &bind, (gx, gy, 1))?;
        Ok(out)
    }

    /// Rotates the first `rotary_dim` dims of every head of `x` `[T, H, hd]` (half-split style);
    /// `cos`/`sin` are `[T, rotary_dim/2]` tables of each row's position.
    pub fn rope(
        &mut self,
        x: &DeviceTensor,
        cos: &DeviceTensor,
        sin: &DeviceTensor,
        rotary_dim: usize,
    ) -> Result<DeviceTensor> {
        let [t, heads, hd] = x.shape[..] else {
            return Err(Error::InvalidArgument(format!(
                "rope: expected [T, H, hd], got {:?}",
                x.shape
            )));
        };
        if rotary_dim > hd || !rotary_dim.is_multiple_of(2) {
            return Err(Error::InvalidArgument(format!(
                "rope: rotary dim {rotary_dim} of a {hd}-dim head"
            )));
        }
        for tab in [cos, sin] {
            if tab.shape != [t, rotary_dim / 2] {
                return Err(Error::InvalidArgument(format!(
                    "rope: table {:?} for {t} rows of rotary dim {rotary_dim}",
                    tab.shape
                )));
            }
        }
        let out = self.ctx.zeros(&x.shape)?;
        let (gx, gy) = self.grid(x.elems().div_ceil(ELEMENTWISE_WG))?;
        let params = [
            u(t, "T")?,
            u(heads, "heads")?,
            u(hd, "hd")?,
            u(rotary_dim, "rot")?,
        ];
        self.dispatch(
            Kernel::Rope,
            &params,
            &[(1, &x.buf), (2, &cos.buf), (3, &sin.buf), (4, &out.buf)],
            (gx, gy, 1),
        )?;
        Ok(out)
    }

    /// Attention of `q` `[T, H, hd]` over the first `start + T` rows of `k`, `v` `[S, KV, hd]`
    /// (causal from `start`, GQA with H a multiple of KV, optional window), scale 1/√hd.
    /// Output `[T, H, hd]`.
    pub fn attention(
        &mut self,
        q: &DeviceTensor,
        k: &DeviceTensor,
        v: &DeviceTensor,
        shape: AttentionShape,
    ) -> Result<DeviceTensor> {
        let [t, heads, hd] = q.shape[..] else {
            return Err(Error::InvalidArgument(format!(
                "attention: q shape {:?}",
                q.shape
            )));
        };
        let [s, kv_heads, khd] = k.shape[..] else {
            return Err(Error::InvalidArgument(format!(
                "attention: k shape {:?}",
                k.shape
            )));
        };
        same_shape(k, v, "attention k/v")?;
        if khd != hd || kv_heads == 0 || !heads.is_multiple_of(kv_heads) {
            return Err(Error::InvalidArgument(format!(
                "attention: {heads} query heads of {hd} dims over {kv_heads} KV heads of {khd}"
            )));
        }
        if hd > MAX_HEAD_DIM {
            return Err(Error::Unsupported(format!(
                "head dim {hd} (the Vulkan attention kernel handles up to {MAX_HEAD_DIM})"
            )));
        }
        if shape.start + t > s {
            return Err(Error::InvalidArgument(format!(
                "attention: positions up to {} with {s} cached keys",
                shape.start + t
            )));
        }
        let out = self.ctx.zeros(&q.shape)?;
        let max = self.ctx.limits.max_compute_workgroups_per_dimension as usize;
        if t > max {
            return Err(Error::Unsupported(format!(
                "{t} query rows in one attention call (at most {max})"
            )));
        }
        let window = match shape.window {
            Some(w) => u32::try_from(w).unwrap_or(u32::MAX - 1).min(u32::MAX - 1),
            None => u32::MAX,
        };
        let params = [
            u(t, "T")?,
            u(heads, "heads")?,
            u(kv_heads, "kv heads")?,
            u(hd, "hd")?,
            u(shape.start, "start")?,
            window,
            (1.0 / (hd as f64).sqrt() as f32).to_bits(),
        ];
        let bind = [(1, &q.buf), (2, &k.buf), (3, &v.buf), (4, &out.buf)];
        if hd <= TILED_ATTENTION_MAX_HEAD_DIM {
            let (gx, gy) = (kv_heads, (t * (heads / kv_heads)).div_ceil(8));
            if gx > max || gy > max {
                return Err(Error::Unsupported(format!(
                    "{t} query rows of {heads} heads exceed the device's dispatch limits"
                )));
            }
            self.dispatch(
                Kernel::AttentionTiled,
                &params,
                &bind,
                (gx as u32, gy as u32, 1),
            )?;
        } else {
            self.dispatch(
                Kernel::Attention,
                &params,
                &bind,
                (heads as u32, t as u32, 1),
            )?;
        }
        Ok(out)
    }

    /// `silu(gate) · up`.
    pub fn silu_mul(&mut self, gate: &DeviceTensor, up: &DeviceTensor) -> Result<DeviceTensor> {
        self.elementwise(Kernel::SiluMul, gate, Some(up), 0.0)
    }

    /// GELU, tanh approximation.
    pub fn gelu_tanh(&mut self, x: &DeviceTensor) -> Result<DeviceTensor> {
        self.elementwise(Kernel::GeluTanh, x, None, 0.0)
    }

    /// GELU with the exact erf form.
    pub fn gelu_erf(&mut self, x: &DeviceTensor) -> Result<DeviceTensor> {
        self.elementwise(Kernel::GeluErf, x, None, 0.0)
    }

    /// `relu(x)²` (Persimmon's MLP).
    pub fn relu_sq(&mut self, x: &DeviceTensor) -> Result<DeviceTensor> {
        self.elementwise(Kernel::ReluSq, x, None, 0.0)
    }

    pub fn add(&mut self, a: &DeviceTensor, b: &DeviceTensor) -> Result<DeviceTensor> {
        self.elementwise(Kernel::Add, a, Some(b), 0.0)
    }

    pub fn mul(&mut self, a: &DeviceTensor, b: &DeviceTensor) -> Result<DeviceTensor> {
        self.elementwise(Kernel::Mul, a, Some(b), 0.0)
    }

    pub fn scale(&mut self, a: &DeviceTensor, factor: f32) -> Result<DeviceTensor> {
        self.elementwise(Kernel::Scale, a, None, factor)
    }

    /// `x [T, K] · Wᵀ (+ bias)` → `[T, N]`: the mat-vec kernel for one row, the tiled mat-mat
    /// kernel for more.
    pub fn matmul(
        &mut self,
        x: &DeviceTensor,
        w: &DeviceWeight,
        bias: Option<&DeviceTensor>,
    ) -> Result<DeviceTensor> {
        let (t, k) = rows_cols(x);
        if k != w.cols {
            return Err(Error::InvalidArgument(format!(
                "matmul: {k} input features for a {}×{} weight",
                w.rows, w.cols
            )));
        }
        if let Some(b) = bias {
            if b.elems() != w.rows {
                return Err(Error::InvalidArgument(format!(
                    "matmul: bias {:?} for {} outputs",
                    b.shape, w.rows
                )));
            }
        }
        let mut shape = x.shape.clone();
        if let Some(last) = shape.last_mut() {
            *last = w.rows;
        }
        let out = self.ctx.zeros(&shape)?;
        let max = self.ctx.limits.max_compute_workgroups_per_dimension as usize;
        // Mat-vec threads per output: one per 32-wide chunk of a row, at most a workgroup.
        let lanes = k.div_ceil(32).next_power_of_two().clamp(1, MATVEC_WG);
        for part in &w.parts {
            let params = [
                u(t, "rows")?,
                u(part.rows, "outputs")?,
                u(k, "inputs")?,
                bias.is_some() as u32,
                u(part.row0, "output offset")?,
                u(w.rows, "outputs")?,
                lanes as u32,
            ];
            let bind = [
                (1, &x.buf),
                (2, &part.buf),
                (3, bias.map_or(&self.ctx.dummy, |b| &b.buf)),
                (4, &out.buf),
            ];
            if t == 1 {
                let (gx, gy) = self.grid(part.rows.div_ceil(MATVEC_WG / lanes))?;
                self.dispatch(Kernel::MatVec(w.wtype), &params, &bind, (gx, gy, 1))?;
            } else {
                let (gx, gy) = (part.rows.div_ceil(64), t.div_ceil(64));
                if gx > max || gy > max {
                    return Err(Error::Unsupported(format!(
                        "a {t}×{}×{k} matmul exceeds the device's dispatch limits",
                        w.rows
                    )));
                }
                self.dispatch(
                    Kernel::MatMat(w.wtype),
                    &params,
                    &bind,
                    (gx as u32, gy as u32, 1),
                )?;
            }
        }
        Ok(out)
    }

    /// Copies all of `src` into `dst` starting at row `row` (rows of `dst`'s trailing dims).
    pub fn copy_rows(&mut self, src: &DeviceTensor, dst: &DeviceTensor, row: usize) -> Result<()> {
        let row_elems: usize = dst.shape.iter().skip(1).product();
        if row_elems == 0 || !src.elems().is_multiple_of(row_elems) {
            return Err(Error::InvalidArgument(format!(
                "copy {:?} into rows of {:?}",
                src.shape, dst.shape
            )));
        }
        let rows = src.elems() / row_elems;
        if row + rows > dst.shape.first().copied().unwrap_or(0) {
            return Err(Error::InvalidArgument(format!(
                "copy of {rows} rows at row {row} into {:?}",
                dst.shape
            )));
        }
        self.pass = None;
        self.encoder.copy_buffer_to_buffer(
            &src.buf,
            0,
            &dst.buf,
            (row * row_elems * 4) as u64,
            (src.elems() * 4) as u64,
        );
        Ok(())
    }

    /// Sends the recorded work to the device.
    pub fn submit(self) -> Result<()> {
        drop(self.pass);
        self.ctx.queue.submit([self.encoder.finish()]);
        self.ctx.check()
    }
}

impl VulkanContext {
    /// Uploads row indices into a `total`-row tensor; they must be ascending (hence distinct,
    /// which scatter needs) and below `total`.
    pub fn row_index(&self, rows: &[u32], total: usize) -> Result<RowIndex> {
        let ordered = rows.windows(2).all(|w| w[0] < w[1]);
        if !ordered || rows.last().is_some_and(|&r| r as usize >= total) {
            return Err(Error::InvalidArgument(format!(
                "a row index of {} rows is not ascending within {total} rows",
                rows.len()
            )));
        }
        Ok(RowIndex {
            buf: self.upload_u32(rows)?,
            len: rows.len(),
            total,
        })
    }

    pub(crate) fn upload_u32(&self, values: &[u32]) -> Result<wgpu::Buffer> {
        let buf = self.alloc_bytes(values.len() * 4, "ids")?;
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.queue.write_buffer(&buf, 0, &bytes);
        Ok(buf)
    }
}
