#!/usr/bin/env python3
"""Dump reference token ids from the Python `sentencepiece` library and the
transformers slow tokenizers, for the Rust tests (tests/data/reference.json).

Usage (from the crate root):
    python -m venv pyenv && pyenv/bin/pip install sentencepiece "transformers==4.40.2"
    pyenv/bin/python scripts/gen_reference.py [FIXTURES_DIR]

Model paths in the JSON are relative: "fixtures:<dir>/model/tokenizer.model"
(resolved against the fixtures directory) or "data:<file>" (tests/data).
"""
import json
import os
import platform
import random
import sys

import sentencepiece as spm
import transformers
from transformers import LlamaTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "tests", "data")
FIXTURES = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("MONOVLM_FIXTURES", "/work/shared/fixtures")

FIXED_TEXTS = [
    "",
    " ",
    "  ",
    "   ",
    "\n",
    "\t",
    "a",
    "hello",
    "Hello world",
    "Hello, world!",
    " leading space",
    "trailing space ",
    "  two leading",
    "multiple   inner    spaces",
    "  both sides  ",
    "new\nline",
    "double\n\nnewline\n",
    "tab\there\t",
    "mixed \t \n whitespace",
    "\r\nwindows\r\n",
    "digits 1234567890 and 3.14159",
    "2024-01-01 12:00:00",
    "café",
    "naïve résumé déjà vu",
    "e\u0301 combining",
    "中文测试",
    "你是由上海人工智能实验室联合商汤科技开发的书生多模态大模型",
    "日本語のテキスト",
    "한국어",
    "emoji 😀🎉👍🏽",
    "a😀b",
    "👨‍👩‍👧",
    "<s>",
    "</s>",
    "<unk>",
    "<pad>",
    "[INST]",
    "[INST] What is in this image? [/INST]",
    "<s>[INST] What is in this image? [/INST]",
    "<s> [INST] hi [/INST] answer</s>",
    "text</s><s>more",
    "<s><s></s>",
    "<vision><vpatch><vrow_sep></vision>",
    "<|im_start|>user\nhi<|im_end|>",
    "<|im_start|>system\nYou are helpful.<|im_end|><|im_start|>user\n<img><IMG_CONTEXT><IMG_CONTEXT></img>\nWhat?<|im_end|><|im_start|>assistant\n",
    "<img> spaced </img>",
    "<IMG_CONTEXT>",
    "▁",
    "▁▁x",
    "▁already▁escaped",
    "a\u3000b",
    "\u00a0nbsp\u00a0",
    "ＡＢＣ１２３ full width",
    "ﬁne ﬂow",
    "Ⅻ ① ㈱",
    "\x00\x01\x7f control",
    "\u200b zero width",
    "USER: <image>\nWhat is shown in this image? ASSISTANT:",
    "A chat between a curious user and an artificial intelligence assistant.",
    "The quick brown fox jumps over the lazy dog. " * 3,
    "x" * 64,
    "ab" * 20,
    " " * 20 + "deep indent",
    "<ctrl> <img>ab",
    "<ctrl><ctrl>",
    "a <L> b <R> c <B> d",
    "x<L>y<R>z<B>w",
    "  <L>  <R>  <B>  ",
    "a word here, words, sword word",
    "<img> <ext>word<s>",
    "it 's fine . really ? yes ! no , don 't",
]

POOL = (
    list("abcdefghijklmnopqrstuvwxyz")
    + list("ABCDEFGHIJ")
    + list("0123456789")
    + [" ", " ", " ", " ", "  ", "\n", "\t", "▁", ".", ",", "?", "!", "'", "-", "<", ">", "/", "|", "[", "]"]
    + list("éèüñç")
    + list("中文人工智能")
    + ["😀", "🎉", "\u0301", "ＡＢ", "ﬁ", "\u3000"]
    + ["<s>", "</s>", "<unk>", "<img>", "</img>", "<IMG_CONTEXT>", "<|im_start|>", "<|im_end|>", "[INST]", "<vision>"]
    + ["the", " the", "ing", "tion", " image", " what", "is", " a", "er", "in"]
)


def random_texts(seed, n, maxlen):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        k = rng.randint(0, maxlen)
        out.append("".join(rng.choice(POOL) for _ in range(k)))
    return out


def random_id_lists(seed, vocab, n, maxlen, extra=()):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        k = rng.randint(0, maxlen)
        ids = []
        for _ in range(k):
            r = rng.random()
            if r < 0.3:
                ids.append(rng.randint(3, min(vocab, 259) - 1))  # byte pieces region
            elif r < 0.4 and extra:
                ids.append(rng.choice(extra))
            else:
                ids.append(rng.randint(0, vocab - 1))
        out.append(ids)
    return out


SP_MODELS = [
    "fixtures:solo-tiny/model/tokenizer.model",
    "fixtures:eve1-tiny/model/tokenizer.model",
    "fixtures:hovle-tiny/model/tokenizer.model",
    "data:unigram_rules.model",
    "data:unigram_bytes.model",
    "data:bpe_nobytes.model",
    "data:bpe_suffix.model",
    "data:bpe_unused.model",
    "data:unigram_unused.model",
    "data:bpe_denorm.model",
    "data:char.model",
    "data:word.model",
]


def resolve(ref):
    kind, rel = ref.split(":", 1)
    return os.path.join(FIXTURES if kind == "fixtures" else DATA, rel)


