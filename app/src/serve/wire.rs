//! OpenAI chat-completions wire types: what clients send. Responses are built with `json!` in
//! `routes.rs`, where their shape is visible next to the code that fills them.

use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct ChatRequest {
    pub model: Option<String>,
    pub messages: Vec<Message>,
    #[serde(default)]
    pub stream: Option<bool>,
    pub stream_options: Option<StreamOptions>,
    pub max_tokens: Option<i64>,
    pub max_completion_tokens: Option<i64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub seed: Option<i64>,
    pub stop: Option<Stop>,
    pub n: Option<i64>,
    /// Extensions that llama.cpp's server also accepts.
    pub top_k: Option<i64>,
    pub repetition_penalty: Option<f32>,
}

#[derive(Debug, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

impl Stop {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            Stop::One(s) => vec![s],
            Stop::Many(v) => v,
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct Message {
    pub role: String,
    /// `null` is allowed for assistant messages (e.g. tool calls, which we do not support).
    #[serde(default)]
    pub content: Option<Content>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    Text { text: String },
    ImageUrl { image_url: ImageUrl },
}

#[derive(Debug, Deserialize)]
pub struct ImageUrl {
    pub url: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_string_and_part_contents() {
        let r: ChatRequest = serde_json::from_str(
            r#"{"model":"m","messages":[
                {"role":"system","content":"be brief"},
                {"role":"user","content":[{"type":"text","text":"hi"},
                  {"type":"image_url","image_url":{"url":"data:image/png;base64,AA==","detail":"low"}}]},
                {"role":"assistant","content":null}],
              "stop":["a","b"],"max_tokens":5,"stream":true}"#,
        )
        .unwrap();
        assert_eq!(r.messages.len(), 3);
        assert!(matches!(r.messages[1].content, Some(Content::Parts(ref p)) if p.len() == 2));
        assert!(r.messages[2].content.is_none());
        assert_eq!(r.stop.unwrap().into_vec(), vec!["a", "b"]);
    }

    #[test]
    fn unknown_part_types_are_errors() {
        let r = serde_json::from_str::<ChatRequest>(
            r#"{"messages":[{"role":"user","content":[{"type":"input_audio"}]}]}"#,
        );
        assert!(r.is_err());
    }
}
