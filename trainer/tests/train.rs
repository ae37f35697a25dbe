//! The trainer against the real runtime on the tiny Fuyu fixture: gradients, frozen weights,
//! learning, adapters, resume.

use candle_core::{DType, Device, Tensor, Var};
use runtime::adapter::LoraDelta;
use runtime::decoder::layers::Linear;
use runtime::{LoadOptions, Model, PromptFormat};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use trainer::{Method, TrainConfig};

fn fixtures() -> PathBuf {
    std::env::var("MONOVLM_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures"))
}

fn base_model() -> PathBuf {
    fixtures().join("fuyu-tiny/model")
}

/// A small LLaVA JSONL over the fixture's images: the answer is a word per image.
fn dataset(dir: &Path) -> PathBuf {
    let images = fixtures().join("fuyu-tiny/images");
    let mut lines = Vec::new();
    let words = ["seven", "blue", "cat", "tree", "moon"];
    let mut names: Vec<_> = std::fs::read_dir(&images)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for (i, p) in names.iter().enumerate() {
        lines.push(
            serde_json::json!({
                "id": i.to_string(),
                "image": p.display().to_string(),
                "task": "word",
                "conversations": [
                    {"from": "human", "value": "<image>\nWhich word goes with this picture?"},
                    {"from": "gpt", "value": words[i % words.len()]}
                ]
            })
            .to_string(),
        );
    }
    lines.push(
        serde_json::json!({"conversations": [
        {"from": "human", "value": "Say yes."}, {"from": "gpt", "value": "yes"}]})
        .to_string(),
    );
    let path = dir.join("train.jsonl");
    std::fs::write(&path, lines.join("\n")).unwrap();
    path
}

fn config(dir: &Path, method: Method, steps: usize) -> TrainConfig {
    let data = dataset(dir);
    TrainConfig {
        model: base_model(),
        data: data.clone(),
        eval: Some(data),
        method,
        steps,
        lr: 1e-2,
        rank: 4,
        alpha: 8.0,
        batch: 3,
        warmup: 2,
        eval_every: 0,
        checkpoint_every: 0,
        progress: false,
        out: dir.join(method.to_string()),
        ..Default::default()
    }
}

fn load_all(path: &Path) -> BTreeMap<String, Tensor> {
    candle_core::safetensors::load(path, &Device::Cpu)
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, v.to_dtype(DType::F32).unwrap()))
        .collect()
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .map(|v| v.to_bits())
        .collect()
}

#[test]
fn lora_gradients_match_finite_differences() {
    let dev = Device::Cpu;
    let x = Tensor::new(
        &[[0.3f64, -1.2, 0.5, 2.0, -0.7], [1.1, 0.4, -0.3, 0.2, 0.9]],
        &dev,
    )
    .unwrap();
    let w = Tensor::new(
        &[
            [0.1f64, -0.2, 0.3, 0.0, 0.5],
            [-0.4, 0.2, 0.1, 0.7, -0.1],
            [0.3, 0.3, -0.5, 0.2, 0.0],
        ],
        &dev,
    )
    .unwrap();
    let a0 = vec![0.2f64, -0.1, 0.4, 0.3, -0.2, 0.1, 0.5, -0.3, 0.2, 0.6];
    let b0 = vec![0.3f64, -0.2, 0.1, 0.4, -0.5, 0.2];
    let loss_of = |a: &Tensor, b: &Tensor| -> Tensor {
        let mut lin = Linear::new(w.clone(), None);
        lin.lora = Some(LoraDelta {
            a: a.clone(),
            b: b.clone(),
            scale: 1.5,
            dropout: None,
        });
        let y = lin.forward(&x).unwrap();
        (y.sqr().unwrap().sum_all().unwrap() + y.sin().unwrap().sum_all().unwrap()).unwrap()
    };
    let a = Var::from_vec(a0.clone(), (2, 5), &dev).unwrap();
    let b = Var::from_vec(b0.clone(), (3, 2), &dev).unwrap();
    let grads = loss_of(a.as_tensor(), b.as_tensor()).backward().unwrap();
    let check = |v0: &[f64], shape: (usize, usize), analytic: &Tensor, is_a: bool| {
        let g: Vec<f64> = analytic.flatten_all().unwrap().to_vec1().unwrap();
        for i in 0..v0.len() {
            let eps = 1e-6;
            let mut plus = v0.to_vec();
            plus[i] += eps;
            let mut minus = v0.to_vec();
            minus[i] -= eps;
            let f = |v: Vec<f64>| {
                let t = Tensor::from_vec(v, shape, &dev).unwrap();
                let l = if is_a {
                    loss_of(&t, b.as_tensor())
                } else {
                    loss_of(a.as_tensor(), &t)
                };
                l.to_scalar::<f64>().unwrap()
            };
            let numeric = (f(plus) - f(minus)) / (2.0 * eps);
            assert!(
                (numeric - g[i]).abs() < 1e-6 * (1.0 + numeric.abs()),
                "{} [{i}]: analytic {} vs numeric {numeric}",
                if is_a { "A" } else { "B" },
                g[i]
            );
        }
    };
    check(&a0, (2, 5), grads.get(&a).unwrap(), true);
    check(&b0, (3, 2), grads.get(&b).unwrap(), false);
}

