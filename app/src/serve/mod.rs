//! `monovlm serve`: an OpenAI-compatible local server (`/v1/chat/completions` with image input,
//! `/v1/models`, `/health`). HTTP runs on a small tokio runtime; the model runs on `--parallel`
//! worker threads of its own, behind a bounded queue.

mod convert;
mod errors;
mod limits;
mod routes;
mod stop;
mod wire;
mod worker;

use crate::cli_ask::{load_model, ModelArgs};
use anyhow::{bail, Context, Result};
use clap::Args;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::Arc;

#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Address to bind. The default only accepts connections from this machine.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0 picks a free one; the address is printed to stderr).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Requests generated at the same time (each on its own thread).
    #[arg(long, default_value_t = 1)]
    pub parallel: usize,
    /// Requests that may wait for a free slot; more get 503 with Retry-After (checked before
    /// their bodies are read, so memory stays bounded by this and --max-body-bytes).
    #[arg(long, default_value_t = 32)]
    pub max_queue: usize,
    /// Require `Authorization: Bearer KEY` on /v1 routes (or set MONOVLM_API_KEY).
    #[arg(long)]
    pub api_key: Option<String>,
    /// Largest request body accepted (base64 images included).
    #[arg(long, default_value_t = 32 << 20)]
    pub max_body_bytes: usize,
    /// Largest image accepted, in pixels (width × height, checked before decoding).
    #[arg(long, default_value_t = 33_554_432)]
    pub max_image_pixels: u64,
    /// Cap on generated tokens per request (and the default when a request sets none).
    #[arg(long, default_value_t = 1024)]
    pub max_tokens: usize,
    /// Model id clients use in `model` (default: the model folder's name).
    #[arg(long)]
    pub alias: Option<String>,
}

pub fn serve(a: ServeArgs) -> Result<ExitCode> {
    if a.parallel == 0 {
        bail!("--parallel must be at least 1");
    }
    if a.max_tokens == 0 {
        bail!("--max-tokens must be at least 1");
    }
    let api_key = a
        .api_key
        .clone()
        .or_else(|| std::env::var("MONOVLM_API_KEY").ok())
        .filter(|k| !k.is_empty());
    let model_path = a.model.path()?;
    let model_id = a.alias.clone().unwrap_or_else(|| {
        model_path
            .file_stem()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "monovlm".into())
    });
    let model = Arc::new(load_model(&a.model)?);
    let family = model.spec.family;
    let context_length = model.spec.decoder.max_position;
    let max_images = model.spec.sequence.max_images.max(1) * 8;
    let pool = worker::Pool::start(Arc::clone(&model), a.parallel, a.max_queue)
        .context("starting model workers")?;
    let state = Arc::new(routes::AppState {
        model_id: model_id.clone(),
        family,
        context_length,
        api_key,
        limits: limits::Limits {
            max_body_bytes: a.max_body_bytes,
            max_image_pixels: a.max_image_pixels,
            max_tokens: a.max_tokens,
            max_images,
            max_stops: 16,
        },
        pool,
        started: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        next_id: AtomicU64::new(0),
        in_flight: AtomicUsize::new(0),
        max_in_flight: a.parallel + a.max_queue,
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("monovlm-http")
        .enable_io()
        .build()
        .context("starting the HTTP runtime")?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind((a.host.as_str(), a.port))
            .await
            .with_context(|| format!("binding {}:{}", a.host, a.port))?;
        let addr = listener.local_addr()?;
        if !addr.ip().is_loopback() && state.api_key.is_none() {
            eprintln!(
                "monovlm serve: warning: listening on {addr} without --api-key; \
                 anyone who can reach this address can use the model"
            );
        }
        eprintln!(
            "monovlm serve: {family} model `{model_id}` (context {context_length}), \
             {} worker(s), listening on http://{addr}",
            a.parallel
        );
        axum::serve(listener, routes::router(state))
            .await
            .context("serving HTTP")
    })?;
    Ok(ExitCode::SUCCESS)
}
