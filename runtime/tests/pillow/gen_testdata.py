#!/usr/bin/env python3
"""Generate Pillow reference data for the `pilimg` Rust tests.

Run with the Pillow version the tests should match (13.0.0):
    python -m venv .venv && .venv/bin/pip install "pillow==13.0.0" numpy
    .venv/bin/python gen_testdata.py

Writes under this folder (runtime/tests/pillow/):
  resize_cases.txt   one line per resize case:
                     pattern in_w in_h filter out_w out_h hash raw_offset raw_len
                     (input pixels are generated from `pattern` by the same formula in Rust;
                     small outputs are also stored raw in resize_raw.bin at raw_offset)
  decode/            encoded test images (PNG, JPEG, WebP, GIF, BMP, TIFF)
  decode_cases.txt   file mode_after_open out_w out_h hash raw_offset raw_len
                     = exif_transpose(Image.open(file).convert("RGB"))
  decode_raw.bin     raw RGB bytes of the decode outputs (small ones)
  bad_cases.txt      files Pillow refuses to open/decode (Rust must return an error, not panic)
  robust_cases.txt   truncated / byte-flipped variants of some files and Pillow's outcome
(hash = sum_i (byte_i + 1) * P**(i+1) mod 2**64, P = 0x100000001B3; mirrored in the Rust tests)
"""
import io
import os
import struct
import sys
import zlib

import numpy as np
import PIL
from PIL import Image, ImageOps

HERE = os.path.dirname(os.path.abspath(__file__))
TD = HERE
DEC = os.path.join(TD, "decode")
os.makedirs(DEC, exist_ok=True)

M64 = (1 << 64) - 1
RAW_LIMIT = 2048  # outputs up to this many bytes are stored raw (for diagnostics)


def fnv64(data: bytes) -> int:
    """Polynomial hash mod 2**64 (mirrored in Rust): sum_i (b_i + 1) * P**(i+1)."""
    arr = np.frombuffer(data, dtype=np.uint8).astype(np.uint64) + np.uint64(1)
    with np.errstate(over="ignore"):
        pw = np.cumprod(np.full(arr.shape, 0x100000001B3, dtype=np.uint64), dtype=np.uint64)
        return int(np.sum(arr * pw, dtype=np.uint64))


# ----------------------------------------------------------------------------------------------
# deterministic test patterns (mirrored exactly in tests/pillow_compare.rs)
# ----------------------------------------------------------------------------------------------
def splitmix(idx: np.ndarray, seed: int) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = idx.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(seed)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(56)).astype(np.uint8)