#[test]
fn frozen_parameters_stay_bit_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), Method::Frontend, 6);
    let s = trainer::train(&cfg).unwrap();
    let before = load_all(&base_model().join("model.safetensors"));
    let after = load_all(&s.output.join("model.safetensors"));
    assert_eq!(before.len(), after.len());
    let (mut same, mut changed) = (0, 0);
    for (name, t) in &before {
        let is_frontend = name.contains("vision_embed_tokens");
        if is_frontend {
            changed += usize::from(bits(t) != bits(&after[name]));
        } else {
            assert_eq!(bits(t), bits(&after[name]), "{name} changed");
            same += 1;
        }
    }
    assert!(same > 10);
    assert_eq!(changed, 2, "the patch embedding weight and bias train");
}

#[test]
fn a_short_run_lowers_the_loss_and_beats_chance() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(tmp.path(), Method::Full, 40);
    cfg.eval_every = 20;
    let s = trainer::train(&cfg).unwrap();
    let rows = trainer::metrics::read_csv(&cfg.out.join("metrics.csv")).unwrap();
    assert_eq!(rows.len(), 40);
    let first = rows[0].loss;
    let last = rows.last().unwrap().loss;
    assert!(last < 0.25 * first, "loss {first} → {last}");
    let eval = s.eval.unwrap();
    // Chance over a 1024-token vocabulary is ~0: the words are memorised.
    assert!(eval.exact >= 0.5, "exact match {}", eval.exact);
    assert!(cfg.out.join("curves.png").exists());
    let png = image::open(cfg.out.join("curves.png")).unwrap();
    assert!(png.width() >= 800);
}

fn logits(model: &Model) -> Vec<f32> {
    let img_bytes = std::fs::read(fixtures().join("fuyu-tiny/images/wide.png")).unwrap();
    let img = runtime::image::pilimage::decode_rgb(&img_bytes, &Default::default()).unwrap();
    let prep = model.prepare_image(&img).unwrap();
    let parts = model.turn_parts(PromptFormat::Chat, true, true);
    let seq = model
        .build_turn(parts, "Which word?", &[prep.slots])
        .unwrap();
    let e = model.embed_sequence(&seq, Some(&prep.embeds)).unwrap();
    let mut cache = model.new_cache();
    let h = model.forward(&e, &mut cache).unwrap();
    model
        .decoder
        .logits(&h)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

#[test]
fn adapter_save_load_merge_gives_the_same_logits() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), Method::Lora, 8);
    let s = trainer::train(&cfg).unwrap();
    let adapter = s.output;
    assert!(adapter.join("adapter_config.json").exists());
    let peft: serde_json::Value =
        serde_json::from_slice(&std::fs::read(adapter.join("adapter_config.json")).unwrap())
            .unwrap();
    assert_eq!(peft["peft_type"], "LORA");
    assert_eq!(peft["r"], 4);
    let names = load_all(&adapter.join("adapter_model.safetensors"));
    assert!(names.keys().all(|k| k.starts_with("base_model.model.")
        && (k.ends_with(".lora_A.weight") || k.ends_with(".lora_B.weight"))));

    let base = Model::load(&base_model(), &LoadOptions::default()).unwrap();
    let with = Model::load(
        &base_model(),
        &LoadOptions {
            lora: Some(adapter.clone()),
            ..Default::default()
        },
    )
    .unwrap();
    let merged_dir = tmp.path().join("merged");
    let n = trainer::lora::merge_into_folder(&base_model(), &adapter, &merged_dir).unwrap();
    assert!(n > 0);
    let merged = Model::load(&merged_dir, &LoadOptions::default()).unwrap();
    let (lb, lw, lm) = (logits(&base), logits(&with), logits(&merged));
    let max_diff = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max)
    };
    assert!(max_diff(&lb, &lw) > 1e-2, "the adapter changes nothing");
    assert!(
        max_diff(&lw, &lm) < 1e-4,
        "merged differs by {}",
        max_diff(&lw, &lm)
    );
}

