//! `monovlm synth`: seeded synthetic training data for the tiny default model.
//!
//! Each record is a small rendered image (a number, an arithmetic expression, a word, a table
//! or a receipt) with a question whose answer is an exact ASCII string, or a text-only
//! question. Record `i` of seed `S` depends only on (S, i), the task list and the fonts, so
//! datasets of different sizes share their prefixes and a rerun is byte-identical.

mod fonts;
mod render;
mod tasks;
mod words;

pub use fonts::{FontSet, DEFAULT_FONTS_DIR};
pub use tasks::{Expr, Op, Params, TableQuery, TextOnly};
pub use words::WORDS;

use image::RgbImage;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Smallest allowed image side, in pixels.
pub const MIN_SIDE: u32 = 32;
/// Largest allowed image side, in pixels.
pub const MAX_SIDE: u32 = 320;
/// Largest allowed image area (320×160).
pub const MAX_AREA: u32 = 320 * 160;
/// Patch side of the model (Fuyu-style 16×16 patches).
pub const PATCH: u32 = 16;
/// Largest number of patches per image, counting partial patches at the edges.
pub const MAX_PATCHES: u32 = 200;

/// Patches an image of w×h pixels takes: ceil(w/16)·ceil(h/16).
pub fn patches(w: u32, h: u32) -> u32 {
    w.div_ceil(PATCH) * h.div_ceil(PATCH)
}

#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("unknown task {0:?} (expected numbers, arith, text, table, receipt)")]
    UnknownTask(String),
    #[error("no tasks given")]
    NoTasks,
    #[error("--text-only-ratio must be between 0 and 1, got {0}")]
    BadRatio(f64),
    #[error("fonts: {0}")]
    Fonts(String),
    #[error("record {index}: could not lay out a {task} sample within the size limits")]
    Layout { index: u64, task: &'static str },
    #[error("{path}: {err}")]
    Io { path: PathBuf, err: std::io::Error },
    #[error("{path}: {err}")]
    Image {
        path: PathBuf,
        err: image::ImageError,
    },
}

/// The image tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Task {
    Numbers,
    Arith,
    Text,
    Table,
    Receipt,
}

impl Task {
    pub const ALL: [Task; 5] = [
        Task::Numbers,
        Task::Arith,
        Task::Text,
        Task::Table,
        Task::Receipt,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Task::Numbers => "numbers",
            Task::Arith => "arith",
            Task::Text => "text",
            Task::Table => "table",
            Task::Receipt => "receipt",
        }
    }

    /// Parses a comma-separated list such as `numbers,arith`; duplicates are dropped.
    pub fn parse_list(s: &str) -> Result<Vec<Task>, SynthError> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let t: Task = part.parse()?;
            if !out.contains(&t) {
                out.push(t);
            }
        }
        if out.is_empty() {
            return Err(SynthError::NoTasks);
        }
        Ok(out)
    }
}

impl std::str::FromStr for Task {
    type Err = SynthError;
    fn from_str(s: &str) -> Result<Task, SynthError> {
        Task::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| SynthError::UnknownTask(s.to_string()))
    }
}

impl std::fmt::Display for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Aspect bucket of an image: wide (w/h ≥ 2.5), tall (h/w ≥ 1.6), else square.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Bucket {
    Wide,
    Square,
    Tall,
}

impl Bucket {
    pub const ALL: [Bucket; 3] = [Bucket::Wide, Bucket::Square, Bucket::Tall];

    pub fn classify(w: u32, h: u32) -> Bucket {
        if w as f64 >= 2.5 * h as f64 {
            Bucket::Wide
        } else if h as f64 >= 1.6 * w as f64 {
            Bucket::Tall
        } else {
            Bucket::Square
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Bucket::Wide => "wide",
            Bucket::Square => "square",
            Bucket::Tall => "tall",
        }
    }
}

/// What to generate.
pub struct SynthConfig {
    pub seed: u64,
    /// Image tasks, chosen uniformly per image record.
    pub tasks: Vec<Task>,
    /// Fraction of records that are text-only (no image), in [0, 1].
    pub text_only_ratio: f64,
    pub fonts: FontSet,
}

impl SynthConfig {
    /// All tasks, no text-only records, fonts from `fonts_dir` (or the default folder).
    pub fn new(seed: u64, fonts_dir: Option<&Path>) -> Result<SynthConfig, SynthError> {
        let fonts = FontSet::load(fonts_dir.unwrap_or(Path::new(DEFAULT_FONTS_DIR)))?;
        Ok(SynthConfig {
            seed,
            tasks: Task::ALL.to_vec(),
            text_only_ratio: 0.0,
            fonts,
        })
    }

    pub fn validate(&self) -> Result<(), SynthError> {
        if !(0.0..=1.0).contains(&self.text_only_ratio) {
            return Err(SynthError::BadRatio(self.text_only_ratio));
        }
        if self.tasks.is_empty() && self.text_only_ratio < 1.0 {
            return Err(SynthError::NoTasks);
        }
        if self.fonts.is_empty() {
            return Err(SynthError::Fonts("no fonts loaded".into()));
        }
        Ok(())
    }

    /// Whether record `index` is text-only: exactly floor(N·ratio) of any first N records,
    /// spread evenly, independent of N.
    pub fn is_text_only(&self, index: u64) -> bool {
        let r = self.text_only_ratio;
        r >= 1.0 || ((index + 1) as f64 * r).floor() > (index as f64 * r).floor()
    }
}

