//! One tokenizer type over the two formats checkpoints ship: `tokenizer.json` (the `tokenizers`
//! crate) and a bare SentencePiece `tokenizer.model` (our own reader, with transformers' slow
//! tokenizer semantics). Special-token ids are always looked up by their strings.

use super::sentencepiece::HfSlowTokenizer;
use crate::checkpoint::GgufFile;
use crate::error::{Error, Result};
use std::path::Path;

enum Inner {
    Fast(Box<tokenizers::Tokenizer>),
    Slow(Box<HfSlowTokenizer>),
}

pub struct Tokenizer {
    inner: Inner,
}

/// Parses a `tokenizer.json` with the `tokenizers` crate, which panics on some malformed files
/// instead of returning an error (0.23: `expect` in its deserializers, e.g. a syntax error inside
/// `decoder`, or a `Precompiled` normalizer without a valid charsmap). A panic is caught and
/// reported as an error, with the process's panic hook muted meanwhile so that no panic text
/// reaches the user; only then is the JSON's syntax checked, for a precise message.
fn parse_tokenizer_json(bytes: &[u8], origin: &str) -> Result<tokenizers::Tokenizer> {
    use std::panic::{catch_unwind, set_hook, take_hook, AssertUnwindSafe};
    use std::sync::Mutex;
    // One muted section at a time (the hook is process-wide).
    static MUTED: Mutex<()> = Mutex::new(());
    let guard = MUTED.lock().unwrap_or_else(|e| e.into_inner());
    let previous = take_hook();
    set_hook(Box::new(|_| {}));
    let parsed = catch_unwind(AssertUnwindSafe(|| {
        tokenizers::Tokenizer::from_bytes(bytes)
    }));
    set_hook(previous);
    drop(guard);
    match parsed {
        Ok(Ok(t)) => Ok(t),
        Ok(Err(e)) => Err(Error::Tokenizer(format!("{origin}: {e}"))),
        Err(_) => match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
            Err(e) => Err(Error::Tokenizer(format!("{origin}: invalid JSON: {e}"))),
            Ok(_) => Err(Error::Tokenizer(format!(
                "{origin}: malformed tokenizer (the tokenizers library could not read it)"
            ))),
        },
    }
}

impl Tokenizer {
    /// Loads `tokenizer.json` if present, else `tokenizer.model`.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let json = dir.join("tokenizer.json");
        if json.exists() {
            let bytes = std::fs::read(&json).map_err(|e| Error::io(&json, e))?;
            let t = parse_tokenizer_json(&bytes, &json.display().to_string())?;
            return Ok(Tokenizer {
                inner: Inner::Fast(Box::new(t)),
            });
        }
        if dir.join("tokenizer.model").exists() {
            let t = HfSlowTokenizer::from_dir(dir).map_err(|e| {
                Error::Tokenizer(format!("{}: {e}", dir.join("tokenizer.model").display()))
            })?;
            return Ok(Tokenizer {
                inner: Inner::Slow(Box::new(t)),
            });
        }
        Err(Error::Tokenizer(format!(
            "{}: no tokenizer.json or tokenizer.model",
            dir.display()
        )))
    }

    /// Loads the tokenizer files embedded in a GGUF written by `monovlm quantize`, the same way
    /// [`Tokenizer::from_dir`] reads them from a folder.
    pub fn from_gguf(file: &GgufFile) -> Result<Self> {
        let origin = file.path().display().to_string();
        if let Some(json) = file.embedded_file("tokenizer.json")? {
            let t = parse_tokenizer_json(&json, &format!("{origin}: embedded tokenizer.json"))?;
            return Ok(Tokenizer {
                inner: Inner::Fast(Box::new(t)),
            });
        }
        if let Some(model) = file.embedded_file("tokenizer.model")? {
            let cfg = file.embedded_file("tokenizer_config.json")?;
            let special = file.embedded_file("special_tokens_map.json")?;
            let added = file.embedded_file("added_tokens.json")?;
            let t = HfSlowTokenizer::from_bytes(
                &model,
                cfg.as_deref(),
                special.as_deref(),
                added.as_deref(),
            )
            .map_err(|e| Error::Tokenizer(format!("{origin}: embedded tokenizer.model: {e}")))?;
            return Ok(Tokenizer {
                inner: Inner::Slow(Box::new(t)),
            });
        }
        Err(Error::Tokenizer(format!(
            "{origin}: no embedded tokenizer.json or tokenizer.model"
        )))
    }

    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        match &self.inner {
            Inner::Fast(t) => Ok(t
                .encode(text, add_special_tokens)
                .map_err(|e| Error::Tokenizer(e.to_string()))?
                .get_ids()
                .to_vec()),
            Inner::Slow(t) => Ok(t.encode(text, add_special_tokens)),
        }
    }

    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        match &self.inner {
            Inner::Fast(t) => t
                .decode(ids, skip_special_tokens)
                .map_err(|e| Error::Tokenizer(e.to_string())),
            Inner::Slow(t) => Ok(t.decode(ids, skip_special_tokens)),
        }
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        match &self.inner {
            Inner::Fast(t) => t.token_to_id(token),
            Inner::Slow(t) => t.token_to_id(token),
        }
    }

    /// `token_to_id` that fails with a message naming the missing token.
    pub fn require(&self, token: &str) -> Result<u32> {
        self.token_to_id(token)
            .ok_or_else(|| Error::Tokenizer(format!("the tokenizer has no token `{token}`")))
    }

    /// `len(tokenizer)` in transformers terms: base vocabulary plus added tokens.
    pub fn len(&self) -> usize {
        match &self.inner {
            Inner::Fast(t) => t.get_vocab_size(true),
            Inner::Slow(t) => t.vocab_len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