#[test]
fn resume_continues_exactly_like_an_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    for method in [Method::Full, Method::Lora] {
        let mut whole = config(tmp.path(), method, 8);
        whole.out = tmp.path().join(format!("{method}-whole"));
        whole.checkpoint_every = 4;
        trainer::train(&whole).unwrap();

        let mut part = whole.clone();
        part.out = tmp.path().join(format!("{method}-part"));
        part.stop_after = Some(4);
        let err = trainer::train(&part).unwrap_err();
        assert!(
            matches!(err, trainer::TrainError::Interrupted { step: 4 }),
            "{err}"
        );
        part.stop_after = None;
        part.resume = true;
        trainer::train(&part).unwrap();

        let file = match method {
            Method::Lora => "adapter/adapter_model.safetensors",
            _ => "model/model.safetensors",
        };
        let a = load_all(&whole.out.join(file));
        let b = load_all(&part.out.join(file));
        for (name, t) in &a {
            assert_eq!(
                bits(t),
                bits(&b[name]),
                "{method}: {name} differs after resume"
            );
        }
        let ra = trainer::metrics::read_csv(&whole.out.join("metrics.csv")).unwrap();
        let rb = trainer::metrics::read_csv(&part.out.join("metrics.csv")).unwrap();
        let losses =
            |r: &[trainer::metrics::MetricRow]| r.iter().map(|m| m.loss).collect::<Vec<_>>();
        assert_eq!(losses(&ra), losses(&rb));
    }
}

#[test]
fn bad_training_data_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(tmp.path(), Method::Full, 2);
    std::fs::write(&cfg.data, "{\"conversations\": [}\n").unwrap();
    let e = trainer::train(&cfg).unwrap_err().to_string();
    assert!(
        e.contains("train.jsonl:1") && e.contains("invalid JSON"),
        "{e}"
    );
    cfg.data = tmp.path().join("missing.jsonl");
    let e = trainer::train(&cfg).unwrap_err().to_string();
    assert!(e.contains("missing.jsonl"), "{e}");
}

#[test]
fn the_training_forward_computes_what_inference_computes() {
    // The differentiable path (composite softmax, plain-op RoPE, no cache) must give the logits
    // of the inference path, or training would optimise another function than `ask` runs.
    for (family, image) in [
        ("fuyu-tiny", "wide.png"),
        ("solo-tiny", "wide.png"),
        ("eve1-tiny", "wide.png"),
        ("eve2-tiny", "wide.png"),
        ("hovle-tiny", "wide_2x1.png"),
        ("monointernvl-tiny", "square_small.png"),
    ] {
        let dir = fixtures().join(family);
        let model = Model::load(&dir.join("model"), &LoadOptions::default()).unwrap();
        let bytes = std::fs::read(dir.join("images").join(image)).unwrap();
        let img = runtime::image::pilimage::decode_rgb(&bytes, &Default::default()).unwrap();
        let prep = model.prepare_image(&img).unwrap();
        let parts = model.turn_parts(PromptFormat::Chat, true, true);
        let seq = model
            .build_turn(parts, "What is shown here?", &[prep.slots])
            .unwrap();
        let e = model.embed_sequence(&seq, Some(&prep.embeds)).unwrap();
        let mut cache = model.new_cache();
        let h_inf = model
            .forward_with_images(&e, &seq.image_positions, &mut cache)
            .unwrap();
        let h_train = model
            .decoder
            .forward_train(&e, model.expert_positions(&seq))
            .unwrap();
        let a: Vec<f32> = model
            .decoder
            .logits(&h_inf)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let b: Vec<f32> = model
            .decoder
            .logits(&h_train)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let d = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(
            d < 1e-4,
            "{family}: max |Δlogit| {d} between training and inference forwards"
        );
    }
}
