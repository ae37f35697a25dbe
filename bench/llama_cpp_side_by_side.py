#!/usr/bin/env python3
"""Side-by-side benchmark (not a test): monovlm vs llama.cpp on the very same weights.

For each quant type, one HF checkpoint becomes two files: the full VLM GGUF (`monovlm quantize`)
that monovlm runs, and its text decoder as a llama.cpp model (`monovlm quantize --text-only`) that
llama.cpp runs through the `llama-cpp-python` package. Both run a text prompt of N tokens and then
M greedy decode steps on the same number of threads, one after the other in this one process tree,
and the ratio monovlm / llama.cpp is printed per quant type as a Markdown table.

    python bench/llama_cpp_side_by_side.py HF_DIR --bin target/release/monovlm \
        [--types q4_0,q4_k,q8_0] [--threads 1] [--prompt-tokens 512] [--gen-tokens 64] [--work DIR]
"""
import argparse
import json
import os
import subprocess
import time


def llama_cpp_run(path, threads, n_prompt, n_gen):
    import llama_cpp
    import numpy as np
    from llama_cpp import Llama

    m = Llama(model_path=path, n_ctx=n_prompt + n_gen + 8, n_batch=n_prompt, n_ubatch=n_prompt,
              n_threads=threads, n_threads_batch=threads, verbose=False)
    unit = m.tokenize(b" The quick brown fox jumps over the lazy dog near the river bank.", add_bos=False)
    ids = (unit * (n_prompt // max(1, len(unit)) + 1))[:n_prompt]
    t0 = time.perf_counter()
    m.eval(ids)
    ttft = time.perf_counter() - t0
    # The last token's logits, read in place (no copy into Python lists), as our bench does.
    def last_logits():
        return np.ctypeslib.as_array(llama_cpp.llama_get_logits(m._ctx.ctx), shape=(m.n_vocab(),))

    t1 = time.perf_counter()
    for _ in range(n_gen):
        tok = int(last_logits().argmax())
        m.eval([tok])
    dec = time.perf_counter() - t1
    return {"prefill_tokens_per_s": n_prompt / ttft, "decode_tokens_per_s": n_gen / dec, "ttft_s": ttft}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("hf_dir")
    ap.add_argument("--bin", default="target/release/monovlm")
    ap.add_argument("--types", default="q4_0,q4_k,q8_0")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--prompt-tokens", type=int, default=512)
    ap.add_argument("--gen-tokens", type=int, default=64)
    ap.add_argument("--work", default="/tmp/monovlm-side-by-side")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    rows = []
    for ty in a.types.split(","):
        full = os.path.join(a.work, f"vlm-{ty}.gguf")
        text = os.path.join(a.work, f"text-{ty}.gguf")
        if not os.path.exists(full):
            subprocess.run([a.bin, "quantize", a.hf_dir, "-o", full, "--type", ty, "--quiet"], check=True)
        if not os.path.exists(text):
            subprocess.run([a.bin, "quantize", a.hf_dir, "-o", text, "--type", ty, "--quiet", "--text-only"],
                           check=True)
        out = subprocess.run([a.bin, "bench", "--model", full, "--threads", str(a.threads), "--prompt-tokens",
                              str(a.prompt_tokens), "--gen-tokens", str(a.gen_tokens), "--json"],
                             check=True, capture_output=True, text=True).stdout
        ours = json.loads(out.strip().splitlines()[-1])
        theirs = llama_cpp_run(text, a.threads, a.prompt_tokens, a.gen_tokens)
        rows.append((ty, ours, theirs, os.path.getsize(text)))
        print(json.dumps({"type": ty, "monovlm": ours, "llama_cpp": theirs}), flush=True)
    print()
    print(f"| type | file | threads | monovlm pp{a.prompt_tokens} | llama.cpp pp{a.prompt_tokens} | ratio "
          f"| monovlm tg{a.gen_tokens} | llama.cpp tg{a.gen_tokens} | ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    for ty, o, t, size in rows:
        pr = o["prefill_tokens_per_s"] / t["prefill_tokens_per_s"]
        dr = o["decode_tokens_per_s"] / t["decode_tokens_per_s"]
        print(f"| {ty} | {size / 2**20:.0f} MiB | {a.threads} | {o['prefill_tokens_per_s']:.1f} "
              f"| {t['prefill_tokens_per_s']:.1f} | {pr:.2f} | {o['decode_tokens_per_s']:.1f} "
              f"| {t['decode_tokens_per_s']:.1f} | {dr:.2f} |")


if __name__ == "__main__":
    main()
