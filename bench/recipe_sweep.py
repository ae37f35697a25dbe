"""Recipe search for the default model on a GPU: a PyTorch twin of `monovlm train` on our Fuyu
(Persimmon) model, so that many learning rates, patch sizes and front ends can be compared in
minutes before one recipe is run with the real trainer on CPU. Not a test and not used by CI.

The twin mirrors the runtime's Fuyu sequence (patch rows with |NEWLINE|, <s>, prompt, <0x04>,
answer, |ENDOFTEXT|), the fresh-model init (normal(0, std) matrices, unit norms, zero biases),
AdamW with decay on matrices only, warmup + cosine to 10 %, clipping at 1, answer-only loss.
Diagnostic front ends that are not a family of ours: `pos2d` (learned row/column embeddings)
and `eve2` (EVE v2's conv16 → GELU → 2×2 conv, as matmuls over 32 px cells).

Usage (see bench/recipe_sweep.sh for the runs recorded in bench/recipe-sweep.md):
  python recipe_sweep.py digits OUT_DIR COUNT SEED          # 96x32 images of 1-4 digit numbers
  PATCH=16 python recipe_sweep.py prep DATA_DIR CACHE [eval] # monovlm synth / digits output -> cache
  python recipe_sweep.py train TRAIN_CACHE EVAL_CACHE NAME key=value ...
     keys: lr batch steps warmup d layers heads ff std rot wd patch_lr seed eval_every bf16
           front=linear|pos2d|eve2 pdim=3*PATCH*PATCH data=CACHE evdata=CACHE
"""
import json, math, os, sys, time
import numpy as np
from PIL import Image

TOK_PATH = os.environ.get("TOK", "assets/model-src/tokenizer.json")


def tokenizer():
    from tokenizers import Tokenizer
    return Tokenizer.from_file(TOK_PATH)


def patches_of(path, max_side=320, p=int(os.environ.get("PATCH", "16"))):
    img = Image.open(path).convert("RGB")
    w, h = img.size
    if w > max_side or h > max_side:
        s = min(max_side / w, max_side / h)
        img = img.resize((max(1, int(w * s)), max(1, int(h * s))), Image.BILINEAR)
        w, h = img.size
    a = np.asarray(img, dtype=np.uint8)
    rows, cols = math.ceil(h / p), math.ceil(w / p)
    canvas = np.full((rows * p, cols * p, 3), 255, np.uint8)
    canvas[:h, :w] = a
    x = canvas.reshape(rows, p, cols, p, 3).transpose(0, 2, 1, 3, 4).reshape(rows * cols, p * p * 3)
    return rows, cols, x


def encode_record(rec, tok, ids_of, base):
    """Returns (ids, image_mask positions, targets (pos,id), rows, cols, patches)."""
    SPK, NL, BOS, BOA, END = ids_of
    ids, tgt = [], []
    rows = cols = 0
    patches = None
    turns = rec["conversations"]
    has_image = "image" in rec
    if has_image:
        rows, cols, patches = patches_of(os.path.join(base, rec["image"]))
        for r in range(rows):
            ids += [SPK] * cols + [NL]
    pairs = [(turns[i]["value"], turns[i + 1]["value"]) for i in range(0, len(turns), 2)]
    for k, (q, a) in enumerate(pairs):
        q = q.replace("<image>\n", "").replace("<image>", "")
        if k == 0 and has_image:
            ids += [BOS] + tok.encode(q, add_special_tokens=False).ids + [BOA]
        elif k == 0:
            ids += [BOS] + tok.encode(q, add_special_tokens=False).ids
        else:
            ids += tok.encode(q, add_special_tokens=False).ids + [BOA]
        ans = tok.encode(a, add_special_tokens=False).ids
        if k + 1 == len(pairs):
            ans = ans + [END]
        for t in ans:
            tgt.append((len(ids) - 1, t))
            ids.append(t)
    return ids, tgt, rows, cols, patches


