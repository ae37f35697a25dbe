//! `monovlm train`: the training loop (full, LoRA, or front-end only), evaluation, checkpoints
//! with exact resume, metrics and curves.

use crate::data::{read_jsonl, Record};
use crate::encode::{encode, loss_sum};
use crate::error::{Result, TrainError};
use crate::lora::{target_modules, LoraParams};
use crate::metrics::{plot_runs, read_csv, write_csv, MetricRow};
use crate::optim::{clip_global_norm, learning_rate, AdamW, AdamWConfig};
use crate::params::{frontend_tensor_names, save_hf_folder, Params};
use crate::stream::SampleStream;
use candle_core::{DType, Device, Tensor, Var};
use runtime::adapter::{Adapters, LoraConfig};
use runtime::checkpoint::{CheckpointTensors, FreshInit, HfFolder, MemoryTensors};
use runtime::image::{pilimage, DecodeLimits, RgbImage};
use runtime::sequence::Tokenizer;
use runtime::{Chat, GenerationOptions, LoadOptions, Model, PromptFormat};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Every weight trains.
    Full,
    /// Low-rank adapters on the target modules; the base is frozen.
    Lora,
    /// Only the image front end trains; the decoder is frozen (EVE/HoVLE stage 1).
    Frontend,
}

impl std::str::FromStr for Method {
    type Err = TrainError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "full" => Ok(Method::Full),
            "lora" => Ok(Method::Lora),
            "frontend" => Ok(Method::Frontend),
            _ => Err(TrainError::Config(format!(
                "unknown method `{s}` (full, lora, frontend)"
            ))),
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Method::Full => "full",
            Method::Lora => "lora",
            Method::Frontend => "frontend",
        })
    }
}

/// Everything a run needs; `train.toml` holds the same keys.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// An HF folder, or a `config.json` (with tokenizer files beside it) for a fresh model.
    pub model: PathBuf,
    pub data: PathBuf,
    pub eval: Option<PathBuf>,
    /// Extra text-only conversations, mixed in at `text_ratio`.
    pub text_data: Option<PathBuf>,
    /// Probability that a batch slot is a text-only sample (needs text-only records).
    pub text_ratio: Option<f64>,
    pub method: Method,
    pub rank: usize,
    pub alpha: f64,
    pub lora_dropout: f64,
    pub targets: Vec<String>,
    pub steps: usize,
    pub lr: f64,
    pub batch: usize,
    pub grad_accum: usize,
    pub warmup: usize,
    pub min_lr_ratio: f64,
    pub weight_decay: f64,
    pub clip: f64,
    pub seed: u64,
    pub eval_every: usize,
    pub eval_samples: usize,
    pub eval_max_tokens: usize,
    pub checkpoint_every: usize,
    /// `cpu`, `cuda` or `cuda:N`.
    pub device: String,
    /// Compute dtype of the forward (`f32`, `bf16`); master weights stay f32.
    pub dtype: String,
    /// Std of a fresh model's weights (default: the config's `initializer_range`, else 0.02).
    pub init_std: Option<f64>,
    pub out: PathBuf,
    pub resume: bool,
    /// Stop after this step as if interrupted (the checkpoint stays; `resume` continues).
    pub stop_after: Option<usize>,
    /// Show a progress bar (when stderr is a terminal).
    pub progress: bool,
    /// Rewrite `metrics.csv` every this many steps (0: only at checkpoints).
    pub metrics_every: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            model: PathBuf::new(),
            data: PathBuf::new(),
            eval: None,
            text_data: None,
            text_ratio: None,
            method: Method::Lora,
            rank: 8,
            alpha: 16.0,
            lora_dropout: 0.0,
            targets: ["q", "k", "v", "o", "gate", "up", "down"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            steps: 100,
            lr: 1e-3,
            batch: 4,
            grad_accum: 1,
            warmup: 10,
            min_lr_ratio: 0.1,
            weight_decay: 0.01,
            clip: 1.0,
            seed: 0,
            eval_every: 50,
            eval_samples: 64,
            eval_max_tokens: 32,
            checkpoint_every: 100,
            device: "cpu".into(),
            dtype: "f32".into(),
            init_std: None,
            out: PathBuf::from("runs/train"),
            resume: false,
            stop_after: None,
            progress: true,
            metrics_every: 10,
        }
    }
}

