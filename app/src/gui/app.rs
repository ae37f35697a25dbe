//! App state and the actions the UI triggers: conversations, the composer, the model, streaming.

use crate::attach::{self, Attachment};
use crate::store::{self, AnswerStats, Role, Settings, Store, StoredConversation, StoredMessage};
use crate::worker::{self, Backend, Event, GenRequest, GenSettings, Request, Turn};
use runtime::Model;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::time::Instant;

/// How the app starts.
#[derive(Debug, Clone)]
pub struct AppOptions {
    /// `--model`; `None` means the default model (`$MONOVLM_MODEL` or the one in `assets/`).
    pub model: Option<PathBuf>,
    /// Where conversations and settings are kept.
    pub data_dir: PathBuf,
}

pub struct Message {
    pub role: Role,
    pub text: String,
    pub images: Vec<Attachment>,
    pub stats: Option<AnswerStats>,
}

pub struct Conversation {
    pub id: String,
    pub title: String,
    pub updated: u64,
    pub messages: Vec<Message>,
}

impl Conversation {
    fn new() -> Self {
        Conversation {
            id: store::new_id(),
            title: "New chat".into(),
            updated: store::now_secs(),
            messages: Vec::new(),
        }
    }

    fn to_stored(&self) -> StoredConversation {
        StoredConversation {
            id: self.id.clone(),
            title: self.title.clone(),
            updated: self.updated,
            messages: self
                .messages
                .iter()
                .map(|m| StoredMessage {
                    role: m.role,
                    text: m.text.clone(),
                    images: m.images.iter().map(|a| a.stored.clone()).collect(),
                    stats: m.stats.clone(),
                })
                .collect(),
        }
    }
}

pub enum ModelState {
    /// Nothing loaded yet and nothing asked for.
    None,
    Loading {
        path: PathBuf,
        since: Instant,
    },
    Ready(Arc<Model>),
    /// The last load failed (the message is also shown as an error).
    Failed(String),
}

/// The answer being streamed.
pub struct Streaming {
    pub cancel: Arc<AtomicBool>,
    pub started: Instant,
    pub first_piece: Option<Instant>,
    pub pieces: usize,
}

impl Streaming {
    /// Live decode speed (streamed pieces are tokens, except rare multi-token characters).
    pub fn tokens_per_second(&self) -> Option<f64> {
        let first = self.first_piece?;
        let secs = first.elapsed().as_secs_f64();
        (self.pieces > 1 && secs > 0.0).then(|| (self.pieces - 1) as f64 / secs)
    }
}

/// What the image preview shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreviewTarget {
    Pending(usize),
    Message(usize, usize),
}

pub(crate) enum DialogResult {
    Images(Vec<PathBuf>),
    Model(PathBuf),
}

pub struct MonoApp {
    pub(crate) store: Store,
    pub(crate) settings: Settings,
    /// Saved conversations for the sidebar (the current one included once saved).
    pub(crate) saved: Vec<StoredConversation>,
    pub(crate) current: Conversation,
    pub(crate) input: String,
    pub(crate) pending: Vec<Attachment>,
    pub(crate) backend: Backend,
    pub(crate) model: ModelState,
    pub(crate) model_path: Option<PathBuf>,
    /// The device models load on (`cpu`, `cuda:0`, `metal:0`).
    pub(crate) device: String,
    pub(crate) streaming: Option<Streaming>,
    pub(crate) errors: Vec<String>,
    pub(crate) preview: Option<PreviewTarget>,
    pub(crate) show_grid: bool,
    pub(crate) renaming: Option<(String, String)>,
    pub(crate) md_cache: egui_commonmark::CommonMarkCache,
    pub(crate) dialog_tx: Sender<DialogResult>,
    pub(crate) dialog_rx: Receiver<DialogResult>,
    pub(crate) focus_input: bool,
    /// The sidebar's model path field (for desktops without a file dialog portal).
    pub(crate) model_path_input: String,
}

impl MonoApp {
    pub fn new(opts: AppOptions) -> Self {
        let store = Store::new(opts.data_dir);
        let settings = store.load_settings();
        let (saved, errors) = store.list();
        let (dialog_tx, dialog_rx) = channel();
        let mut app = MonoApp {
            store,
            settings,
            saved,
            current: Conversation::new(),
            input: String::new(),
            pending: Vec::new(),
            backend: Backend::new(),
            model: ModelState::None,
            model_path: None,
            device: "cpu".into(),
            streaming: None,
            errors,
            preview: None,
            show_grid: true,
            renaming: None,
            md_cache: Default::default(),
            dialog_tx,
            dialog_rx,
            focus_input: true,
            model_path_input: String::new(),
        };
        match crate::default_model::resolve(opts.model.as_deref()) {
            Ok(path) => app.load_model(path),
            Err(e) => app.model_failed(format!("{e:#}")),
        }
        app
    }

