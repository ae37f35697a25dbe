//! Request → what the runtime needs: the conversation as replayed exchanges plus the new user
//! turn (text and decoded images), and the generation options.

use super::errors::ApiError;
use super::limits::{undecodable, Limits};
use super::wire::{ChatRequest, Content, ContentPart, Message};
use base64::Engine;
use runtime::image::{pilimage, RgbImage};
use runtime::{GenerationOptions, SamplingOptions};

/// One user turn: text and images in the order they were given.
#[derive(Debug, Default)]
pub struct Turn {
    pub text: String,
    pub images: Vec<RgbImage>,
}

/// What identifies one exchange for the prompt cache: the user's text, a fingerprint of each image
/// (size and a hash of the pixels) and the assistant's answer text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeKey {
    text: String,
    images: Vec<(u32, u32, u64)>,
    answer: String,
}

impl ExchangeKey {
    pub fn new(turn: &Turn, answer: &str) -> Self {
        use std::hash::{Hash, Hasher};
        let images = turn
            .images
            .iter()
            .map(|im| {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                im.data.hash(&mut h);
                (im.width, im.height, h.finish())
            })
            .collect();
        ExchangeKey {
            text: turn.text.clone(),
            images,
            answer: answer.to_string(),
        }
    }
}

/// Earlier `(user turn, assistant answer)` exchanges, then the turn to answer.
#[derive(Debug)]
pub struct Conversation {
    pub history: Vec<(Turn, String)>,
    pub last: Turn,
}

/// Builds the conversation. System (and `developer`) messages are put in front of the first
/// user turn, since our model families have no system slot; consecutive user messages are
/// joined with a newline; the last message must be from the user.
pub fn conversation(messages: &[Message], limits: &Limits) -> Result<Conversation, ApiError> {
    if messages.is_empty() {
        return Err(ApiError::invalid("`messages` must not be empty").param("messages"));
    }
    let mut system = String::new();
    let mut history = Vec::new();
    let mut pending: Option<Turn> = None;
    let mut image_count = 0usize;
    for (i, m) in messages.iter().enumerate() {
        match m.role.as_str() {
            "system" | "developer" => {
                let t = text_only(m.content.as_ref(), i)?;
                join(&mut system, &t);
            }
            "user" => {
                let turn = pending.get_or_insert_with(Turn::default);
                match &m.content {
                    None => {}
                    Some(Content::Text(t)) => join(&mut turn.text, t),
                    Some(Content::Parts(parts)) => {
                        for p in parts {
                            match p {
                                ContentPart::Text { text } => join(&mut turn.text, text),
                                ContentPart::ImageUrl { image_url } => {
                                    if image_count >= limits.max_images {
                                        return Err(ApiError::invalid(format!(
                                            "more than {} images in one request",
                                            limits.max_images
                                        ))
                                        .param("messages"));
                                    }
                                    turn.images.push(decode_image_url(
                                        &image_url.url,
                                        image_count,
                                        limits,
                                    )?);
                                    image_count += 1;
                                }
                            }
                        }
                    }
                }
            }
            "assistant" => {
                let answer = text_only(m.content.as_ref(), i)?;
                history.push((pending.take().unwrap_or_default(), answer));
            }
            other => {
                return Err(ApiError::invalid(format!(
                    "messages[{i}]: role `{other}` is not supported (system, user, assistant)"
                ))
                .param("messages"))
            }
        }
    }
    let Some(last) = pending else {
        return Err(ApiError::invalid("the last message must be from the user").param("messages"));
    };
    let mut conv = Conversation { history, last };
    if !system.is_empty() {
        let first = conv
            .history
            .first_mut()
            .map(|(t, _)| t)
            .unwrap_or(&mut conv.last);
        first.text = if first.text.is_empty() {
            system
        } else {
            format!("{system}\n\n{}", first.text)
        };
    }
    Ok(conv)
}

fn join(acc: &mut String, text: &str) {
    if !acc.is_empty() && !text.is_empty() {
        acc.push('\n');
    }
    acc.push_str(text);
}