impl TrainConfig {
    pub fn from_toml(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
        toml::from_str(&text).map_err(|e| TrainError::Config(format!("{}: {e}", path.display())))
    }

    fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(TrainError::Config(m.to_string()));
        if self.steps == 0 {
            return bad("--steps must be at least 1");
        }
        if self.batch == 0 || self.grad_accum == 0 {
            return bad("--batch and --grad-accum must be at least 1");
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad("--lr must be a positive number");
        }
        if self.method == Method::Lora && self.rank == 0 {
            return bad("--rank must be at least 1");
        }
        if !(0.0..1.0).contains(&self.lora_dropout) {
            return bad("--lora-dropout must be in [0, 1)");
        }
        if let Some(r) = self.text_ratio {
            if !(0.0..=1.0).contains(&r) {
                return bad("--text-ratio must be in [0, 1]");
            }
        }
        Ok(())
    }
}

pub fn parse_device(s: &str) -> Result<Device> {
    runtime::device::parse_device(s)
        .and_then(|d| d.candle())
        .map_err(|e| TrainError::Config(e.to_string()))
}

/// A model to train: loaded from an HF folder, or freshly initialised from a config file.
pub fn open_model(
    path: &Path,
    init_std: Option<f64>,
    seed: u64,
    device: &Device,
) -> Result<(Model, MemoryTensors, PathBuf)> {
    let opts = LoadOptions {
        device: device.clone().into(),
        ..Default::default()
    };
    if path.is_file() && path.extension().is_some_and(|e| e == "json") {
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let config = runtime::checkpoint::read_json(path)?;
        let std = init_std
            .or_else(|| config.get("initializer_range").and_then(|v| v.as_f64()))
            .unwrap_or(0.02);
        let fresh = Arc::new(MemoryTensors::fresh(FreshInit { std, seed }));
        let folder = HfFolder {
            dir: dir.clone(),
            config,
            preprocessor_config: runtime::checkpoint::read_json_opt(
                &dir.join("preprocessor_config.json"),
            )?,
            generation_config: runtime::checkpoint::read_json_opt(
                &dir.join("generation_config.json"),
            )?,
            tensors: CheckpointTensors::Memory(fresh.clone()),
        };
        let tok = Tokenizer::from_dir(&dir)?;
        let model = Model::from_folder(&folder, tok, &opts, None)?;
        return Ok((model, MemoryTensors::new(fresh.snapshot()), dir));
    }
    if path.is_file() {
        return Err(TrainError::Config(format!(
            "{}: training starts from an HF folder or a config.json, not a GGUF file",
            path.display()
        )));
    }
    let folder = HfFolder::open(path)?;
    let tok = Tokenizer::from_dir(path)?;
    let model = Model::from_folder(&folder, tok, &opts, None)?;
    let all = crate::params::load_all(&folder.tensors, DType::F32, device)?;
    Ok((model, MemoryTensors::new(all), path.to_path_buf()))
}

pub fn load_image(path: &Path) -> Result<RgbImage> {
    let bytes = std::fs::read(path).map_err(|e| TrainError::io(path, e))?;
    pilimage::decode_rgb(&bytes, &DecodeLimits::default())
        .map_err(|e| TrainError::Config(format!("{}: {e}", path.display())))
}

/// Per-group exact match of an evaluation.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EvalResult {
    pub samples: usize,
    pub loss: f64,
    pub exact: f64,
    /// tag name (`task`, `bucket`, …) → tag value → (correct, total)
    pub groups: BTreeMap<String, BTreeMap<String, (usize, usize)>>,
    /// A few mistakes: (id, expected, got).
    pub mistakes: Vec<(String, String, String)>,
}

/// Mean answer-token loss and greedy exact match (first turn) of `model` on `records`, with the
/// records split over the machine's cores.
pub fn evaluate(model: &Model, records: &[Record], max_tokens: usize) -> Result<EvalResult> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Each record's verdict is folded in record order as it arrives (the same result for any
    // thread count).
    let total = fold_in_order(
        records,
        threads,
        |rec| evaluate_record(model, rec, max_tokens),
        EvalTally::default(),
        |tally, one| {
            tally.add(one);
            Ok(())
        },
    )?;
    let mut res = EvalResult {
        samples: records.len(),
        groups: total.groups,
        mistakes: total.mistakes,
        ..EvalResult::default()
    };
    if total.tokens > 0 {
        res.loss = total.loss / total.tokens as f64;
    }
    if !records.is_empty() {
        res.exact = total.correct as f64 / records.len() as f64;
    }
    Ok(res)
}

