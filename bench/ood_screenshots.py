"""Held-out screenshots from a different renderer: Pillow with fonts the training data never used
(Liberation and GNU FreeFont, Debian's fonts-liberation and fonts-freefont-ttf), its own layouts,
no noise. Writes OUT/images/*.png and OUT/data.jsonl (LLaVA-style, with task/bucket tags) for
`monovlm eval`. Checks that the default model does not only read `monovlm synth`'s rendering.

    python bench/ood_screenshots.py OUT [COUNT] [SEED]
"""
import json, os, random, re, sys
from PIL import Image, ImageDraw, ImageFont

FONT_DIRS = ["/usr/share/fonts/truetype/liberation", "/usr/share/fonts/truetype/freefont"]
MUL, MINUS = "\u00d7", "\u2212"


def fonts():
    out = []
    for d in FONT_DIRS:
        for f in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            if f.endswith(".ttf") and "Narrow" not in f:
                out.append(os.path.join(d, f))
    if not out:
        sys.exit("no Liberation/FreeFont fonts: apt-get install fonts-liberation fonts-freefont-ttf")
    return out


def words():
    src = open(os.path.join(os.path.dirname(__file__), "../trainer/src/synth/words.rs")).read()
    block = src.split("pub const WORDS")[1].split("];")[0]
    return re.findall(r'"([a-z]+)"', block)


def render(lines, font_path, size, rng, align="left"):
    font = ImageFont.truetype(font_path, size)
    dark = rng.random() < 0.8
    fg = tuple(rng.randint(0, 70) for _ in range(3)) if dark else (245, 245, 245)
    bg = tuple(rng.randint(215, 255) for _ in range(3)) if dark else tuple(rng.randint(20, 60) for _ in range(3))
    boxes = [font.getbbox(l) for l in lines]
    w = max(b[2] - b[0] for b in boxes)
    line_h = int(size * 1.35)
    pad_x, pad_y = rng.randint(6, 24), rng.randint(6, 18)
    W, H = w + 2 * pad_x, line_h * len(lines) + 2 * pad_y
    img = Image.new("RGB", (W, H), bg)
    d = ImageDraw.Draw(img)
    for i, (l, b) in enumerate(zip(lines, boxes)):
        lw = b[2] - b[0]
        x = pad_x + (w - lw if align == "right" else (w - lw) // 2 if align == "center" else 0) - b[0]
        d.text((x, pad_y + i * line_h), l, font=font, fill=fg)
    return img


def sample(i, rng, fl, wl):
    task = ["numbers", "arith", "text", "table", "receipt"][i % 5]
    font = rng.choice(fl)
    size = rng.randint(15, 26)
    if task == "numbers":
        n = rng.randint(1, 99999)
        lines, q, a = [str(n)], rng.choice(["What number is shown?", "Read the number."]), str(n)
    elif task == "arith":
        kind = rng.randrange(3)
        if kind == 0:
            x, y = rng.randint(1, 99), rng.randint(1, 99)
            s, a = f"{x} + {y}", str(x + y)
        elif kind == 1:
            x, y = rng.randint(2, 12), rng.randint(2, 12)
            s, a = f"{x} {MUL} {y}", str(x * y)
        else:
            x = rng.randint(10, 99)
            y = rng.randint(1, x)
            s, a = f"{x} {MINUS} {y}", str(x - y)
        lines, q = [s + rng.choice(["", " = ?"])], rng.choice(["What is the result?", "Compute this."])
    elif task == "text":
        t = " ".join(rng.sample(wl, rng.randint(1, 2)))
        lines, q, a = [t], rng.choice(["What does the text say?", "Read the text."]), t
    elif task == "table":
        cols = rng.sample(["Qty", "Price", "Mon", "Tue", "Q1", "Q2"], 2)
        rows = rng.sample(["A", "B", "C"], 2)
        cells = [[rng.randint(0, 99) for _ in cols] for _ in rows]
        lines = ["    " + "  ".join(cols)] + [r + "  " + "  ".join(f"{v:>3}" for v in c) for r, c in zip(rows, cells)]
        r, c = rng.randrange(2), rng.randrange(2)
        q, a = f"What is the {cols[c]} of {rows[r]}?", str(cells[r][c])
    else:
        items = rng.sample(["Apple", "Bread", "Milk", "Tea", "Soap", "Rice", "Eggs"], rng.randint(2, 3))
        prices = [rng.randint(1, 30) for _ in items]
        lines = [f"{n} {p}" for n, p in zip(items, prices)] + ["-----", f"TOTAL {sum(prices)}"]
        q, a = rng.choice(["What is the total?", "How much is the total?"]), str(sum(prices))
    img = render(lines, font, size, rng, align=rng.choice(["left", "center"]))
    w, h = img.size
    bucket = "wide" if w / h >= 2.5 else "tall" if h / w >= 1.6 else "square"
    return img, q, a, task, bucket, os.path.basename(font)


def main():
    out = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    rng = random.Random(int(sys.argv[3]) if len(sys.argv) > 3 else 11)
    os.makedirs(os.path.join(out, "images"), exist_ok=True)
    fl, wl = fonts(), words()
    with open(os.path.join(out, "data.jsonl"), "w") as f:
        for i in range(count):
            img, q, a, task, bucket, font = sample(i, rng, fl, wl)
            name = f"images/{i:06d}.png"
            img.save(os.path.join(out, name))
            rec = {"id": f"{i:06d}", "image": name, "task": task, "bucket": bucket, "font": font,
                   "conversations": [{"from": "human", "value": "<image>\n" + q}, {"from": "gpt", "value": a}]}
            f.write(json.dumps(rec) + "\n")
    print(f"wrote {count} records to {out}/data.jsonl with {len(fl)} fonts")


if __name__ == "__main__":
    main()
