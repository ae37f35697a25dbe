//! `quantize --text-only`: the decoder of a VLM as a llama.cpp text model. Checks the names and
//! hyper-parameters llama.cpp reads, the q/k row permutation for its pairwise RoPE (against an
//! index formula written here, not the exporter's tensor ops), that nothing of the image side is
//! left, and that decoders llama.cpp has no text architecture for are refused with a reason.

use candle_core::quantized::gguf_file::Value;
use candle_core::{DType, Device, Tensor};
use monovlm_e2e::fixture;
use quantize::text_only::export_text_only;
use quantize::QuantType;
use runtime::checkpoint::{GgufFile, HfFolder, TensorSource};

fn u32_of(f: &GgufFile, key: &str) -> u32 {
    match f.metadata.get(key) {
        Some(Value::U32(v)) => *v,
        other => panic!("{key}: {other:?}"),
    }
}

fn rows(t: &Tensor) -> Vec<Vec<f32>> {
    t.to_dtype(DType::F32).unwrap().to_vec2().unwrap()
}

/// Row `h·hd + 2j + s` of llama.cpp's layout is row `h·hd + s·hd/2 + j` of the HF layout.
fn expect_pairwise(hf: &[Vec<f32>], gguf: &[Vec<f32>], heads: usize, what: &str) {
    let hd = hf.len() / heads;
    for h in 0..heads {
        for j in 0..hd / 2 {
            for s in 0..2 {
                assert_eq!(
                    gguf[h * hd + 2 * j + s],
                    hf[h * hd + s * hd / 2 + j],
                    "{what}: head {h} pair {j} half {s}"
                );
            }
        }
    }
}

#[test]
fn llama_decoders_export_with_pairwise_rope_rows() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, q, k) in [
        (
            "solo-tiny",
            "model.layers.1.self_attn.q_proj.weight",
            "model.layers.1.self_attn.k_proj.weight",
        ),
        (
            "eve1-tiny",
            "model.layers.0.self_attn.q_proj.weight",
            "model.layers.0.self_attn.k_proj.weight",
        ),
    ] {
        let dir = fixture(name).join("model");
        let out = tmp.path().join(format!("{name}.gguf"));
        let s = export_text_only(&dir, &out, QuantType::F32, false).expect("export");
        assert_eq!(s.arch, "llama", "{name}");
        let f = GgufFile::open(&out).unwrap();
        assert_eq!(f.meta_str("general.architecture"), Some("llama"));
        let layers = u32_of(&f, "llama.block_count") as usize;
        let heads = u32_of(&f, "llama.attention.head_count") as usize;
        let kv_heads = u32_of(&f, "llama.attention.head_count_kv") as usize;
        let hidden = u32_of(&f, "llama.embedding_length") as usize;
        assert_eq!(
            u32_of(&f, "llama.rope.dimension_count") as usize,
            hidden / heads
        );

        // Exactly llama.cpp's tensor set: nothing of the image side.
        let mut want = vec![
            "token_embd.weight".to_string(),
            "output_norm.weight".into(),
            "output.weight".into(),
        ];
        for i in 0..layers {
            for t in [
                "attn_norm",
                "attn_q",
                "attn_k",
                "attn_v",
                "attn_output",
                "ffn_norm",
                "ffn_gate",
                "ffn_up",
                "ffn_down",
            ] {
                want.push(format!("blk.{i}.{t}.weight"));
            }
        }
        want.sort();
        let got: Vec<String> = f.tensors.keys().cloned().collect();
        assert_eq!(got, want, "{name}");

        // One token per embedding row.
        let rows_embd = f.tensors["token_embd.weight"].shape[0];
        match f.metadata.get("tokenizer.ggml.tokens") {
            Some(Value::Array(a)) => assert_eq!(a.len(), rows_embd, "{name}: token count"),
            other => panic!("{name}: tokens {other:?}"),
        }
        assert_eq!(f.meta_str("tokenizer.ggml.model"), Some("llama"));

        let hf = HfFolder::open(&dir).unwrap();
        let load = |src: &dyn TensorSource, n: &str| {
            rows(&src.load(n, DType::F32, &Device::Cpu).expect(n))
        };
        let layer = if q.contains(".1.") { 1 } else { 0 };
        expect_pairwise(
            &load(&hf.tensors, q),
            &load(&f, &format!("blk.{layer}.attn_q.weight")),
            heads,
            name,
        );
        expect_pairwise(
            &load(&hf.tensors, k),
            &load(&f, &format!("blk.{layer}.attn_k.weight")),
            kv_heads,
            name,
        );
        // v is not rotated: as stored.
        assert_eq!(
            load(&hf.tensors, &q.replace("q_proj", "v_proj")),
            load(&f, &format!("blk.{layer}.attn_v.weight"))
        );
    }
}

#[test]
fn qwen2_text_branch_keeps_biases_and_leaves_the_experts_out() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = fixture("eve2-tiny").join("model");
    let out = tmp.path().join("eve2.gguf");
    let s = export_text_only(&dir, &out, QuantType::Q8_0, false).expect("export");
    assert_eq!(s.arch, "qwen2");
    let f = GgufFile::open(&out).unwrap();
    assert_eq!(f.meta_str("tokenizer.ggml.model"), Some("gpt2"));
    assert_eq!(f.meta_str("tokenizer.ggml.pre"), Some("qwen2"));
    assert!(f.tensors.contains_key("blk.0.attn_q.bias"));
    assert!(f
        .tensors
        .keys()
        .all(|k| !k.contains("moe") && !k.contains("vision") && !k.contains("patch")));
    let hf = HfFolder::open(&dir).unwrap();
    let name = hf
        .tensors
        .names()
        .into_iter()
        .find(|n| n.ends_with("layers.0.self_attn.q_proj.bias"))
        .expect("q bias in the checkpoint");
    let a = hf.tensors.load(&name, DType::F32, &Device::Cpu).unwrap();
    let b = f
        .load("blk.0.attn_q.bias", DType::F32, &Device::Cpu)
        .unwrap();
    assert_eq!(
        a.to_vec1::<f32>().unwrap(),
        b.to_vec1::<f32>().unwrap(),
        "qwen2 keeps NeoX RoPE: rows as stored"
    );
    // q8_0 where the rows fit its blocks, as in the full conversion.
    let q = &f.tensors["blk.0.attn_q.weight"];
    let row = q.shape[1];
    let expect = if row.is_multiple_of(32) {
        "q8_0"
    } else {
        "f16"
    };
    assert_eq!(runtime::checkpoint::gguf::ggml_dtype_name(q.dtype), expect);
}

#[test]
fn decoders_without_a_llama_cpp_architecture_are_refused_with_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, reason) in [("fuyu-tiny", "LayerNorm"), ("hovle-tiny", "fused q/k/v")] {
        let out = tmp.path().join(format!("{name}.gguf"));
        let err = export_text_only(&fixture(name).join("model"), &out, QuantType::F32, false)
            .expect_err(name)
            .to_string();
        assert!(
            err.contains("no llama.cpp text architecture") && err.contains(reason),
            "{name}: {err}"
        );
        assert!(!out.exists(), "{name}: no file on error");
    }
}