/// Mistakes kept for the report.
const MISTAKES_KEPT: usize = 20;

/// Running sums of an evaluation.
#[derive(Default)]
struct EvalTally {
    loss: f64,
    tokens: usize,
    correct: usize,
    groups: BTreeMap<String, BTreeMap<String, (usize, usize)>>,
    mistakes: Vec<(String, String, String)>,
}

/// One record's verdict.
struct RecordEval {
    loss: f64,
    tokens: usize,
    correct: bool,
    tags: Vec<(String, String)>,
    /// (id, expected, got) when wrong.
    mistake: Option<(String, String, String)>,
}

impl EvalTally {
    fn add(&mut self, r: RecordEval) {
        self.loss += r.loss;
        self.tokens += r.tokens;
        self.correct += usize::from(r.correct);
        for (k, v) in r.tags {
            let e = self.groups.entry(k).or_default().entry(v).or_default();
            e.0 += usize::from(r.correct);
            e.1 += 1;
        }
        if let Some(m) = r.mistake {
            if self.mistakes.len() < MISTAKES_KEPT {
                self.mistakes.push(m);
            }
        }
    }
}

fn evaluate_record(model: &Model, rec: &Record, max_tokens: usize) -> Result<RecordEval> {
    let img = rec.image.as_deref().map(load_image).transpose()?;
    let enc = encode(model, rec, img.as_ref())?;
    let (l, n) = loss_sum(model, &enc)?;
    let (prompt, answer) = &rec.turns[0];
    let mut chat = Chat::new(model, PromptFormat::Chat);
    let opts = GenerationOptions {
        max_tokens,
        ..Default::default()
    };
    let images: Vec<RgbImage> = img.into_iter().collect();
    // Exact match only asks whether the answer comes out: generation stops as soon as the text
    // is no longer a prefix of it (a model that rambles on costs one token, not `max_tokens`),
    // which leaves every verdict as it was.
    let want = answer.trim();
    let mut so_far = String::new();
    let reply = chat.send(prompt, &images, &opts, &mut |piece| {
        so_far.push_str(piece);
        want.starts_with(so_far.trim())
    })?;
    let correct = reply.text.trim() == want;
    Ok(RecordEval {
        loss: l.to_scalar::<f32>()? as f64,
        tokens: n,
        correct,
        tags: rec
            .tags
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        mistake: (!correct).then(|| (rec.id.clone(), answer.clone(), reply.text)),
    })
}

impl EvalResult {
    /// Markdown: the overall figure, then one table per tag (`task`, `bucket`, …).
    pub fn to_markdown(&self, tags: &[&str]) -> String {
        let mut s = format!(
            "exact match **{:.1} %** on {} held-out samples (answer-token loss {:.4})\n",
            100.0 * self.exact,
            self.samples,
            self.loss
        );
        for tag in tags {
            let Some(m) = self.groups.get(*tag) else {
                continue;
            };
            s.push_str(&format!(
                "\n| {tag} | samples | exact match |\n|---|---:|---:|\n"
            ));
            for (v, (c, n)) in m {
                s.push_str(&format!(
                    "| {v} | {n} | {:.1} % |\n",
                    100.0 * *c as f64 / (*n).max(1) as f64
                ));
            }
        }
        s
    }
}

/// What a finished run reports (also written as `summary.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    pub method: Method,
    pub steps: usize,
    pub trainable_parameters: usize,
    pub total_parameters: usize,
    pub peak_rss_bytes: u64,
    pub mean_step_seconds: f64,
    pub wall_seconds: f64,
    pub final_loss: f64,
    pub eval: Option<EvalResult>,
    pub output: PathBuf,
}

fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Keeps freed memory in the process for reuse. Training frees and allocates the same large
/// buffers (activations, attention scores, gradients) for every sample; glibc returns blocks over
/// 128 KiB to the kernel when they are freed, so each new one was zero-filled page by page again
/// (page faults were 18 % of a profiled training run). glibc on Linux only; elsewhere nothing.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator tunables and may be called at any time.
    unsafe {
        // 32 MiB is the largest mmap threshold glibc accepts on 64-bit targets.
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        // Grow the heap in 64 MiB steps rather than per allocation.
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
    }
}

/// Resets the kernel's peak-RSS mark, so each run of a comparison reports its own peak.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

