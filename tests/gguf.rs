//! HF checkpoint → GGUF → runtime: f32 files reproduce the dense model, q8_0 files keep the
//! argmax of the logits, and malformed GGUF files give errors (never panics or huge allocations).

use monovlm_e2e::{fixture, Gguf};
use quantize::{quantize, Options, QuantType};
use runtime::checkpoint::GgufFile;
use runtime::reference::{all_passed, check_fixture, top1_over, CaseReport};
use runtime::{LoadOptions, Model};
use std::path::{Path, PathBuf};

const FAMILIES: [&str; 6] = [
    "fuyu-tiny",
    "solo-tiny",
    "eve1-tiny",
    "eve2-tiny",
    "hovle-tiny",
    "monointernvl-tiny",
];

fn convert(name: &str, target: QuantType, dir: &Path) -> PathBuf {
    let out = dir.join(format!("{name}-{}.gguf", target.name()));
    let opts = Options {
        target,
        progress: false,
    };
    quantize(&fixture(name).join("model"), &out, &opts).expect("quantize");
    out
}

fn check(name: &str, model: Option<&Path>) -> Vec<CaseReport> {
    check_fixture(&fixture(name), model, &LoadOptions::default()).expect("fixture checks")
}

#[test]
fn f32_gguf_reproduces_the_hf_checkpoint() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for name in FAMILIES {
        let file = convert(name, QuantType::F32, tmp.path());
        let dense = check(name, None);
        let gguf = check(name, Some(&file));
        assert!(all_passed(&gguf), "{name}: f32 GGUF fails its fixture");
        let mut worst = 0f32;
        for (d, g) in dense.iter().zip(&gguf) {
            let (d, g) = (d.logits_err.expect("logits"), g.logits_err.expect("logits"));
            assert!(g <= 1e-4, "{name}: logits error {g}");
            worst = worst.max((d - g).abs());
        }
        assert!(
            worst <= 1e-5,
            "{name}: GGUF f32 vs HF logits differ by {worst}"
        );
        // No temporary file is left beside the output.
        let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
            .expect("read tmp")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    }
}

#[test]
fn q8_0_gguf_keeps_the_top1_token() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for name in FAMILIES {
        let file = convert(name, QuantType::Q8_0, tmp.path());
        let reports = check(name, Some(&file));
        let a = top1_over(&reports).expect("logits compared");
        assert!(a >= 0.95, "{name}: q8_0 top-1 agreement {a}");
        assert!(all_passed(&reports), "{name}: q8_0 fails its fixture");
        let model = Model::load(&file, &LoadOptions::default()).expect("load");
        assert_eq!(model.quant_type.as_deref(), Some("q8_0"));
        assert!(
            model.stats.dtypes.contains_key("q8_0"),
            "{name}: no q8_0 tensors: {:?}",
            model.stats.dtypes
        );
    }
}

#[test]
fn policy_falls_back_when_rows_do_not_fit_the_block() {
    use candle_core::quantized::GgmlDType;
    use quantize::tensor_type;
    let t = |name: &str, shape: &[usize], q| tensor_type(name, shape, q).0;
    let layer = "model.layers.0.mlp.down_proj.weight";
    assert_eq!(t(layer, &[64, 256], QuantType::Q4K), GgmlDType::Q4K);
    assert_eq!(t(layer, &[64, 64], QuantType::Q4K), GgmlDType::Q8_0);
    assert_eq!(t(layer, &[64, 176], QuantType::Q4K), GgmlDType::F16);
    assert_eq!(t(layer, &[64, 176], QuantType::Q8_0), GgmlDType::F16);
    assert_eq!(
        t("model.norm.weight", &[64], QuantType::Q4_0),
        GgmlDType::F32
    );
    assert_eq!(
        t("model.embed_tokens.weight", &[1024, 256], QuantType::Q4K),
        GgmlDType::F16
    );
    assert_eq!(
        t("lm_head.weight", &[1024, 256], QuantType::Q4K),
        GgmlDType::Q6K
    );
    assert_eq!(
        t("model.vision_tower.x.weight", &[256, 256], QuantType::Q4K),
        GgmlDType::F16
    );
    assert_eq!(t(layer, &[64, 176], QuantType::Bf16), GgmlDType::BF16);
}

