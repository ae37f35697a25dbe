#!/usr/bin/env python3
"""Writes a random-weight SOLO-family checkpoint (HF layout) for benchmarks.

Default shape: the 0.5B Mistral decoder of issue 5 (hidden 1536, 16 layers, 12/4 heads, FFN 4096,
vocab 32000) with SOLO's 32x32 linear patch embedding. Tokenizer files come from a SOLO checkpoint
(e.g. the solo-tiny fixture); ids beyond its vocabulary are simply never produced by it.

    python make_random_solo.py OUT_DIR --tokenizer-from ../../shared/fixtures/solo-tiny/model [--dtype bf16]
"""
import argparse
import json
import os
import shutil

import numpy as np
from safetensors.numpy import save_file


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--tokenizer-from", required=True)
    ap.add_argument("--hidden", type=int, default=1536)
    ap.add_argument("--layers", type=int, default=16)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--kv-heads", type=int, default=4)
    ap.add_argument("--ffn", type=int, default=4096)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--dtype", choices=["f32", "bf16"], default="f32")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    d, hd = a.hidden, a.hidden // a.heads
    kv = a.kv_heads * hd

    def w(*shape):
        return (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float32)

    t = {
        "model.embed_tokens.weight": w(a.vocab, d),
        "model.embed_vision_patch.weight": w(d, 3 * 32 * 32),
        "model.norm.weight": np.ones(d, np.float32),
        "lm_head.weight": w(a.vocab, d),
    }
    for i in range(a.layers):
        p = f"model.layers.{i}."
        t[p + "self_attn.q_proj.weight"] = w(d, d)
        t[p + "self_attn.k_proj.weight"] = w(kv, d)
        t[p + "self_attn.v_proj.weight"] = w(kv, d)
        t[p + "self_attn.o_proj.weight"] = w(d, d)
        t[p + "mlp.gate_proj.weight"] = w(a.ffn, d)
        t[p + "mlp.up_proj.weight"] = w(a.ffn, d)
        t[p + "mlp.down_proj.weight"] = w(d, a.ffn)
        t[p + "input_layernorm.weight"] = np.ones(d, np.float32)
        t[p + "post_attention_layernorm.weight"] = np.ones(d, np.float32)
    if a.dtype == "bf16":
        # Round to nearest even bf16, stored as its upper 16 bits.
        def bf16(x):
            u = x.view(np.uint32)
            u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
            return u.astype(np.uint16)
        raw = {k: bf16(v) for k, v in t.items()}
        os.makedirs(a.out, exist_ok=True)
        header = {}
        offset = 0
        blobs = []
        for k in sorted(raw):
            b = raw[k].tobytes()
            header[k] = {"dtype": "BF16", "shape": list(t[k].shape), "data_offsets": [offset, offset + len(b)]}
            offset += len(b)
            blobs.append(b)
        h = json.dumps(header).encode()
        h += b" " * ((8 - len(h) % 8) % 8)
        with open(os.path.join(a.out, "model.safetensors"), "wb") as f:
            f.write(len(h).to_bytes(8, "little"))
            f.write(h)
            for b in blobs:
                f.write(b)
    else:
        os.makedirs(a.out, exist_ok=True)
        save_file(t, os.path.join(a.out, "model.safetensors"))
    cfg = {
        "architectures": ["SoloForCausalLM"], "model_type": "mistral", "hidden_act": "silu",
        "hidden_size": d, "intermediate_size": a.ffn, "num_hidden_layers": a.layers,
        "num_attention_heads": a.heads, "num_key_value_heads": a.kv_heads, "vocab_size": a.vocab,
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "sliding_window": 4096,
        "max_position_embeddings": 32768, "tie_word_embeddings": False, "vision_patch_size": 32,
        "bos_token_id": 1, "eos_token_id": 2,
    }
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    for name in ["tokenizer.model", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"]:
        src = os.path.join(a.tokenizer_from, name)
        if os.path.exists(src):
            shutil.copy(src, os.path.join(a.out, name))
    n = sum(v.size for v in t.values())
    print(f"{a.out}: {n / 1e6:.1f} M parameters, {a.dtype}")


if __name__ == "__main__":
    main()