struct Checkpoint<'a> {
    dir: PathBuf,
    params: &'a Params,
    lora: Option<&'a LoraParams>,
}

impl Checkpoint<'_> {
    fn save(&self, step: usize, opt: &AdamW) -> Result<()> {
        let tmp = self.dir.with_extension("partial");
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
        let vars: BTreeMap<String, Tensor> = self
            .params
            .trainable
            .iter()
            .map(|(n, v)| (n.clone(), v.as_tensor().detach()))
            .collect();
        if !vars.is_empty() {
            runtime::checkpoint::write_safetensors(&tmp.join("trainable.safetensors"), &vars)?;
        }
        if let Some(l) = self.lora {
            l.adapters(false, None).save_peft(&tmp.join("adapter"))?;
        }
        opt.save(&tmp.join("optimizer.safetensors"))?;
        let state = serde_json::json!({ "step": step });
        std::fs::write(tmp.join("state.json"), state.to_string())
            .map_err(|e| TrainError::io(&tmp, e))?;
        let _ = std::fs::remove_dir_all(&self.dir);
        std::fs::rename(&tmp, &self.dir).map_err(|e| TrainError::io(&self.dir, e))
    }
}

fn set_vars(vars: &BTreeMap<String, Var>, values: &BTreeMap<String, Tensor>) -> Result<()> {
    for (n, v) in vars {
        let t = values
            .get(n)
            .ok_or_else(|| TrainError::Config(format!("checkpoint lacks `{n}`")))?;
        v.set(&t.to_dtype(v.dtype())?.to_device(v.device())?)?;
    }
    Ok(())
}

/// Loss and unscaled gradients of one sample, or of several summed in order.
struct SampleGrads {
    loss_nats: f64,
    tokens: usize,
    grads: Vec<(String, Tensor)>,
}

/// One sample's forward and backward. Only its graph is alive meanwhile: one backward over many
/// samples kept all their activations and attention scores at once (2 GB for 8 screenshots of
/// the 0.9 M default model).
fn sample_grads(model: &Model, rec: &Record, vars: &BTreeMap<String, Var>) -> Result<SampleGrads> {
    let img = rec.image.as_deref().map(load_image).transpose()?;
    let enc = encode(model, rec, img.as_ref())?;
    let (l, tokens) = loss_sum(model, &enc)?;
    let g = l.backward()?;
    let mut grads = Vec::new();
    for (name, var) in vars {
        if let Some(gv) = g.get(var) {
            grads.push((name.clone(), gv.to_dtype(DType::F32)?));
        }
    }
    Ok(SampleGrads {
        loss_nats: l.to_scalar::<f32>()? as f64,
        tokens,
        grads,
    })
}

/// Adds `more` into `sum` by name.
fn add_grads(sum: &mut Vec<(String, Tensor)>, more: Vec<(String, Tensor)>) -> Result<()> {
    if sum.is_empty() {
        *sum = more;
        return Ok(());
    }
    for (name, g) in more {
        match sum.iter_mut().find(|(n, _)| *n == name) {
            Some((_, acc)) => *acc = (&*acc + g)?,
            None => sum.push((name, g)),
        }
    }
    Ok(())
}

/// Runs `f` on every item on up to `threads` threads, handing items out one at a time (a long
/// screenshot does not hold up a fixed share of the batch), and folds the results into `acc`
/// strictly in item order. The result is therefore the same for any scheduling and any number of
/// threads; only results that finished before an earlier one wait, about `threads` at most.
fn fold_in_order<T: Sync, R: Send, A: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> Result<R> + Sync,
    acc: A,
    fold: impl Fn(&mut A, R) -> Result<()> + Sync,
) -> Result<A> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    struct Folding<A, R> {
        acc: A,
        next: usize,
        waiting: BTreeMap<usize, R>,
        failed: Option<TrainError>,
    }
    let state = Mutex::new(Folding {
        acc,
        next: 0,
        waiting: BTreeMap::new(),
        failed: None,
    });
    let handed_out = AtomicUsize::new(0);
    let work = || loop {
        let i = handed_out.fetch_add(1, Ordering::Relaxed);
        if i >= items.len() {
            return;
        }
        let r = f(&items[i]);
        let Ok(mut guard) = state.lock() else { return };
        let st = &mut *guard;
        if st.failed.is_some() {
            return;
        }
        match r {
            Err(e) => {
                st.failed = Some(e);
                return;
            }
            Ok(r) => {
                st.waiting.insert(i, r);
            }
        }
        while let Some(r) = st.waiting.remove(&st.next) {
            if let Err(e) = fold(&mut st.acc, r) {
                st.failed = Some(e);
                return;
            }
            st.next += 1;
        }
    };
    let threads = threads.clamp(1, items.len().max(1));
    if threads == 1 {
        work();
    } else {
        let joined = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads).map(|_| scope.spawn(work)).collect();
            handles.into_iter().map(|h| h.join()).collect::<Vec<_>>()
        });
        if joined.iter().any(|j| j.is_err()) {
            return Err(TrainError::Config("a worker thread panicked".into()));
        }
    }
    let st = state
        .into_inner()
        .map_err(|_| TrainError::Config("a worker thread panicked".into()))?;
    if let Some(e) = st.failed {
        return Err(e);
    }
    if st.next != items.len() {
        return Err(TrainError::Config("a worker thread stopped early".into()));
    }
    Ok(st.acc)
}