#[test]
fn gguf_is_self_contained() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = convert("solo-tiny", QuantType::Q8_0, tmp.path());
    // Moved away from the fixture: nothing but the file is needed.
    let moved = tmp.path().join("alone.gguf");
    std::fs::rename(&file, &moved).expect("rename");
    let g = GgufFile::open(&moved).expect("open");
    for key in ["config.json", "tokenizer.model", "tokenizer_config.json"] {
        assert!(
            g.embedded_file(key).expect("read").is_some(),
            "{key} not embedded"
        );
    }
    assert!(g.meta_str("monovlm.quant_policy").is_some());
    assert_eq!(g.meta_str("general.architecture"), Some("solo"));
    Model::load(&moved, &LoadOptions::default()).expect("loads alone");
}

// ---- malformed files -------------------------------------------------------------------------

fn open_bytes(bytes: &[u8]) -> Result<GgufFile, String> {
    let tmp = tempfile::tempdir().expect("tempdir");
    let p = tmp.path().join("m.gguf");
    std::fs::write(&p, bytes).expect("write");
    let r = GgufFile::open(&p).map_err(|e| e.to_string());
    // The model loader must fail cleanly as well.
    if r.is_err() {
        assert!(Model::load(&p, &LoadOptions::default()).is_err());
    }
    r
}

fn expect_err(bytes: &[u8], needle: &str) {
    match open_bytes(bytes) {
        Ok(_) => panic!("accepted a malformed file (expected an error about {needle})"),
        Err(e) => assert!(
            e.contains(needle),
            "error `{e}` does not mention `{needle}`"
        ),
    }
}

#[test]
fn hand_made_valid_file_parses() {
    // One f32 tensor [2, 32] = 256 bytes.
    let f = Gguf::new(3, 1, 0).tensor("w", &[32, 2], 0, 0).data(256);
    let g = open_bytes(&f).expect("valid");
    assert_eq!(g.tensors["w"].shape, vec![2, 32]);
}

#[test]
fn malformed_headers_give_clear_errors() {
    expect_err(b"GGML\x03\0\0\0", "bad magic");
    expect_err(b"", "truncated");
    expect_err(&Gguf::new(1, 0, 0).data(0), "version");
    expect_err(&Gguf::new(99, 0, 0).data(0), "version");
    expect_err(&Gguf::new(3, u64::MAX, 0).data(0), "tensor count");
    expect_err(&Gguf::new(3, 0, 1 << 40).data(0), "metadata count");
    // A key whose length runs past the end.
    expect_err(&Gguf::new(3, 0, 1).u64(u64::MAX).data(64), "key length");
    // An array of 2^60 u64 values.
    let f = Gguf::new(3, 0, 1)
        .str("k")
        .u32(9)
        .u32(10)
        .u64(1 << 60)
        .data(0);
    expect_err(&f, "array length");
    // Unknown metadata value type.
    expect_err(
        &Gguf::new(3, 0, 1).str("k").u32(77).data(0),
        "unknown value type",
    );
    // Alignment 0 and 3.
    for a in [0u32, 3] {
        let f = Gguf::new(3, 0, 1)
            .str("general.alignment")
            .u32(4)
            .u32(a)
            .data(0);
        expect_err(&f, "alignment");
    }
    // Unknown tensor type.
    expect_err(
        &Gguf::new(3, 1, 0).tensor("w", &[32], 99, 0).data(128),
        "unknown tensor type",
    );
    // Too many dimensions, zero dimensions, absurd and overflowing dimensions.
    expect_err(
        &Gguf::new(3, 1, 0).tensor("w", &[1; 5], 0, 0).data(4),
        "dimensions",
    );
    expect_err(
        &Gguf::new(3, 1, 0).tensor("w", &[], 0, 0).data(4),
        "dimensions",
    );
    expect_err(
        &Gguf::new(3, 1, 0).tensor("w", &[u64::MAX], 0, 0).data(4),
        "absurd dimension",
    );
    let f = Gguf::new(3, 1, 0)
        .tensor("w", &[1 << 21, 1 << 21, 1 << 21, 1 << 21], 0, 0)
        .data(4);
    expect_err(&f, "dimension");
    // Offset past the end, misaligned offset, data longer than the file.
    expect_err(
        &Gguf::new(3, 1, 0).tensor("w", &[8], 0, 1 << 40).data(32),
        "past the end",
    );
    expect_err(
        &Gguf::new(3, 1, 0).tensor("w", &[8], 0, 4).data(64),
        "alignment",
    );
    expect_err(
        &Gguf::new(3, 1, 0).tensor("w", &[64], 0, 0).data(32),
        "past the end",
    );
    // Row not a multiple of the block: q8_0 with 16-element rows.
    expect_err(
        &Gguf::new(3, 1, 0).tensor("w", &[16], 8, 0).data(64),
        "block size",
    );
    // Duplicate tensor names.
    let f = Gguf::new(3, 2, 0)
        .tensor("w", &[8], 0, 0)
        .tensor("w", &[8], 0, 32)
        .data(64);
    expect_err(&f, "duplicate");
}