    // ---- read access (used by the UI tests) ----

    pub fn messages(&self) -> &[Message] {
        &self.current.messages
    }

    pub fn conversation_id(&self) -> &str {
        &self.current.id
    }

    pub fn saved_conversations(&self) -> &[StoredConversation] {
        &self.saved
    }

    pub fn is_generating(&self) -> bool {
        self.streaming.is_some()
    }

    pub fn model_ready(&self) -> bool {
        matches!(self.model, ModelState::Ready(_))
    }

    pub fn model_loading(&self) -> bool {
        matches!(self.model, ModelState::Loading { .. })
    }

    pub fn loaded_model(&self) -> Option<&Arc<Model>> {
        match &self.model {
            ModelState::Ready(m) => Some(m),
            _ => None,
        }
    }

    pub fn errors(&self) -> &[String] {
        &self.errors
    }

    pub fn pending_images(&self) -> usize {
        self.pending.len()
    }

    pub fn input_text(&self) -> &str {
        &self.input
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn settings_mut(&mut self) -> &mut Settings {
        &mut self.settings
    }

    // ---- actions ----

    pub fn load_model(&mut self, path: PathBuf) {
        if let Some(s) = &self.streaming {
            s.cancel.store(true, Ordering::Relaxed);
        }
        self.model = ModelState::Loading {
            path: path.clone(),
            since: Instant::now(),
        };
        self.model_path = Some(path.clone());
        self.backend.send(Request::Load(path, self.device.clone()));
    }

    fn model_failed(&mut self, msg: String) {
        self.errors.push(msg.clone());
        self.model = ModelState::Failed(msg);
    }

    pub fn new_chat(&mut self) {
        if self.streaming.is_some() {
            return;
        }
        self.save_current();
        self.current = Conversation::new();
        self.input.clear();
        self.pending.clear();
        self.preview = None;
        self.focus_input = true;
    }

    /// Opens a saved conversation (its images are read back from the store).
    pub fn open_conversation(&mut self, id: &str) {
        if self.streaming.is_some() || self.current.id == id {
            return;
        }
        let Some(stored) = self.saved.iter().find(|c| c.id == id).cloned() else {
            return;
        };
        self.save_current();
        let mut messages = Vec::new();
        for m in stored.messages {
            let mut images = Vec::new();
            for name in &m.images {
                match self.store.load_image(name) {
                    Ok(img) => {
                        let mut a = Attachment::new(img, name.clone());
                        a.stored = name.clone();
                        images.push(a);
                    }
                    Err(e) => self.errors.push(format!("{e:#}")),
                }
            }
            messages.push(Message {
                role: m.role,
                text: m.text,
                images,
                stats: m.stats,
            });
        }
        self.current = Conversation {
            id: stored.id,
            title: stored.title,
            updated: stored.updated,
            messages,
        };
        self.preview = None;
        self.focus_input = true;
    }

    pub fn delete_conversation(&mut self, id: &str) {
        if self.streaming.is_some() && self.current.id == id {
            return;
        }
        if let Err(e) = self.store.delete(id) {
            self.errors.push(format!("{e:#}"));
        }
        self.saved.retain(|c| c.id != id);
        if self.current.id == id {
            self.current = Conversation::new();
            self.preview = None;
        }
    }

    pub fn rename_conversation(&mut self, id: &str, title: &str) {
        let title = title.trim();
        if title.is_empty() {
            return;
        }
        if self.current.id == id {
            self.current.title = title.to_string();
            self.save_current();
        } else if let Some(c) = self.saved.iter_mut().find(|c| c.id == id) {
            c.title = title.to_string();
            let c = c.clone();
            if let Err(e) = self.store.save(&c) {
                self.errors.push(format!("{e:#}"));
            }
        }
    }

    /// Saves the current conversation if it has messages (and refreshes the sidebar list).
    pub(crate) fn save_current(&mut self) {
        if self.current.messages.is_empty() {
            return;
        }
        let stored = self.current.to_stored();
        if let Err(e) = self.store.save(&stored) {
            self.errors
                .push(format!("could not save the conversation: {e:#}"));
        }
        self.saved.retain(|c| c.id != stored.id);
        self.saved.insert(0, stored);
    }

    pub(crate) fn save_settings(&mut self) {
        if let Err(e) = self.store.save_settings(&self.settings) {
            self.errors.push(format!("could not save settings: {e:#}"));
        }
    }

    /// Attaches an image file to the next message; unreadable files become an error message.
    pub fn attach_path(&mut self, path: &Path) {
        match attach::decode_file(path) {
            Ok(img) => {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "image".into());
                self.pending.push(Attachment::new(img, name));
            }
            Err(e) => self.errors.push(format!("{e:#}")),
        }
    }

