//! The runtime's one error type. Every variant carries what a user needs to fix the input.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: invalid JSON: {message}")]
    Json { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("unknown model family: {0}")]
    UnknownFamily(String),
    #[error("{path}: malformed safetensors: {message}")]
    Safetensors { path: PathBuf, message: String },
    #[error("{path}: malformed GGUF: {message}")]
    Gguf { path: PathBuf, message: String },
    #[error("missing tensor `{name}` in the checkpoint (looked for: {tried})")]
    MissingTensor { name: String, tried: String },
    #[error("tensor `{name}` has shape {actual:?}, expected {expected:?}")]
    TensorShape {
        name: String,
        actual: Vec<usize>,
        expected: Vec<usize>,
    },
    #[error("tensor `{name}` has unsupported dtype {dtype}")]
    TensorDtype { name: String, dtype: String },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("image: {0}")]
    Image(String),
    #[error("prompt too long: {tokens} tokens exceed the context length of {context}")]
    ContextOverflow { tokens: usize, context: usize },
    #[error("the model produced non-finite logits (NaN or infinity) at generated token {step}: its weights are corrupt or its activations overflowed")]
    NonFiniteLogits { step: usize },
    #[error("{0}")]
    Unsupported(String),
    /// A preflight estimate that exceeds the memory budget (`runtime::memory`).
    #[error("out of memory: {0}")]
    OutOfMemory(String),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A Vulkan device failure (driver, out of device memory, a kernel rejected by the driver).
    #[error("vulkan: {0}")]
    Vulkan(String),
    #[error("tensor math: {0}")]
    Candle(#[from] candle_core::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
    pub(crate) fn config(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Config {
            path: path.into(),
            message: message.into(),
        }
    }
}
