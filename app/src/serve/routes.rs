//! HTTP routes: `/health`, `/v1/models`, `/v1/chat/completions` (JSON or SSE streaming).

use super::convert::{conversation, generation_options, stop_strings};
use super::errors::ApiError;
use super::limits::Limits;
use super::wire::ChatRequest;
use super::worker::{Event, Job, Outcome, Pool};
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

pub struct AppState {
    pub model_id: String,
    pub family: &'static str,
    pub context_length: usize,
    pub api_key: Option<String>,
    pub limits: Limits,
    pub pool: Pool,
    pub started: u64,
    pub next_id: AtomicU64,
    /// Chat requests being read, decoded, queued, generated or streamed right now.
    pub in_flight: AtomicUsize,
    /// Refuse more than this many at once, before reading their bodies (bounds memory).
    pub max_in_flight: usize,
}

/// Counts one chat request in flight until dropped.
struct InFlight(Arc<AppState>);

impl InFlight {
    fn enter(state: &Arc<AppState>) -> Result<Self, ApiError> {
        let before = state.in_flight.fetch_add(1, Ordering::AcqRel);
        let guard = InFlight(Arc::clone(state));
        if before >= state.max_in_flight {
            return Err(ApiError::busy(state.max_in_flight));
        }
        Ok(guard)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/v1/models", get(models))
        .route("/v1/models/{id}", get(model_by_id))
        .route("/v1/chat/completions", post(chat_completions))
        .fallback(fallback)
        .with_state(state)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

async fn health() -> Response {
    json_response(StatusCode::OK, &json!({"status": "ok"}))
}

async fn fallback(uri: Uri) -> Response {
    ApiError::not_found(uri.path()).into_response()
}

fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(key) = &state.api_key else {
        return Ok(());
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(g) if constant_time_eq(g.as_bytes(), key.as_bytes()) => Ok(()),
        _ => Err(ApiError::unauthorized()),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn models(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(e) = authorize(&state, &headers) {
        return e.into_response();
    }
    json_response(
        StatusCode::OK,
        &json!({"object": "list", "data": [model_object(&state)]}),
    )
}

fn model_object(state: &AppState) -> Value {
    json!({
        "id": state.model_id,
        "object": "model",
        "created": state.started,
        "owned_by": "monovlm",
        "meta": {"family": state.family, "context_length": state.context_length},
    })
}

async fn model_by_id(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(e) = authorize(&state, &headers) {
        return e.into_response();
    }
    if id != state.model_id {
        return ApiError::model_not_found(&id, &state.model_id).into_response();
    }
    json_response(StatusCode::OK, &model_object(&state))
}

/// Reads the body up to the limit; a declared or actual size over it is a 413.
async fn read_body(headers: &HeaderMap, mut body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::too_large(limit));
    }
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
        match frame {
            None => break,
            Some(Err(e)) => {
                return Err(ApiError::invalid(format!(
                    "could not read the request body: {e}"
                )))
            }
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    if buf.len() + data.len() > limit {
                        return Err(ApiError::too_large(limit));
                    }
                    buf.extend_from_slice(&data);
                }
            }
        }
    }
    Ok(Bytes::from(buf))
}

/// Sets the job's cancel flag when dropped: the response (or its stream) is gone, so the worker
/// can stop. Harmless after the job finished.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