    pub fn attach_pasted(&mut self, img: &egui::ColorImage) {
        match attach::from_color_image(img) {
            Ok(img) => self.pending.push(Attachment::new(img, "clipboard")),
            Err(e) => self.errors.push(format!("{e:#}")),
        }
    }

    /// Sends the composer's text and images.
    pub fn send_input(&mut self) {
        if self.streaming.is_some() {
            return;
        }
        let text = self.input.trim().to_string();
        if text.is_empty() && self.pending.is_empty() {
            return;
        }
        if !self.model_ready() {
            self.errors.push(
                "no model is loaded: open a .gguf file or a Hugging Face folder in the sidebar"
                    .into(),
            );
            return;
        }
        let images = std::mem::take(&mut self.pending);
        self.input.clear();
        self.start(text, images);
    }

    /// Adds a user message and asks the worker for the answer.
    fn start(&mut self, text: String, mut images: Vec<Attachment>) {
        for a in &mut images {
            if a.stored.is_empty() {
                match self.store.save_image(&a.image) {
                    Ok(name) => a.stored = name,
                    Err(e) => self.errors.push(format!("could not save the image: {e:#}")),
                }
            }
        }
        if self.current.messages.is_empty() {
            self.current.title = title_of(&text, images.len());
        }
        let history = self.history();
        let first_turn = history.is_empty();
        let req = GenRequest {
            conversation: self.current.id.clone(),
            history,
            prompt: self.prompt_text(&text, first_turn),
            images: images.iter().map(|a| a.image.clone()).collect(),
            settings: GenSettings {
                temperature: self.settings.temperature,
                top_p: self.settings.top_p,
                max_tokens: self.settings.max_tokens,
            },
            cancel: Arc::new(AtomicBool::new(false)),
        };
        self.streaming = Some(Streaming {
            cancel: req.cancel.clone(),
            started: Instant::now(),
            first_piece: None,
            pieces: 0,
        });
        self.current.messages.push(Message {
            role: Role::User,
            text,
            images,
            stats: None,
        });
        self.current.messages.push(Message {
            role: Role::Assistant,
            text: String::new(),
            images: Vec::new(),
            stats: None,
        });
        self.current.updated = store::now_secs();
        self.save_current();
        self.backend.send(Request::Generate(req));
    }

    /// The text the model sees for a user message: the system prompt goes in front of the first
    /// one (our families have no system slot).
    fn prompt_text(&self, text: &str, first_turn: bool) -> String {
        let system = self.settings.system_prompt.trim();
        if first_turn && !system.is_empty() {
            format!("{system}\n\n{text}")
        } else {
            text.to_string()
        }
    }

    /// Finished exchanges of the current conversation, as the model saw them.
    fn history(&self) -> Vec<Turn> {
        let mut out = Vec::new();
        let mut user: Option<&Message> = None;
        for m in &self.current.messages {
            match m.role {
                Role::User => user = Some(m),
                Role::Assistant => {
                    if let Some(u) = user.take() {
                        out.push(Turn {
                            prompt: self.prompt_text(&u.text, out.is_empty()),
                            images: u.images.iter().map(|a| a.image.clone()).collect(),
                            answer: m.text.clone(),
                        });
                    }
                }
            }
        }
        out
    }

    pub fn stop(&mut self) {
        if let Some(s) = &self.streaming {
            s.cancel.store(true, Ordering::Relaxed);
        }
    }

    /// Answers the last user message again.
    pub fn regenerate(&mut self) {
        if self.streaming.is_some() || !self.model_ready() {
            return;
        }
        if self.current.messages.last().map(|m| m.role) == Some(Role::Assistant) {
            self.current.messages.pop();
        }
        if let Some(user) = self.current.messages.pop() {
            self.start(user.text, user.images);
        }
    }

