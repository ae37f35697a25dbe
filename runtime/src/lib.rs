//! monovlm runtime: load native (encoder-free) vision-language models and answer questions about
//! images on the CPU.
//!
//! Flow: image → [`image::preprocess`] (family-exact) → [`frontend::Frontend`] → image rows;
//! prompt → template → tokens ([`sequence`]) → merged embeddings → [`decoder::Decoder`] with a KV
//! cache → [`generate::Chat`] streams the answer. Families ([`families`]) are data: a
//! [`spec::ModelSpec`] built from the checkpoint's config files.

pub mod adapter;
pub mod checkpoint;
pub mod decoder;
pub mod device;
pub mod error;
pub mod families;
pub mod frontend;
pub mod generate;
pub mod image;
pub mod memory;
pub mod model;
pub mod reference;
pub mod sequence;
pub mod spec;
#[cfg(feature = "vulkan")]
pub mod vulkan;

pub use error::{Error, Result};
pub use generate::{Chat, FinishReason, GenerationOptions, Reply, SamplingOptions};
pub use model::{ComputeDtype, LoadOptions, Model, PromptFormat};