def pattern(name: str, w: int, h: int) -> np.ndarray:
    y, x, c = np.meshgrid(np.arange(h, dtype=np.int64), np.arange(w, dtype=np.int64),
                          np.arange(3, dtype=np.int64), indexing="ij")
    if name == "noise":
        idx = (y * w + x) * 3 + c
        return splitmix(idx, 12345)
    if name == "grad":
        r = (x * 255) // max(w - 1, 1)
        g = (y * 255) // max(h - 1, 1)
        b = ((x + y) * 255) // max(w + h - 2, 1)
        return np.where(c == 0, r, np.where(c == 1, g, b)).astype(np.uint8)
    if name == "edges":
        r = ((x // 5 + y // 3) % 2) * 255
        g = np.where((x * 7 + y * 3) % 11 > 5, 250, 3)
        b = np.where(x * h > y * w, 230, 20)
        return np.where(c == 0, r, np.where(c == 1, g, b)).astype(np.uint8)
    raise ValueError(name)


FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "box": Image.Resampling.BOX,
    "bilinear": Image.Resampling.BILINEAR,
    "hamming": Image.Resampling.HAMMING,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


def gen_resize():
    inputs = [
        ("noise", 1, 1), ("noise", 1, 50), ("grad", 50, 1), ("noise", 3, 7), ("edges", 64, 300),
        ("noise", 300, 64), ("grad", 45, 31), ("edges", 1100, 20), ("noise", 12, 1200),
        ("noise", 640, 480), ("edges", 640, 480), ("grad", 1, 100000), ("noise", 100000, 1),
        ("noise", 97, 101), ("edges", 33, 17),
    ]
    targets = {
        (1, 1): [(1, 1), (2, 2), (5, 3), (1, 7), (64, 1)],
        (1, 50): [(1, 25), (1, 7), (3, 50), (2, 100), (1, 1), (4, 3), (32, 64)],
        (50, 1): [(25, 1), (7, 1), (50, 3), (100, 2), (1, 1), (3, 4), (64, 32)],
        (3, 7): [(7, 3), (1, 1), (6, 14), (2, 5), (30, 70), (3, 2)],
        (64, 300): [(96, 320), (32, 150), (60, 299), (7, 11), (64, 100), (200, 290)],
        (300, 64): [(320, 96), (150, 32), (299, 60), (11, 7), (100, 64), (290, 200)],
        (45, 31): [(64, 64), (22, 15), (90, 62), (44, 31), (45, 30), (13, 29), (100, 17)],
        (1100, 20): [(1024, 32), (512, 10), (1100, 21), (3, 3), (1099, 20)],
        (12, 1200): [(10, 1080), (32, 1024), (12, 600), (6, 10), (24, 1199)],
        (640, 480): [(320, 240), (224, 224), (1000, 700), (639, 481), (336, 336), (100, 20), (641, 200)],
        (1, 100000): [(1, 1000), (3, 7), (2, 100001), (1, 1)],
        (100000, 1): [(1000, 1), (7, 3), (50000, 2)],
        (97, 101): [(96, 91), (91, 96), (50, 50), (128, 130), (97, 100), (96, 101)],
        (33, 17): [(17, 33), (66, 34), (16, 8), (33, 16)],
    }
    # plus a random sweep of small sizes (up- and down-scaling, mixed)
    srng = np.random.default_rng(2024)
    for i in range(60):
        w, h = (int(v) for v in srng.integers(1, 90, 2))
        pat = ["noise", "grad", "edges"][i % 3]
        inputs.append((pat, w, h))
        targets[(w, h)] = [tuple(int(v) for v in srng.integers(1, 130, 2)) for _ in range(3)]
    lines = []
    raw = bytearray()
    for pat, w, h in inputs:
        a = pattern(pat, w, h)
        im = Image.fromarray(a, "RGB")
        for (ow, oh) in targets[(w, h)]:
            for fname, f in FILTERS.items():
                if (w, h) in ((1, 100000), (100000, 1)) and fname in ("hamming", "box"):
                    continue  # keep the generator fast; same code path as the others
                out = np.asarray(im.resize((ow, oh), f)).tobytes()
                assert len(out) == ow * oh * 3
                off, ln = (len(raw), len(out)) if len(out) <= RAW_LIMIT else (0, 0)
                if ln:
                    raw += out
                lines.append(f"{pat} {w} {h} {fname} {ow} {oh} {fnv64(out):016x} {off} {ln}")
        print("resize", pat, w, h, file=sys.stderr)
    with open(os.path.join(TD, "resize_cases.txt"), "w") as f:
        f.write(f"# Pillow {PIL.__version__}\n" + "\n".join(lines) + "\n")
    with open(os.path.join(TD, "resize_raw.bin"), "wb") as f:
        f.write(bytes(raw))


# ----------------------------------------------------------------------------------------------
# hand-written encoders for variants Pillow cannot write
# ----------------------------------------------------------------------------------------------
def png_chunk(t: bytes, d: bytes) -> bytes:
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)


def pack_bits(rowvals, depth):
    """rowvals: 1-D array of sample values; returns packed bytes (MSB first)."""
    if depth == 8:
        return bytes(np.asarray(rowvals, dtype=np.uint8))
    if depth == 16:
        return np.asarray(rowvals, dtype=">u2").tobytes()
    per = 8 // depth
    vals = list(int(v) for v in rowvals)
    out = bytearray()
    for i in range(0, len(vals), per):
        b = 0
        chunk = vals[i:i + per]
        for j, v in enumerate(chunk):
            b |= v << (8 - depth * (j + 1))
        out.append(b)
    return bytes(out)


def write_png(path, samples, color_type, depth, plte=None, trns=None, interlace=False, extra=b"", post=b""):
    """samples: array [H, W, C] of integer sample values."""
    h, w = samples.shape[:2]
    ch = samples.shape[2]

    def raw_rows(s):
        out = bytearray()
        for row in s:
            out.append(0)
            out += pack_bits(row.reshape(-1), depth)
        return bytes(out)

    if not interlace:
        data = raw_rows(samples)
    else:
        data = bytearray()
        passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
        for x0, y0, dx, dy in passes:
            sub = samples[y0::dy, x0::dx]
            if sub.shape[0] and sub.shape[1]:
                data += raw_rows(sub.reshape(sub.shape[0], sub.shape[1], ch))
        data = bytes(data)
    ihdr = struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, 1 if interlace else 0)
    png = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + extra
    if plte is not None:
        png += png_chunk(b"PLTE", bytes(plte))
    if trns is not None:
        png += png_chunk(b"tRNS", trns)
    png += png_chunk(b"IDAT", zlib.compress(data, 9)) + post + png_chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(png)