/// One generated record.
#[derive(Debug, Clone)]
pub struct Sample {
    /// None for text-only records.
    pub image: Option<RgbImage>,
    pub question: String,
    pub answer: String,
    /// The image task; None for text-only records.
    pub task: Option<Task>,
    pub bucket: Option<Bucket>,
    pub font: Option<String>,
    /// The structured values the sample was generated from (answers are recomputable).
    pub params: Params,
}

impl Sample {
    /// Task name as written to the JSONL ("text_only" for text-only records).
    pub fn task_name(&self) -> &'static str {
        self.task.map_or("text_only", Task::name)
    }
}

/// The RNG of record `index`: ChaCha8 keyed by (seed, index) only.
pub fn record_rng(seed: u64, index: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&index.to_le_bytes());
    key[16..24].copy_from_slice(b"mvlmsyn1");
    ChaCha8Rng::from_seed(key)
}

/// Generates record `index` of the dataset described by `cfg`.
pub fn generate_sample(cfg: &SynthConfig, index: u64) -> Result<Sample, SynthError> {
    cfg.validate()?;
    let mut rng = record_rng(cfg.seed, index);
    if cfg.is_text_only(index) {
        return Ok(tasks::text_only(&mut rng));
    }
    use rand::seq::IndexedRandom;
    let task = *cfg.tasks.choose(&mut rng).ok_or(SynthError::NoTasks)?;
    tasks::image_sample(&mut rng, &cfg.fonts, task).ok_or(SynthError::Layout {
        index,
        task: task.name(),
    })
}

/// Counts of what [`write_dataset`] wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub records: u64,
    pub images: u64,
    pub text_only: u64,
    pub by_task: BTreeMap<String, u64>,
    pub by_bucket: BTreeMap<String, u64>,
    pub by_font: BTreeMap<String, u64>,
}

#[derive(Serialize)]
struct Turn<'a> {
    from: &'static str,
    value: &'a str,
}

#[derive(Serialize)]
struct Record<'a> {
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<String>,
    conversations: [Turn<'a>; 2],
    task: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    bucket: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    font: Option<&'a str>,
}

/// The JSONL line (without newline) of `sample` with id `id`.
pub fn record_json(id: &str, sample: &Sample) -> String {
    let human = match sample.image {
        Some(_) => format!("<image>\n{}", sample.question),
        None => sample.question.clone(),
    };
    let rec = Record {
        id,
        image: sample.image.as_ref().map(|_| format!("images/{id}.png")),
        conversations: [
            Turn {
                from: "human",
                value: &human,
            },
            Turn {
                from: "gpt",
                value: &sample.answer,
            },
        ],
        task: sample.task_name(),
        bucket: sample.bucket.map(Bucket::name),
        font: sample.font.as_deref(),
    };
    serde_json::to_string(&rec).expect("record serializes")
}

/// Writes `count` records: `out_dir/images/NNNNNN.png` and `out_dir/data.jsonl`.
pub fn write_dataset(cfg: &SynthConfig, out_dir: &Path, count: u64) -> Result<Stats, SynthError> {
    write_dataset_with_progress(cfg, out_dir, count, |_| {})
}

/// [`write_dataset`], calling `progress(records_done)` after each record.
pub fn write_dataset_with_progress(
    cfg: &SynthConfig,
    out_dir: &Path,
    count: u64,
    mut progress: impl FnMut(u64),
) -> Result<Stats, SynthError> {
    cfg.validate()?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |err| SynthError::Io { path, err }
    };
    let images = out_dir.join("images");
    std::fs::create_dir_all(&images).map_err(io(&images))?;
    let jsonl = out_dir.join("data.jsonl");
    let file = std::fs::File::create(&jsonl).map_err(io(&jsonl))?;
    let mut out = std::io::BufWriter::new(file);
    let mut stats = Stats::default();
    for i in 0..count {
        let sample = generate_sample(cfg, i)?;
        let id = format!("{i:06}");
        if let Some(img) = &sample.image {
            let path = images.join(format!("{id}.png"));
            write_png(img, &path)?;
            stats.images += 1;
        } else {
            stats.text_only += 1;
        }
        *stats
            .by_task
            .entry(sample.task_name().to_string())
            .or_default() += 1;
        if let Some(b) = sample.bucket {
            *stats.by_bucket.entry(b.name().to_string()).or_default() += 1;
        }
        if let Some(f) = &sample.font {
            *stats.by_font.entry(f.clone()).or_default() += 1;
        }
        let line = record_json(&id, &sample);
        writeln!(out, "{line}").map_err(io(&jsonl))?;
        stats.records += 1;
        progress(i + 1);
    }
    out.flush().map_err(io(&jsonl))?;
    Ok(stats)
}

fn write_png(img: &RgbImage, path: &Path) -> Result<(), SynthError> {
    use image::ImageEncoder;
    let file = std::fs::File::create(path).map_err(|err| SynthError::Io {
        path: path.to_path_buf(),
        err,
    })?;
    let mut w = std::io::BufWriter::new(file);
    image::codecs::png::PngEncoder::new(&mut w)
        .write_image(
            img.as_raw(),
            img.width(),
            img.height(),
            image::ExtendedColorType::Rgb8,
        )
        .map_err(|err| SynthError::Image {
            path: path.to_path_buf(),
            err,
        })?;
    w.flush().map_err(|err| SynthError::Io {
        path: path.to_path_buf(),
        err,
    })
}
