//! Compares `SentencePiece` against ids/strings dumped from the Python
//! `sentencepiece` library (tests/data/reference.json, see
//! scripts/gen_reference.py).

#[path = "spm_common/mod.rs"]
mod common;

use runtime::sequence::sentencepiece::SentencePiece;

#[test]
fn sentencepiece_matches_python() {
    let reference = common::reference_json();
    let texts: Vec<String> = reference["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect();
    let mut checked_models = 0;
    let mut compared = 0usize;
    let mut failures = Vec::new();
    for section in reference["sentencepiece"].as_array().unwrap() {
        let model_ref = section["model"].as_str().unwrap();
        let Some(path) = common::resolve(model_ref).filter(|p| p.is_file()) else {
            eprintln!("skipping {model_ref}: not found");
            continue;
        };
        let sp = SentencePiece::from_file(&path).unwrap_or_else(|e| panic!("{model_ref}: {e}"));
        checked_models += 1;
        assert_eq!(
            sp.vocab_size() as u64,
            section["vocab_size"].as_u64().unwrap(),
            "{model_ref}"
        );
        assert_eq!(
            i64::from(sp.unk_id()),
            section["unk_id"].as_i64().unwrap(),
            "{model_ref}"
        );
        let opt = |v: Option<u32>| v.map_or(-1, i64::from);
        assert_eq!(
            opt(sp.bos_id()),
            section["bos_id"].as_i64().unwrap(),
            "{model_ref} bos"
        );
        assert_eq!(
            opt(sp.eos_id()),
            section["eos_id"].as_i64().unwrap(),
            "{model_ref} eos"
        );
        assert_eq!(
            opt(sp.pad_id()),
            section["pad_id"].as_i64().unwrap(),
            "{model_ref} pad"
        );
        let control: Vec<u32> = (0..sp.vocab_size() as u32)
            .filter(|&i| sp.is_control(i))
            .collect();
        assert_eq!(control, common::ids(&section["control"]), "{model_ref}");
        let n_bytes = (0..sp.vocab_size() as u32)
            .filter(|&i| sp.is_byte(i))
            .count();
        assert_eq!(
            n_bytes as u64,
            section["byte"].as_u64().unwrap(),
            "{model_ref}"
        );
        for (i, (text, expected)) in texts
            .iter()
            .zip(section["encoded"].as_array().unwrap())
            .enumerate()
        {
            let expected = common::ids(expected);
            let got = sp.encode(text);
            compared += 1;
            if got != expected {
                failures.push(format!(
                    "{model_ref} encode({text:?}):\n  got      {got:?}\n  expected {expected:?}"
                ));
                continue;
            }
            let decoded = section["decoded"]
                .get(i.to_string())
                .map(|v| v.as_str().unwrap().to_owned())
                .unwrap_or_else(|| text.clone());
            let got_dec = sp.decode(&got);
            if got_dec != decoded {
                failures.push(format!(
                    "{model_ref} decode(encode({text:?})): got {got_dec:?} expected {decoded:?}"
                ));
            }
        }
        for case in section["decodes"].as_array().unwrap() {
            let ids = common::ids(&case["ids"]);
            let expected = case["text"].as_str().unwrap();
            let got = sp.decode(&ids);
            compared += 1;
            if got != expected {
                failures.push(format!(
                    "{model_ref} decode({ids:?}): got {got:?} expected {expected:?}"
                ));
            }
        }
    }
    assert!(
        checked_models >= 6,
        "too few models checked ({checked_models})"
    );
    assert!(
        compared >= checked_models * 100,
        "too few comparisons ({compared})"
    );
    eprintln!("{checked_models} models, {compared} comparisons");
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Bulk random comparison against a file produced by scripts/gen_bulk.py
/// (not committed): `SPM_BULK_REFERENCE=/tmp/spm_bulk.json cargo test -- --ignored`.
#[test]
#[ignore]
fn sentencepiece_matches_python_bulk() {
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
    for section in data["sections"].as_array().unwrap() {
        let model_ref = section["model"].as_str().unwrap();
        let Some(path) = common::resolve(model_ref).filter(|p| p.is_file()) else {
            continue;
        };
        let sp = SentencePiece::from_file(&path).unwrap();
        let enc = section["encoded"].as_array().unwrap();
        let dec = section["decoded"].as_array().unwrap();
        let norm = section["normalized"].as_array().unwrap();
        for (i, text) in texts.iter().enumerate() {
            if sp.normalize(text) != norm[i].as_str().unwrap() {
                failures.push(format!(
                    "{model_ref} normalize({text:?}): got {:?} expected {:?}",
                    sp.normalize(text),
                    norm[i]
                ));
            }
            let expected = common::ids(&enc[i]);
            let got = sp.encode(text);
            if got != expected {
                failures.push(format!(
                    "{model_ref} encode({text:?}):\n  got      {got:?}\n  expected {expected:?}"
                ));
            } else if sp.decode(&got) != dec[i].as_str().unwrap() {
                failures.push(format!(
                    "{model_ref} decode of {text:?}: got {:?} expected {:?}",
                    sp.decode(&got),
                    dec[i]
                ));
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
