//! LLaVA-style JSONL: one conversation per line,
//! `{"image": "rel/path.png", "conversations": [{"from": "human", "value": "<image>\n…"},
//! {"from": "gpt", "value": "…"}, …]}`; a record without `image` is a text-only sample.
//! Image paths are relative to the JSONL file's folder.

use crate::error::{Result, TrainError};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// Longest accepted line (a conversation), so a corrupt file cannot exhaust memory.
pub const MAX_LINE_BYTES: usize = 1 << 20;
/// Most records read from one file.
pub const MAX_RECORDS: usize = 10_000_000;

#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub id: String,
    pub image: Option<PathBuf>,
    /// `(user, assistant)` exchanges, the `<image>` placeholder removed.
    pub turns: Vec<(String, String)>,
    /// Other string fields (`task`, `bucket`, …), kept for per-group evaluation.
    pub tags: BTreeMap<String, String>,
}

impl Record {
    pub fn has_image(&self) -> bool {
        self.image.is_some()
    }
}

fn strip_image_placeholder(s: &str) -> String {
    if let Some(rest) = s.strip_prefix("<image>\n") {
        return rest.to_string();
    }
    if let Some(rest) = s.strip_suffix("\n<image>") {
        return rest.to_string();
    }
    s.replacen("<image>", "", 1).trim().to_string()
}

fn parse_record(v: &Value, base: &Path, index: usize) -> std::result::Result<Record, String> {
    let obj = v.as_object().ok_or("expected a JSON object")?;
    let image = match obj.get("image") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) if !p.is_empty() => Some(base.join(p)),
        Some(other) => return Err(format!("`image` must be a path string, got {other}")),
    };
    let conv = obj
        .get("conversations")
        .and_then(|c| c.as_array())
        .ok_or("missing `conversations` array")?;
    if conv.is_empty() || conv.len() % 2 != 0 {
        return Err(format!(
            "`conversations` must alternate human/gpt and end with gpt ({} messages)",
            conv.len()
        ));
    }
    let mut turns = Vec::with_capacity(conv.len() / 2);
    for (k, pair) in conv.chunks(2).enumerate() {
        let msg = |m: &Value, want: &[&str]| -> std::result::Result<String, String> {
            let from = m.get("from").and_then(|f| f.as_str()).unwrap_or("");
            if !want.contains(&from) {
                return Err(format!(
                    "message {} is from `{from}`, expected {}",
                    2 * k + usize::from(want[0] != "human"),
                    want[0]
                ));
            }
            m.get("value")
                .and_then(|v| v.as_str())
                .map(str::to_string)
                .ok_or_else(|| "message without a string `value`".to_string())
        };
        let user = msg(&pair[0], &["human", "user"])?;
        let answer = msg(&pair[1], &["gpt", "assistant"])?;
        if answer.is_empty() {
            return Err(format!("answer {k} is empty"));
        }
        let user = if k == 0 && image.is_some() {
            strip_image_placeholder(&user)
        } else {
            if user.contains("<image>") {
                return Err(
                    "`<image>` placeholder outside the first turn of an image record".into(),
                );
            }
            user
        };
        turns.push((user, answer));
    }
    let mut tags = BTreeMap::new();
    for (k, v) in obj {
        if let (false, Some(s)) = (k == "image" || k == "id", v.as_str()) {
            tags.insert(k.clone(), s.to_string());
        }
    }
    let id = match obj.get("id") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => index.to_string(),
    };
    Ok(Record {
        id,
        image,
        turns,
        tags,
    })
}

/// Reads every record of a JSONL file (blank lines skipped).
pub fn read_jsonl(path: &Path) -> Result<Vec<Record>> {
    let file = std::fs::File::open(path).map_err(|e| TrainError::io(path, e))?;
    let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let mut reader = BufReader::new(file);
    let mut out = Vec::new();
    let mut line_no = 0usize;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        line_no += 1;
        // Bounded read: at most MAX_LINE_BYTES + 1 bytes per line.
        let n = (&mut reader)
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| TrainError::io(path, e))?;
        if n == 0 {
            break;
        }
        if buf.len() > MAX_LINE_BYTES {
            return Err(TrainError::Data {
                path: path.to_path_buf(),
                line: line_no,
                message: format!("line longer than {MAX_LINE_BYTES} bytes"),
            });
        }
        let text = std::str::from_utf8(&buf).map_err(|_| TrainError::Data {
            path: path.to_path_buf(),
            line: line_no,
            message: "not valid UTF-8".into(),
        })?;
        if text.trim().is_empty() {
            continue;
        }
        if out.len() >= MAX_RECORDS {
            return Err(TrainError::Data {
                path: path.to_path_buf(),
                line: line_no,
                message: format!("more than {MAX_RECORDS} records"),
            });
        }
        let err = |message: String| TrainError::Data {
            path: path.to_path_buf(),
            line: line_no,
            message,
        };
        let v: Value = serde_json::from_str(text).map_err(|e| err(format!("invalid JSON: {e}")))?;
        out.push(parse_record(&v, &base, out.len()).map_err(err)?);
    }
    if out.is_empty() {
        return Err(TrainError::Data {
            path: path.to_path_buf(),
            line: 0,
            message: "no records".into(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> std::result::Result<Record, String> {
        let v: Value = serde_json::from_str(line).unwrap();
        parse_record(&v, Path::new("/d"), 3)
    }

    #[test]
    fn llava_records_parse() {
        let r = parse(r#"{"id":"a","image":"i/1.png","task":"arith","conversations":[{"from":"human","value":"<image>\nWhat is 2+2?"},{"from":"gpt","value":"4"},{"from":"human","value":"And 3+3?"},{"from":"gpt","value":"6"}]}"#).unwrap();
        assert_eq!(r.image.as_deref(), Some(Path::new("/d/i/1.png")));
        assert_eq!(
            r.turns,
            vec![
                ("What is 2+2?".into(), "4".into()),
                ("And 3+3?".into(), "6".into())
            ]
        );
        assert_eq!(r.tags["task"], "arith");
        let t = parse(
            r#"{"conversations":[{"from":"human","value":"hi"},{"from":"gpt","value":"hello"}]}"#,
        )
        .unwrap();
        assert!(!t.has_image());
        assert_eq!(t.id, "3");
    }

    #[test]
    fn malformed_records_are_rejected_with_a_reason() {
        for (line, why) in [
            (r#"[]"#, "object"),
            (r#"{"image":"x"}"#, "conversations"),
            (
                r#"{"conversations":[{"from":"human","value":"q"}]}"#,
                "alternate",
            ),
            (
                r#"{"conversations":[{"from":"gpt","value":"q"},{"from":"gpt","value":"a"}]}"#,
                "expected human",
            ),
            (
                r#"{"conversations":[{"from":"human","value":"q"},{"from":"gpt","value":""}]}"#,
                "empty",
            ),
            (
                r#"{"image":5,"conversations":[{"from":"human","value":"q"},{"from":"gpt","value":"a"}]}"#,
                "path string",
            ),
        ] {
            let e = parse(line).unwrap_err();
            assert!(e.contains(why), "{line}: {e}");
        }
    }
}