#[test]
fn truncated_files_give_errors() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = convert("fuyu-tiny", QuantType::Q8_0, tmp.path());
    let bytes = std::fs::read(&file).expect("read");
    let g = GgufFile::open(&file).expect("valid file");
    // Past the end of the last tensor's data only padding remains.
    let data_end = g
        .tensors
        .values()
        .map(|t| t.start + t.len)
        .max()
        .expect("tensors");
    let mut cuts: Vec<usize> = (0..200).map(|i| i * data_end / 200).collect();
    cuts.extend([1, 3, 4, 7, 8, 15, 16, 23, 24, data_end - 1]);
    for cut in cuts {
        let r = open_bytes(&bytes[..cut]);
        assert!(
            r.is_err(),
            "a file cut at {cut} of {} bytes was accepted",
            bytes.len()
        );
    }
}

// ---- llama.cpp's reader -----------------------------------------------------------------------

/// Reads a file with llama.cpp's Python `gguf` package (PyPI `gguf`): one line per tensor with
/// its name, type, shape (GGUF order) and the sum of its dequantized values, then the keys.
const PY_READER: &str = r#"
import sys, gguf
from gguf.quants import dequantize
r = gguf.GGUFReader(sys.argv[1])
for t in r.tensors:
    v = dequantize(t.data, t.tensor_type).astype("float64")
    print("T", t.name, t.tensor_type.name, ",".join(str(int(d)) for d in t.shape), repr(float(v.sum())))
for k in r.fields:
    print("K", k)
"#;

/// `$MONOVLM_PYTHON` if it has the `gguf` package.
fn python_with_gguf() -> Option<String> {
    let py = std::env::var("MONOVLM_PYTHON").ok()?;
    let ok = std::process::Command::new(&py)
        .args(["-c", "import gguf"])
        .output()
        .is_ok_and(|o| o.status.success());
    ok.then_some(py)
}