def prep(data_dir, out, eval_mode=False):
    import pickle
    from multiprocessing import Pool
    recs = [json.loads(l) for l in open(os.path.join(data_dir, "data.jsonl"))]
    if eval_mode:
        recs = [r for r in recs if "image" in r]
    tasks = os.environ.get("TASKS")
    if tasks:
        recs = [r for r in recs if r.get("task") in tasks.split(",")]
    with Pool(16) as pool:
        enc = pool.starmap(_enc_one, [(r, data_dir) for r in recs], chunksize=256)
    total = sum(0 if e[4] is None else len(e[4]) for e in enc)
    X = np.lib.format.open_memmap(out + ".npy", mode="w+", dtype=np.uint8, shape=(max(total, 1), enc[0][4].shape[1] if enc[0][4] is not None else 768))
    items, off = [], 0
    for r, (ids, tgt, rows, cols, patches) in zip(recs, enc):
        n = 0 if patches is None else len(patches)
        if n:
            X[off:off + n] = patches
        items.append(dict(ids=np.array(ids, np.int16), tgt=np.array(tgt, np.int32).reshape(-1, 2),
                          off=off, n=n, rows=rows, cols=cols, task=r.get("task", ""), bucket=r.get("bucket", ""),
                          answer=r["conversations"][-1]["value"]))
        off += n
    X.flush()
    pickle.dump(items, open(out + ".pkl", "wb"))
    print("prepped", len(items), "records; mean tokens", np.mean([len(i["ids"]) for i in items]), flush=True)


def load(path):
    import pickle
    items = pickle.load(open(path + ".pkl", "rb"))
    X = np.load(path + ".npy", mmap_mode="r")
    for it in items:
        it["patches"] = X[it["off"]:it["off"] + it["n"]] if it["n"] else None
    return items


_TOK = None


def _enc_one(rec, base):
    global _TOK
    if _TOK is None:
        _TOK = tokenizer()
    t = _TOK
    ids_of = [t.token_to_id(s) for s in ["|SPEAKER|", "|NEWLINE|", "<s>", "<0x04>", "|ENDOFTEXT|"]]
    assert None not in ids_of, ids_of
    return encode_record(rec, t, ids_of, base)


