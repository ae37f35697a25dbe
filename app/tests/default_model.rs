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

#[test]
fn eval_scores_the_examples_and_lists_mistakes() {
    // `eval` over the examples (each answered correctly: see the test above), then over a copy
    // in which one expected answer is wrong: the exact-match figure, the per-tag counts (from the
    // JSONL's own tags) and the mistake list must follow.
    let dir = repo().join("assets/examples");
    let text = std::fs::read_to_string(dir.join("examples.jsonl")).expect("examples.jsonl");
    let records: Vec<serde_json::Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("record"))
        .collect();
    let eval = |data: &std::path::Path| -> serde_json::Value {
        let out = Command::new(env!("CARGO_BIN_EXE_monovlm"))
            .env_remove("MONOVLM_MODEL")
            .args(["eval", "--json", "--data", data.to_str().expect("path")])
            .output()
            .expect("run eval");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        serde_json::from_slice(&out.stdout).expect("eval --json prints JSON")
    };
    let n = records.len();
    let res = eval(&dir.join("examples.jsonl"));
    assert_eq!(res["samples"], n);
    assert_eq!(res["exact"].as_f64(), Some(1.0), "{res}");
    let loss = res["loss"].as_f64().expect("loss");
    assert!(loss.is_finite() && loss > 0.0, "{loss}");
    for tag in ["task", "bucket"] {
        let mut want = std::collections::BTreeMap::<String, usize>::new();
        for r in &records {
            *want
                .entry(r[tag].as_str().expect("tag").to_string())
                .or_default() += 1;
        }
        for (value, count) in want {
            assert_eq!(
                res["groups"][tag][&value],
                serde_json::json!([count, count]),
                "{tag}={value}"
            );
        }
    }
    assert_eq!(res["mistakes"], serde_json::json!([]));

    let tmp = tempfile::tempdir().expect("tempdir");
    let mut changed = records.clone();
    changed[0]["conversations"][1]["value"] = "not the answer".into();
    let wrong_id = changed[0]["id"].as_str().expect("id").to_string();
    for r in &mut changed {
        let image = dir.join(r["image"].as_str().expect("image"));
        r["image"] = image.to_str().expect("path").into();
    }
    let lines: Vec<String> = changed.iter().map(|r| r.to_string()).collect();
    let data = tmp.path().join("changed.jsonl");
    std::fs::write(&data, lines.join("\n")).expect("write");
    let res = eval(&data);
    let exact = res["exact"].as_f64().expect("exact");
    assert!((exact - (n - 1) as f64 / n as f64).abs() < 1e-9, "{res}");
    let mistakes = res["mistakes"].as_array().expect("mistakes");
    assert_eq!(mistakes.len(), 1, "{res}");
    assert_eq!(mistakes[0][0], wrong_id.as_str());
    assert_eq!(mistakes[0][1], "not the answer");
    let task = records[0]["task"].as_str().expect("task");
    let total = records.iter().filter(|r| r["task"] == task).count();
    assert_eq!(
        res["groups"]["task"][task],
        serde_json::json!([total - 1, total])
    );
}
