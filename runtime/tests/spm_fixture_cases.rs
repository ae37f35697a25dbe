//! Reproduces the text part of the golden fixtures' `input_ids` (cases.json)
//! and their `greedy_text` decodes.

#[path = "spm_common/mod.rs"]
mod common;

use runtime::sequence::sentencepiece::{HfSlowOptions, HfSlowTokenizer, SlowTokenizerFlavor};
use serde_json::Value;

fn cases(fixture: &str) -> Option<(std::path::PathBuf, Value)> {
    let dir = common::fixtures_dir()?.join(fixture);
    let text = std::fs::read_to_string(dir.join("cases.json")).ok()?;
    Some((dir.join("model"), serde_json::from_str(&text).unwrap()))
}

fn ids_i64(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

fn config_vocab_size(model_dir: &std::path::Path) -> u64 {
    let cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(model_dir.join("config.json")).unwrap())
            .unwrap();
    cfg.get("vocab_size")
        .or_else(|| cfg.get("llm_config").and_then(|l| l.get("vocab_size")))
        .and_then(Value::as_u64)
        .unwrap()
}

#[test]
fn solo_tiny_text_tokens() {
    let Some((model_dir, cases)) = cases("solo-tiny") else {
        eprintln!("solo-tiny fixture not found; skipping");
        return;
    };
    let tok = HfSlowTokenizer::from_dir(&model_dir).unwrap();
    assert_eq!(tok.flavor(), SlowTokenizerFlavor::Llama);
    assert!(tok.legacy());
    assert_eq!(tok.vocab_len() as u64, config_vocab_size(&model_dir));
    for (token, id) in cases["special_token_ids"].as_object().unwrap() {
        assert_eq!(
            tok.token_to_id(token).map(u64::from),
            id.as_u64(),
            "{token}"
        );
    }
    let image_ids: Vec<u32> = [
        "<vision>",
        "<vpatch>",
        "<vrow_sep>",
        "<vframe_sep>",
        "</vision>",
    ]
    .iter()
    .map(|t| tok.token_to_id(t).unwrap())
    .collect();
    for case in cases["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let prompt = case["prompt"].as_str().unwrap();
        let input_ids = common::ids(&case["input_ids"]);
        let n_image = input_ids
            .iter()
            .take_while(|id| image_ids.contains(id))
            .count();
        let text_ids = &input_ids[n_image..];
        let got = if name.ends_with("_chat") {
            tok.encode(&format!("<s>[INST] {} [/INST]", prompt.trim()), false)
        } else {
            assert!(name.ends_with("_raw"), "{name}");
            tok.encode(prompt, false)
        };
        assert_eq!(got, text_ids, "{name}");
        let greedy = common::ids(&case["greedy_ids"]);
        assert_eq!(
            tok.decode(&greedy, false),
            case["greedy_text"].as_str().unwrap(),
            "{name} greedy_text"
        );
    }
}

/// EVE v1 `tokenizer_image_token`: each chunk around `<image>` is encoded with
/// BOS, the BOS of later chunks is dropped, -200 goes between chunks.
fn eve_tokenize(tok: &HfSlowTokenizer, prompt: &str) -> Vec<i64> {
    let mut out: Vec<i64> = Vec::new();
    for (i, chunk) in prompt.split("<image>").enumerate() {
        let ids = tok.encode(chunk, true);
        let bos = tok.bos_token_id().unwrap();
        if i == 0 {
            out.extend(ids.iter().map(|&x| i64::from(x)));
        } else {
            out.push(-200);
            let skip = usize::from(ids.first() == Some(&bos));
            out.extend(ids[skip..].iter().map(|&x| i64::from(x)));
        }
    }
    out
}

#[test]
fn eve1_tiny_text_tokens() {
    let Some((model_dir, cases)) = cases("eve1-tiny") else {
        eprintln!("eve1-tiny fixture not found; skipping");
        return;
    };
    // tokenizer_config.json says legacy=false (transformers 4.31 there); both
    // modes give the same ids for these prompts.
    for legacy in [None, Some(true), Some(false)] {
        let tok = HfSlowTokenizer::from_dir_with_options(
            &model_dir,
            HfSlowOptions {
                flavor: None,
                legacy,
            },
        )
        .unwrap();
        assert_eq!(tok.vocab_len() as u64, config_vocab_size(&model_dir));
        for case in cases["cases"].as_array().unwrap() {
            let name = case["name"].as_str().unwrap();
            let prompt = case["full_prompt"].as_str().unwrap();
            assert_eq!(
                eve_tokenize(&tok, prompt),
                ids_i64(&case["input_ids"]),
                "{name} legacy={legacy:?}"
            );
            // input_tokens: token strings, <IMAGE:-200> for the sentinel.
            let mut tokens: Vec<String> = Vec::new();
            for (i, chunk) in prompt.split("<image>").enumerate() {
                if i == 0 {
                    tokens.push("<s>".into());
                } else {
                    tokens.push("<IMAGE:-200>".into());
                }
                tokens.extend(tok.tokenize(chunk));
            }
            let expected: Vec<String> = case["input_tokens"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap().to_owned())
                .collect();
            assert_eq!(tokens, expected, "{name} tokens legacy={legacy:?}");
            let greedy = common::ids(&case["greedy_ids"]);
            assert_eq!(
                tok.decode(&greedy, false),
                case["greedy_text"].as_str().unwrap(),
                "{name}"
            );
            let greedy_tokens: Vec<String> = greedy
                .iter()
                .map(|&id| tok.id_to_token(id).unwrap())
                .collect();
            let expected_tokens: Vec<String> = case["greedy_tokens"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap().to_owned())
                .collect();
            assert_eq!(greedy_tokens, expected_tokens, "{name}");
        }
    }
}

fn internvl_family(fixture: &str) {
    let Some((model_dir, cases)) = cases(fixture) else {
        eprintln!("{fixture} fixture not found; skipping");
        return;
    };
    let tok = HfSlowTokenizer::from_dir(&model_dir).unwrap();
    assert_eq!(tok.flavor(), SlowTokenizerFlavor::InternLM2);
    assert_eq!(tok.vocab_len() as u64, config_vocab_size(&model_dir));
    assert_eq!(
        tok.token_to_id("<IMG_CONTEXT>").map(u64::from),
        cases["img_context_token_id"].as_u64()
    );
    assert_eq!(
        tok.token_to_id("<|im_end|>").map(u64::from),
        cases["eos_token_id_chat"].as_u64()
    );
    for case in cases["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let prompt = case["full_prompt"].as_str().unwrap();
        assert_eq!(
            tok.encode(prompt, true),
            common::ids(&case["input_ids"]),
            "{fixture} {name}"
        );
        let greedy = common::ids(&case["greedy_ids"]);
        assert_eq!(
            tok.decode(&greedy, false),
            case["greedy_text"].as_str().unwrap(),
            "{fixture} {name} greedy_text"
        );
        if let (Some(ids), Some(response)) = (
            case.get("chat_generated_ids"),
            case["chat_response"].as_str(),
        ) {
            let ids = common::ids(ids);
            let text = tok.decode(&ids, true);
            let text = text.split("<|im_end|>").next().unwrap_or("").trim();
            assert_eq!(text, response, "{fixture} {name} chat_response");
        }
    }
}

#[test]
fn hovle_tiny_text_tokens() {
    internvl_family("hovle-tiny");
}

#[test]
fn monointernvl_tiny_text_tokens() {
    internvl_family("monointernvl-tiny");
}