async fn chat_completions(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match chat_inner(state, headers, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn chat_inner(
    state: Arc<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let in_flight = InFlight::enter(&state)?;
    let bytes = read_body(&headers, body, state.limits.max_body_bytes).await?;
    let mut req: ChatRequest = serde_json::from_slice(&bytes).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            ApiError::invalid(format!("malformed JSON in the request body: {e}"))
        } else {
            ApiError::invalid(format!("invalid request: {e}"))
        }
    })?;
    if let Some(m) = req.model.as_deref() {
        if !m.is_empty() && m != state.model_id {
            return Err(ApiError::model_not_found(m, &state.model_id));
        }
    }
    let stream = req.stream.unwrap_or(false);
    let include_usage = req
        .stream_options
        .as_ref()
        .and_then(|o| o.include_usage)
        .unwrap_or(false);
    let mut options = generation_options(&req, &state.limits)?;
    let stops = stop_strings(&mut req, &state.limits)?;
    // Base64 and image decoding are CPU work: keep them off the async executor too.
    let limits = state.limits.clone();
    let messages = std::mem::take(&mut req.messages);
    let conv = tokio::task::spawn_blocking(move || conversation(&messages, &limits))
        .await
        .map_err(|e| ApiError::internal(format!("request conversion failed: {e}")))??;

    let cancel = Arc::new(AtomicBool::new(false));
    options.cancel = Some(Arc::clone(&cancel));
    let guard = CancelOnDrop(cancel);
    let n = state.next_id.fetch_add(1, Ordering::Relaxed);
    let id = format!("chatcmpl-{:x}{n:06}", state.started);
    let (tx, mut rx) = unbounded_channel();
    state.pool.submit(Job {
        id: id.clone(),
        conversation: conv,
        options,
        stops,
        events: tx,
    })?;
    let meta = Meta {
        id,
        created: unix_now(),
        model: state.model_id.clone(),
    };

    if !stream {
        let mut text = String::new();
        loop {
            match rx.recv().await {
                Some(Event::Delta(d)) => text.push_str(&d),
                Some(Event::Done(o)) => {
                    drop(guard);
                    drop(in_flight);
                    return Ok(json_response(
                        StatusCode::OK,
                        &json!({
                            "id": meta.id,
                            "object": "chat.completion",
                            "created": meta.created,
                            "model": meta.model,
                            "choices": [{
                                "index": 0,
                                "message": {"role": "assistant", "content": text},
                                "logprobs": null,
                                "finish_reason": o.finish,
                            }],
                            "usage": usage(&o),
                        }),
                    ));
                }
                Some(Event::Failed(e)) => return Err(e),
                None => return Err(ApiError::internal("the model worker stopped")),
            }
        }
    }

    // Wait for the first event so that errors before any output (context length, images) still
    // get their proper status code instead of a 200 with an error inside the stream.
    let first = match rx.recv().await {
        Some(Event::Failed(e)) => return Err(e),
        Some(ev) => ev,
        None => return Err(ApiError::internal("the model worker stopped")),
    };
    let mut sse = SseStream {
        rx,
        first: Some(first),
        out: VecDeque::new(),
        finished: false,
        include_usage,
        meta,
        _guard: guard,
        _in_flight: in_flight,
    };
    sse.out
        .push_back(sse.chunk(json!({"role": "assistant", "content": ""}), None));
    let mut resp = Response::new(Body::from_stream(sse));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(resp)
}

fn usage(o: &Outcome) -> Value {
    json!({
        "prompt_tokens": o.prompt_tokens,
        "completion_tokens": o.completion_tokens,
        "total_tokens": o.prompt_tokens + o.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": o.cached_tokens},
    })
}

struct Meta {
    id: String,
    created: u64,
    model: String,
}

/// `data: {chunk}` events from the worker's events, ending with `data: [DONE]`. Dropping it
/// (the client disconnected) cancels the generation.
struct SseStream {
    rx: UnboundedReceiver<Event>,
    first: Option<Event>,
    out: VecDeque<Bytes>,
    finished: bool,
    include_usage: bool,
    meta: Meta,
    _guard: CancelOnDrop,
    _in_flight: InFlight,
}

impl SseStream {
    fn data(v: &Value) -> Bytes {
        Bytes::from(format!("data: {v}\n\n"))
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> Bytes {
        Self::data(&json!({
            "id": self.meta.id,
            "object": "chat.completion.chunk",
            "created": self.meta.created,
            "model": self.meta.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        }))
    }

    fn handle(&mut self, ev: Event) {
        match ev {
            Event::Delta(d) => {
                let c = self.chunk(json!({ "content": d }), None);
                self.out.push_back(c);
            }
            Event::Done(o) => {
                let c = self.chunk(json!({}), Some(o.finish));
                self.out.push_back(c);
                if self.include_usage {
                    let u = Self::data(&json!({
                        "id": self.meta.id,
                        "object": "chat.completion.chunk",
                        "created": self.meta.created,
                        "model": self.meta.model,
                        "choices": [],
                        "usage": usage(&o),
                    }));
                    self.out.push_back(u);
                }
                self.finish();
            }
            Event::Failed(e) => {
                self.out.push_back(Self::data(&e.body()));
                self.finish();
            }
        }
    }

    fn finish(&mut self) {
        self.out.push_back(Bytes::from_static(b"data: [DONE]\n\n"));
        self.finished = true;
    }
}

impl futures_core::Stream for SseStream {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(b) = this.out.pop_front() {
                return Poll::Ready(Some(Ok(b)));
            }
            if this.finished {
                return Poll::Ready(None);
            }
            let ev = match this.first.take() {
                Some(ev) => ev,
                None => match this.rx.poll_recv(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Some(ev)) => ev,
                    Poll::Ready(None) => {
                        Event::Failed(ApiError::internal("the model worker stopped"))
                    }
                },
            };
            this.handle(ev);
        }
    }
}
