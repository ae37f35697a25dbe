//! The model thread: loads models and generates answers off the UI thread, streaming events back.
//!
//! The UI sends [`Request`]s; the worker answers with [`Event`]s on a channel and asks egui to
//! repaint. It keeps the KV cache of the conversation it answered last: a follow-up whose history
//! is exactly what it has cached prefills only the new turn; any other history (another
//! conversation, a regenerated or edited turn) is replayed from its text and images.

use runtime::image::RgbImage;
use runtime::{
    Chat, FinishReason, GenerationOptions, LoadOptions, Model, PromptFormat, SamplingOptions,
};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, OnceLock};

/// One finished exchange of a conversation, as the worker needs it to rebuild the KV cache.
#[derive(Clone)]
pub struct Turn {
    pub prompt: String,
    pub images: Vec<Arc<RgbImage>>,
    pub answer: String,
}

/// Generation settings from the sidebar.
#[derive(Debug, Clone, PartialEq)]
pub struct GenSettings {
    pub temperature: f64,
    pub top_p: f64,
    pub max_tokens: usize,
}

pub struct GenRequest {
    pub conversation: String,
    pub history: Vec<Turn>,
    pub prompt: String,
    pub images: Vec<Arc<RgbImage>>,
    pub settings: GenSettings,
    pub cancel: Arc<AtomicBool>,
}

pub enum Request {
    /// A model file or folder, and the device (`cpu`, `cuda:0`, …) to load it on.
    Load(PathBuf, String),
    Generate(GenRequest),
}

#[derive(Debug, Clone)]
pub struct Finished {
    pub text: String,
    pub tokens: usize,
    pub decode_seconds: f64,
    pub finish: FinishReason,
    pub prompt_tokens: usize,
    pub image_tokens: usize,
}

pub enum Event {
    Loaded(Arc<Model>),
    LoadFailed {
        path: PathBuf,
        error: String,
    },
    /// A streamed piece of the answer.
    Token(String),
    Finished(Finished),
    Failed(String),
}

/// Handle to the model thread.
pub struct Backend {
    tx: Sender<Request>,
    rx: Receiver<Event>,
    ctx: Arc<OnceLock<egui::Context>>,
}

impl Default for Backend {
    fn default() -> Self {
        Self::new()
    }
}

impl Backend {
    pub fn new() -> Self {
        let (req_tx, req_rx) = channel();
        let (ev_tx, ev_rx) = channel();
        let ctx: Arc<OnceLock<egui::Context>> = Arc::new(OnceLock::new());
        let notify = Notify {
            tx: ev_tx,
            ctx: ctx.clone(),
        };
        std::thread::Builder::new()
            .name("monovlm-model".into())
            .spawn(move || worker(req_rx, notify))
            .expect("spawn the model thread");
        Backend {
            tx: req_tx,
            rx: ev_rx,
            ctx,
        }
    }

    /// The context to wake when events arrive (set once, from the first frame).
    pub fn set_context(&self, ctx: &egui::Context) {
        let _ = self.ctx.set(ctx.clone());
    }

    pub fn send(&self, req: Request) {
        // The worker only exits when this handle is dropped.
        let _ = self.tx.send(req);
    }

    pub fn poll(&self) -> Vec<Event> {
        self.rx.try_iter().collect()
    }
}

struct Notify {
    tx: Sender<Event>,
    ctx: Arc<OnceLock<egui::Context>>,
}

impl Notify {
    fn send(&self, e: Event) {
        let _ = self.tx.send(e);
        if let Some(ctx) = self.ctx.get() {
            ctx.request_repaint();
        }
    }
}

