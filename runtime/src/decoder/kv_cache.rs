//! Per-layer key/value cache with amortised growth: appends write into a preallocated buffer
//! instead of concatenating, so a decode step copies only the new token's keys and values.

use crate::error::Result;
use candle_core::Tensor;

#[derive(Debug, Clone, Default)]
pub struct LayerCache {
    k: Option<Tensor>,
    v: Option<Tensor>,
    len: usize,
}

impl LayerCache {
    /// Appends `k`, `v` (`[T, KV, hd]`) and returns the full cached `[S, KV, hd]` views.
    pub fn append(&mut self, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let t = k.dim(0)?;
        let need = self.len + t;
        let cap = self.k.as_ref().map(|b| b.dim(0)).transpose()?.unwrap_or(0);
        if need > cap {
            let new_cap = need.max(cap * 2).max(64);
            let (_, kv, hd) = k.dims3()?;
            let nk = Tensor::zeros((new_cap, kv, hd), k.dtype(), k.device())?;
            let nv = Tensor::zeros((new_cap, kv, hd), v.dtype(), v.device())?;
            if let (Some(ok), Some(ov)) = (&self.k, &self.v) {
                nk.slice_set(&ok.narrow(0, 0, self.len)?, 0, 0)?;
                nv.slice_set(&ov.narrow(0, 0, self.len)?, 0, 0)?;
            }
            self.k = Some(nk);
            self.v = Some(nv);
        }
        let (bk, bv) = match (&self.k, &self.v) {
            (Some(bk), Some(bv)) => (bk, bv),
            _ => unreachable!("buffers allocated above"),
        };
        bk.slice_set(&k.contiguous()?, 0, self.len)?;
        bv.slice_set(&v.contiguous()?, 0, self.len)?;
        self.len = need;
        Ok((bk.narrow(0, 0, need)?, bv.narrow(0, 0, need)?))
    }

    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }
}

/// The cache of one sequence across all layers (and, later, a pre-decoder's layers).
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    pub layers: Vec<LayerCache>,
    /// Number of positions already processed.
    pub len: usize,
    /// The keys and values of a decoder on a Vulkan device (then `layers` stay empty).
    #[cfg(feature = "vulkan")]
    pub device: Option<crate::vulkan::DeviceKvCache>,
}

impl KvCache {
    pub fn new(layers: usize) -> Self {
        KvCache {
            layers: vec![LayerCache::default(); layers],
            len: 0,
            #[cfg(feature = "vulkan")]
            device: None,
        }
    }

    /// Forgets everything after `len` positions (to re-run a regenerated answer).
    pub fn truncate(&mut self, len: usize) {
        for l in &mut self.layers {
            l.truncate(len);
        }
        self.len = self.len.min(len);
    }
}
