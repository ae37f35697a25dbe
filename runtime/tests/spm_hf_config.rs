//! Config handling of `HfSlowTokenizer`: the legacy special_tokens_map.json +
//! added_tokens.json path (expected values from transformers 4.40.2), and
//! error reporting.

#[path = "spm_common/mod.rs"]
mod common;

use runtime::sequence::sentencepiece::{
    HfSlowOptions, HfSlowTokenizer, SlowTokenizerFlavor, SpmError,
};
use std::path::PathBuf;

fn legacy_files_dir() -> PathBuf {
    common::data_dir().join("hf_legacy_files")
}

#[test]
fn legacy_added_tokens_json_path() {
    // Expected values printed by LlamaTokenizer.from_pretrained(dir[, legacy=True]).
    let cases_non_legacy: [(&str, &[u32]); 4] = [
        (
            "a <tool>  b <note> c<pad>",
            &[261, 273, 261, 500, 317, 261, 501, 261, 285, 502, 2],
        ),
        ("<s>x</s>", &[1, 297, 2, 2]),
        ("<img>hi", &[3, 301, 276, 2]),
        (" lead", &[261, 261, 499, 272, 273, 277, 2]),
    ];
    let cases_legacy: [(&str, &[u32]); 4] = [
        (
            "a <tool>  b <note> c<pad>",
            &[
                261, 273, 261, 500, 261, 317, 261, 501, 261, 261, 285, 502, 2,
            ],
        ),
        ("<s>x</s>", &[1, 261, 297, 2, 2]),
        ("<img>hi", &[3, 261, 301, 276, 2]),
        (" lead", &[261, 261, 499, 272, 273, 277, 2]),
    ];
    for (legacy, cases, decoded, decoded_skip) in [
        (
            None,
            &cases_non_legacy,
            "a  <tool> b  <note> c<pad> <img></s>",
            "a b  <note> c ",
        ),
        (
            Some(true),
            &cases_legacy,
            "a  <tool> b  <note>  c<pad>  <img></s>",
            "a  b  <note> c  ",
        ),
    ] {
        let tok = HfSlowTokenizer::from_dir_with_options(
            legacy_files_dir(),
            HfSlowOptions {
                flavor: None,
                legacy,
            },
        )
        .unwrap();
        assert_eq!(tok.flavor(), SlowTokenizerFlavor::Llama);
        assert_eq!(tok.legacy(), legacy.unwrap_or(false));
        assert_eq!(tok.vocab_len(), 503);
        assert_eq!(
            tok.all_special_tokens(),
            ["<s>", "</s>", "<unk>", "<pad>", "<tool>", "<img>"]
        );
        assert_eq!(tok.pad_token_id(), Some(502));
        assert_eq!(tok.token_to_id("<note>"), Some(501));
        assert!(!tok.add_bos_token() && tok.add_eos_token());
        for (text, expected) in cases.iter() {
            assert_eq!(
                tok.encode(text, true),
                *expected,
                "{text:?} legacy={legacy:?}"
            );
        }
        let ids = tok.encode("a <tool>  b <note> c<pad> <img>", true);
        assert_eq!(tok.decode(&ids, false), decoded, "legacy={legacy:?}");
        assert_eq!(tok.decode(&ids, true), decoded_skip, "legacy={legacy:?}");
        let rstrip = tok
            .added_tokens()
            .into_iter()
            .find(|t| t.content == "<tool>")
            .unwrap();
        assert!(rstrip.rstrip && rstrip.special);
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("spm-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        common::data_dir().join("unigram_bytes.model"),
        dir.join("tokenizer.model"),
    )
    .unwrap();
    dir
}

#[test]
fn defaults_without_config() {
    let dir = temp_dir("defaults");
    let tok = HfSlowTokenizer::from_dir(&dir).unwrap();
    assert_eq!(tok.flavor(), SlowTokenizerFlavor::Llama);
    assert!(tok.legacy() && tok.add_bos_token() && !tok.add_eos_token());
    assert_eq!(tok.bos_token_id(), Some(1));
    assert_eq!(tok.encode("<s>hi</s>", true)[..2], [1, 1]);
    assert_eq!(tok.vocab_len(), tok.sentencepiece().vocab_size());
    assert_eq!(
        tok.try_decode(&[100_000], false).unwrap_err().to_string(),
        "token id 100000 is out of range (vocabulary size 500)"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn config_errors_name_file_and_field() {
    let dir = temp_dir("errors");
    let write = |name: &str, body: &str| std::fs::write(dir.join(name), body).unwrap();
    let check = |expect_field: &str| {
        let err = HfSlowTokenizer::from_dir(&dir).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("tokenizer_config.json") || msg.contains("added_tokens.json"),
            "{msg}"
        );
        assert!(msg.contains(expect_field), "{msg}");
        err
    };
    write("tokenizer_config.json", r#"{"add_bos_token": "yes"}"#);
    assert!(matches!(check("add_bos_token"), SpmError::Config { .. }));
    write(
        "tokenizer_config.json",
        r#"{"added_tokens_decoder": {"abc": {"content": "x"}}}"#,
    );
    check("added_tokens_decoder.abc");
    write(
        "tokenizer_config.json",
        r#"{"added_tokens_decoder": {"7": {"lstrip": true}}}"#,
    );
    check("added_tokens_decoder.7");
    write("tokenizer_config.json", r#"{"bos_token": 5}"#);
    check("bos_token");
    write(
        "tokenizer_config.json",
        r#"{"additional_special_tokens": "<x>"}"#,
    );
    check("additional_special_tokens");
    write("tokenizer_config.json", "{not json");
    assert!(matches!(
        check("tokenizer_config.json"),
        SpmError::Json { .. }
    ));
    write("tokenizer_config.json", "{}");
    write("added_tokens.json", r#"{"<x>": "five"}"#);
    check("<x>");
    std::fs::remove_file(dir.join("added_tokens.json")).unwrap();
    std::fs::remove_file(dir.join("tokenizer.model")).unwrap();
    let err = HfSlowTokenizer::from_dir(&dir).unwrap_err();
    assert!(
        matches!(err, SpmError::Io { .. }) && err.to_string().contains("tokenizer.model"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
