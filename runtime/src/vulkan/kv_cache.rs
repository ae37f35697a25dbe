//! The KV cache on the device: per layer one key and one value buffer `[capacity, KV, hd]`
//! (f32; KV and hd per layer, since a pre-decoder stack may have its own heads). New rows are copied in place at the current length; the capacity doubles when full
//! (amortised O(1) appends, like the CPU cache), bounded by the adapter's largest binding.
//! The number of valid rows is the owning `KvCache::len`: truncating needs no device work.

use super::buffers::DeviceTensor;
use super::context::VulkanContext;
use crate::error::{Error, Result};
use std::sync::Arc;

/// Smallest capacity allocated, in positions.
const MIN_CAPACITY: usize = 64;

pub struct DeviceKvCache {
    ctx: Arc<VulkanContext>,
    /// `(kv_heads, head_dim)` of each layer.
    shapes: Vec<(usize, usize)>,
    /// `(keys, values)` per layer, each `[capacity, kv_heads, head_dim]`; empty until the first
    /// [`DeviceKvCache::reserve`].
    layers: Vec<(DeviceTensor, DeviceTensor)>,
    capacity: usize,
}

impl std::fmt::Debug for DeviceKvCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "DeviceKvCache({} layers × {} positions on {:?})",
            self.shapes.len(),
            self.capacity,
            self.ctx
        )
    }
}

impl DeviceKvCache {
    /// A cache for layers of `(kv_heads, head_dim)` each.
    pub fn new(ctx: Arc<VulkanContext>, shapes: Vec<(usize, usize)>) -> Self {
        DeviceKvCache {
            ctx,
            shapes,
            layers: Vec::new(),
            capacity: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Most positions every layer's buffer can hold on this adapter.
    fn max_positions(&self) -> usize {
        let widest = self.shapes.iter().map(|&(kv, hd)| kv * hd).max();
        self.ctx.max_binding() as usize / (widest.unwrap_or(1) * 4).max(1)
    }

    /// Makes room for `positions` rows, keeping the first `keep` rows of every layer.
    pub fn reserve(&mut self, positions: usize, keep: usize) -> Result<()> {
        if positions <= self.capacity {
            return Ok(());
        }
        let limit = self.max_positions();
        if positions > limit {
            return Err(Error::Unsupported(format!(
                "a context of {positions} positions exceeds what one KV buffer holds on {} ({limit})",
                self.ctx.info.name
            )));
        }
        let new_cap = positions
            .max(self.capacity * 2)
            .max(MIN_CAPACITY)
            .min(limit);
        let keep = keep.min(self.capacity);
        let mut batch = self.ctx.batch();
        let mut grown = Vec::with_capacity(self.shapes.len());
        for (i, &(kv_heads, head_dim)) in self.shapes.iter().enumerate() {
            let shape = [new_cap, kv_heads, head_dim];
            let (nk, nv) = (self.ctx.zeros(&shape)?, self.ctx.zeros(&shape)?);
            if let (Some((k, v)), true) = (self.layers.get(i), keep > 0) {
                batch.copy_rows(&k.rows(keep)?, &nk, 0)?;
                batch.copy_rows(&v.rows(keep)?, &nv, 0)?;
            }
            grown.push((nk, nv));
        }
        batch.submit()?;
        self.layers = grown;
        self.capacity = new_cap;
        Ok(())
    }

    /// Layer `i`'s `(keys, values)` buffers (after a `reserve`).
    pub fn layer(&self, i: usize) -> Result<&(DeviceTensor, DeviceTensor)> {
        self.layers.get(i).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "layer {i} of a {}-layer KV cache with {} positions reserved",
                self.shapes.len(),
                self.capacity
            ))
        })
    }
}

impl Clone for DeviceKvCache {
    /// A deep copy on the device: the two caches then grow apart independently.
    fn clone(&self) -> Self {
        let mut copy = DeviceKvCache::new(self.ctx.clone(), self.shapes.clone());
        if self.capacity == 0 {
            return copy;
        }
        // Clone cannot fail: device errors land in the context's error slot and surface at
        // the next op on it.
        if copy.reserve(self.capacity, 0).is_ok() {
            let mut batch = self.ctx.batch();
            for ((k, v), (ck, cv)) in self.layers.iter().zip(&copy.layers) {
                let _ = batch.copy_rows(k, ck, 0);
                let _ = batch.copy_rows(v, cv, 0);
            }
            let _ = batch.submit();
        }
        copy
    }
}
