#!/usr/bin/env python3
"""Writes the committed seed corpus under fuzz/corpus/<target>/: small valid inputs and slightly
broken variants of each. Re-run after changing a format; the files are committed, so the fuzzers
never need this script. Usage: python3 fuzz/make_seeds.py [FIXTURES_DIR]"""
import base64, json, os, shutil, struct, sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
FIXTURES = sys.argv[1] if len(sys.argv) > 1 else os.environ.get(
    "MONOVLM_FIXTURES", os.path.join(REPO, "..", "shared", "fixtures"))
if not os.path.isdir(FIXTURES):
    FIXTURES = "/work/shared/fixtures"
PILLOW = os.path.join(REPO, "runtime", "tests", "pillow", "decode")


def out(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


# ---- gguf ---------------------------------------------------------------------------------
def gstr(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gguf(kvs, tensors, version=3, align=32):
    """kvs: [(key, type, payload bytes)]; tensors: [(name, dims, ggml type, data bytes)]."""
    head = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs))
    for k, t, p in kvs:
        head += gstr(k) + struct.pack("<I", t) + p
    infos, data = b"", b""
    for name, dims, ty, blob in tensors:
        pad = (-len(data)) % align
        data += b"\0" * pad
        infos += gstr(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        infos += struct.pack("<IQ", ty, len(data))
        data += blob
    head += infos
    head += b"\0" * ((-len(head)) % align)
    return head + data


cfg = json.dumps({"model_type": "llama", "architectures": ["LlamaForCausalLM"]}).encode()
f32 = (0, struct.pack("<4f", 1, 2, 3, 4))
q8 = struct.pack("<e", 0.5) + bytes(range(32))  # one Q8_0 block: f16 scale + 32 i8
kvs = [
    ("general.architecture", 8, gstr("monovlm")),
    ("general.alignment", 4, struct.pack("<I", 32)),
    ("monovlm.quant_type", 8, gstr("q8_0")),
    ("monovlm.file.config.json", 8, gstr(cfg.decode())),
    ("monovlm.file.tokenizer.model", 9, struct.pack("<IQ", 0, 4) + b"\x0a\x02\x08\x01"),
    ("nested", 9, struct.pack("<IQ", 9, 1) + struct.pack("<IQ", 4, 2) + struct.pack("<2I", 7, 8)),
    ("f", 6, struct.pack("<f", 1.5)), ("b", 7, b"\x01"), ("u64", 10, struct.pack("<Q", 9)),
]
good = gguf(kvs, [("w", [4], 0, f32[1]), ("q", [32, 1], 8, q8), ("h", [2, 2], 1, b"\0" * 8)])
out("gguf", "valid_v3", good)
out("gguf", "valid_v2_no_tensors", gguf(kvs[:2], [], version=2))
# A rename table as `monovlm quantize` writes it (llama.cpp names → checkpoint names).
def gstrs(items):
    return struct.pack("<IQ", 8, len(items)) + b"".join(gstr(x) for x in items)
renames = [("monovlm.tensor_names.gguf", 9, gstrs(["token_embd.weight", "blk.0.attn_q.weight"])),
           ("monovlm.tensor_names.checkpoint", 9, gstrs(["w", "q"]))]
out("gguf", "valid_renamed", gguf(kvs + renames, [("token_embd.weight", [4], 0, f32[1]),
                                                  ("blk.0.attn_q.weight", [32, 1], 8, q8)]))
out("gguf", "truncated", good[: len(good) - 7])
out("gguf", "bad_magic", b"GGUG" + good[4:])
out("gguf", "huge_counts", b"GGUF" + struct.pack("<IQQ", 3, 2**63, 2**63))
out("gguf", "bad_alignment", gguf([("general.alignment", 4, struct.pack("<I", 3))], []))
out("gguf", "offset_past_end", gguf([], [("w", [4], 0, f32[1])])[:-4])

# ---- safetensors_header: config.json [SEP model.safetensors] --------------------------------
SEP = b"\n--monovlm-safetensors--\n"


def st(tensors, extra=None):
    header, data = {}, b""
    for name, dtype, shape, blob in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(blob)]}
        data += blob
    if extra:
        header["__metadata__"] = extra
    h = json.dumps(header).encode()
    h += b" " * ((-len(h)) % 8)
    return struct.pack("<Q", len(h)) + h + data


small = st([("w", "F32", [2, 2], struct.pack("<4f", 1, 2, 3, 4)), ("b", "BF16", [2], b"\0\x3f\0\x40")],
           {"format": "pt"})
