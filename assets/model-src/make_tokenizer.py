"""Writes tokenizer.json for monovlm-tiny: one token per printable ASCII character (digits stay
single tokens, which arithmetic needs), plus Fuyu's control tokens. Run once; the output is
committed next to this script."""
import json

SPECIALS = ["<unk>", "<s>", "|ENDOFTEXT|", "|SPEAKER|", "|NEWLINE|", "<0x04>"]
chars = [chr(c) for c in range(32, 127)] + ["\n", "\t", "×", "−", "÷"]
vocab = {t: i for i, t in enumerate(SPECIALS)}
for ch in chars:
    vocab[ch] = len(vocab)
while len(vocab) < 128:  # round the embedding up to a friendly size
    vocab[f"<unused{len(vocab)}>"] = len(vocab)

tok = {
    "version": "1.0",
    "truncation": None,
    "padding": None,
    "added_tokens": [
        {"id": vocab[s], "content": s, "single_word": False, "lstrip": False,
         "rstrip": False, "normalized": False, "special": True}
        for s in SPECIALS
    ],
    "normalizer": None,
    "pre_tokenizer": None,
    "post_processor": None,
    "decoder": {"type": "Fuse"},
    "model": {
        "type": "BPE", "dropout": None, "unk_token": "<unk>",
        "continuing_subword_prefix": None, "end_of_word_suffix": None,
        "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
        "vocab": vocab, "merges": [],
    },
}
with open("tokenizer.json", "w") as f:
    json.dump(tok, f, ensure_ascii=False, indent=1)
print(len(vocab), "tokens")
