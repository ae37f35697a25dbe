//! Compares `HfSlowTokenizer` against transformers 4.40.2
//! `LlamaTokenizer.from_pretrained(dir, legacy=...)` (tests/data/reference.json).

#[path = "spm_common/mod.rs"]
mod common;

use runtime::sequence::sentencepiece::{HfSlowOptions, HfSlowTokenizer, SlowTokenizerFlavor};

#[test]
fn hf_slow_tokenizer_matches_transformers() {
    let reference = common::reference_json();
    let texts: Vec<String> = reference["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect();
    let mut failures = Vec::new();
    let mut sections = 0;
    let mut compared = 0usize;
    for section in reference["hf_slow"].as_array().unwrap() {
        let dir_ref = section["dir"].as_str().unwrap();
        let legacy = section["legacy"].as_bool().unwrap();
        let Some(dir) = common::resolve(dir_ref).filter(|p| p.is_dir()) else {
            eprintln!("skipping {dir_ref}: not found");
            continue;
        };
        sections += 1;
        // The reference was produced with the LlamaTokenizer class for every
        // directory (InternLM2 encodes the same way; its decode differs).
        let options = HfSlowOptions {
            flavor: Some(SlowTokenizerFlavor::Llama),
            legacy: Some(legacy),
        };
        let tok = HfSlowTokenizer::from_dir_with_options(&dir, options).unwrap();
        let label = format!("{dir_ref} legacy={legacy}");
        assert_eq!(
            tok.vocab_len() as u64,
            section["vocab_len"].as_u64().unwrap(),
            "{label}"
        );
        for (token, id) in section["token_ids"].as_object().unwrap() {
            let got = tok
                .token_to_id(token)
                .unwrap_or(tok.sentencepiece().unk_id());
            assert_eq!(
                u64::from(got),
                id.as_u64().unwrap(),
                "{label} token_to_id({token})"
            );
        }
        let with = section["with_special"].as_array().unwrap();
        let without = section["without_special"].as_array().unwrap();
        for (i, text) in texts.iter().enumerate() {
            for (add, expected) in [(true, &with[i]), (false, &without[i])] {
                let expected = common::ids(expected);
                let got = tok.encode(text, add);
                compared += 1;
                if got != expected {
                    failures.push(format!(
                        "{label} encode({text:?}, add_special_tokens={add}):\n  got      {got:?}\n  expected {expected:?}"
                    ));
                }
            }
        }
        for case in section["decodes"].as_array().unwrap() {
            let ids = common::ids(&case["ids"]);
            for (skip, key) in [(false, "text"), (true, "text_skip")] {
                let expected = case[key].as_str().unwrap();
                let got = tok.decode(&ids, skip);
                compared += 1;
                if got != expected {
                    failures.push(format!(
                        "{label} decode({ids:?}, skip_special_tokens={skip}): got {got:?} expected {expected:?}"
                    ));
                }
            }
        }
    }
    assert!(sections >= 4, "too few sections checked ({sections})");
    eprintln!("{sections} tokenizer configurations, {compared} comparisons");
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Bulk random comparison against scripts/gen_bulk.py output (not committed):
/// `SPM_BULK_REFERENCE=/tmp/spm_bulk.json cargo test -- --ignored`.
#[test]
#[ignore]
fn hf_slow_tokenizer_matches_transformers_bulk() {
    let Ok(path) = std::env::var("SPM_BULK_REFERENCE") else {
        eprintln!("SPM_BULK_REFERENCE not set; skipping");
        return;
    };
    let data: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let texts: Vec<&str> = data["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let mut failures = Vec::new();
    for section in data["hf_slow"].as_array().unwrap() {
        let dir_ref = section["dir"].as_str().unwrap();
        let legacy = section["legacy"].as_bool().unwrap();
        let Some(dir) = common::resolve(dir_ref).filter(|p| p.is_dir()) else {
            continue;
        };
        let options = HfSlowOptions {
            flavor: Some(SlowTokenizerFlavor::Llama),
            legacy: Some(legacy),
        };
        let tok = HfSlowTokenizer::from_dir_with_options(&dir, options).unwrap();
        let with = section["with_special"].as_array().unwrap();
        let without = section["without_special"].as_array().unwrap();
        for (i, text) in texts.iter().enumerate() {
            for (add, expected) in [(true, &with[i]), (false, &without[i])] {
                let expected = common::ids(expected);
                let got = tok.encode(text, add);
                if got != expected {
                    failures.push(format!("{dir_ref} legacy={legacy} encode({text:?}, {add}):\n  got      {got:?}\n  expected {expected:?}"));
                }
            }
        }
        for case in section["decodes"].as_array().unwrap() {
            let ids = common::ids(&case["ids"]);
            for (skip, key) in [(false, "text"), (true, "text_skip")] {
                let got = tok.decode(&ids, skip);
                if got != case[key].as_str().unwrap() {
                    failures.push(format!("{dir_ref} legacy={legacy} decode({ids:?}, {skip}): got {got:?} expected {:?}", case[key]));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures[..failures.len().min(20)].join("\n")
    );
}
