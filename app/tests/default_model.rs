//! The embedded default model answers the README's example questions out of the box: `ask` with no
//! `--model`, the example images of `assets/examples/`, answers from the generator's ground truth
//! (`assets/examples/examples.jsonl`, written by `monovlm synth`), not from our own output.

use std::path::PathBuf;
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn ask_without_model_answers_the_examples() {
    let dir = repo().join("assets/examples");
    let text = std::fs::read_to_string(dir.join("examples.jsonl")).expect("examples.jsonl");
    let mut n = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let rec: serde_json::Value = serde_json::from_str(line).unwrap();
        let image = dir.join(rec["image"].as_str().unwrap());
        let conv = rec["conversations"].as_array().unwrap();
        let question = conv[0]["value"]
            .as_str()
            .unwrap()
            .trim_start_matches("<image>\n");
        let answer = conv[1]["value"].as_str().unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_monovlm"))
            .env_remove("MONOVLM_MODEL")
            .args(["ask", "--image", image.to_str().unwrap(), question])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{}: {stderr}", image.display());
        let got = String::from_utf8_lossy(&out.stdout);
        assert_eq!(got.trim(), answer, "{}: {question}", image.display());
        n += 1;
    }
    assert!(n >= 3, "only {n} examples");
}

#[test]
fn inspect_without_model_describes_the_default_model() {
    let out = Command::new(env!("CARGO_BIN_EXE_monovlm"))
        .env_remove("MONOVLM_MODEL")
        .args(["inspect"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("fuyu") && text.contains("q8_0"), "{text}");
}
