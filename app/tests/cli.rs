//! The real `monovlm` binary: exit codes, one-line errors, streamed answers.

use std::path::PathBuf;
use std::process::Command;

fn fixtures() -> PathBuf {
    std::env::var("MONOVLM_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures"))
}

fn monovlm(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_monovlm"))
        .args(args)
        .output()
        .expect("run monovlm");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_one_line_error(args: &[&str], needle: &str) {
    let (code, _out, err) = monovlm(args);
    assert_ne!(code, 0, "{args:?} should fail");
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{args:?}: expected one line, got {err:?}");
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains(needle),
        "{args:?}: {err}"
    );
}

#[test]
fn check_reference_passes_on_fuyu_fixture() {
    let dir = fixtures().join("fuyu-tiny");
    let (code, out, err) = monovlm(&["check-reference", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let cases = out.lines().filter(|l| l.contains(" PASS ")).count();
    assert_eq!(cases, 6, "{out}");
}

#[test]
fn check_reference_fails_when_the_model_differs() {
    // The fuyu fixture's cases checked against a model with a perturbed weight must fail with exit 1.
    let src = fixtures().join("fuyu-tiny");
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    std::fs::create_dir(&model).unwrap();
    for e in std::fs::read_dir(src.join("model")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), model.join(e.file_name())).unwrap();
    }
    let p = model.join("model.safetensors");
    let mut bytes = std::fs::read(&p).unwrap();
    // Flip a byte near the end of the data (inside lm_head or a late layer), keeping the header valid.
    let n = bytes.len();
    bytes[n - 1001] ^= 0x40;
    std::fs::write(&p, &bytes).unwrap();
    let (code, out, _) = monovlm(&[
        "check-reference",
        src.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL"), "{out}");
}

#[test]
fn ask_streams_the_reference_greedy_answer() {
    let dir = fixtures().join("fuyu-tiny");
    let cases: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("cases.json")).unwrap()).unwrap();
    let case = &cases["cases"][0];
    let ids: Vec<u64> = case["greedy_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert!(
        !ids.contains(&4),
        "this check needs a case whose greedy ids do not stop early"
    );
    let image = dir.join(case["image"].as_str().unwrap());
    let (code, out, err) = monovlm(&[
        "ask",
        "--model",
        dir.join("model").to_str().unwrap(),
        "--image",
        image.to_str().unwrap(),
        "--max-tokens",
        &ids.len().to_string(),
        case["prompt"].as_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.trim_end_matches('\n'),
        case["greedy_text"].as_str().unwrap().trim_start()
    );
}

#[test]
fn bad_inputs_give_one_line_errors() {
    let model = fixtures().join("fuyu-tiny/model");
    let m = model.to_str().unwrap();
    assert_one_line_error(
        &["ask", "--model", "/no/such/model", "hi"],
        "not a model folder",
    );
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.png");
    std::fs::write(&bad, b"\x89PNG\r\n\x1a\nthis is not a png").unwrap();
    assert_one_line_error(
        &["ask", "--model", m, "--image", bad.to_str().unwrap(), "hi"],
        "bad.png",
    );
    assert_one_line_error(
        &["ask", "--model", m, "--image", "/no/such.png", "hi"],
        "/no/such.png",
    );
    assert_one_line_error(&["inspect", "--model", m, "--dtype", "f8"], "unknown dtype");
    assert_one_line_error(&["check-reference", "/no/fixture"], "cases.json");
}

#[test]
fn inspect_reports_grid_and_token_count() {
    let dir = fixtures().join("fuyu-tiny");
    let (code, out, err) = monovlm(&[
        "inspect",
        "--model",
        dir.join("model").to_str().unwrap(),
        "--image",
        dir.join("images/big_tall.png").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("family:          fuyu"), "{out}");
    // 12x1200 is resized to 10x1080: 36 rows of 1 patch, each row followed by |NEWLINE|.
    assert!(out.contains("resized:         10x1080"), "{out}");
    assert!(out.contains("36 rows × 1 cols"), "{out}");
    assert!(out.contains("image tokens:    72"), "{out}");
}

#[test]
fn bench_json_has_the_documented_keys() {
    let dir = fixtures().join("solo-tiny");
    let (code, out, err) = monovlm(&[
        "bench",
        "--model",
        dir.join("model").to_str().unwrap(),
        "--image",
        dir.join("images/wide.png").to_str().unwrap(),
        "--prompt-tokens",
        "16",
        "--gen-tokens",
        "4",
        "--threads",
        "1",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
    for key in ["prefill_tokens_per_s", "decode_tokens_per_s", "ttft_s"] {
        assert!(v[key].as_f64().is_some_and(|x| x > 0.0), "{key}: {v}");
    }
    assert!(v["peak_rss_bytes"].as_u64().is_some_and(|x| x > 0), "{v}");
    // 3x10 grid of <vpatch> in the SOLO layout, plus 16 text tokens.
    assert_eq!(v["image_tokens"], 30, "{v}");
    assert_eq!(v["prompt_tokens"], 16 + 30 + 2 + 2, "{v}");
}

#[test]
fn quantize_then_run_the_gguf() {
    let tmp = tempfile::tempdir().unwrap();
    let model = fixtures().join("fuyu-tiny/model");
    let out = tmp.path().join("fuyu.gguf");
    let (m, o) = (model.to_str().unwrap(), out.to_str().unwrap());
    let (code, stdout, err) = monovlm(&["quantize", m, "-o", o, "--type", "q8_0"]);
    assert_eq!(code, 0, "{stdout}{err}");
    assert!(
        stdout.contains("tensor") && stdout.contains("q8_0"),
        "{stdout}"
    );
    let fixture = fixtures().join("fuyu-tiny");
    let (code, stdout, err) =
        monovlm(&["check-reference", fixture.to_str().unwrap(), "--model", o]);
    assert_eq!(code, 0, "{stdout}{err}");
    assert!(stdout.contains("top-1 agreement"), "{stdout}");
    let (code, stdout, err) = monovlm(&["inspect", "-m", o]);
    assert_eq!(code, 0, "{stdout}{err}");
    assert!(stdout.contains("q8_0×"), "{stdout}");
    let (code, stdout, err) = monovlm(&["ask", "-m", o, "--max-tokens", "3", "hi"]);
    assert_eq!(code, 0, "{stdout}{err}");
    assert_one_line_error(&["quantize", m, "-o", o, "--type", "q3_x"], "unknown type");
    // A truncated file: one clear error line, no panic.
    let bytes = std::fs::read(&out).unwrap();
    let cut = tmp.path().join("cut.gguf");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    assert_one_line_error(
        &["ask", "-m", cut.to_str().unwrap(), "hi"],
        "malformed GGUF",
    );
}

#[test]
fn devices_lists_every_backend_with_the_cpu_memory() {
    let (code, out, err) = monovlm(&["devices"]);
    assert_eq!(code, 0, "{out}{err}");
    for backend in ["cpu", "cuda", "metal", "vulkan"] {
        assert!(
            out.lines().any(|l| l.starts_with(backend)),
            "{backend} missing: {out}"
        );
    }
    assert!(
        out.lines()
            .any(|l| l.starts_with("cpu") && l.contains("ready")),
        "{out}"
    );
    // The memory figures come from /proc/meminfo, so only Linux is held to them.
    if cfg!(target_os = "linux") {
        let cpu = out
            .lines()
            .find(|l| l.trim_start().starts_with("cpu:"))
            .unwrap_or_else(|| panic!("no cpu line: {out}"));
        assert!(
            cpu.contains("memory (") && cpu.contains("available)"),
            "{cpu}"
        );
    }
}
