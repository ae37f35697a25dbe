//! Hostile input through the real CLI: every bad model file, image or prompt built here gives
//! either an answer or exactly one line `error: …` naming the problem, a non-zero exit code, no
//! panic and no runaway allocation (each run is capped at 3 GiB of address space, so an
//! allocation sized from a lying header aborts instead of passing unnoticed).
//!
//! Library-level corruption tests live beside the parsers (tests/gguf.rs,
//! tests/malformed_checkpoints.rs, runtime/tests/malformed_images.rs); this suite checks what a
//! user sees.

use monovlm_e2e::{copy_model, fixture, png_with_size, Gguf};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The `monovlm` binary of this build (`$MONOVLM_BIN`, else beside the test executable).
fn bin() -> PathBuf {
    if let Ok(p) = std::env::var("MONOVLM_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test executable");
    // target/<profile>/deps/malformed-HASH → target/<profile>/monovlm
    let p = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("monovlm"))
        .expect("target dir");
    assert!(
        p.exists(),
        "{} not built: run `cargo build --release -p monovlm` or set MONOVLM_BIN",
        p.display()
    );
    p
}

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs the CLI under a 3 GiB address-space limit.
fn run(args: &[&str]) -> Outcome {
    run_env(args, &[])
}

fn run_env(args: &[&str], env: &[(&str, &str)]) -> Outcome {
    let out = Command::new("bash")
        .arg("-c")
        .arg(r#"ulimit -v 3145728; exec "$@""#)
        .arg("monovlm")
        .arg(bin())
        .args(args)
        .env_remove("MONOVLM_MODEL")
        .env_remove("MONOVLM_MEMORY_LIMIT")
        .envs(env.iter().copied())
        .output()
        .expect("run monovlm");
    Outcome {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn assert_clean(o: &Outcome, what: &str) {
    assert!(
        o.code.is_some(),
        "{what}: killed by a signal (abort or crash): {}",
        o.stderr
    );
    assert!(
        !o.stderr.contains("panicked") && !o.stderr.contains("memory allocation"),
        "{what}: {}",
        o.stderr
    );
}

/// Exactly one stderr line `error: …` mentioning `needle` (case-insensitive), non-zero exit.
fn expect_error(args: &[&str], needle: &str, what: &str) -> String {
    expect_error_env(args, &[], needle, what)
}

fn expect_error_env(args: &[&str], env: &[(&str, &str)], needle: &str, what: &str) -> String {
    let o = run_env(args, env);
    assert_clean(&o, what);
    assert_ne!(o.code, Some(0), "{what}: accepted; stdout: {}", o.stdout);
    let lines: Vec<&str> = o.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{what}: not one line: {:?}", o.stderr);
    assert!(lines[0].starts_with("error: "), "{what}: {}", lines[0]);
    assert!(
        lines[0].to_lowercase().contains(&needle.to_lowercase()),
        "{what}: `{}` does not mention `{needle}`",
        lines[0]
    );
    lines[0].to_string()
}

/// An answer (exit 0) or one clean error line; never a crash.
fn expect_answer_or_error(args: &[&str], what: &str) {
    let o = run(args);
    assert_clean(&o, what);
    if o.code != Some(0) {
        let lines: Vec<&str> = o.stderr.lines().collect();
        assert!(
            lines.len() == 1 && lines[0].starts_with("error: "),
            "{what}: {:?}",
            o.stderr
        );
    }
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn fuyu() -> PathBuf {
    fixture("fuyu-tiny").join("model")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A fuyu-tiny q8_0 GGUF written by the real converter.
fn gguf_bytes(dir: &Path) -> Vec<u8> {
    let out = dir.join("fuyu.gguf");
    let opts = quantize::Options {
        target: quantize::QuantType::Q8_0,
        progress: false,
    };
    quantize::quantize(&fuyu(), &out, &opts).expect("quantize");
    std::fs::read(&out).expect("read gguf")
}

#[test]
fn truncated_gguf_files_are_named_at_every_cut() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = gguf_bytes(tmp.path());
    let path = tmp.path().join("cut.gguf");
    let n = bytes.len();
    let mut cuts = vec![0, 1, 3, 4, 7, 8, 15, 16, 23, 24, 31, 40, 64, 100, 300, 1000];
    cuts.extend((1..12).map(|k| n * k / 12));
    cuts.push(n - 1);
    for cut in cuts {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        expect_error(
            &["inspect", "--model", s(&path)],
            "gguf",
            &format!("cut at {cut} of {n}"),
        );
    }
}

#[test]
fn flipped_bytes_in_a_gguf_header_never_crash() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = gguf_bytes(tmp.path());
    let path = tmp.path().join("flip.gguf");
    // Spread over the header, the metadata (embedded configs) and the tensor index.
    let span = bytes.len().min(64 * 1024);
    for k in 0..48 {
        let at = 4 + (k * 7919) % (span - 4);
        let mut b = bytes.clone();
        b[at] ^= 0xA5;
        std::fs::write(&path, &b).unwrap();
        expect_answer_or_error(
            &["ask", "--model", s(&path), "--max-tokens", "2", "hi"],
            &format!("byte {at} flipped"),
        );
    }
}

#[test]
fn lying_gguf_headers_are_refused_before_allocating() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("bad.gguf");
    let cases: Vec<(Vec<u8>, &str, &str)> = vec![
        (
            Gguf::new(3, 1 << 40, 0).data(0),
            "tensor count",
            "2^40 tensors",
        ),
        (
            Gguf::new(3, 0, 1 << 40).data(0),
            "metadata count",
            "2^40 keys",
        ),
        (
            Gguf::new(3, 1, 0)
                .tensor("w", &[1 << 31, 1 << 31], 0, 0)
                .data(64),
            "gguf",
            "2^62-element tensor",
        ),
        (
            Gguf::new(3, 1, 0)
                .tensor("w", &[u64::MAX, 2], 0, 0)
                .data(64),
            "gguf",
            "a dimension of 2^64-1",
        ),
        (
            Gguf::new(3, 1, 0).tensor("w", &[32, 2], 999, 0).data(256),
            "type",
            "tensor type 999",
        ),
        (
            Gguf::new(3, 1, 0)
                .tensor("w", &[32, 2, 1, 1, 1, 1, 1, 1, 1], 0, 0)
                .data(256),
            "gguf",
            "rank 9",
        ),
        (
            Gguf::new(3, 1, 0)
                .tensor("w", &[32, 2], 0, 1 << 50)
                .data(256),
            "gguf",
            "data offset past the end",
        ),
        (
            Gguf::new(3, 0, 1).str("k").u32(8).u64(1 << 60).data(0),
            "gguf",
            "a 2^60-byte string",
        ),
        (
            Gguf::new(3, 0, 1)
                .str("k")
                .u32(9)
                .u32(4)
                .u64(1 << 60)
                .data(0),
            "gguf",
            "a 2^60-element array",
        ),
    ];
    for (bytes, needle, what) in cases {
        std::fs::write(&path, &bytes).unwrap();
        expect_error(&["inspect", "--model", s(&path)], needle, what);
    }
}

#[test]
fn malformed_checkpoint_folders_are_named() {
    // safetensors header length claiming 2^60 bytes.
    let dir = copy_model("fuyu-tiny");
    let st = dir.path().join("model.safetensors");
    let mut b = std::fs::read(&st).unwrap();
    b[..8].copy_from_slice(&(1u64 << 60).to_le_bytes());
    std::fs::write(&st, &b).unwrap();
    expect_error(
        &["inspect", "--model", s(dir.path())],
        "safetensors",
        "huge header",
    );

    // Truncated weights.
    let dir = copy_model("solo-tiny");
    let st = dir.path().join("model.safetensors");
    let b = std::fs::read(&st).unwrap();
    std::fs::write(&st, &b[..b.len() / 2]).unwrap();
    expect_error(
        &["ask", "--model", s(dir.path()), "hi"],
        "safetensors",
        "truncated weights",
    );

    // config.json that is not JSON, and one of no known family.
    let dir = copy_model("eve2-tiny");
    std::fs::write(dir.path().join("config.json"), b"{\"model_type\": ").unwrap();
    expect_error(
        &["inspect", "--model", s(dir.path())],
        "config.json",
        "invalid JSON",
    );
    std::fs::write(
        dir.path().join("config.json"),
        br#"{"model_type": "resnet", "architectures": ["ResNetForImageClassification"]}"#,
    )
    .unwrap();
    expect_error(
        &["inspect", "--model", s(dir.path())],
        "unknown model family",
        "unknown family",
    );

    // tokenizer.json files on which the `tokenizers` crate panics rather than erring (found by
    // the model_files fuzz target): a syntax error inside `decoder`, and a Precompiled
    // normalizer without its charsmap (valid JSON).
    let dir = copy_model("fuyu-tiny");
    let tok = dir.path().join("tokenizer.json");
    let text = std::fs::read_to_string(&tok).unwrap();
    let at = text.find("\"decoder\"").expect("a decoder section");
    let broken = format!("{}\"decoder\": {{\"type\" \"Fuse\"}}}}", &text[..at]);
    std::fs::write(&tok, broken).unwrap();
    expect_error(
        &["ask", "--model", s(dir.path()), "hi"],
        "tokenizer.json: invalid JSON",
        "syntax error in decoder",
    );
    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["normalizer"] = serde_json::json!({"type": "Precompiled"});
    std::fs::write(&tok, json.to_string()).unwrap();
    expect_error(
        &["ask", "--model", s(dir.path()), "hi"],
        "malformed tokenizer",
        "Precompiled normalizer without charsmap",
    );

    // Not a model at all.
    let tmp = tempfile::tempdir().unwrap();
    expect_error(
        &["inspect", "--model", s(tmp.path())],
        "config.json",
        "empty folder",
    );
}

/// Rewrites one f32 tensor of a safetensors file in place.
fn poison(st: &Path, name_part: &str, value: f32) {
    let b = std::fs::read(st).unwrap();
    let n = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&b[8..8 + n]).unwrap();
    let (name, info) = header
        .as_object()
        .unwrap()
        .iter()
        .find(|(k, v)| k.contains(name_part) && v["dtype"] == "F32")
        .expect("tensor to poison");
    let start = 8 + n + info["data_offsets"][0].as_u64().unwrap() as usize;
    let mut b = b.clone();
    b[start..start + 4].copy_from_slice(&value.to_le_bytes());
    std::fs::write(st, &b).unwrap();
    eprintln!("poisoned {name} with {value}");
}

#[test]
fn nan_and_infinite_weights_are_reported_not_answered() {
    for (value, what) in [(f32::NAN, "NaN"), (f32::INFINITY, "+inf")] {
        let dir = copy_model("fuyu-tiny");
        poison(&dir.path().join("model.safetensors"), "dense.weight", value);
        expect_error(
            &["ask", "--model", s(dir.path()), "--max-tokens", "3", "hi"],
            "non-finite",
            what,
        );
    }
}

#[test]
fn bad_images_are_named_and_extreme_ones_answered() {
    let tmp = tempfile::tempdir().unwrap();
    let img = |name: &str, bytes: &[u8]| {
        let p = tmp.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let model = fuyu();
    let m = s(&model);
    let ask = |p: &Path| {
        vec![
            "ask".to_string(),
            "--model".into(),
            m.to_string(),
            "--image".into(),
            s(p).to_string(),
            "--max-tokens".into(),
            "2".into(),
            "Caption.".into(),
        ]
    };

    let empty = img("empty.png", b"");
    expect_error(&strs(&ask(&empty)), "image format", "empty file");
    let text = img("text.png", b"this is not an image at all");
    expect_error(&strs(&ask(&text)), "image format", "text with a .png name");
    let missing = tmp.path().join("missing.png");
    expect_error(&strs(&ask(&missing)), "missing.png", "missing file");

    // A valid 1 × 60,000,000 strip (a 0.2 MB PNG, under the 100-megapixel decode limit): SOLO's
    // resize would pass through 32 × 60,000,000 pixels between its two passes and used to abort
    // the process; now the families whose rules upscale the short side refuse it in one line
    // (the others answer it, as the 1 × 100000 case below shows, only slower at this length).
    let strip = tmp.path().join("strip.png");
    image::GrayImage::from_pixel(1, 60_000_000, image::Luma([128]))
        .save(&strip)
        .unwrap();
    for fam in ["solo-tiny", "eve1-tiny", "eve2-tiny"] {
        let fm = fixture(fam).join("model");
        let args = [
            "ask",
            "--model",
            s(&fm),
            "--image",
            s(&strip),
            "--max-tokens",
            "1",
            "hi",
        ];
        expect_answer_or_error(&args, &format!("{fam} 1x60000000"));
    }
    let solo = fixture("solo-tiny").join("model");
    expect_error(
        &["ask", "--model", s(&solo), "--image", s(&strip), "hi"],
        "pass through",
        "solo 1x60000000",
    );

    // A header that lies: 100000 × 100000 pixels, a few bytes of data.
    let bomb = img("bomb.png", &png_with_size(100_000, 100_000, 2));
    expect_error(&strs(&ask(&bomb)), "pixels", "100000x100000 header");

    // Real, valid, extreme aspect ratios: answered (resized within each family's rules).
    for (w, h) in [(1u32, 100_000u32), (100_000, 1)] {
        let p = tmp.path().join(format!("{w}x{h}.png"));
        image::RgbImage::from_pixel(w, h, image::Rgb([200, 30, 30]))
            .save(&p)
            .unwrap();
        for fam in ["fuyu-tiny", "solo-tiny", "eve2-tiny", "hovle-tiny"] {
            let fm = fixture(fam).join("model");
            let o = run(&[
                "ask",
                "--model",
                s(&fm),
                "--image",
                s(&p),
                "--max-tokens",
                "2",
                "Caption.",
            ]);
            assert_clean(&o, &format!("{fam} {w}x{h}"));
            assert_eq!(o.code, Some(0), "{fam} {w}x{h}: {}", o.stderr);
        }
        // Cut in the middle of its data: a clean error.
        let b = std::fs::read(&p).unwrap();
        let cut = img("cut.png", &b[..b.len() / 2]);
        expect_answer_or_error(&strs(&ask(&cut)), &format!("{w}x{h} cut in half"));
    }
}

#[test]
fn bad_prompts_get_one_line() {
    let model = fuyu();
    let m = s(&model);
    // Non-UTF-8 bytes in the question: refused by argument parsing, in one line.
    let out = Command::new(bin())
        .args(["ask", "--model", m])
        .arg(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"\xff\xfe?"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: ") && err.contains("UTF-8"), "{err}");

    // An empty question is a question (Fuyu captions with it).
    let o = run(&["ask", "--model", m, "--max-tokens", "2", ""]);
    assert_clean(&o, "empty prompt");
    assert_eq!(o.code, Some(0), "{}", o.stderr);

    // Beyond the context length (at least one token per word): named, with both numbers.
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(model.join("config.json")).unwrap()).unwrap();
    let context = cfg["max_position_embeddings"].as_u64().expect("context") as usize;
    let long = "word ".repeat(context + 16);
    let line = expect_error(
        &["ask", "--model", m, &long],
        "prompt too long",
        "long prompt",
    );
    assert!(line.contains("context length"), "{line}");

    // Unknown flags and missing values: one line, exit 2.
    for a in [
        vec!["ask", "--model", m, "--max-tokens", "lots", "hi"],
        vec!["ask", "--model", m, "--no-such-flag", "hi"],
        vec!["inspect", "--model"],
    ] {
        let o = run(&a);
        assert_clean(&o, &format!("{a:?}"));
        assert_eq!(o.code, Some(2), "{a:?}: {}", o.stderr);
        assert_eq!(o.stderr.lines().count(), 1, "{a:?}: {}", o.stderr);
        assert!(o.stderr.starts_with("error: "), "{a:?}: {}", o.stderr);
    }
}

/// The preflight estimate refuses, with its numbers, a load or a turn that would not fit the
/// memory budget, before allocating it; turns that fit still answer.
#[test]
fn the_memory_budget_refuses_loads_and_turns_that_do_not_fit() {
    let dir = tempfile::tempdir().unwrap();
    let model = fuyu();
    let m = s(&model);
    let line = expect_error_env(
        &["ask", "--model", m, "hi"],
        &[("MONOVLM_MEMORY_LIMIT", "1K")],
        "loading this model",
        "1 KiB budget",
    );
    assert!(
        line.contains("out of memory") && line.contains("MONOVLM_MEMORY_LIMIT"),
        "{line}"
    );

    // 64 MiB holds the tiny model and a small image, not a 1920×1080 one: Fuyu keeps that size
    // (its limit), 64 × 36 patches of 30 px, and the attention scores alone for 2304+ tokens are
    // over 64 MiB.
    let small = dir.path().join("small.png");
    let big = dir.path().join("big.png");
    for (path, w, h) in [(&small, 64, 48), (&big, 1920, 1080)] {
        image::RgbImage::from_pixel(w, h, image::Rgb([20, 90, 200]))
            .save(path)
            .unwrap();
    }
    let env = [("MONOVLM_MEMORY_LIMIT", "64M")];
    let o = run_env(
        &[
            "ask",
            "--model",
            m,
            "--image",
            s(&small),
            "--max-tokens",
            "2",
            "hi",
        ],
        &env,
    );
    assert_clean(&o, "small image under 64 MiB");
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    let line = expect_error_env(
        &[
            "ask",
            "--model",
            m,
            "--image",
            s(&big),
            "--max-tokens",
            "2",
            "hi",
        ],
        &env,
        "this turn",
        "big image under 64 MiB",
    );
    assert!(
        line.contains("new tokens") && line.contains("MiB"),
        "{line}"
    );

    expect_error_env(
        &["ask", "--model", m, "hi"],
        &[("MONOVLM_MEMORY_LIMIT", "lots")],
        "MONOVLM_MEMORY_LIMIT",
        "bad limit value",
    );
}
