//! Broken checkpoints give a clear error naming the problem, never a panic.

use monovlm_e2e::copy_model;
use runtime::{LoadOptions, Model};
use std::path::Path;

fn load_err(dir: &Path) -> String {
    match std::panic::catch_unwind(|| Model::load(dir, &LoadOptions::default())) {
        Ok(Ok(_)) => panic!("a broken checkpoint loaded"),
        Ok(Err(e)) => e.to_string(),
        Err(_) => panic!("loading a broken checkpoint panicked"),
    }
}

fn edit_config(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let p = dir.join("config.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
}

/// Rewrites model.safetensors with `f` applied to the (name, shape, bytes) list.
fn edit_tensors(dir: &Path, f: impl FnOnce(&mut Vec<(String, Vec<usize>, Vec<u8>)>)) {
    let p = dir.join("model.safetensors");
    let bytes = std::fs::read(&p).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut list: Vec<(String, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.shape().to_vec(), v.data().to_vec()))
        .collect();
    f(&mut list);
    let views: Vec<(String, safetensors::tensor::TensorView)> = list
        .iter()
        .map(|(n, s, d)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), d)
                    .unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, &p).unwrap();
}

#[test]
fn unknown_model_type_is_named() {
    let d = copy_model("fuyu-tiny");
    edit_config(d.path(), |c| c["model_type"] = "wizard".into());
    let e = load_err(d.path());
    assert!(
        e.contains("unknown model family") && e.contains("wizard"),
        "{e}"
    );
}

#[test]
fn missing_config_field_is_named() {
    let d = copy_model("solo-tiny");
    edit_config(d.path(), |c| {
        c.as_object_mut().unwrap().remove("hidden_size");
    });
    let e = load_err(d.path());
    assert!(e.contains("hidden_size"), "{e}");
}

#[test]
fn invalid_json_config() {
    let d = copy_model("fuyu-tiny");
    std::fs::write(d.path().join("config.json"), b"{\"model_type\": \"fuyu\", ").unwrap();
    let e = load_err(d.path());
    assert!(e.contains("config.json") && e.contains("JSON"), "{e}");
}

#[test]
fn missing_tensor_is_named() {
    let d = copy_model("fuyu-tiny");
    edit_tensors(d.path(), |l| {
        l.retain(|(n, _, _)| !n.ends_with("layers.1.mlp.dense_4h_to_h.weight"))
    });
    let e = load_err(d.path());
    assert!(
        e.contains("missing tensor") && e.contains("layers.1.mlp.dense_4h_to_h.weight"),
        "{e}"
    );
}

#[test]
fn wrong_shape_is_named() {
    let d = copy_model("fuyu-tiny");
    edit_tensors(d.path(), |l| {
        for (n, s, data) in l.iter_mut() {
            if n == "vision_embed_tokens.weight" {
                // Same bytes, transposed shape.
                *s = vec![s[1], s[0]];
                let _ = data;
            }
        }
    });
    let e = load_err(d.path());
    assert!(
        e.contains("vision_embed_tokens.weight") && e.contains("shape"),
        "{e}"
    );
}

#[test]
fn truncated_safetensors_at_many_cut_points() {
    let d = copy_model("fuyu-tiny");
    let p = d.path().join("model.safetensors");
    let full = std::fs::read(&p).unwrap();
    for cut in [0usize, 4, 8, 9, 100, 1000, full.len() / 2, full.len() - 1] {
        std::fs::write(&p, &full[..cut]).unwrap();
        let e = load_err(d.path());
        assert!(e.contains("model.safetensors"), "cut {cut}: {e}");
    }
}

#[test]
fn header_claiming_huge_size_is_refused() {
    let d = copy_model("fuyu-tiny");
    let p = d.path().join("model.safetensors");
    let mut bytes = std::fs::read(&p).unwrap();
    bytes[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    std::fs::write(&p, &bytes).unwrap();
    let e = load_err(d.path());
    assert!(e.contains("malformed safetensors"), "{e}");
}

#[test]
fn missing_tokenizer_is_named() {
    let d = copy_model("fuyu-tiny");
    std::fs::remove_file(d.path().join("tokenizer.json")).unwrap();
    let e = load_err(d.path());
    assert!(e.contains("tokenizer"), "{e}");
}

#[test]
fn not_a_folder() {
    let e = load_err(Path::new("/definitely/not/here"));
    assert!(e.contains("not a model folder"), "{e}");
}