def train(cache, eval_cache, name, **cfg):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    torch.backends.cuda.matmul.allow_tf32 = True
    d = int(cfg.get("d", 256)); L = int(cfg.get("layers", 6)); H = int(cfg.get("heads", 8))
    ff = int(cfg.get("ff", 4 * d)); lr = float(cfg.get("lr", 5e-4)); B = int(cfg.get("batch", 16))
    steps = int(cfg.get("steps", 1800)); warm = int(cfg.get("warmup", 100))
    patch_lr = float(cfg.get("patch_lr", 1.0)); seed = int(cfg.get("seed", 1))
    eval_every = int(cfg.get("eval_every", 600)); wd = float(cfg.get("wd", 0.01))
    std = float(cfg.get("std", 0.02)); rot = float(cfg.get("rot", 0.5))
    V = 128
    front = cfg.get("front", "linear")  # linear | pos2d | eve2
    pdim = int(cfg.get("pdim", 768))
    dev = "cuda"
    torch.manual_seed(seed)
    items = load(cfg.get("data", cache))
    ev = load(cfg.get("evdata", eval_cache))
    hd = d // H
    nrot = int(hd * rot)

    class Layer(nn.Module):
        def __init__(s):
            super().__init__()
            s.ln1 = nn.LayerNorm(d, eps=1e-5); s.qkv = nn.Linear(d, 3 * d); s.o = nn.Linear(d, d)
            s.qn = nn.LayerNorm(hd, eps=1e-5); s.kn = nn.LayerNorm(hd, eps=1e-5)
            s.ln2 = nn.LayerNorm(d, eps=1e-5); s.up = nn.Linear(d, ff); s.down = nn.Linear(ff, d)

        def forward(s, x, cos, sin):
            Bn, T, _ = x.shape
            q, k, v = s.qkv(s.ln1(x)).view(Bn, T, H, 3, hd).unbind(3)
            q, k = s.qn(q), s.kn(k)
            q, k = rope(q, cos, sin), rope(k, cos, sin)
            o = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True)
            x = x + s.o(o.transpose(1, 2).reshape(Bn, T, d))
            return x + s.down(F.relu(s.up(s.ln2(x))) ** 2)

    def rope(x, cos, sin):
        r, p = x[..., :nrot], x[..., nrot:]
        h = nrot // 2
        r1, r2 = r[..., :h], r[..., h:]
        rr = torch.cat([-r2, r1], -1)
        return torch.cat([r * cos + rr * sin, p], -1)

    class Net(nn.Module):
        def __init__(s):
            super().__init__()
            s.emb = nn.Embedding(V, d)
            if front == "eve2":
                s.patch = nn.Linear(768, 256); s.patch2 = nn.Linear(4 * 256, d)
            else:
                s.patch = nn.Linear(pdim, d)
            if front == "pos2d":
                s.prow = nn.Embedding(128, d); s.pcol = nn.Embedding(128, d)
            s.layers = nn.ModuleList([Layer() for _ in range(L)])
            s.ln = nn.LayerNorm(d, eps=1e-5); s.head = nn.Linear(d, V, bias=False)

        def forward(s, ids, pmask, pvals, prc=None):
            x = s.emb(ids)
            if pvals is not None and pvals.shape[0] > 0:
                if front == "eve2":
                    # 32x32 cell (HWC) -> four 16x16 HWC sub-patches (row-major) -> gelu -> merge
                    c = pvals.view(-1, 2, 16, 2, 16, 3).permute(0, 1, 3, 2, 4, 5).reshape(-1, 4, 768)
                    e = s.patch2(F.gelu(s.patch(c)).reshape(-1, 4 * 256))
                else:
                    e = s.patch(pvals)
                if front == "pos2d":
                    e = e + s.prow(prc[:, 0]) + s.pcol(prc[:, 1])
                x = x.index_put((pmask[:, 0], pmask[:, 1]), e.to(x.dtype))
            T = ids.shape[1]
            pos = torch.arange(T, device=ids.device, dtype=torch.float32)
            inv = 1.0 / (25000.0 ** (torch.arange(0, nrot, 2, device=ids.device, dtype=torch.float32) / nrot))
            f = pos[:, None] * inv[None]
            f = torch.cat([f, f], -1)
            cos, sin = f.cos()[None, :, None, :], f.sin()[None, :, None, :]
            for l in s.layers:
                x = l(x, cos, sin)
            return s.head(s.ln(x))

    net = Net().to(dev)
    for n, p in net.named_parameters():
        if n.endswith("bias"):
            nn.init.zeros_(p)
        elif p.dim() == 1:
            nn.init.ones_(p)
        else:
            nn.init.normal_(p, 0.0, std)
    groups = [
        dict(params=[p for n, p in net.named_parameters() if p.dim() >= 2 and not n.startswith("patch")], weight_decay=wd, mult=1.0),
        dict(params=[p for n, p in net.named_parameters() if p.dim() < 2 and not n.startswith("patch")], weight_decay=0.0, mult=1.0),
        dict(params=[p for n, p in net.named_parameters() if n.startswith("patch") and p.dim() >= 2], weight_decay=wd, mult=patch_lr),
        dict(params=[p for n, p in net.named_parameters() if n.startswith("patch") and p.dim() < 2], weight_decay=0.0, mult=patch_lr),
    ]
    opt = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), eps=1e-8)

    def sched(t):
        if t < warm:
            return (t + 1) / warm
        pr = min(1.0, (t - warm) / max(1, steps - warm))
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * pr))

    def batchify(recs, extra=0):
        T = max(len(r["ids"]) for r in recs) + extra
        ids = torch.zeros(len(recs), T, dtype=torch.long)
        pm, pv, rc = [], [], []
        for b, r in enumerate(recs):
            n = len(r["ids"])
            ids[b, :n] = torch.from_numpy(r["ids"].astype(np.int64))
            if r["patches"] is not None:
                pos = np.nonzero(r["ids"] == 3)[0]
                pm.append(np.stack([np.full(len(pos), b), pos], 1))
                pv.append(np.asarray(r["patches"]))
                rr, cc = np.divmod(np.arange(r["rows"] * r["cols"]), r["cols"])
                rc.append(np.stack([rr, cc], 1))
        pm = torch.from_numpy(np.concatenate(pm)).to(dev) if pm else torch.zeros(0, 2, dtype=torch.long, device=dev)
        pv = torch.from_numpy(np.concatenate(pv)).to(dev).float() / 127.5 - 1.0 if pv else None
        rc = torch.from_numpy(np.concatenate(rc)).to(dev) if rc else None
        return ids.to(dev), pm, pv, rc

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(items))
    cur = 0
    os.makedirs("/tmp/res", exist_ok=True)
    log = open(f"/tmp/res/{name}.jsonl", "w")

    def evaluate(n=None):
        net.eval()
        recs = ev if n is None else ev[:n]
        ok = 0; per_task = {}; per_bucket = {}
        with torch.no_grad():
            for i in range(0, len(recs), 128):
                chunk = recs[i:i + 128]
                prompts = []
                for r in chunk:
                    first_t = int(r["tgt"][0, 0]) + 1
                    prompts.append(dict(ids=r["ids"][:first_t], patches=r["patches"], rows=r["rows"], cols=r["cols"]))
                ids, pm, pv, rc = batchify(prompts, extra=16)
                lens = torch.tensor([len(p["ids"]) for p in prompts], device=dev)
                outs = [[] for _ in chunk]; done = [False] * len(chunk)
                for _ in range(14):
                    logits = net(ids[:, : int(lens.max())], pm, pv, rc)
                    nxt = logits[torch.arange(len(chunk), device=dev), lens - 1].argmax(-1)
                    ids[torch.arange(len(chunk), device=dev), lens] = nxt
                    lens = lens + 1
                    for b, t in enumerate(nxt.tolist()):
                        if not done[b]:
                            if t == END:
                                done[b] = True
                            else:
                                outs[b].append(t)
                for b, r in enumerate(chunk):
                    want = [int(t) for t in r["tgt"][:, 1]]
                    good = done[b] and outs[b] == want[:-1]
                    ok += good
                    for key, dct in ((r["task"], per_task), (r["bucket"], per_bucket)):
                        a, c = dct.get(key, (0, 0)); dct[key] = (a + good, c + 1)
        net.train()
        return ok / len(recs), {k: round(a / c, 3) for k, (a, c) in per_task.items()}, {k: round(a / c, 3) for k, (a, c) in per_bucket.items()}

    END = 2
    tok = tokenizer()
    END = tok.token_to_id("|ENDOFTEXT|")
    t0 = time.time(); ema = None
    for step in range(steps):
        recs = []
        for _ in range(B):
            if cur == len(order):
                order = rng.permutation(len(items)); cur = 0
            recs.append(items[order[cur]]); cur += 1
        ids, pm, pv, rc = batchify(recs)
        tb = torch.cat([torch.from_numpy(np.concatenate([np.full((len(r["tgt"]), 1), b), r["tgt"]], 1)) for b, r in enumerate(recs)]).to(dev)
        for g in opt.param_groups:
            g["lr"] = lr * sched(step) * g["mult"]
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bool(int(cfg.get("bf16", 1)))):
            logits = net(ids, pm, pv, rc)
        loss = F.cross_entropy(logits[tb[:, 0], tb[:, 1]].float(), tb[:, 2])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        li = loss.item(); ema = li if ema is None else 0.98 * ema + 0.02 * li
        if (step + 1) % eval_every == 0 or step + 1 == steps:
            final = step + 1 == steps
            acc, pt, pb = evaluate(None if final else 400)
            rec = dict(name=name, step=step + 1, samples=(step + 1) * B, loss=round(ema, 4), gnorm=round(float(gn), 3), exact=round(acc, 4), task=pt, bucket=pb, secs=round(time.time() - t0, 1), cfg=cfg)
            print(json.dumps(rec), flush=True); log.write(json.dumps(rec) + "\n"); log.flush()


