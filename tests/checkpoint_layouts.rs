//! The same weights in the other layouts the hub uses must give the same answers: sharded
//! safetensors with an index, transformers ≥ 5 tensor names for Fuyu, bf16/f16 storage.

use monovlm_e2e::{copy_model, fixture};
use runtime::reference::check_fixture;
use runtime::LoadOptions;
use safetensors::tensor::TensorView;
use safetensors::Dtype;
use std::path::Path;

type Entry = (String, Vec<usize>, Vec<f32>);

fn read_f32(dir: &Path) -> Vec<Entry> {
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut v: Vec<Entry> = st
        .tensors()
        .into_iter()
        .map(|(n, t)| {
            assert_eq!(t.dtype(), Dtype::F32);
            let f = t
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            (n, t.shape().to_vec(), f)
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn write(path: &Path, entries: &[Entry], dtype: Dtype) {
    let bufs: Vec<Vec<u8>> = entries
        .iter()
        .map(|(_, _, d)| match dtype {
            Dtype::F32 => d.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Dtype::BF16 => d
                .iter()
                .flat_map(|x| half::bf16::from_f32(*x).to_le_bytes())
                .collect(),
            Dtype::F16 => d
                .iter()
                .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
                .collect(),
            _ => unreachable!(),
        })
        .collect();
    let views: Vec<(String, TensorView)> = entries
        .iter()
        .zip(&bufs)
        .map(|((n, s, _), b)| (n.clone(), TensorView::new(dtype, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

fn assert_passes(fixture_name: &str, model: &Path) {
    let reports =
        check_fixture(&fixture(fixture_name), Some(model), &LoadOptions::default()).unwrap();
    let bad: Vec<String> = reports
        .iter()
        .filter(|r| !r.passed())
        .map(|r| r.line())
        .collect();
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn sharded_checkpoint_with_index_loads() {
    for name in ["fuyu-tiny", "solo-tiny"] {
        let d = copy_model(name);
        let entries = read_f32(d.path());
        std::fs::remove_file(d.path().join("model.safetensors")).unwrap();
        let (a, b) = entries.split_at(entries.len() / 2);
        let shards = [
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors",
        ];
        write(&d.path().join(shards[0]), a, Dtype::F32);
        write(&d.path().join(shards[1]), b, Dtype::F32);
        let mut map = serde_json::Map::new();
        for (part, shard) in [(a, shards[0]), (b, shards[1])] {
            for (n, _, _) in part {
                map.insert(n.clone(), shard.into());
            }
        }
        let index = serde_json::json!({"metadata": {}, "weight_map": map});
        std::fs::write(
            d.path().join("model.safetensors.index.json"),
            index.to_string(),
        )
        .unwrap();
        assert_passes(name, d.path());
    }
}

#[test]
fn fuyu_transformers5_tensor_names_load() {
    let d = copy_model("fuyu-tiny");
    let mut entries = read_f32(d.path());
    for (n, _, _) in entries.iter_mut() {
        *n = if let Some(rest) = n.strip_prefix("language_model.model.") {
            format!("model.language_model.{rest}")
        } else if let Some(rest) = n.strip_prefix("language_model.lm_head.") {
            format!("lm_head.{rest}")
        } else if let Some(rest) = n.strip_prefix("vision_embed_tokens.") {
            format!("model.vision_embed_tokens.{rest}")
        } else {
            n.clone()
        };
    }
    assert!(entries
        .iter()
        .all(|(n, _, _)| !n.starts_with("language_model.")));
    write(&d.path().join("model.safetensors"), &entries, Dtype::F32);
    assert_passes("fuyu-tiny", d.path());
}

#[test]
fn half_precision_storage_loads_and_stays_close() {
    // bf16/f16 weights are rounded, so only loose agreement is expected: the logits of the rounded
    // model must stay near the f32 goldens, far below the logit scale (~4).
    for (dtype, tol) in [(Dtype::BF16, 0.25f32), (Dtype::F16, 0.02)] {
        let d = copy_model("solo-tiny");
        let entries = read_f32(d.path());
        write(&d.path().join("model.safetensors"), &entries, dtype);
        let reports = check_fixture(
            &fixture("solo-tiny"),
            Some(d.path()),
            &LoadOptions::default(),
        )
        .unwrap();
        for r in &reports {
            assert!(r.ids_ok, "{}", r.line());
            let e = r.logits_err.unwrap();
            assert!(e > 0.0 && e < tol, "{dtype:?}: {}", r.line());
        }
    }
}
