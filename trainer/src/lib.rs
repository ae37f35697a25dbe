//! Training native VLMs with the runtime's own model code: full fine-tuning, LoRA (PEFT-format
//! adapters), front-end-only stages, LLaVA-style data with text-only mixing, evaluation, exact
//! resume, metrics and curves.

pub mod compare;
pub mod data;
pub mod encode;
pub mod error;
pub mod lora;
pub mod metrics;
pub mod optim;
pub mod params;
pub mod stream;
pub mod synth;
pub mod train;

pub use error::{Result, TrainError};
pub use train::{train, Method, Summary, TrainConfig};