#[test]
fn llama_cpp_gguf_reader_parses_our_files() {
    let Some(py) = python_with_gguf() else {
        // CI names its interpreter explicitly: there a missing `gguf` package is a failure.
        assert!(
            std::env::var("MONOVLM_PYTHON").is_err(),
            "MONOVLM_PYTHON is set but cannot `import gguf`"
        );
        eprintln!(
            "skipped: set MONOVLM_PYTHON to a python with the `gguf` package (pip install gguf)"
        );
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let full_keys = [
        "general.architecture",
        "monovlm.quant_policy",
        "monovlm.file.config.json",
        "monovlm.tensor_names.gguf",
        "tokenizer.ggml.tokens",
    ];
    for (name, target) in [
        ("fuyu-tiny", QuantType::Q4K),
        ("fuyu-tiny", QuantType::Q5K),
        ("fuyu-tiny", QuantType::Q6K),
        ("solo-tiny", QuantType::Q8_0),
        ("solo-tiny", QuantType::Q4_0),
        ("hovle-tiny", QuantType::Bf16),
        ("eve2-tiny", QuantType::F16),
        ("monointernvl-tiny", QuantType::F32),
    ] {
        let file = convert(name, target, tmp.path());
        gguf_py_agrees(&py, &file, &format!("{name} {}", target.name()), &full_keys);
    }
    // `--text-only` files are llama.cpp text models: its reader sees their hyper-parameters.
    for (name, arch) in [("solo-tiny", "llama"), ("eve2-tiny", "qwen2")] {
        let file = tmp.path().join(format!("{name}-text.gguf"));
        quantize::text_only::export_text_only(
            &fixture(name).join("model"),
            &file,
            QuantType::Q8_0,
            false,
        )
        .expect("text-only export");
        let keys = [
            format!("{arch}.block_count"),
            format!("{arch}.attention.head_count_kv"),
            "tokenizer.ggml.tokens".to_string(),
        ];
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        gguf_py_agrees(&py, &file, &format!("{name} text-only"), &keys);
    }
}

/// gguf-py parses `file`, its tensor types, shapes and dequantized sums match ours, and it sees
/// every key of `keys`.
fn gguf_py_agrees(py: &str, file: &Path, what: &str, keys: &[&str]) {
    use runtime::checkpoint::TensorSource;
    let out = std::process::Command::new(py)
        .args(["-c", PY_READER])
        .arg(file)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{what}: gguf reader failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ours = GgufFile::open(file).expect("open");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut seen = 0;
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        if f[0] == "K" {
            continue;
        }
        let (tname, ty, shape, sum) = (f[1], f[2], f[3], f[4]);
        let info = &ours.tensors[tname];
        let our_ty = runtime::checkpoint::gguf::ggml_dtype_name(info.dtype);
        assert_eq!(ty.to_ascii_lowercase(), our_ty, "{what}: {tname}");
        let mut dims: Vec<usize> = shape.split(',').map(|d| d.parse().expect("dim")).collect();
        dims.reverse();
        assert_eq!(dims, info.shape, "{what}: {tname}");
        let theirs: f64 = sum.parse().expect("sum");
        let t = ours
            .load(tname, candle_core::DType::F64, &candle_core::Device::Cpu)
            .expect("load");
        let mine: f64 = t
            .flatten_all()
            .and_then(|t| t.sum_all())
            .and_then(|t| t.to_scalar())
            .expect("sum");
        assert!(
            (mine - theirs).abs() <= 1e-3 * (1.0 + theirs.abs()),
            "{what}: {tname}: dequantized sum {mine} vs llama.cpp's {theirs}"
        );
        seen += 1;
    }
    assert_eq!(seen, ours.tensors.len(), "{what}: tensor count");
    for key in keys {
        assert!(
            text.contains(&format!("K {key}\n")),
            "{what}: {key} not seen by gguf-py"
        );
    }
}

#[test]
fn corrupted_bytes_never_panic() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = convert("fuyu-tiny", QuantType::Q8_0, tmp.path());
    let bytes = std::fs::read(&file).expect("read");
    let g = GgufFile::open(&file).expect("valid");
    let header_end = g.tensors.values().map(|t| t.start).min().expect("tensors");
    // Tensor table and the end of the metadata, where counts, lengths, dims and offsets live.
    let lo = header_end.saturating_sub(8192);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut rejected = 0;
    for i in 0..20_000 {
        let mut b = bytes.clone();
        // Either the fixed header (magic, version, counts) or the tables.
        let pos = if i % 10 == 0 {
            (next() % 24) as usize
        } else {
            lo + (next() as usize % (header_end - lo))
        };
        b[pos] = (next() & 0xff) as u8;
        if i % 3 == 0 {
            b[pos.saturating_sub(1)] = 0xff;
        }
        rejected += runtime::checkpoint::gguf::validate(&b).is_err() as usize;
        if i < 30 {
            // The whole loader on a few of them: any result but a panic.
            let p = tmp.path().join("fuzz.gguf");
            std::fs::write(&p, &b).expect("write");
            let _ = Model::load(&p, &LoadOptions::default());
        }
    }
    assert!(
        rejected > 1000,
        "only {rejected} corrupted headers rejected"
    );
}

// ---- llama.cpp names -------------------------------------------------------------------------