/// Text of a system or assistant message; images there have no place in the prompt.
fn text_only(content: Option<&Content>, index: usize) -> Result<String, ApiError> {
    let mut out = String::new();
    match content {
        None => {}
        Some(Content::Text(t)) => out.push_str(t),
        Some(Content::Parts(parts)) => {
            for p in parts {
                match p {
                    ContentPart::Text { text } => join(&mut out, text),
                    ContentPart::ImageUrl { .. } => {
                        return Err(ApiError::invalid(format!(
                            "messages[{index}]: images are only accepted in user messages"
                        ))
                        .param("messages"))
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Decodes a `data:image/...;base64,...` URI. Remote URLs are refused: the server is offline.
pub fn decode_image_url(url: &str, index: usize, limits: &Limits) -> Result<RgbImage, ApiError> {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return Err(ApiError::invalid(format!(
            "image {index}: remote image URLs are not supported (this server never goes online); \
             send the image inline as data:image/png;base64,..."
        ))
        .param("messages")
        .code("remote_image_unsupported"));
    }
    let Some(rest) = url.strip_prefix("data:") else {
        return Err(ApiError::invalid(format!(
            "image {index}: expected a data: URI (data:image/png;base64,...)"
        ))
        .param("messages")
        .code("invalid_image_url"));
    };
    let Some((meta, payload)) = rest.split_once(',') else {
        return Err(
            ApiError::invalid(format!("image {index}: data: URI without a comma"))
                .param("messages")
                .code("invalid_image_url"),
        );
    };
    let meta = meta.to_ascii_lowercase();
    let Some(mime) = meta.strip_suffix(";base64") else {
        return Err(ApiError::invalid(format!(
            "image {index}: only base64 data: URIs are supported (data:image/png;base64,...)"
        ))
        .param("messages")
        .code("invalid_image_url"));
    };
    if !mime.is_empty() && !mime.starts_with("image/") {
        return Err(ApiError::invalid(format!(
            "image {index}: media type `{mime}` is not an image"
        ))
        .param("messages")
        .code("invalid_image_url"));
    }
    let compact: Vec<u8> = payload
        .bytes()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let bytes = engine.decode(&compact).map_err(|e| {
        ApiError::invalid(format!("image {index}: invalid base64: {e}"))
            .param("messages")
            .code("invalid_base64")
    })?;
    limits.check_image_header(&bytes, index)?;
    pilimage::decode_rgb(&bytes, &limits.decode_limits())
        .map_err(|e| undecodable(index, &e.to_string()))
}

/// Generation options of a request. Without `temperature` OpenAI samples at 1.0; without `seed`
/// each request gets a fresh one.
pub fn generation_options(
    req: &ChatRequest,
    limits: &Limits,
) -> Result<GenerationOptions, ApiError> {
    if let Some(n) = req.n {
        if n != 1 {
            return Err(ApiError::invalid("only n = 1 is supported").param("n"));
        }
    }
    let temperature = req.temperature.unwrap_or(1.0);
    if !(0.0..=2.0).contains(&temperature) {
        return Err(
            ApiError::invalid(format!("temperature must be in [0, 2], got {temperature}"))
                .param("temperature"),
        );
    }
    let top_p = req.top_p.unwrap_or(1.0);
    if !(top_p > 0.0 && top_p <= 1.0) {
        return Err(
            ApiError::invalid(format!("top_p must be in (0, 1], got {top_p}")).param("top_p"),
        );
    }
    let top_k = match req.top_k {
        None => 0,
        Some(k) if k >= 0 => usize::try_from(k).unwrap_or(usize::MAX),
        Some(k) => {
            return Err(
                ApiError::invalid(format!("top_k must be at least 0, got {k}")).param("top_k"),
            )
        }
    };
    let repetition_penalty = req.repetition_penalty.unwrap_or(1.0);
    if !(repetition_penalty.is_finite() && repetition_penalty > 0.0) {
        return Err(ApiError::invalid(format!(
            "repetition_penalty must be a positive number, got {repetition_penalty}"
        ))
        .param("repetition_penalty"));
    }
    let seed = match req.seed {
        Some(s) => s as u64,
        None => fresh_seed(),
    };
    Ok(GenerationOptions {
        max_tokens: limits.max_tokens(req.max_completion_tokens.or(req.max_tokens))?,
        sampling: SamplingOptions {
            temperature,
            top_k,
            top_p,
            repetition_penalty,
            seed,
        },
        ..Default::default()
    })
}

pub fn stop_strings(req: &mut ChatRequest, limits: &Limits) -> Result<Vec<String>, ApiError> {
    let stops: Vec<String> = req
        .stop
        .take()
        .map(|s| s.into_vec())
        .unwrap_or_default()
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect();
    if stops.len() > limits.max_stops {
        return Err(ApiError::invalid(format!(
            "at most {} stop strings are supported",
            limits.max_stops
        ))
        .param("stop"));
    }
    Ok(stops)
}

fn fresh_seed() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos
        ^ COUNTER
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_body_bytes: 1 << 20,
            max_image_pixels: 1_000_000,
            max_tokens: 100,
            max_images: 2,
            max_stops: 4,
        }
    }

    fn messages(json: &str) -> Vec<Message> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn history_and_system_prompt() {
        let c = conversation(
            &messages(
                r#"[{"role":"system","content":"Be brief."},
                    {"role":"user","content":"Hi"},
                    {"role":"assistant","content":"Hello."},
                    {"role":"user","content":[{"type":"text","text":"What?"},{"type":"text","text":"Why?"}]}]"#,
            ),
            &limits(),
        )
        .unwrap();
        assert_eq!(c.history.len(), 1);
        assert_eq!(c.history[0].0.text, "Be brief.\n\nHi");
        assert_eq!(c.history[0].1, "Hello.");
        assert_eq!(c.last.text, "What?\nWhy?");
    }

    #[test]
    fn bad_conversations_are_refused() {
        let l = limits();
        for (json, needle) in [
            (r#"[]"#, "empty"),
            (
                r#"[{"role":"user","content":"a"},{"role":"assistant","content":"b"}]"#,
                "last message",
            ),
            (r#"[{"role":"tool","content":"a"}]"#, "role `tool`"),
            (
                r#"[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://x.org/a.png"}}]}]"#,
                "remote image URLs",
            ),
            (
                r#"[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,@@@@"}}]}]"#,
                "invalid base64",
            ),
            (
                r#"[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,aGVsbG8="}}]}]"#,
                "cannot be decoded",
            ),
            (
                r#"[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:text/plain;base64,aGVsbG8="}}]}]"#,
                "not an image",
            ),
        ] {
            let e = conversation(&messages(json), &l).unwrap_err();
            assert_eq!(e.status.as_u16(), 400, "{json}");
            assert!(e.message.contains(needle), "{json}: {}", e.message);
        }
    }

    #[test]
    fn options_are_validated() {
        let l = limits();
        let req = |json: &str| -> ChatRequest { serde_json::from_str(json).unwrap() };
        let o = generation_options(
            &req(r#"{"messages":[],"temperature":0,"seed":7,"max_tokens":3}"#),
            &l,
        )
        .unwrap();
        assert_eq!((o.max_tokens, o.sampling.seed), (3, 7));
        assert_eq!(o.sampling.temperature, 0.0);
        for bad in [
            r#"{"messages":[],"temperature":3}"#,
            r#"{"messages":[],"top_p":0}"#,
            r#"{"messages":[],"n":2}"#,
            r#"{"messages":[],"max_tokens":0}"#,
            r#"{"messages":[],"top_k":-1}"#,
            r#"{"messages":[],"repetition_penalty":0}"#,
        ] {
            assert!(generation_options(&req(bad), &l).is_err(), "{bad}");
        }
        let mut r = req(r#"{"messages":[],"stop":["a","b","c","d","e"]}"#);
        assert!(stop_strings(&mut r, &l).is_err());
    }
}