/// Runs one training job to the end; writes everything under `cfg.out`.
pub fn train(cfg: &TrainConfig) -> Result<Summary> {
    cfg.validate()?;
    let t_start = Instant::now();
    keep_freed_memory();
    reset_peak_rss();
    let device = parse_device(&cfg.device)?;
    let dtype = match cfg.dtype.as_str() {
        "f32" => DType::F32,
        "bf16" => DType::BF16,
        "f16" => DType::F16,
        d => {
            return Err(TrainError::Config(format!(
                "unknown dtype `{d}` (f32, bf16, f16)"
            )))
        }
    };
    std::fs::create_dir_all(&cfg.out).map_err(|e| TrainError::io(&cfg.out, e))?;
    let (mut model, initial, model_dir) = open_model(&cfg.model, cfg.init_std, cfg.seed, &device)?;

    // Which parameters train.
    let frontend_names = if cfg.method == Method::Frontend {
        frontend_tensor_names(&model, &initial)?
    } else {
        Vec::new()
    };
    let params = Params::load(&initial, &device, DType::F32, |n| match cfg.method {
        Method::Full => true,
        Method::Lora => false,
        Method::Frontend => frontend_names.iter().any(|f| f == n),
    })?;
    drop(initial);
    let lora = if cfg.method == Method::Lora {
        let modules = target_modules(&model, &params, &cfg.targets)?;
        let mut lc = LoraConfig::new(
            cfg.rank,
            cfg.alpha,
            modules
                .iter()
                .filter_map(|(m, _, _)| {
                    let layer = model.spec.decoder.names.layer_prefix(0);
                    let pattern = layer.split("0.").next().unwrap_or("");
                    m.strip_prefix(pattern)
                        .and_then(|r| r.split_once('.'))
                        .map(|(_, s)| s.to_string())
                })
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect(),
        );
        lc.lora_dropout = cfg.lora_dropout;
        lc.base_model_name_or_path = Some(model_dir.display().to_string());
        Some(LoraParams::init(lc, &modules, cfg.seed, &device)?)
    } else {
        None
    };
    let mut vars = params.trainable.clone();
    if let Some(l) = &lora {
        vars.extend(l.vars());
    }
    let trainable_parameters: usize = vars.values().map(|v| v.elem_count()).sum();
    if trainable_parameters == 0 {
        return Err(TrainError::Config("nothing to train".into()));
    }

    // Data.
    let mut records = read_jsonl(&cfg.data)?;
    let mut text_records: Vec<Record> = Vec::new();
    if cfg.text_ratio.is_some() {
        let (img, txt): (Vec<_>, Vec<_>) = records.into_iter().partition(|r| r.has_image());
        records = img;
        text_records = txt;
    }
    if let Some(p) = &cfg.text_data {
        text_records.extend(read_jsonl(p)?);
    }
    let mut stream = SampleStream::new(records, text_records, cfg.text_ratio, cfg.seed);
    if stream.is_empty() {
        return Err(TrainError::Config("no training records".into()));
    }
    let eval_records: Vec<Record> = match &cfg.eval {
        Some(p) => read_jsonl(p)?.into_iter().take(cfg.eval_samples).collect(),
        None => Vec::new(),
    };

    // Optimizer, checkpoint, resume.
    let adam = AdamWConfig {
        weight_decay: cfg.weight_decay,
        ..Default::default()
    };
    let ckpt = Checkpoint {
        dir: cfg.out.join("checkpoint"),
        params: &params,
        lora: lora.as_ref(),
    };
    let metrics_path = cfg.out.join("metrics.csv");
    let mut rows: Vec<MetricRow> = Vec::new();
    let mut opt = AdamW::new(adam);
    let mut start_step = 0;
    if cfg.resume {
        let state_path = ckpt.dir.join("state.json");
        let state = runtime::checkpoint::read_json(&state_path)?;
        start_step = state
            .get("step")
            .and_then(|s| s.as_u64())
            .ok_or_else(|| TrainError::Config(format!("{}: no step", state_path.display())))?
            as usize;
        if !params.trainable.is_empty() {
            let saved: BTreeMap<String, Tensor> =
                candle_core::safetensors::load(ckpt.dir.join("trainable.safetensors"), &device)?
                    .into_iter()
                    .collect();
            set_vars(&params.trainable, &saved)?;
        }
        if let Some(l) = &lora {
            let a = Adapters::load_peft(&ckpt.dir.join("adapter"), &device)?;
            let saved = LoraParams::from_adapters(&a)?;
            set_vars(
                &l.vars(),
                &saved
                    .vars()
                    .into_iter()
                    .map(|(n, v)| (n, v.as_tensor().clone()))
                    .collect(),
            )?;
        }
        opt = AdamW::load(adam, &ckpt.dir.join("optimizer.safetensors"), &device)?;
        if metrics_path.exists() {
            rows = read_csv(&metrics_path)?;
            rows.retain(|r| r.step <= start_step);
        }
        stream.skip(start_step * cfg.batch * cfg.grad_accum);
    }

    let bar = if cfg.progress {
        indicatif::ProgressBar::new(cfg.steps as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} train [{bar:30}] {pos}/{len} {msg} ({elapsed} < {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_position(start_step as u64);

    // Samples of a batch run on separate threads: candle's kernels barely use a second core for
    // matrices this small, whole samples do.
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(cfg.batch)
        .max(1);
    let mut last_eval: Option<EvalResult> = None;
    let mut step_times = Vec::new();
    for step in start_step..cfg.steps {
        let t0 = Instant::now();
        let lr = learning_rate(step, cfg.steps, cfg.warmup, cfg.lr, cfg.min_lr_ratio);
        let tracked = params.tracked();
        let adapters = lora.as_ref().map(|l| {
            l.adapters(
                true,
                Some(cfg.seed ^ (step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            )
        });
        model.rebuild(&tracked, dtype, adapters.as_ref())?;
        let mut grads: BTreeMap<String, Tensor> = BTreeMap::new();
        let (mut loss_nats, mut tokens) = (0f64, 0usize);
        for _ in 0..cfg.grad_accum {
            let recs: Vec<Record> = (0..cfg.batch).map(|_| stream.next_record()).collect();
            let empty = SampleGrads {
                loss_nats: 0.0,
                tokens: 0,
                grads: Vec::new(),
            };
            let micro = fold_in_order(
                &recs,
                threads,
                |rec| sample_grads(&model, rec, &vars),
                empty,
                |sum, s| {
                    sum.loss_nats += s.loss_nats;
                    sum.tokens += s.tokens;
                    add_grads(&mut sum.grads, s.grads)
                },
            )?;
            // Mean over the micro-batch's answer tokens, averaged over accumulation steps.
            let scale = 1.0 / (micro.tokens.max(1) * cfg.grad_accum) as f64;
            loss_nats += micro.loss_nats;
            for (name, g) in micro.grads {
                let g = (g * scale)?;
                let sum = match grads.remove(&name) {
                    Some(acc) => (acc + g)?,
                    None => g,
                };
                grads.insert(name, sum);
            }
            tokens += micro.tokens;
        }
        let grad_norm = clip_global_norm(&mut grads, cfg.clip)?;
        opt.step(&vars, &grads, lr)?;
        let loss = loss_nats / tokens.max(1) as f64;
        if !loss.is_finite() {
            return Err(TrainError::Config(format!(
                "loss became {loss} at step {step}; lower --lr"
            )));
        }
        let step_seconds = t0.elapsed().as_secs_f64();
        step_times.push(step_seconds);
        let mut row = MetricRow {
            step: step + 1,
            epoch: stream.epoch(),
            loss,
            lr,
            grad_norm,
            tokens,
            step_seconds,
            eval_loss: None,
            eval_exact: None,
        };
        let done = step + 1 == cfg.steps;
        if !eval_records.is_empty()
            && (done || (cfg.eval_every > 0 && (step + 1) % cfg.eval_every == 0))
        {
            let det = MemoryTensors::new(params.detached());
            let ad = lora.as_ref().map(|l| l.adapters(false, None));
            model.rebuild(&det, dtype, ad.as_ref())?;
            let e = evaluate(&model, &eval_records, cfg.eval_max_tokens)?;
            bar.println(format!(
                "step {:>6}  loss {:.4}  eval loss {:.4}  exact {:.1}%",
                step + 1,
                loss,
                e.loss,
                100.0 * e.exact
            ));
            row.eval_loss = Some(e.loss);
            row.eval_exact = Some(e.exact);
            last_eval = Some(e);
        }
        rows.push(row);
        bar.set_message(format!(
            "loss {loss:.4} · {:.2} steps/s",
            1.0 / step_seconds.max(1e-9)
        ));
        bar.inc(1);
        let interrupted = cfg.stop_after == Some(step + 1);
        if done
            || interrupted
            || (cfg.checkpoint_every > 0 && (step + 1) % cfg.checkpoint_every == 0)
        {
            ckpt.save(step + 1, &opt)?;
            write_csv(&metrics_path, &rows)?;
        } else if cfg.metrics_every > 0 && (step + 1) % cfg.metrics_every == 0 {
            write_csv(&metrics_path, &rows)?;
        }
        if interrupted {
            bar.finish_and_clear();
            return Err(TrainError::Interrupted { step: step + 1 });
        }
    }
    bar.finish_and_clear();
    write_csv(&metrics_path, &rows)?;
    plot_runs(
        &[(&cfg.method.to_string(), &rows)],
        &format!("monovlm train --method {}", cfg.method),
        &cfg.out.join("curves.png"),
    )?;

    // Outputs in the input's own formats.
    let output = match &lora {
        Some(l) => {
            let dir = cfg.out.join("adapter");
            l.adapters(false, None).save_peft(&dir)?;
            dir
        }
        None => {
            let dir = cfg.out.join("model");
            save_hf_folder(&model_dir, &params.detached(), &dir)?;
            dir
        }
    };
    let summary = Summary {
        method: cfg.method,
        steps: cfg.steps,
        trainable_parameters,
        total_parameters: params.total_elements() + lora.as_ref().map_or(0, |l| l.elements()),
        peak_rss_bytes: peak_rss_bytes(),
        mean_step_seconds: if step_times.is_empty() {
            0.0
        } else {
            step_times.iter().sum::<f64>() / step_times.len() as f64
        },
        wall_seconds: t_start.elapsed().as_secs_f64(),
        final_loss: rows.last().map_or(f64::NAN, |r| r.loss),
        eval: last_eval,
        output,
    };
    let json =
        serde_json::to_string_pretty(&summary).map_err(|e| TrainError::Config(e.to_string()))?;
    std::fs::write(cfg.out.join("summary.json"), json).map_err(|e| TrainError::io(&cfg.out, e))?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_is_in_item_order_for_any_thread_count() {
        // Float sums depend on order: the fold must see items 0, 1, 2, … whatever finishes first
        // (later items are made to finish first by sleeping less).
        let items: Vec<u64> = (0..40).collect();
        let run = |threads| {
            fold_in_order(
                &items,
                threads,
                |&i| {
                    std::thread::sleep(std::time::Duration::from_millis((40 - i) % 7));
                    Ok(i)
                },
                Vec::new(),
                |seen, i| {
                    seen.push(i);
                    Ok(())
                },
            )
            .unwrap()
        };
        for threads in [1, 2, 3, 8] {
            assert_eq!(run(threads), items, "{threads} threads");
        }
    }

    #[test]
    fn the_first_error_stops_the_fold() {
        let items: Vec<u32> = (0..10).collect();
        let r = fold_in_order(
            &items,
            2,
            |&i| {
                if i == 3 {
                    Err(TrainError::Config("sample 3 is broken".into()))
                } else {
                    Ok(i)
                }
            },
            0u32,
            |sum, i| {
                *sum += i;
                Ok(())
            },
        );
        match r {
            Err(e) => assert!(e.to_string().contains("sample 3"), "{e}"),
            Ok(v) => panic!("an error was swallowed: {v}"),
        }
    }
}