/// Full files store the decoder under llama.cpp's names (`token_embd`, `blk.N.*`, `output_norm`,
/// `output`) with its hyper-parameters as `<family>.*` keys and the vocabulary as
/// `tokenizer.ggml.*`; the rename table maps every renamed tensor back to the checkpoint.
#[test]
fn full_files_use_llama_cpp_names_where_the_concept_exists() {
    use candle_core::quantized::gguf_file::Value;
    let tmp = tempfile::tempdir().expect("tempdir");
    for name in FAMILIES {
        let hf = Model::load(&fixture(name).join("model"), &LoadOptions::default()).expect("hf");
        let d = &hf.spec.decoder;
        let file = convert(name, QuantType::Q8_0, tmp.path());
        let raw = GgufFile::open(&file).expect("open");
        let arch = raw
            .meta_str("general.architecture")
            .expect("arch")
            .to_string();
        assert_eq!(arch, hf.spec.family, "{name}");
        let has = |t: &str| raw.tensors.contains_key(t);
        assert!(has("token_embd.weight"), "{name}: no token_embd.weight");
        assert!(has("output_norm.weight"), "{name}: no output_norm.weight");
        // A separate output head is stored as `output.weight`; tied ones have none.
        let lm_head = format!("{}.weight", d.names.lm_head);
        let head_stored = hf.aliases.find(&hf_source(name), &lm_head).is_some();
        assert_eq!(has("output.weight"), head_stored, "{name}: output.weight");
        for i in [0, d.layers - 1] {
            let b = format!("blk.{i}.");
            assert!(has(&format!("{b}attn_norm.weight")), "{name}: {b}attn_norm");
            assert!(
                has(&format!("{b}attn_q.weight")) || has(&format!("{b}attn_qkv.weight")),
                "{name}: {b}attn_q/attn_qkv"
            );
            assert!(
                has(&format!("{b}attn_output.weight")),
                "{name}: {b}attn_output"
            );
            assert!(has(&format!("{b}ffn_down.weight")), "{name}: {b}ffn_down");
            // …and none of the checkpoint's spellings of the same tensors.
            let stored = format!("{}{}.weight", d.names.layer_prefix(i), d.names.attn_norm);
            assert!(
                hf.aliases.candidates(&stored).iter().all(|c| !has(c)),
                "{name}: {stored} kept its checkpoint name"
            );
        }
        assert!(
            raw.tensors.keys().any(|t| t.starts_with("v.patch_embd.")),
            "{name}: no v.patch_embd"
        );
        let u32_key = |k: &str| match raw.metadata.get(k) {
            Some(Value::U32(v)) => *v as usize,
            other => panic!("{name}: {k} = {other:?}"),
        };
        assert_eq!(u32_key(&format!("{arch}.block_count")), d.layers, "{name}");
        assert_eq!(
            u32_key(&format!("{arch}.attention.head_count_kv")),
            d.kv_heads,
            "{name}"
        );
        match raw.metadata.get("tokenizer.ggml.tokens") {
            Some(Value::Array(tokens)) => {
                assert_eq!(tokens.len(), d.vocab, "{name}: vocabulary rows")
            }
            other => panic!("{name}: tokenizer.ggml.tokens = {other:?}"),
        }
        let len = |k: &str| match raw.metadata.get(k) {
            Some(Value::Array(a)) => a.len(),
            other => panic!("{name}: {k} = {other:?}"),
        };
        assert_eq!(
            len("monovlm.tensor_names.gguf"),
            len("monovlm.tensor_names.checkpoint"),
            "{name}"
        );
        assert!(
            len("monovlm.tensor_names.gguf") >= 2 + 4 * d.layers,
            "{name}: renamed too few"
        );
    }
}

fn hf_source(name: &str) -> runtime::checkpoint::CheckpointTensors {
    runtime::checkpoint::HfFolder::open(&fixture(name).join("model"))
        .expect("folder")
        .tensors
}