def _digit_one(args):
    i, seed, out, W, H = args
    import random
    from PIL import ImageDraw, ImageFont
    rnd = random.Random(seed * 1000003 + i)
    fonts = sorted(os.path.join(os.environ.get("FONTS", "/usr/share/fonts/truetype/dejavu"), f) for f in os.listdir(os.environ.get("FONTS", "/usr/share/fonts/truetype/dejavu")) if f.startswith(("DejaVuSans.", "DejaVuSerif.", "DejaVuSansMono.")))
    s = "".join(rnd.choice("0123456789") for _ in range(rnd.randint(1, 4)))
    f = ImageFont.truetype(rnd.choice(fonts), rnd.randint(14, 22))
    im = Image.new("RGB", (W, H), (255, 255, 255)); d = ImageDraw.Draw(im)
    w = d.textlength(s, font=f); x = rnd.randint(0, max(0, int(W - w))); y = rnd.randint(0, max(0, H - 24))
    d.text((x, y), s, font=f, fill=(0, 0, 0))
    p = f"{out}/images/{i:06d}.png"; im.save(p)
    return json.dumps({"image": p, "conversations": [{"from": "human", "value": "<image>\nRead the number."}, {"from": "gpt", "value": s}], "task": "digits", "bucket": "wide"})


def digits(out, n, seed):
    from multiprocessing import Pool
    os.makedirs(out + "/images", exist_ok=True)
    with Pool(16) as pool:
        lines = pool.map(_digit_one, [(i, seed, out, 96, 32) for i in range(n)], chunksize=500)
    open(out + "/data.jsonl", "w").write("\n".join(lines) + "\n")


if __name__ == "__main__":
    if sys.argv[1] == "digits":
        digits(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif sys.argv[1] == "prep":
        prep(sys.argv[2], sys.argv[3], eval_mode=len(sys.argv) > 4)
    else:
        kv = dict(a.split("=") for a in sys.argv[5:])
        train(sys.argv[2], sys.argv[3], sys.argv[4], **kv)
