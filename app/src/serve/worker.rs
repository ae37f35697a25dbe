//! Model work off the async executor: `--parallel` threads, each running one conversation at a
//! time, fed by a bounded queue. Results go back as a stream of events.

use super::convert::{Conversation, ExchangeKey};
use super::errors::ApiError;
use super::stop::StopFilter;
use runtime::{Chat, FinishReason, GenerationOptions, Model, PromptFormat};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::mpsc::UnboundedSender;

pub struct Job {
    pub id: String,
    pub conversation: Conversation,
    /// Carries the cancel flag, set when the client goes away.
    pub options: GenerationOptions,
    pub stops: Vec<String>,
    pub events: UnboundedSender<Event>,
}

#[derive(Debug)]
pub enum Event {
    /// Answer text to show (stop strings already cut).
    Delta(String),
    Done(Outcome),
    Failed(ApiError),
}

#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    /// OpenAI's `finish_reason`: `stop` or `length`.
    pub finish: &'static str,
    /// Every prompt position of this request: text, template and image tokens.
    pub prompt_tokens: usize,
    /// Of those, positions taken from this worker's prompt cache instead of being prefilled.
    pub cached_tokens: usize,
    pub completion_tokens: usize,
}

pub struct Pool {
    queue: SyncSender<Job>,
    parallel: usize,
    max_queue: usize,
}

impl Pool {
    /// Starts `parallel` workers; at most `max_queue` jobs wait for a free one.
    pub fn start(model: Arc<Model>, parallel: usize, max_queue: usize) -> std::io::Result<Pool> {
        let (tx, rx) = sync_channel::<Job>(max_queue);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..parallel {
            let model = Arc::clone(&model);
            let rx = Arc::clone(&rx);
            std::thread::Builder::new()
                .name(format!("monovlm-worker-{i}"))
                .stack_size(16 << 20)
                .spawn(move || work(&model, &rx))?;
        }
        Ok(Pool {
            queue: tx,
            parallel,
            max_queue,
        })
    }

    /// Queues a job, or refuses it at once when the queue is full.
    pub fn submit(&self, job: Job) -> Result<(), ApiError> {
        match self.queue.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(ApiError::busy(self.parallel + self.max_queue)),
            Err(TrySendError::Disconnected(_)) => {
                Err(ApiError::internal("no model workers are running"))
            }
        }
    }
}

/// The conversation a worker answered last, kept with its KV cache: a follow-up request whose
/// history is exactly these exchanges only prefills its new user turn (and images).
type PromptCache<'m> = Option<(Vec<ExchangeKey>, Chat<'m>)>;

fn work(model: &Model, rx: &Mutex<Receiver<Job>>) {
    let mut cache: PromptCache = None;
    loop {
        // A poisoned lock only means another worker panicked while waiting; the queue is fine.
        let job = match rx.lock() {
            Ok(guard) => guard.recv(),
            Err(poisoned) => poisoned.into_inner().recv(),
        };
        let Ok(job) = job else { return };
        let events = job.events.clone();
        let id = job.id.clone();
        if std::panic::catch_unwind(AssertUnwindSafe(|| run(model, job, &mut cache))).is_err() {
            cache = None;
            eprintln!("monovlm serve: {id}: internal error (panic) in the model worker");
            let _ = events.send(Event::Failed(ApiError::internal(
                "internal error while generating; see the server log",
            )));
        }
    }
}

fn run<'m>(model: &'m Model, job: Job, cache: &mut PromptCache<'m>) {
    let Job {
        id,
        conversation,
        options,
        stops,
        events,
    } = job;
    let cancelled = || {
        options
            .cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
    };
    if cancelled() {
        eprintln!("monovlm serve: {id}: cancelled before it started (client disconnected)");
        return;
    }
    let t0 = Instant::now();
    let fail = |e: &runtime::Error| {
        let err = ApiError::from_runtime(e);
        eprintln!("monovlm serve: {id}: {err}");
        let _ = events.send(Event::Failed(err));
    };
    let mut key: Vec<ExchangeKey> = conversation
        .history
        .iter()
        .map(|(turn, answer)| ExchangeKey::new(turn, answer))
        .collect();
    let (mut chat, cached_tokens) = match cache.take() {
        Some((k, chat)) if k == key => {
            let n = chat.len();
            (chat, n)
        }
        _ => {
            let mut chat = Chat::new(model, PromptFormat::Chat);
            for (turn, answer) in &conversation.history {
                if let Err(e) = chat.replay(&turn.text, &turn.images, answer) {
                    return fail(&e);
                }
            }
            (chat, 0)
        }
    };
    let replayed = chat.len();
    let mut filter = StopFilter::new(stops);
    let mut client_gone = false;
    let mut raw_len = 0usize;
    let mut on_text = |piece: &str| {
        raw_len += piece.len();
        let shown = filter.push(piece);
        if !shown.is_empty() && events.send(Event::Delta(shown)).is_err() {
            client_gone = true;
            return false;
        }
        !filter.stopped()
    };
    let last = &conversation.last;
    let reply = match chat.send(&last.text, &last.images, &options, &mut on_text) {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    let mut by_stop_string = filter.stopped();
    if !by_stop_string {
        // The runtime holds back a trailing incomplete UTF-8 sequence; the reply has it all.
        if reply.text.len() > raw_len && reply.text.is_char_boundary(raw_len) {
            let tail = filter.push(&reply.text[raw_len..]);
            if !tail.is_empty() && events.send(Event::Delta(tail)).is_err() {
                client_gone = true;
            }
            by_stop_string = filter.stopped();
        }
    }
    if !by_stop_string {
        let rest = filter.finish();
        if !rest.is_empty() && events.send(Event::Delta(rest)).is_err() {
            client_gone = true;
        }
    }
    let finish = match reply.finish {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
        FinishReason::Cancelled if by_stop_string => "stop",
        FinishReason::Cancelled => {
            client_gone = true;
            "stop"
        }
    };
    let outcome = Outcome {
        finish,
        prompt_tokens: replayed + reply.prompt_tokens,
        cached_tokens,
        completion_tokens: reply.ids.len(),
    };
    // Keep the conversation only when the client saw every generated token: a stop string or a
    // disconnect leaves tokens in the cache that the client's next request will not send back.
    let complete = !by_stop_string && !client_gone && reply.finish != FinishReason::Cancelled;
    if complete && !cancelled() {
        key.push(ExchangeKey::new(last, &reply.text));
        *cache = Some((key, chat));
    }
    let secs = t0.elapsed().as_secs_f64();
    if client_gone || cancelled() {
        eprintln!(
            "monovlm serve: {id}: cancelled (client disconnected) after {} tokens, {secs:.2}s",
            outcome.completion_tokens
        );
        return;
    }
    eprintln!(
        "monovlm serve: {id}: finish={finish} prompt_tokens={} completion_tokens={} {secs:.2}s",
        outcome.prompt_tokens, outcome.completion_tokens
    );
    let _ = events.send(Event::Done(outcome));
}