    /// Moves the last user message (and its answer) back into the composer for editing.
    pub fn edit_last(&mut self) {
        if self.streaming.is_some() {
            return;
        }
        if self.current.messages.last().map(|m| m.role) == Some(Role::Assistant) {
            self.current.messages.pop();
        }
        if let Some(user) = self.current.messages.pop() {
            self.input = user.text;
            self.pending = user.images;
            self.focus_input = true;
            if self.current.messages.is_empty() {
                let _ = self.store.delete(&self.current.id);
                self.saved.retain(|c| c.id != self.current.id);
            } else {
                self.save_current();
            }
        }
    }

    pub fn copy_message(&self, ctx: &egui::Context, index: usize) {
        if let Some(m) = self.current.messages.get(index) {
            ctx.copy_text(m.text.clone());
        }
    }

    pub fn open_file_dialog_images(&self) {
        let tx = self.dialog_tx.clone();
        std::thread::spawn(move || {
            if let Some(files) = rfd::FileDialog::new()
                .set_title("Attach images")
                .add_filter(
                    "Images",
                    &["png", "jpg", "jpeg", "webp", "gif", "bmp", "tif", "tiff"],
                )
                .pick_files()
            {
                let _ = tx.send(DialogResult::Images(files));
            }
        });
    }

    pub fn open_file_dialog_model(&self, folder: bool) {
        let tx = self.dialog_tx.clone();
        std::thread::spawn(move || {
            let picked = if folder {
                rfd::FileDialog::new()
                    .set_title("Open a Hugging Face model folder")
                    .pick_folder()
            } else {
                rfd::FileDialog::new()
                    .set_title("Open a GGUF model")
                    .add_filter("GGUF", &["gguf"])
                    .pick_file()
            };
            if let Some(p) = picked {
                let _ = tx.send(DialogResult::Model(p));
            }
        });
    }

    /// Applies everything that arrived from the worker and the file dialogs.
    pub(crate) fn process_events(&mut self) {
        while let Ok(d) = self.dialog_rx.try_recv() {
            match d {
                DialogResult::Images(files) => {
                    for f in files {
                        self.attach_path(&f);
                    }
                }
                DialogResult::Model(p) => self.load_model(p),
            }
        }
        for ev in self.backend.poll() {
            match ev {
                Event::Loaded(model) => {
                    if let Some(p) = &self.model_path {
                        let p = p.clone();
                        self.settings.remember_model(&p);
                        self.save_settings();
                    }
                    self.model = ModelState::Ready(model);
                }
                Event::LoadFailed { path, error } => {
                    self.model_failed(format!("could not load {}: {error}", path.display()));
                }
                Event::Token(piece) => {
                    if let Some(s) = &mut self.streaming {
                        s.pieces += 1;
                        s.first_piece.get_or_insert_with(Instant::now);
                    }
                    if let Some(m) = self.current.messages.last_mut() {
                        m.text.push_str(&piece);
                    }
                }
                Event::Finished(f) => {
                    self.streaming = None;
                    if let Some(m) = self.current.messages.last_mut() {
                        m.text = f.text;
                        m.stats = Some(AnswerStats {
                            tokens: f.tokens,
                            tokens_per_second: if f.decode_seconds > 0.0 {
                                f.tokens as f64 / f.decode_seconds
                            } else {
                                0.0
                            },
                            finish: worker::finish_name(f.finish).to_string(),
                            prompt_tokens: f.prompt_tokens,
                            image_tokens: f.image_tokens,
                        });
                    }
                    self.current.updated = store::now_secs();
                    self.save_current();
                }
                Event::Failed(e) => {
                    self.streaming = None;
                    self.errors.push(e);
                    // Drop the empty answer and give the question back for another try.
                    if self
                        .current
                        .messages
                        .last()
                        .is_some_and(|m| m.role == Role::Assistant && m.text.is_empty())
                    {
                        self.current.messages.pop();
                        if let Some(user) = self.current.messages.pop() {
                            if self.input.is_empty() {
                                self.input = user.text;
                            }
                            self.pending.extend(user.images);
                        }
                    }
                    if self.current.messages.is_empty() {
                        let _ = self.store.delete(&self.current.id);
                        self.saved.retain(|c| c.id != self.current.id);
                    } else {
                        self.save_current();
                    }
                }
            }
        }
    }
}

fn title_of(text: &str, images: usize) -> String {
    let line = text.lines().next().unwrap_or("").trim();
    if line.is_empty() {
        return if images > 0 {
            "Image".into()
        } else {
            "New chat".into()
        };
    }
    let mut t: String = line.chars().take(40).collect();
    if line.chars().count() > 40 {
        t.push('…');
    }
    t
}
