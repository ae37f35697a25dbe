//! Persistence: conversations as one JSON file each, their images as PNG files beside them, and
//! the app's settings (recent models, generation settings), all in the OS data folder
//! (`$MONOVLM_DATA_DIR` overrides it).

use anyhow::{Context, Result};
use runtime::image::RgbImage;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

/// What generation reported about one answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AnswerStats {
    pub tokens: usize,
    pub tokens_per_second: f64,
    /// `stop`, `length` or `cancelled`.
    pub finish: String,
    pub prompt_tokens: usize,
    pub image_tokens: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredMessage {
    pub role: Role,
    pub text: String,
    /// File names in the store's `images/` folder.
    #[serde(default)]
    pub images: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<AnswerStats>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredConversation {
    pub id: String,
    pub title: String,
    /// Seconds since the Unix epoch.
    pub updated: u64,
    pub messages: Vec<StoredMessage>,
}

/// Generation settings and model history, kept between runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub temperature: f64,
    pub top_p: f64,
    pub max_tokens: usize,
    pub system_prompt: String,
    /// Most recent first.
    pub recent_models: Vec<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            temperature: 0.0,
            top_p: 1.0,
            max_tokens: 256,
            system_prompt: String::new(),
            recent_models: Vec::new(),
        }
    }
}

impl Settings {
    pub fn remember_model(&mut self, path: &Path) {
        self.recent_models.retain(|p| p != path);
        self.recent_models.insert(0, path.to_path_buf());
        self.recent_models.truncate(8);
    }
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A new conversation id: time-ordered and unique within this process.
pub fn new_id() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{nanos:x}-{}", N.fetch_add(1, Ordering::Relaxed))
}

/// The folder the app keeps its data in.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// `$MONOVLM_DATA_DIR`, else the OS data folder (`~/.local/share/monovlm` on Linux).
    pub fn default_dir() -> Result<PathBuf> {
        if let Ok(d) = std::env::var("MONOVLM_DATA_DIR") {
            if !d.is_empty() {
                return Ok(PathBuf::from(d));
            }
        }
        directories::ProjectDirs::from("", "", "monovlm")
            .map(|p| p.data_dir().to_path_buf())
            .context("no home folder to keep conversations in; set MONOVLM_DATA_DIR")
    }

    pub fn new(root: PathBuf) -> Self {
        Store { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn conv_dir(&self) -> PathBuf {
        self.root.join("conversations")
    }

    fn image_dir(&self) -> PathBuf {
        self.root.join("images")
    }

    fn conv_path(&self, id: &str) -> PathBuf {
        self.conv_dir().join(format!("{id}.json"))
    }

    /// Every readable conversation, most recently updated first, plus one message per file that
    /// could not be read.
    pub fn list(&self) -> (Vec<StoredConversation>, Vec<String>) {
        let mut out = Vec::new();
        let mut errors = Vec::new();
        let Ok(rd) = std::fs::read_dir(self.conv_dir()) else {
            return (out, errors);
        };
        for entry in rd.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            match std::fs::read(&path)
                .map_err(anyhow::Error::from)
                .and_then(|b| Ok(serde_json::from_slice::<StoredConversation>(&b)?))
            {
                Ok(c) => out.push(c),
                Err(e) => errors.push(format!("could not read {}: {e}", path.display())),
            }
        }
        out.sort_by(|a, b| b.updated.cmp(&a.updated).then(b.id.cmp(&a.id)));
        (out, errors)
    }

    /// Writes a conversation (to a temporary name, then renamed, so a crash never leaves half a file).
    pub fn save(&self, conv: &StoredConversation) -> Result<()> {
        let dir = self.conv_dir();
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = self.conv_path(&conv.id);
        write_atomic(&path, &serde_json::to_vec_pretty(conv)?)
    }

    pub fn delete(&self, id: &str) -> Result<()> {
        let path = self.conv_path(id);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("deleting {}", path.display())),
        }
    }

    /// Stores an image as PNG under a name derived from its pixels; returns the name.
    pub fn save_image(&self, img: &RgbImage) -> Result<String> {
        let name = format!("{:016x}-{}x{}.png", fnv1a(&img.data), img.width, img.height);
        let dir = self.image_dir();
        let path = dir.join(&name);
        if !path.exists() {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let buf = image::RgbImage::from_raw(img.width, img.height, img.data.clone())
                .context("image buffer has the wrong size")?;
            let mut png = Vec::new();
            image::DynamicImage::ImageRgb8(buf)
                .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
                .context("encoding PNG")?;
            write_atomic(&path, &png)?;
        }
        Ok(name)
    }

    pub fn load_image(&self, name: &str) -> Result<RgbImage> {
        crate::attach::decode_file(&self.image_dir().join(name))
    }

    pub fn load_settings(&self) -> Settings {
        std::fs::read(self.root.join("settings.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    pub fn save_settings(&self, s: &Settings) -> Result<()> {
        std::fs::create_dir_all(&self.root)
            .with_context(|| format!("creating {}", self.root.display()))?;
        write_atomic(
            &self.root.join("settings.json"),
            &serde_json::to_vec_pretty(s)?,
        )
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}
