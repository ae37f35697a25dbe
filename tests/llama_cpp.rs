//! llama.cpp runs our `--text-only` exports and gets our logits. The decoder of each fixture whose
//! text stack llama.cpp has an architecture for is exported at f32, evaluated on the same token ids
//! by llama.cpp (through the `llama-cpp-python` package, f32 KV cache) and by our runtime on the
//! HF folder, and the logits are compared row by row.
//!
//! Runs when `MONOVLM_LLAMA_PYTHON` names a Python with `llama_cpp` (CI builds it); skipped
//! otherwise, loudly.

use candle_core::{DType, IndexOp};
use monovlm_e2e::fixture;
use quantize::text_only::export_text_only;
use quantize::QuantType;
use runtime::{LoadOptions, Model};

const PY_LOGITS: &str = r#"
import json, sys
from llama_cpp import Llama
ids = [int(x) for x in sys.argv[2].split(",")]
m = Llama(model_path=sys.argv[1], n_ctx=64, n_batch=64, logits_all=True, verbose=False,
          n_threads=1, type_k=0, type_v=0)
m.eval(ids)
print(json.dumps(m.scores[: len(ids)].tolist()))
"#;

#[test]
fn llama_cpp_reproduces_our_logits_on_text_only_exports() {
    let Ok(py) = std::env::var("MONOVLM_LLAMA_PYTHON") else {
        eprintln!("skipped: set MONOVLM_LLAMA_PYTHON to a python with llama-cpp-python");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    for name in ["solo-tiny", "eve1-tiny", "eve2-tiny"] {
        let dir = fixture(name).join("model");
        let file = tmp.path().join(format!("{name}.gguf"));
        export_text_only(&dir, &file, QuantType::F32, false).expect("export");

        let model = Model::load(&dir, &LoadOptions::default()).expect("load");
        // Ordinary text tokens of the fixture's tokenizer, not specials.
        let ids = model
            .tokenizer
            .encode("The quick brown fox jumps over the lazy dog", false)
            .expect("encode");
        assert!(ids.len() >= 5, "{name}: {ids:?}");
        let embeds = model.decoder.embed(&ids).expect("embed");
        let mut cache = model.new_cache();
        let hidden = model.forward(&embeds, &mut cache).expect("forward");
        let ours = model
            .decoder
            .logits(&hidden)
            .and_then(|l| Ok(l.to_dtype(DType::F32)?))
            .expect("logits");

        let csv: Vec<String> = ids.iter().map(u32::to_string).collect();
        let out = std::process::Command::new(&py)
            .args(["-c", PY_LOGITS])
            .arg(&file)
            .arg(csv.join(","))
            .output()
            .expect("run python");
        assert!(
            out.status.success(),
            "{name}: llama.cpp failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let theirs: Vec<Vec<f32>> = serde_json::from_slice(&out.stdout).expect("json logits");
        assert_eq!(theirs.len(), ids.len(), "{name}: rows");
        for (row, want) in theirs.iter().enumerate() {
            let got: Vec<f32> = ours.i(row).unwrap().to_vec1().unwrap();
            assert_eq!(got.len(), want.len(), "{name}: vocab");
            let scale = got.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
            let diff = got
                .iter()
                .zip(want)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                diff <= 1e-4 * scale.max(1.0),
                "{name} row {row}: max |Δlogit| {diff} (logits up to {scale})"
            );
        }
        eprintln!("{name}: llama.cpp logits agree on {} rows", ids.len());
    }
}