TEXTS = FIXED_TEXTS + random_texts(42, 16, 30)


def sp_section(ref, seed):
    sp = spm.SentencePieceProcessor(model_file=resolve(ref))
    encoded = []
    decoded = {}
    for i, t in enumerate(TEXTS):
        ids = sp.encode(t)
        encoded.append(ids)
        dec = sp.decode(ids)
        if dec != t:
            decoded[str(i)] = dec
    n = sp.get_piece_size()
    special = [i for i in range(n) if sp.is_control(i) or sp.is_unknown(i)]
    byte_ids = [i for i in range(n) if sp.is_byte(i)]
    id_lists = random_id_lists(seed + 1, n, 12, 12, extra=special)
    if byte_ids:
        b = {sp.id_to_piece(i): i for i in byte_ids}
        bid = lambda x: b["<0x%02X>" % x]
        # hand-made byte sequences: valid multi-byte, truncated, overlong, surrogate, stray continuation
        for seq in [
            [0xE4, 0xB8, 0xAD],
            [0xE4, 0xB8],
            [0xE4, 0xB8, 0x41],
            [0xC0, 0x80],
            [0xED, 0xA0, 0x80],
            [0x80, 0x80, 0x41],
            [0xF0, 0x9F, 0x98, 0x80, 0xF0, 0x9F],
            [0xEF, 0xBF, 0xBD],
            [0xF4, 0x90, 0x80, 0x80],
            [0x20, 0x41],
        ]:
            id_lists.append([bid(x) for x in seq])
            id_lists.append([sp.piece_to_id("▁")] + [bid(x) for x in seq] + [sp.piece_to_id("▁")] if sp.piece_to_id("▁") != sp.unk_id() else [bid(x) for x in seq])
    id_lists.append([sp.unk_id()])
    id_lists.append([sp.unk_id(), sp.unk_id()])
    if sp.bos_id() >= 0:
        id_lists.append([sp.bos_id()] + sp.encode(" hi there") + [sp.eos_id()])
        id_lists.append([sp.bos_id()] + sp.encode("  hi"))
    decodes = [{"ids": ids, "text": sp.decode(ids)} for ids in id_lists]
    pieces = [sp.id_to_piece(i) for i in range(n)]
    return {
        "model": ref,
        "vocab_size": n,
        "unk_id": sp.unk_id(),
        "bos_id": sp.bos_id(),
        "eos_id": sp.eos_id(),
        "pad_id": sp.pad_id(),
        "control": [i for i in range(n) if sp.is_control(i)],
        "byte": len(byte_ids),
        "unused": [i for i in range(n) if sp.is_unused(i)],
        "pieces_head": pieces[:8],
        "encoded": encoded,
        "decoded": decoded,
        "decodes": decodes,
    }


HF_DIRS = [
    ("solo-tiny/model", True),
    ("eve1-tiny/model", True),
    ("eve1-tiny/model", False),
    ("hovle-tiny/model", True),
    ("data:hf_flags", True),
    ("data:hf_flags", False),
]


def hf_section(rel, legacy, seed):
    path = resolve(rel) if ":" in rel else os.path.join(FIXTURES, rel)
    tok = LlamaTokenizer.from_pretrained(path, legacy=legacy)
    with_special = []
    without_special = []
    for t in TEXTS:
        with_special.append(tok(t, add_special_tokens=True)["input_ids"])
        without_special.append(tok(t, add_special_tokens=False)["input_ids"])
    n = len(tok)
    extra = sorted(set(tok.all_special_ids) | set(tok.added_tokens_encoder.values()))
    id_lists = random_id_lists(seed + 1, n, 18, 12, extra=extra)
    for t in ["<s>[INST] What is in this image? [/INST]", " hello  world", "<s>  x</s>", "a<|im_end|>b", "a <L> b <R> c <B> d word", "it 's a <ext> . x"]:
        id_lists.append(tok(t, add_special_tokens=False)["input_ids"])
    decodes = []
    for ids in id_lists:
        decodes.append(
            {
                "ids": ids,
                "text": tok.decode(ids),
                "text_skip": tok.decode(ids, skip_special_tokens=True),
            }
        )
    return {
        "dir": rel if ":" in rel else "fixtures:" + rel,
        "class": "LlamaTokenizer",
        "legacy": legacy,
        "vocab_len": n,
        "token_ids": {t: tok.convert_tokens_to_ids(t) for t in ["<s>", "</s>", "<unk>", "<img>", "<|im_end|>", "<vision>", "▁the", "<pad>", "<B>"]},
        "with_special": with_special,
        "without_special": without_special,
        "decodes": decodes,
    }


def main():
    out = {
        "generator": "scripts/gen_reference.py",
        "versions": {
            "python": platform.python_version(),
            "sentencepiece": spm.__version__,
            "transformers": transformers.__version__,
        },
        "texts": TEXTS,
        "sentencepiece": [sp_section(ref, 100 + i) for i, ref in enumerate(SP_MODELS)],
        "hf_slow": [hf_section(rel, legacy, 200 + i) for i, (rel, legacy) in enumerate(HF_DIRS)],
    }
    path = os.path.join(DATA, "reference.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, separators=(",", ":"))
    print(path, os.path.getsize(path))


if __name__ == "__main__":
    main()
