#!/usr/bin/env python3
"""Bulk random comparison data (not committed): many random strings per model.

    pyenv/bin/python scripts/gen_bulk.py /tmp/spm_bulk.json [N]
    SPM_BULK_REFERENCE=/tmp/spm_bulk.json cargo test --test sp_reference -- --ignored
"""
import json
import os
import random
import sys

import sentencepiece as spm

ARGS = sys.argv[1:]
sys.argv = sys.argv[:1]
sys.path.insert(0, __file__.rsplit("/", 1)[0])
import gen_reference as g  # noqa: E402


def main():
    out_path = ARGS[0]
    n = int(ARGS[1]) if len(ARGS) > 1 else 3000
    rng = random.Random(1234)
    texts = []
    for i in range(n):
        k = rng.randint(0, 400 if i % 50 == 0 else 40)
        texts.append("".join(rng.choice(g.POOL) for _ in range(k)))
    # random unicode, including rare planes
    for _ in range(n // 5):
        k = rng.randint(1, 30)
        texts.append("".join(chr(rng.choice([rng.randint(0x20, 0x7E), rng.randint(0xA0, 0x2FFF), rng.randint(0x3000, 0xD7FF), rng.randint(0xE000, 0xFFFD), rng.randint(0x10000, 0x10FFFF)])) for _ in range(k)))
    sections = []
    extra = [x for x in os.environ.get("SPM_EXTRA_MODELS", "").split(",") if x]
    for ref in g.SP_MODELS + ["file:" + x for x in extra]:
        path = ref.split(":", 1)[1] if ref.startswith("file:") else g.resolve(ref)
        sp = spm.SentencePieceProcessor(model_file=path)
        enc = [sp.encode(t) for t in texts]
        dec = [sp.decode(e) for e in enc]
        norm = [sp.normalize(t) for t in texts]
        sections.append({"model": ref, "encoded": enc, "decoded": dec, "normalized": norm})
    hf = []
    for rel, legacy in g.HF_DIRS:
        path = g.resolve(rel) if ":" in rel else os.path.join(g.FIXTURES, rel)
        tok = g.LlamaTokenizer.from_pretrained(path, legacy=legacy)
        n_ids = len(tok)
        extra = sorted(set(tok.all_special_ids) | set(tok.added_tokens_encoder.values()))
        id_lists = g.random_id_lists(99, n_ids, n // 3, 20, extra=extra)
        hf.append(
            {
                "dir": rel if ":" in rel else "fixtures:" + rel,
                "legacy": legacy,
                "with_special": [tok(t)["input_ids"] for t in texts],
                "without_special": [tok(t, add_special_tokens=False)["input_ids"] for t in texts],
                "decodes": [
                    {"ids": ids, "text": tok.decode(ids), "text_skip": tok.decode(ids, skip_special_tokens=True)}
                    for ids in id_lists
                ],
            }
        )
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump({"texts": texts, "sections": sections, "hf_slow": hf}, f, ensure_ascii=False)
    print(out_path)


if __name__ == "__main__":
    main()