for fam in sorted(os.listdir(FIXTURES)):
    p = os.path.join(FIXTURES, fam, "model", "config.json")
    if os.path.isfile(p):
        c = open(p, "rb").read()
        out("safetensors_header", f"{fam}_config", c)
        out("safetensors_header", f"{fam}_config_small_weights", c + SEP + small)
        out("safetensors_header", f"{fam}_config_truncated", c[: len(c) // 2])
out("safetensors_header", "weights_only_broken_header", b"{}" + SEP + struct.pack("<Q", 2**40) + b"{}")
out("safetensors_header", "weights_bad_offsets", b'{"model_type":"llama"}' + SEP + small[:-3])

# ---- image_decode: Pillow test images (small ones) and broken variants ------------------------
for name in sorted(os.listdir(PILLOW)):
    data = open(os.path.join(PILLOW, name), "rb").read()
    if len(data) <= 16384:
        out("image_decode", name, data)
for name in ["png_rgb.png", "jpg_3x7.jpg", "gif_p.gif", "webp_lossy_rgb.webp", "bmp_rgb.bmp", "tif_rgb.tif"]:
    p = os.path.join(PILLOW, name)
    if os.path.isfile(p):
        data = open(p, "rb").read()
        out("image_decode", "trunc_" + name, data[: len(data) * 2 // 3])

# ---- jsonl: the `monovlm synth` / LLaVA record format ------------------------------------------
rec = {"id": "r0", "image": "img/0.png", "task": "read", "conversations": [
    {"from": "human", "value": "<image>\nWhat does the sign say?"}, {"from": "gpt", "value": "OPEN"}]}
text = {"id": 7, "conversations": [{"from": "user", "value": "hi"}, {"from": "assistant", "value": "hello"},
                                   {"from": "human", "value": "again"}, {"from": "gpt", "value": "yes"}]}
out("jsonl", "valid", json.dumps(rec) + "\n" + json.dumps(text) + "\n\n")
out("jsonl", "odd_turns", json.dumps({"conversations": [{"from": "human", "value": "q"}]}) + "\n")
out("jsonl", "bad_utf8", b'{"conversations": "\xff\xfe"}\n')
out("jsonl", "placeholder_later", json.dumps({"image": "a.png", "conversations": [
    {"from": "human", "value": "<image>"}, {"from": "gpt", "value": "a"},
    {"from": "human", "value": "<image>"}, {"from": "gpt", "value": "b"}]}) + "\n")
out("jsonl", "not_object", "[1,2,3]\n")

# ---- chat_request: OpenAI chat-completions bodies ---------------------------------------------
png = open(os.path.join(PILLOW, "png_rgb.png"), "rb").read()
uri = "data:image/png;base64," + base64.b64encode(png).decode()
out("chat_request", "text", json.dumps({"model": "m", "messages": [
    {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}],
    "max_tokens": 16, "temperature": 0.2, "top_p": 0.9, "seed": 1, "stop": ["\n"]}))
out("chat_request", "image", json.dumps({"messages": [{"role": "user", "content": [
    {"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": uri}}]}],
    "stream": True, "stream_options": {"include_usage": True}, "top_k": 5, "repetition_penalty": 1.1}))
out("chat_request", "history", json.dumps({"messages": [
    {"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
    {"role": "assistant", "content": None}, {"role": "user", "content": "c"}], "stop": "x", "n": 1}))
out("chat_request", "bad_base64", json.dumps({"messages": [{"role": "user", "content": [
    {"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}}]}]}))
out("chat_request", "remote_url", json.dumps({"messages": [{"role": "user", "content": [
    {"type": "image_url", "image_url": {"url": "https://example.invalid/a.png"}}]}]}))
out("chat_request", "bad_params", json.dumps({"messages": [{"role": "user", "content": "x"}],
                                             "temperature": 9, "top_p": 0, "max_tokens": -1, "top_k": -3}))

# ---- sequence: [model][flags][images][w h (u16 LE) …][prompt] ----------------------------------
models = sorted(d for d in os.listdir(FIXTURES) if os.path.isfile(os.path.join(FIXTURES, d, "model", "config.json")))
prompts = ["Which number is written here?", "<image>\nWhat is 12 × 7?", "  <s></s>[INST] é 漢字 🙂 ",
           "<image><image> two", "", "{prompt}" * 8]
sizes = [[], [(64, 48)], [(1, 300), (1920, 1080)], [(30, 30), (31, 2), (4000, 4000)]]
for m in range(len(models)):
    for f in range(4):
        for si, s in enumerate(sizes):
            p = prompts[(m + f + si) % len(prompts)]
            head = bytes([m, f, len(s)]) + b"".join(struct.pack("<HH", w, h) for w, h in s)
            out("sequence", f"{models[m]}_f{f}_i{len(s)}", head + p.encode())

# ---- model_files: [model][file][bytes] ---------------------------------------------------------
FILES = ["tokenizer.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json",
         "added_tokens.json", "preprocessor_config.json", "generation_config.json",
         "model.safetensors.index.json"]
for m, fam in enumerate(models):
    for k, name in enumerate(FILES):
        p = os.path.join(FIXTURES, fam, "model", name)
        if os.path.isfile(p):
            data = open(p, "rb").read()
            out("model_files", f"{fam}_{name}", bytes([m, k]) + data)
            out("model_files", f"{fam}_{name}_cut", bytes([m, k]) + data[: len(data) // 2])
    out("model_files", f"{fam}_index", bytes([m, 7]) + json.dumps(
        {"metadata": {"total_size": 8}, "weight_map": {"w": "model.safetensors"}}).encode())
    out("model_files", f"{fam}_index_escape", bytes([m, 7]) + json.dumps(
        {"weight_map": {"w": "../../../etc/passwd"}}).encode())