def bmp_file(w, h, bpp, pixel_rows, palette=b"", compression=0, masks=None, topdown=False, hdr_size=40):
    """pixel_rows: bytes of the pixel array as stored (rows already padded, bottom-up unless topdown)."""
    extra = b""
    if masks is not None and hdr_size == 40:
        extra = struct.pack("<III", *masks[:3])
    info = struct.pack("<IiiHHIIiiII", hdr_size, w, -h if topdown else h, 1, bpp, compression,
                       len(pixel_rows), 2835, 2835, len(palette) // 4, 0)
    if hdr_size > 40:
        m = list(masks) if masks is not None else [0, 0, 0, 0]
        info += struct.pack("<IIII", *m) + b"\0" * (hdr_size - 56)
    off = 14 + len(info) + len(extra) + len(palette)
    head = b"BM" + struct.pack("<IHHI", off + len(pixel_rows), 0, 0, off)
    return head + info + extra + palette + pixel_rows


def exif_bytes(orientation, endian="<"):
    ex = Image.Exif()
    ex[0x0112] = orientation
    data = ex.tobytes()
    if endian == ">":
        # big-endian TIFF header written by hand
        ifd = struct.pack(">H", 1) + struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack(">I", 0)
        data = b"Exif\x00\x00MM\x00\x2a" + struct.pack(">I", 8) + ifd
    return data


# ----------------------------------------------------------------------------------------------
# decode cases
# ----------------------------------------------------------------------------------------------
def gen_decode():
    rng = np.random.default_rng(7)
    files = []  # names relative to DEC

    def add(name, data_or_img=None, **save_kw):
        p = os.path.join(DEC, name)
        if isinstance(data_or_img, (bytes, bytearray)):
            with open(p, "wb") as f:
                f.write(data_or_img)
        elif data_or_img is not None:
            data_or_img.save(p, **save_kw)
        files.append(name)

    def noise(w, h, c=3):
        return rng.integers(0, 256, (h, w, c), dtype=np.uint8)

    def smooth(w, h):
        # smooth-ish photo-like content (for lossy codecs) with some edges
        y, x = np.mgrid[0:h, 0:w]
        r = 128 + 100 * np.sin(x / 5.0) * np.cos(y / 7.0)
        g = (x * 255 // max(w - 1, 1))
        b = np.where((x // 8 + y // 8) % 2 == 0, 30, 220)
        a = np.stack([r, g, b], -1) + rng.normal(0, 6, (h, w, 3))
        return np.clip(a, 0, 255).astype(np.uint8)

    rgb = noise(37, 23)
    rgba = noise(37, 23, 4)
    gray = noise(37, 23, 1)[..., 0]

    # ---- PNG via Pillow ----
    add("png_rgb.png", Image.fromarray(rgb, "RGB"))
    add("png_rgba.png", Image.fromarray(rgba, "RGBA"))
    add("png_l.png", Image.fromarray(gray, "L"))
    add("png_la.png", Image.fromarray(noise(37, 23, 2), "LA"))
    add("png_1.png", Image.fromarray(gray > 127).convert("1"))
    pal_im = Image.fromarray(smooth(40, 30)).quantize(200)
    add("png_p.png", pal_im)
    add("png_p_trns.png", pal_im, transparency=5)
    add("png_p_trns_bytes.png", pal_im, transparency=bytes(range(0, 200, 1)))
    p16 = Image.fromarray(smooth(20, 10)).quantize(16)
    add("png_p4.png", p16, bits=4)
    p2 = Image.fromarray(smooth(21, 11)).quantize(4)
    add("png_p2.png", p2, bits=2)
    p1 = Image.fromarray(smooth(19, 9)).quantize(2)
    add("png_p1.png", p1, bits=1)
    add("png_l_trns.png", Image.fromarray(gray, "L"), transparency=gray[0, 0].item())
    add("png_rgb_trns.png", Image.fromarray(rgb, "RGB"), transparency=tuple(int(v) for v in rgb[0, 0]))
    g16 = rng.integers(0, 65536, (23, 37), dtype=np.uint16)
    g16[0, :40] = np.arange(37) * 7  # some small values (< 256) that survive the clip
    g16[1, :] = np.arange(37)
    add("png_i16.png", Image.fromarray(g16))
    # ---- hand-written PNG variants ----
    def hand_png(name, samples, ct, depth, **kw):
        write_png(os.path.join(DEC, name), samples, ct, depth, **kw)
        files.append(name)

    hand_png("png_g2.png", rng.integers(0, 4, (9, 13, 1)), 0, 2)
    hand_png("png_g4.png", rng.integers(0, 16, (9, 13, 1)), 0, 4)
    hand_png("png_g1_hand.png", rng.integers(0, 2, (9, 13, 1)), 0, 1)
    hand_png("png_rgb16.png", rng.integers(0, 65536, (11, 17, 3)), 2, 16)
    hand_png("png_rgba16.png", rng.integers(0, 65536, (11, 17, 4)), 6, 16)
    hand_png("png_la16.png", rng.integers(0, 65536, (11, 17, 2)), 4, 16)
    small16 = rng.integers(0, 600, (11, 17, 1))
    hand_png("png_g16_small.png", small16, 0, 16)
    hand_png("png_g16_trns.png", small16, 0, 16, trns=struct.pack(">H", int(small16[0, 0, 0])))
    hand_png("png_rgb_interlaced.png", rng.integers(0, 256, (19, 23, 3)), 2, 8, interlace=True)
    hand_png("png_p_interlaced.png", rng.integers(0, 7, (19, 23, 1)), 3, 4,
             plte=rng.integers(0, 256, 21).astype(np.uint8).tobytes(), interlace=True)
    hand_png("png_g16_interlaced.png", rng.integers(0, 65536, (9, 10, 1)), 0, 16, interlace=True)
    hand_png("png_1x1.png", np.array([[[10, 20, 30]]]), 2, 8)
    # palette index beyond the PLTE length (Pillow maps it to grey (i, i, i))
    hand_png("png_p_short_plte.png", rng.integers(0, 16, (5, 7, 1)), 3, 8,
             plte=bytes([255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9]))
    # EXIF orientation in PNG: eXIf before IDAT, eXIf after IDAT, XMP
    for o in range(1, 9):
        add(f"png_exif{o}.png", Image.fromarray(noise(5, 3)), exif=exif_bytes(o))
    ex6 = exif_bytes(6)[6:]
    hand_png("png_exif6_after_idat.png", rng.integers(0, 256, (3, 5, 3)), 2, 8, post=png_chunk(b"eXIf", ex6))
    hand_png("png_exif8_be.png", rng.integers(0, 256, (3, 5, 3)), 2, 8,
             extra=png_chunk(b"eXIf", exif_bytes(8, ">")[6:]))
    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           b'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="6"/></rdf:RDF></x:xmpmeta>')
    itxt = b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + xmp
    hand_png("png_xmp6.png", rng.integers(0, 256, (3, 5, 3)), 2, 8, extra=png_chunk(b"iTXt", itxt))
    # ---- JPEG ----
    sm = smooth(45, 31)
    add("jpg_rgb444.jpg", Image.fromarray(sm), quality=90, subsampling=0)
    add("jpg_rgb422.jpg", Image.fromarray(sm), quality=90, subsampling=1)
    add("jpg_rgb420.jpg", Image.fromarray(sm), quality=75, subsampling=2)
    add("jpg_rgb420_q100.jpg", Image.fromarray(smooth(64, 48)), quality=100, subsampling=2)
    add("jpg_prog420.jpg", Image.fromarray(sm), quality=80, progressive=True)
    add("jpg_prog444.jpg", Image.fromarray(smooth(33, 17)), quality=95, progressive=True, subsampling=0)
    add("jpg_noise420.jpg", Image.fromarray(noise(29, 19)), quality=85)
    add("jpg_l.jpg", Image.fromarray(sm[..., 1], "L"), quality=85)
    add("jpg_1x1.jpg", Image.fromarray(np.array([[[200, 10, 60]]], dtype=np.uint8)), quality=90)
    add("jpg_3x7.jpg", Image.fromarray(noise(3, 7)), quality=90)
    add("jpg_cmyk.jpg", Image.fromarray(noise(21, 13, 4), "CMYK"), quality=90)
    add("jpg_restart.jpg", Image.fromarray(smooth(50, 40)), quality=85, restart_marker_blocks=2)
    add("jpg_big.jpg", Image.fromarray(smooth(320, 200)), quality=88)
    add("jpg_420_17x9.jpg", Image.fromarray(noise(17, 9)), quality=92, subsampling=2)
    add("jpg_420_2x50.jpg", Image.fromarray(noise(2, 50)), quality=92, subsampling=2)
    add("jpg_420_4x3.jpg", Image.fromarray(noise(4, 3)), quality=92, subsampling=2)
    add("jpg_422_5x33.jpg", Image.fromarray(noise(5, 33)), quality=92, subsampling=1)
    add("jpg_422_6x7.jpg", Image.fromarray(noise(6, 7)), quality=92, subsampling=1)
    add("jpg_prog_l.jpg", Image.fromarray(sm[..., 0], "L"), quality=85, progressive=True)
    add("jpg_prog_cmyk.jpg", Image.fromarray(noise(19, 11, 4), "CMYK"), quality=90, progressive=True)
    add("jpg_prog_restart.jpg", Image.fromarray(smooth(61, 37)), quality=90, progressive=True,
        restart_marker_rows=1)
    add("jpg_q10.jpg", Image.fromarray(noise(40, 24)), quality=10)
    add("jpg_big_prog.jpg", Image.fromarray(smooth(500, 300)), quality=90, progressive=True)
    xmp_jpg = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><tiff:Orientation>8</tiff:Orientation></x:xmpmeta>')
    add("jpg_xmp8.jpg", Image.fromarray(smooth(9, 5)), quality=90, xmp=xmp_jpg)
    for o in range(1, 9):
        add(f"jpg_exif{o}.jpg", Image.fromarray(smooth(9, 5)), quality=90, exif=exif_bytes(o))
    # ---- WebP ----
    add("webp_lossless_rgb.webp", Image.fromarray(rgb), lossless=True)
    add("webp_lossless_rgba.webp", Image.fromarray(rgba, "RGBA"), lossless=True)
    add("webp_lossy_rgb.webp", Image.fromarray(smooth(45, 31)), quality=80)
    add("webp_lossy_rgba.webp", Image.fromarray(np.dstack([smooth(45, 31), noise(45, 31, 1)]), "RGBA"), quality=80)
    add("webp_exif6.webp", Image.fromarray(noise(5, 3)), lossless=True, exif=exif_bytes(6))
    add("webp_lossy_odd.webp", Image.fromarray(smooth(17, 3)), quality=60)
    anim = [Image.fromarray(smooth(20, 12)), Image.fromarray(noise(20, 12))]
    add("webp_anim.webp", anim[0], save_all=True, append_images=anim[1:], lossless=True)
    # ---- GIF ----
    add("gif_anim.gif", anim[0].quantize(64), save_all=True, append_images=[anim[1].quantize(64)])
    gp = Image.fromarray(smooth(40, 30)).quantize(100)
    add("gif_p.gif", gp)
    add("gif_p_trns.gif", gp, transparency=3)
    add("gif_l.gif", Image.fromarray(gray, "L"))
    add("gif_p_noninterlaced.gif", gp, interlace=False)
    # ---- BMP ----
    add("bmp_rgb.bmp", Image.fromarray(rgb))
    add("bmp_rgba.bmp", Image.fromarray(rgba, "RGBA"))
    add("bmp_p.bmp", Image.fromarray(smooth(40, 30)).quantize(100))
    add("bmp_l.bmp", Image.fromarray(gray, "L"))
    add("bmp_1.bmp", Image.fromarray(gray > 100).convert("1"))
    # 16-bit 555 (no bitfields) and 565 (bitfields), 4-bit palette, top-down, RLE8
    w, h = 13, 5
    px = rng.integers(0, 65536, (h, w), dtype=np.uint32)
    def rows16(v):
        out = bytearray()
        for row in v[::-1]:
            r = struct.pack("<%dH" % w, *[int(t) for t in row])
            out += r + b"\0" * ((-len(r)) % 4)
        return bytes(out)
    add("bmp_555.bmp", bmp_file(w, h, 16, rows16(px & 0x7FFF)))
    add("bmp_565.bmp", bmp_file(w, h, 16, rows16(px), compression=3, masks=(0xF800, 0x07E0, 0x001F)))
    pal16 = b"".join(bytes([int(v) for v in rng.integers(0, 256, 3)]) + b"\0" for _ in range(16))
    idx4 = rng.integers(0, 16, (h, w))
    out = bytearray()
    for row in idx4[::-1]:
        r = pack_bits(row, 4)
        out += r + b"\0" * ((-len(r)) % 4)
    add("bmp_p4.bmp", bmp_file(w, h, 4, bytes(out), palette=pal16))
    out = bytearray()
    rgbtd = noise(w, h)
    for row in rgbtd:
        r = row[:, ::-1].tobytes()
        out += r + b"\0" * ((-len(r)) % 4)
    add("bmp_topdown.bmp", bmp_file(w, h, 24, bytes(out), topdown=True))
    # RLE8: runs and absolute runs
    pal256 = b"".join(bytes([i, (i * 7) & 255, (255 - i)]) + b"\0" for i in range(256))
    rle = bytearray()
    for y in range(h):
        rle += bytes([4, 10 + y, 0, 5, 1, 2, 3, 4, 5, 0, 3, 77, 0, 0])  # 4 run + 5 literal(+pad) + 3 run + 1 more
    rle[-2:] = b"\0\1"
    add("bmp_rle8.bmp", bmp_file(12, h, 8, bytes(rle), palette=pal256, compression=1))
    # ---- TIFF ----
    add("tif_rgb.tif", Image.fromarray(rgb))
    add("tif_rgb_lzw.tif", Image.fromarray(rgb), compression="tiff_lzw")
    add("tif_rgb_deflate.tif", Image.fromarray(rgb), compression="tiff_adobe_deflate")
    add("tif_rgb_packbits.tif", Image.fromarray(rgb), compression="packbits")
    add("tif_rgba.tif", Image.fromarray(rgba, "RGBA"))
    add("tif_l.tif", Image.fromarray(gray, "L"))
    add("tif_1.tif", Image.fromarray(gray > 127).convert("1"))
    add("tif_p.tif", Image.fromarray(smooth(40, 30)).quantize(100))
    add("tif_i16.tif", Image.fromarray(g16))
    add("tif_cmyk.tif", Image.fromarray(noise(11, 7, 4), "CMYK"))
    add("tif_exif6.tif", Image.fromarray(noise(5, 3)), exif=exif_bytes(6))

    # ---- record Pillow's output ----
    lines, raw, bad = [], bytearray(), []
    for name in files:
        p = os.path.join(DEC, name)
        try:
            with Image.open(p) as im:
                mode = im.mode
                out = ImageOps.exif_transpose(im.convert("RGB"))
                a = np.asarray(out)
        except Exception as e:  # noqa: BLE001
            print("Pillow refuses", name, e, file=sys.stderr)
            bad.append(name)
            continue
        data = a.tobytes()
        off, ln = (len(raw), len(data)) if len(data) <= 64 * 1024 else (0, 0)
        if ln:
            raw += data
        lines.append(f"{name} {mode} {out.size[0]} {out.size[1]} {fnv64(data):016x} {off} {ln}")
    with open(os.path.join(TD, "decode_cases.txt"), "w") as f:
        f.write(f"# Pillow {PIL.__version__}\n" + "\n".join(lines) + "\n")
    with open(os.path.join(TD, "decode_raw.bin"), "wb") as f:
        f.write(bytes(raw))
    with open(os.path.join(TD, "bad_cases.txt"), "w") as f:
        f.write("\n".join(bad) + "\n")


ROBUST_BASES = ["png_rgb.png", "png_p.png", "png_rgb_interlaced.png", "jpg_rgb420.jpg", "jpg_prog420.jpg",
                "jpg_restart.jpg", "jpg_rgb444.jpg", "gif_p.gif", "gif_p_trns.gif", "bmp_rgb.bmp", "bmp_p4.bmp",
                "bmp_rle8.bmp", "tif_rgb_lzw.tif", "webp_lossless_rgb.webp", "webp_lossy_rgb.webp"]


def robust_variants(data: bytes):
    """Deterministic corruptions (mirrored in tests/malformed.rs)."""
    n = len(data)
    for f in (5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 98):
        yield f"cut{f}", data[: n * f // 100]
    for k in (1, 2):
        yield f"cutend{k}", data[: n - k]
    for k in range(1, 16):
        p = n * k // 16
        b = bytearray(data)
        b[p] ^= 0x55
        yield f"flip{k}", bytes(b)


def gen_robust():
    lines = []
    for name in ROBUST_BASES:
        data = open(os.path.join(DEC, name), "rb").read()
        for tag, v in robust_variants(data):
            try:
                import warnings
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    with Image.open(io.BytesIO(v)) as im:
                        out = ImageOps.exif_transpose(im.convert("RGB"))
                        res = f"{out.size[0]} {out.size[1]} {fnv64(np.asarray(out).tobytes()):016x}"
            except Exception as e:  # noqa: BLE001
                res = "ERR " + type(e).__name__
            lines.append(f"{name} {tag} {res}")
    with open(os.path.join(TD, "robust_cases.txt"), "w") as f:
        f.write(f"# Pillow {PIL.__version__}: base variant (w h hash | ERR exception)\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    print("Pillow", PIL.__version__, file=sys.stderr)
    what = sys.argv[1:] or ["resize", "decode", "robust"]
    if "decode" in what:
        gen_decode()
    if "resize" in what:
        gen_resize()
    if "robust" in what:
        gen_robust()