/// A tampered rename table is a clear error: names the file does not hold, tables of different
/// lengths, a name used twice, a rename onto a tensor that exists.
#[test]
fn tampered_rename_tables_are_refused() {
    use candle_core::quantized::gguf_file::{self, Value};
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = convert("solo-tiny", QuantType::Q8_0, tmp.path());
    let mut reader = std::fs::File::open(&file).expect("open");
    let content = gguf_file::Content::read(&mut reader).expect("read");
    let tensors: Vec<(String, candle_core::quantized::QTensor)> = content
        .tensor_infos
        .keys()
        .map(|n| {
            let t = content
                .tensor(&mut reader, n, &candle_core::Device::Cpu)
                .expect("tensor");
            (n.clone(), t)
        })
        .collect();
    let strings =
        |v: &[&str]| Value::Array(v.iter().map(|s| Value::String(s.to_string())).collect());
    let cases: [(&str, Value, Value); 4] = [
        (
            "no-such",
            strings(&["blk.99.attn_q.weight"]),
            strings(&["x.weight"]),
        ),
        (
            "lengths",
            strings(&["token_embd.weight", "output.weight"]),
            strings(&["a"]),
        ),
        (
            "twice",
            strings(&["token_embd.weight", "output.weight"]),
            strings(&["a", "a"]),
        ),
        (
            "onto",
            strings(&["token_embd.weight"]),
            strings(&["output_norm.weight"]),
        ),
    ];
    for (what, gguf, checkpoint) in cases {
        let mut md: Vec<(String, Value)> = content
            .metadata
            .iter()
            .filter(|(k, _)| !k.starts_with("monovlm.tensor_names."))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        md.push(("monovlm.tensor_names.gguf".into(), gguf));
        md.push(("monovlm.tensor_names.checkpoint".into(), checkpoint));
        let out = tmp.path().join(format!("{what}.gguf"));
        let mut w = std::fs::File::create(&out).expect("create");
        let mdr: Vec<(&str, &Value)> = md.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let tr: Vec<(&str, &candle_core::quantized::QTensor)> =
            tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
        gguf_file::write(&mut w, &mdr, &tr).expect("write");
        drop(w);
        let err = match Model::load(&out, &LoadOptions::default()) {
            Ok(_) => panic!("{what}: a tampered rename table was accepted"),
            Err(e) => e.to_string(),
        };
        assert!(
            err.contains("rename table") || err.contains("tensor_names"),
            "{what}: {err}"
        );
    }
}

#[test]
fn vocabularies_llama_cpp_cannot_express_are_skipped_with_the_reason() {
    // Fuyu's Unigram vocabulary re-expressed as a WordLevel model: our runtime tokenizes with it,
    // llama.cpp has no tokenizer of that kind. The conversion succeeds, stores no
    // `tokenizer.ggml.*`, and says why; the embedded tokenizer files still serve the runtime.
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("model");
    std::fs::create_dir(&dir).expect("mkdir");
    for entry in std::fs::read_dir(fixture("fuyu-tiny").join("model")).expect("fixture") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, dir.join(path.file_name().expect("name"))).expect("copy");
    }
    let json_path = dir.join("tokenizer.json");
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).expect("read")).expect("json");
    let model = &json["model"];
    let unk_id = model["unk_id"].as_u64().unwrap_or(0) as usize;
    let pieces: Vec<String> = model["vocab"]
        .as_array()
        .expect("unigram vocab")
        .iter()
        .map(|row| row[0].as_str().expect("piece").to_string())
        .collect();
    let vocab: serde_json::Map<String, serde_json::Value> = pieces
        .iter()
        .enumerate()
        .map(|(id, p)| (p.clone(), serde_json::Value::from(id)))
        .collect();
    json["model"] = serde_json::json!({
        "type": "WordLevel",
        "vocab": vocab,
        "unk_token": pieces[unk_id],
    });
    std::fs::write(&json_path, serde_json::to_string(&json).expect("json")).expect("write");
    Model::load(&dir, &LoadOptions::default()).expect("the runtime loads a WordLevel vocabulary");

    let out = tmp.path().join("wordlevel.gguf");
    let opts = Options {
        target: QuantType::Q8_0,
        progress: false,
    };
    let summary = quantize(&dir, &out, &opts).expect("quantize");
    let why = summary
        .llama_tokenizer_skipped
        .expect("a WordLevel vocabulary has no llama.cpp form");
    assert!(why.contains("WordLevel"), "{why}");
    let raw = GgufFile::open(&out).expect("open");
    assert!(raw.meta_str("tokenizer.ggml.model").is_none());
    Model::load(&out, &LoadOptions::default()).expect("the GGUF still loads");

    // The unmodified Unigram vocabulary does convert.
    let fuyu = tmp.path().join("fuyu.gguf");
    let summary = quantize(&fixture("fuyu-tiny").join("model"), &fuyu, &opts).expect("quantize");
    assert_eq!(summary.llama_tokenizer_skipped, None);
}
