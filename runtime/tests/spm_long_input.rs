//! Long inputs (400k characters) encode and round-trip. Speed is measured by benchmarks, not here;
//! a quadratic encoder would make this test take minutes, which is noticed without a timer.

#[path = "spm_common/mod.rs"]
mod common;

use runtime::sequence::sentencepiece::SentencePiece;

fn long_text(n_chars: usize) -> String {
    let base = "The quick brown fox jumps over the lazy dog. 你是由上海人工智能实验室 café 😀 1234567890\n\t  ";
    base.chars().cycle().take(n_chars).collect()
}

#[test]
fn long_prompts_encode_and_round_trip() {
    let mut models = vec![
        common::data_dir().join("unigram_bytes.model"),
        common::data_dir().join("bpe_nobytes.model"),
    ];
    if let Some(fx) = common::fixtures_dir() {
        models.push(fx.join("solo-tiny/model/tokenizer.model"));
    }
    let n = 400_000;
    let text = long_text(n);
    for path in models.into_iter().filter(|p| p.is_file()) {
        let sp = SentencePiece::from_file(&path).unwrap();
        let ids = sp.encode(&text);
        assert!(
            ids.len() > n / 10,
            "{}: {} ids for {n} chars",
            path.display(),
            ids.len()
        );
        // Decoding then re-encoding is stable.
        let decoded = sp.decode(&ids);
        if sp.byte_fallback() {
            assert_eq!(decoded, sp.decode(&sp.encode(&decoded)));
        }
        assert!(!decoded.is_empty());
    }
}
