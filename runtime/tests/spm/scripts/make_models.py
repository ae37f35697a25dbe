#!/usr/bin/env python3
"""Train the small extra SentencePiece models used by the Rust tests.

The fixture tokenizers are all BPE + byte_fallback + identity normalization, so
these cover what they do not: unigram, no byte fallback (unk merging), user
defined / control symbols, a precompiled normalization charsmap (custom rule
TSV, kept small), remove_extra_whitespaces, treat_whitespace_as_suffix, and
the CHAR / WORD model types.

Usage: pyenv/bin/python scripts/make_models.py  (writes tests/data/*.model)
"""
import glob
import io
import os
import random

import sentencepiece as spm

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "data")
FIXTURES = os.environ.get("MONOVLM_FIXTURES", "/work/shared/fixtures")


def corpus_lines():
    lines = []
    for p in sorted(glob.glob(os.path.join(FIXTURES, "*", "README.md"))):
        with open(p, encoding="utf-8") as f:
            lines += [l.strip() for l in f if l.strip()]
    zh = "你是由上海人工智能实验室联合商汤科技开发的书生多模态大模型，英文名叫InternVL, 是一个有用无害的人工智能助手。"
    ja = "日本語のテキストを少しだけ含めます。カタカナとひらがな。"
    extra = [zh, ja, "Ｆｕｌｌ－ｗｉｄｔｈ ＡＢＣ １２３ text", "café naïve résumé déjà vu", "ﬁne ﬂow Ⅻ ① ㈱"]
    rng = random.Random(7)
    for _ in range(200):
        lines.append(rng.choice(extra))
    return lines


def train(name, **kw):
    lines = corpus_lines()
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=model,
        num_threads=1,
        minloglevel=2,
        **kw,
    )
    path = os.path.join(OUT, name + ".model")
    with open(path, "wb") as f:
        f.write(model.getvalue())
    print(path, len(model.getvalue()))


def main():
    os.makedirs(OUT, exist_ok=True)
    # Small custom normalization rules -> a small precompiled charsmap
    # (the builtin nmt_nfkc charsmap is ~240 KB, too big to commit).
    rules = os.path.join(OUT, "rules.tsv")
    with open(rules, "w", encoding="utf-8") as f:
        # full-width A-Z/a-z/0-9 -> ASCII
        for cp in range(0xFF21, 0xFF3B):
            f.write(f"{cp:X}\t{cp - 0xFF21 + 0x41:X}\n")
        for cp in range(0xFF41, 0xFF5B):
            f.write(f"{cp:X}\t{cp - 0xFF41 + 0x61:X}\n")
        for cp in range(0xFF10, 0xFF1A):
            f.write(f"{cp:X}\t{cp - 0xFF10 + 0x30:X}\n")
        f.write("FB01\t66 69\n")  # fi ligature -> "fi"
        f.write("FB02\t66 6C\n")  # fl ligature
        f.write("9\t20\n")  # tab -> space
        f.write("A\t20\n")  # newline -> space
        f.write("3000\t20\n")  # ideographic space -> space
        f.write("65 301\tE9\n")  # e + combining acute -> é (multi-char source)
        f.write("216B\t58 49 49\n")  # Ⅻ -> XII
        f.write("2460\t31\n")  # ① -> 1
    train(
        "unigram_rules",
        model_type="unigram",
        vocab_size=400,
        normalization_rule_tsv=rules,
        user_defined_symbols=["<img>", "<|im_end|>", "ab"],
        control_symbols=["<ctrl>"],
        character_coverage=0.98,
    )
    os.remove(rules)
    train(
        "unigram_bytes",
        model_type="unigram",
        vocab_size=500,
        normalization_rule_name="identity",
        byte_fallback=True,
        split_digits=True,
        add_dummy_prefix=True,
        remove_extra_whitespaces=False,
        user_defined_symbols=["<img>", "\n\n"],
        character_coverage=0.98,
    )
    train(
        "bpe_nobytes",
        model_type="bpe",
        vocab_size=350,
        normalization_rule_name="identity",
        remove_extra_whitespaces=True,
        user_defined_symbols=["<img>", "<IMG_CONTEXT>", "▁sp"],
        control_symbols=["<ctrl>"],
        character_coverage=0.98,
        unk_surface="<?>",
    )
    train(
        "bpe_suffix",
        model_type="bpe",
        vocab_size=700,
        normalization_rule_name="identity",
        treat_whitespace_as_suffix=True,
        byte_fallback=True,
        character_coverage=0.98,
    )
    derived_models()
    train("char", model_type="char", normalization_rule_name="identity", character_coverage=0.98, vocab_size=200, use_all_vocab=True, hard_vocab_limit=False)
    train("word", model_type="word", normalization_rule_name="identity", vocab_size=300, hard_vocab_limit=False)


def derived_models():
    """Models edited at the proto level: UNUSED pieces (BPE resegmentation,
    unigram skipping) and a denormalizer spec."""
    from sentencepiece import sentencepiece_model_pb2 as pb

    def load(name):
        m = pb.ModelProto()
        with open(os.path.join(OUT, name + ".model"), "rb") as f:
            m.ParseFromString(f.read())
        return m

    def save(m, name):
        path = os.path.join(OUT, name + ".model")
        with open(path, "wb") as f:
            f.write(m.SerializeToString())
        print(path, os.path.getsize(path))

    m = load("bpe_nobytes")
    # Mark some multi-character merges UNUSED: they still take part in the
    # merge loop and are then resegmented into their halves.
    marked = 0
    for p in m.pieces:
        if p.type == pb.ModelProto.SentencePiece.NORMAL and len(p.piece) >= 2 and marked < 40 and sum(map(ord, p.piece)) % 3 == 0:
            p.type = pb.ModelProto.SentencePiece.UNUSED
            marked += 1
    save(m, "bpe_unused")

    m = load("unigram_bytes")
    marked = 0
    for p in m.pieces:
        if p.type == pb.ModelProto.SentencePiece.NORMAL and len(p.piece) >= 2 and marked < 40 and sum(map(ord, p.piece)) % 3 == 0:
            p.type = pb.ModelProto.SentencePiece.UNUSED
            marked += 1
    save(m, "unigram_unused")

    m = load("bpe_nobytes")
    rules = load("unigram_rules")
    m.denormalizer_spec.CopyFrom(rules.normalizer_spec)
    m.denormalizer_spec.add_dummy_prefix = False
    m.denormalizer_spec.remove_extra_whitespaces = False
    m.denormalizer_spec.escape_whitespaces = False
    save(m, "bpe_denorm")


if __name__ == "__main__":
    main()