fn worker(rx: Receiver<Request>, out: Notify) {
    let mut next = None;
    loop {
        let req = match next.take() {
            Some(r) => r,
            None => match rx.recv() {
                Ok(r) => r,
                Err(_) => return,
            },
        };
        match req {
            Request::Load(path, device) => {
                let loaded = std::panic::catch_unwind(|| {
                    let device = runtime::device::parse_device(&device)?;
                    Model::load(
                        &path,
                        &LoadOptions {
                            device,
                            ..LoadOptions::default()
                        },
                    )
                });
                match loaded {
                    Ok(Ok(model)) => {
                        let model = Arc::new(model);
                        out.send(Event::Loaded(model.clone()));
                        match serve(&model, &rx, &out) {
                            Some(r) => next = Some(r),
                            None => return,
                        }
                    }
                    Ok(Err(e)) => out.send(Event::LoadFailed {
                        path,
                        error: e.to_string(),
                    }),
                    Err(_) => out.send(Event::LoadFailed {
                        path,
                        error: "the loader crashed on this file".into(),
                    }),
                }
            }
            Request::Generate(_) => out.send(Event::Failed("no model is loaded".into())),
        }
    }
}

/// What the cached [`Chat`] holds: the conversation and its exchanges (prompt + answer text).
struct Cached<'m> {
    conversation: String,
    turns: Vec<(String, String)>,
    chat: Chat<'m>,
}

/// Answers generation requests with `model` until a load request arrives (returned) or the UI
/// is gone (`None`).
fn serve(model: &Model, rx: &Receiver<Request>, out: &Notify) -> Option<Request> {
    let mut cached: Option<Cached<'_>> = None;
    for req in rx.iter() {
        let g = match req {
            Request::Load(p, d) => return Some(Request::Load(p, d)),
            Request::Generate(g) => g,
        };
        let run = std::panic::AssertUnwindSafe(|| generate(model, &mut cached, &g, out));
        match std::panic::catch_unwind(run) {
            Ok(Ok(done)) => out.send(Event::Finished(done)),
            Ok(Err(e)) => {
                cached = None;
                out.send(Event::Failed(e));
            }
            Err(_) => {
                cached = None;
                out.send(Event::Failed("generation crashed".into()));
            }
        }
    }
    None
}

fn generate<'m>(
    model: &'m Model,
    cached: &mut Option<Cached<'m>>,
    g: &GenRequest,
    out: &Notify,
) -> Result<Finished, String> {
    let key: Vec<(String, String)> = g
        .history
        .iter()
        .map(|t| (t.prompt.clone(), t.answer.clone()))
        .collect();
    let reusable = cached
        .as_ref()
        .is_some_and(|c| c.conversation == g.conversation && c.turns == key);
    if !reusable {
        *cached = None;
        let mut chat = Chat::new(model, PromptFormat::Chat);
        for t in &g.history {
            let imgs: Vec<RgbImage> = t.images.iter().map(|i| (**i).clone()).collect();
            chat.replay(&t.prompt, &imgs, &t.answer)
                .map_err(|e| describe(&e))?;
        }
        *cached = Some(Cached {
            conversation: g.conversation.clone(),
            turns: key,
            chat,
        });
    }
    let c = cached.as_mut().expect("set above");
    let opts = GenerationOptions {
        max_tokens: g.settings.max_tokens.max(1),
        sampling: SamplingOptions {
            temperature: g.settings.temperature,
            top_p: g.settings.top_p,
            ..Default::default()
        },
        cancel: Some(g.cancel.clone()),
        ..Default::default()
    };
    let images: Vec<RgbImage> = g.images.iter().map(|i| (**i).clone()).collect();
    let reply = c
        .chat
        .send(&g.prompt, &images, &opts, &mut |piece: &str| {
            out.send(Event::Token(piece.to_string()));
            true
        })
        .map_err(|e| describe(&e))?;
    c.turns.push((g.prompt.clone(), reply.text.clone()));
    Ok(Finished {
        text: reply.text,
        tokens: reply.ids.len(),
        decode_seconds: reply.decode_seconds,
        finish: reply.finish,
        prompt_tokens: reply.prompt_tokens,
        image_tokens: reply.image_tokens,
    })
}

fn describe(e: &runtime::Error) -> String {
    match e {
        runtime::Error::ContextOverflow { tokens, context } => format!(
            "out of context: this conversation needs {tokens} positions but the model has {context}; start a new chat"
        ),
        other => other.to_string(),
    }
}

pub fn finish_name(f: FinishReason) -> &'static str {
    match f {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
        FinishReason::Cancelled => "cancelled",
    }
}
