//! The Vulkan backend: our own WGSL compute kernels on wgpu (feature `vulkan`).
//!
//! candle has no wgpu device, so this is a small runtime of its own: a [`VulkanContext`] per
//! adapter (`vulkan:N`), f32 activation tensors and weights kept in their stored encoding
//! (dense or raw GGML blocks) on the device, and a [`Batch`] of ops (embedding gather, norms,
//! RoPE, online-softmax attention, activations, mat-vec and tiled mat-mat for every weight type).
//! Every op is checked against the CPU in `tests/backend_conformance.rs`.

mod buffers;
mod context;
mod decoder;
mod kernels;
mod kv_cache;
mod linear;
mod ops;
pub mod profile;

pub use buffers::{DeviceTensor, DeviceWeight, WeightType};
pub use context::{adapters, AdapterSummary, VulkanContext, NO_ADAPTER};
pub use decoder::VulkanDecoder;
pub use kv_cache::DeviceKvCache;
pub use linear::DeviceLinear;
pub use ops::{AttentionShape, Batch, RowIndex, MAX_HEAD_DIM};
