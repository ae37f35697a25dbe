//! The trainer's error type: every variant names the file, line or setting at fault.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Runtime(#[from] runtime::Error),
    #[error("tensor math: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Data {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{0}")]
    Config(String),
    #[error("plot: {0}")]
    Plot(String),
    #[error("stopped after step {step} as asked (resume to continue)")]
    Interrupted { step: usize },
}

pub type Result<T> = std::result::Result<T, TrainError>;

impl TrainError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TrainError::Io {
            path: path.into(),
            source,
        }
    }
}
