#!/usr/bin/env python3
"""Builds the image detector's training/calibration/test data, deterministically.

Authentic pictures: the photographs shipped in two pinned Debian packages
(opencv-doc 4.6.0+dfsg-12: examples/ and tutorial figures; python3-skimage 0.19.3-8:
skimage/data), kept when they look like photographs (at least 200 px a side, few flat
4x4 blocks, many colours). The OpenCV ELA demo pair is left out (it is a test fixture).

Each source picture gives up to 10 crops (256-512 px, random offset, never resized;
crops of one picture may overlap, they stay in one split).
Every crop is saved once as it is (authentic) and three times manipulated, each time by
a different edit, then saved like the authentic ones (JPEG quality 70-95 or PNG, chosen
independently of the label, so the file format says nothing about the label):

  splice      a rectangle/ellipse from another picture of the same split (recompressed
              or rescaled first), pasted with a feathered edge
  copy_move   a region of the same picture copied elsewhere (optionally rescaled)
  resample    a region rescaled in place (factor 0.7-0.9 or 1.15-1.5)
  self_blend  the SBI idea: a jittered copy of the picture (colour, scale, shift, blur)
              blended back through a feathered ellipse
  upsample    the whole crop downscaled by 2 and upscaled again (generator-decoder trace)
  double_jpeg the crop JPEG-compressed at quality 50-85, then saved at a higher quality
  warp        a local liquify warp (smooth displacement) -- TEST SPLIT ONLY (held out)

Each manipulated file has a mask <stem>.mask.png (0-255: how much each pixel took from
the edit; whole-image edits are all 255), the pixel-level labels of the forgery CNN.

Splits are by source picture family (file stem without trailing digits/L/R/left/right),
60/20/20 by sha256 of the family name. Writes <out>/files/*.{jpg,png} and
<out>/manifest.jsonl (path, label, group, split, source, edit), <out>/manifest-test.jsonl.

Usage: build_image_data.py --debs DIR --out DIR
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

EDITS_TRAIN = ["splice", "copy_move", "resample", "self_blend", "upsample", "double_jpeg"]
HELD_OUT = ["warp"]
SEED = 20261125


def family(path: Path) -> str:
    s = path.stem.lower()
    s = re.sub(r"(_left|_right|_original|_modified)$", "", s)
    s = re.sub(r"[lr]$", "", s) if re.search(r"[a-z]{3,}[lr]$", s) else s
    return re.sub(r"[\d_\-]+$", "", s) or s


def split_of(fam: str) -> str:
    h = int(hashlib.sha256(fam.encode()).hexdigest()[:8], 16) % 100
    return "train" if h < 60 else ("calib" if h < 80 else "test")


def rng_for(*parts) -> np.random.Generator:
    h = hashlib.sha256(("|".join(map(str, parts)) + f"|{SEED}").encode()).digest()
    return np.random.default_rng(int.from_bytes(h[:8], "little"))


def looks_like_photo(a: np.ndarray) -> bool:
    g = a.mean(axis=2)
    h, w = g.shape
    b = g[: h // 4 * 4, : w // 4 * 4].reshape(h // 4, 4, w // 4, 4).std(axis=(1, 3))
    flat = float((b < 0.5).mean())
    ncol = len(np.unique(a.reshape(-1, 3)[::7], axis=0))
    return flat < 0.15 and ncol > 3000


def sources(root: Path) -> list[Path]:
    pats = [
        "usr/share/doc/opencv-doc/examples/**/*.jpg",
        "usr/share/doc/opencv-doc/examples/**/*.png",
        "usr/share/doc/opencv-doc/opencv4/html/*.jpg",
        "usr/lib/python3/dist-packages/skimage/data/*.png",
        "usr/lib/python3/dist-packages/skimage/data/*.jpg",
    ]
    out = []
    for p in pats:
        out += sorted(root.glob(p))
    return [p for p in out if not p.name.startswith("ela_")]


def jpeg_roundtrip(a: np.ndarray, q: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "JPEG", quality=int(q))
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def feather_mask(h: int, w: int, rng, ellipse: bool, frac=(0.2, 0.45)) -> np.ndarray:
    rh = int(h * rng.uniform(*frac))
    rw = int(w * rng.uniform(*frac))
    y0 = int(rng.integers(0, h - rh))
    x0 = int(rng.integers(0, w - rw))
    m = np.zeros((h, w), np.float32)
    if ellipse:
        yy, xx = np.mgrid[0:h, 0:w]
        cy, cx = y0 + rh / 2, x0 + rw / 2
        m[((yy - cy) / (rh / 2)) ** 2 + ((xx - cx) / (rw / 2)) ** 2 <= 1] = 1
    else:
        m[y0 : y0 + rh, x0 : x0 + rw] = 1
    r = float(rng.uniform(0, 3))
    if r > 0.3:
        m = np.asarray(Image.fromarray((m * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(r))) / 255.0
    return m.astype(np.float32), (y0, x0, rh, rw)


def blend(a: np.ndarray, b: np.ndarray, m: np.ndarray) -> np.ndarray:
    out = a.astype(np.float32) * (1 - m[..., None]) + b.astype(np.float32) * m[..., None]
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def resize(a: np.ndarray, w: int, h: int, rng) -> np.ndarray:
    f = [Image.Resampling.BILINEAR, Image.Resampling.BICUBIC, Image.Resampling.LANCZOS][int(rng.integers(0, 3))]
    return np.asarray(Image.fromarray(a).resize((max(1, w), max(1, h)), f))


def edit(kind: str, a: np.ndarray, donor: np.ndarray, rng) -> np.ndarray:
    h, w, _ = a.shape
    if kind == "splice":
        d = donor
        if rng.random() < 0.5:
            d = jpeg_roundtrip(d, int(rng.integers(50, 96)))
        else:
            f = rng.uniform(0.7, 1.4)
            d = resize(d, int(d.shape[1] * f), int(d.shape[0] * f), rng)
        d = np.asarray(Image.fromarray(d).resize((w, h))) if d.shape[:2] != (h, w) else d
        # Take the donor patch from a random place.
        dy, dx = int(rng.integers(-h // 4, h // 4)), int(rng.integers(-w // 4, w // 4))
        d = np.roll(d, (dy, dx), axis=(0, 1))
        m, _ = feather_mask(h, w, rng, rng.random() < 0.5)
        return blend(a, d, m), m
    if kind == "copy_move":
        m, (y0, x0, rh, rw) = feather_mask(h, w, rng, rng.random() < 0.5)
        dy = int(rng.integers(-y0, h - rh - y0 + 1))
        dx = int(rng.integers(-x0, w - rw - x0 + 1))
        src = np.roll(a, (dy, dx), axis=(0, 1))
        m = np.roll(m, (dy, dx), axis=(0, 1))
        return blend(a, src, m), m
    if kind == "resample":
        m, (y0, x0, rh, rw) = feather_mask(h, w, rng, rng.random() < 0.5, frac=(0.3, 0.5))
        f = rng.uniform(0.7, 0.9) if rng.random() < 0.5 else rng.uniform(1.15, 1.5)
        big = resize(a, int(w * f), int(h * f), rng)
        cy, cx = int((y0 + rh / 2) * f - (y0 + rh / 2)), int((x0 + rw / 2) * f - (x0 + rw / 2))
        canvas = a.copy()
        ys, xs = max(cy, 0), max(cx, 0)
        part = big[ys : ys + h, xs : xs + w]
        canvas[: part.shape[0], : part.shape[1]] = part
        return blend(a, canvas, m), m
    if kind == "self_blend":
        b = a.astype(np.float32)
        b = b * rng.uniform(0.85, 1.15) + rng.uniform(-15, 15)
        b = b + rng.uniform(-10, 10, size=3)[None, None, :]
        b = np.clip(b, 0, 255).astype(np.uint8)
        f = rng.uniform(0.95, 1.05)
        b = resize(b, int(w * f), int(h * f), rng)
        b = np.asarray(Image.fromarray(b).resize((w, h))) if b.shape[:2] != (h, w) else b
        b = np.roll(b, (int(rng.integers(-4, 5)), int(rng.integers(-4, 5))), axis=(0, 1))
        if rng.random() < 0.5:
            b = np.asarray(Image.fromarray(b).filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 1.5)))))
        m, _ = feather_mask(h, w, rng, True, frac=(0.35, 0.6))
        m = m * float(rng.uniform(0.5, 1.0))
        return blend(a, b, m), m
    if kind == "upsample":
        small = resize(a, w // 2, h // 2, rng)
        f = [Image.Resampling.NEAREST, Image.Resampling.BILINEAR, Image.Resampling.BICUBIC][int(rng.integers(0, 3))]
        return np.asarray(Image.fromarray(small).resize((w // 2 * 2, h // 2 * 2), f)), np.ones((h, w), np.float32)
    if kind == "double_jpeg":
        return jpeg_roundtrip(a, int(rng.integers(50, 86))), np.ones((h, w), np.float32)
    if kind == "warp":
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        cy, cx = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w
        s = rng.uniform(0.08, 0.2) * min(h, w)
        amp = rng.uniform(3, 10)
        g = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))
        ang = rng.uniform(0, 2 * np.pi)
        sy, sx = yy - amp * g * np.sin(ang), xx - amp * g * np.cos(ang)
        y0 = np.clip(np.floor(sy).astype(int), 0, h - 2)
        x0 = np.clip(np.floor(sx).astype(int), 0, w - 2)
        fy, fx = np.clip(sy - y0, 0, 1)[..., None], np.clip(sx - x0, 0, 1)[..., None]
        af = a.astype(np.float32)
        out = (af[y0, x0] * (1 - fy) * (1 - fx) + af[y0 + 1, x0] * fy * (1 - fx)
               + af[y0, x0 + 1] * (1 - fy) * fx + af[y0 + 1, x0 + 1] * fy * fx)
        m = np.clip(amp * g / 2.0, 0, 1).astype(np.float32)
        return np.clip(np.round(out), 0, 255).astype(np.uint8), m
    raise ValueError(kind)


def save(a: np.ndarray, path_stem: Path, rng, force_jpeg=False) -> Path:
    if force_jpeg or rng.random() < 0.7:
        p = path_stem.with_suffix(".jpg")
        q = int(rng.integers(88, 99)) if force_jpeg else int(rng.integers(70, 96))
        Image.fromarray(a).save(p, "JPEG", quality=q)
    else:
        p = path_stem.with_suffix(".png")
        Image.fromarray(a).save(p, "PNG", optimize=False)
    return p


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--debs", type=Path, required=True, help="folder holding the pinned .deb files")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    out = args.out
    (out / "files").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for deb in sorted(args.debs.glob("*.deb")):
            subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
        pics = []
        seen = set()
        for p in sources(root):
            try:
                im = Image.open(p)
                im.load()
                a = np.asarray(im.convert("RGB"))
            except Exception:
                continue
            if min(a.shape[:2]) < 200:
                continue
            h = hashlib.sha256(a.tobytes()).hexdigest()
            if h in seen or not looks_like_photo(a):
                continue
            seen.add(h)
            rel = str(p.relative_to(root))
            pics.append((rel, a, family(p), split_of(family(p))))
    print(f"{len(pics)} source pictures")
    crops = []
    for rel, a, fam, split in pics:
        rng = rng_for("crops", rel)
        h, w, _ = a.shape
        for k in range(10):
            s = int(min(rng.integers(256, 513), h, w))
            s -= s % 2
            if k > 0 and (h * w) < (k + 1) * 0.4 * s * s:
                break
            y0, x0 = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
            crops.append((f"{Path(rel).stem}-{hashlib.sha256(rel.encode()).hexdigest()[:6]}-{k}", a[y0:y0 + s, x0:x0 + s].copy(), rel, split))
    by_split = {}
    for c in crops:
        by_split.setdefault(c[3], []).append(c)
    rows = []
    counter = 0
    for cid, a, rel, split in crops:
        rng = rng_for("item", cid)
        p = save(a, out / "files" / f"{cid}-authentic", rng)
        rows.append({"path": f"files/{p.name}", "label": "authentic", "group": "authentic", "split": split, "source": rel, "edit": "none"})
        edits = EDITS_TRAIN + (HELD_OUT if split == "test" else [])
        choice = [edits[(counter + j * 2) % len(edits)] for j in range(3)]
        counter += 1
        pool = by_split[split]
        for kind in choice:
            donor = pool[int(rng.integers(0, len(pool)))][1]
            if donor is a:
                donor = pool[(pool.index(next(c for c in pool if c[1] is a)) + 1) % len(pool)][1]
            b, m = edit(kind, a, donor, rng)
            p = save(b, out / "files" / f"{cid}-{kind}", rng, force_jpeg=(kind == "double_jpeg"))
            Image.fromarray(np.clip(np.round(m * 255), 0, 255).astype(np.uint8)).save(
                out / "files" / f"{cid}-{kind}.mask.png", "PNG")
            rows.append({"path": f"files/{p.name}", "label": "manipulated", "group": kind, "split": split, "source": rel, "edit": kind})
    with open(out / "manifest.jsonl", "w") as f:
        for r in rows:
            f.write(json.dumps(r, sort_keys=True) + "\n")
    with open(out / "manifest-test.jsonl", "w") as f:
        for r in rows:
            if r["split"] == "test":
                f.write(json.dumps(r, sort_keys=True) + "\n")
    from collections import Counter
    print(Counter((r["split"], r["group"]) for r in rows))
    print(f"{len(rows)} files -> {out}")


if __name__ == "__main__":
    main()
