#!/usr/bin/env python3
"""Builds the image detector's face sets (version 5): real photographs vs
generated, swapped, edited and rendered faces, every file passed through
the same random channel so that format, size and compression cannot predict
the label.

Input:  .candor/data/image/faces/manifest.jsonl and its files, written by
        scripts/image/collect_faces.py from public repository snapshots (every
        row names its source repo@commit, path, licence, family, generator).
Output: .candor/data/image/v5/
          img/<id>.<jpg|png>   the re-encoded files
          manifest.jsonl       candor eval manifest: path, label, group, split
          meta.jsonl           per row: id, family, generator, source, role,
                               split, format, width, height, bytes (the
                               format-only baseline reads these)

The channel (drawn per file from a hash of its id, the same for both
classes): a crop to a random aspect ratio (3:4 .. 4:3), a scale so that the longer side is log-uniform in 224..1024 px
(Lanczos), then JPEG, no metadata, at the quality (30..97) whose file comes
closest to a random size of 0.06..0.30 bytes per pixel: so the format, the
dimensions and the file size are drawn independently of the label and of the
content.

Roles:
  * fit: split train 60 / calib 20 / test 20 by a hash of a group key (the
    person for LFW, the studio and stock portraits and the LFW face swaps,
    whose target photo names the person; the file otherwise), so no identity
    straddles splits; the professional portraits' training rows are repeated
    through fresh draws of the channel (REPEAT_TRAIN);
  * holdout: test only, never trained or calibrated on: the ChatGPT and
    Gemini photos (the only modern closed generators in the collection);
  * excluded: the shared evaluation sources (serengil/deepface,
    vladmandic/human), which ../shared/eval/images already holds and which
    stay evaluation-only.
Caps (by hash) keep LFW, UTKFace, the web crops and the LFW face swaps from
dominating.

Usage: python3 scripts/image/make_face_sets.py [--root .candor/data/image]
(needs Pillow: the venv of scripts/image/build-image.sh has it).
"""
import argparse
import hashlib
import io
import json
import math
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

from PIL import Image

EXCLUDED_SOURCES = ("serengil/deepface", "vladmandic/human")
HOLDOUT_GENERATORS = ("gpt-image", "gemini-image")
CAPS = {
    "lfw": 900,
    "utkface": 700,
    "web-face-crop": 600,
    "rff-photo": 600,
    "faceswap-3dmm": 600,
    "photoshop-composite": 600,
}
# Renamed families: the Yonsei composites are manual Photoshop splices.
FAMILY = {"photoshop-composite": "edit"}
SPLITS = (("train", 0.6), ("calib", 0.8), ("test", 1.0))


def h(s: str) -> int:
    return int.from_bytes(hashlib.sha256(s.encode()).digest()[:8], "big")


def unit(s: str) -> float:
    return h(s) / 2.0**64


# Generators whose rows name the person (identity): split by person.
BY_IDENTITY = ("lfw", "studio-portrait", "stock-portrait", "expression-photo")
# Real professional portraits (version 5) are few beside LFW and the web crops: their
# training rows are repeated, each copy through its own draw of the channel (another crop,
# size and JPEG), so that they weigh more without one file's bytes being seen twice.
# Calibration and test rows are never repeated.
REPEAT_TRAIN = {"studio-portrait": 3, "stock-portrait": 4, "press-headshot": 3, "beauty-photo": 4}


def group_key(r: dict) -> str:
    if r["generator"] in BY_IDENTITY and r.get("identity"):
        return "person:" + r["identity"]
    if r["generator"] == "faceswap-3dmm":
        m = re.search(r"LFW (\S+) \(signature", r.get("note") or "")
        if m:
            return "person:" + m.group(1)
    return "file:" + r["sha256"]


def split_of(key: str) -> str:
    u = unit("split:" + key)
    for name, edge in SPLITS:
        if u < edge:
            return name
    return "test"


def channel(img: Image.Image, key: str) -> tuple[bytes, str]:
    """The same random re-encoding for every file: a random size, then JPEG
    whose quality is searched so that the file has a random number of bytes
    per pixel. The file's size then says nothing about its content (a
    generated face is smoother than a photograph and would otherwise come
    out smaller at the same quality)."""
    img = img.convert("RGB")
    w, hgt = img.size
    # A random aspect ratio (log-uniform in 3:4 .. 4:3), by cropping: without
    # it the shape says "square, so generated" (98% of the generated faces
    # and 79% of the photographs were square in version 3). Centred across,
    # and 40/60 top/bottom down, so that a portrait keeps the head.
    aspect = math.exp((unit("aspect:" + key) * 2 - 1) * math.log(4 / 3))
    if w / hgt > aspect:
        cw = max(1, round(hgt * aspect))
        x0 = (w - cw) // 2
        img = img.crop((x0, 0, x0 + cw, hgt))
    else:
        ch = max(1, round(w / aspect))
        y0 = round((hgt - ch) * 0.4)
        img = img.crop((0, y0, w, y0 + ch))
    w, hgt = img.size
    side = math.exp(math.log(224) + unit("side:" + key) * (math.log(1024) - math.log(224)))
    s = side / max(w, hgt)
    nw, nh = max(1, round(w * s)), max(1, round(hgt * s))
    if (nw, nh) != (w, hgt):
        img = img.resize((nw, nh), Image.LANCZOS)
    target = (0.06 + unit("bpp:" + key) * 0.24) * nw * nh  # bytes
    best = None
    lo, hi = 30, 97
    while lo <= hi:
        q = (lo + hi) // 2
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=q)
        data = buf.getvalue()
        if best is None or abs(len(data) - target) < abs(len(best) - target):
            best = data
        if len(data) < target:
            lo = q + 1
        else:
            hi = q - 1
    return best, "jpg"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default=".candor/data/image", type=Path)
    args = ap.parse_args()
    src_dir = args.root / "faces"
    rows = [json.loads(line) for line in (src_dir / "manifest.jsonl").open()]
    out = args.root / "v5"
    (out / "img").mkdir(parents=True, exist_ok=True)

    buckets = defaultdict(list)
    for r in rows:
        if r["source"].split("@")[0] in EXCLUDED_SOURCES:
            continue
        buckets[r["generator"]].append(r)
    chosen = []
    for gen, rs in sorted(buckets.items()):
        cap = CAPS.get(gen)
        if cap and len(rs) > cap:
            # LFW: whole people, so that a person is in or out.
            if gen == "lfw":
                people = sorted({r["identity"] for r in rs}, key=lambda p: h("pick:" + p))
                keep, n = set(), 0
                for p in people:
                    if n >= cap:
                        break
                    keep.add(p)
                    n += sum(1 for r in rs if r["identity"] == p)
                rs = [r for r in rs if r["identity"] in keep]
            else:
                rs = sorted(rs, key=lambda r: h("pick:" + r["sha256"]))[:cap]
        chosen.extend(rs)
    chosen.sort(key=lambda r: r["sha256"])

    # (row, channel key, role, split): the file's sha256 as key, and for a repeated
    # training row, more keys.
    jobs = []
    for r in chosen:
        role = "holdout" if r["generator"] in HOLDOUT_GENERATORS else "fit"
        split = "test" if role == "holdout" else split_of(group_key(r))
        jobs.append((r, r["sha256"], role, split))
        if split == "train":
            for k in range(1, REPEAT_TRAIN.get(r["generator"], 1)):
                copy = hashlib.sha256(f"{r['sha256']}:copy{k}".encode()).hexdigest()
                jobs.append((r, copy, role, split))

    counts = Counter()
    with (out / "manifest.jsonl").open("w") as mf, (out / "meta.jsonl").open("w") as xf:
        for r, key, role, split in jobs:
            family = FAMILY.get(r["generator"], r["family"])
            try:
                with Image.open(src_dir / r["path"]) as im:
                    data, ext = channel(im, key)
            except Exception as e:  # a broken source file is skipped, and said
                print(f"skip {r['path']}: {e}", file=sys.stderr)
                continue
            name = f"img/{key[:20]}.{ext}"
            (out / name).write_bytes(data)
            with Image.open(io.BytesIO(data)) as im2:
                w, hgt = im2.size
            label = "authentic" if r["label"] == "authentic" else "manipulated"
            mf.write(json.dumps({
                "path": name,
                "label": label,
                "group": f"{family}/{r['generator']}",
                "split": split,
                "source": r["source"],
            }) + "\n")
            xf.write(json.dumps({
                "id": key[:20],
                "path": name,
                "family": family,
                "generator": r["generator"],
                "source": r["source"],
                "licence": r.get("licence"),
                "identity": r.get("identity"),
                "role": role,
                "split": split,
                "group_key": group_key(r),
                "format": "jpeg" if ext == "jpg" else "png",
                "width": w,
                "height": hgt,
                "bytes": len(data),
                "orig_width": r.get("width"),
                "orig_height": r.get("height"),
                "sha256": r["sha256"],
            }) + "\n")
            counts[(family, split)] += 1
    fams = sorted({f for f, _ in counts})
    print(f"{sum(counts.values())} images -> {out}")
    print("family      " + "  ".join(f"{s:>6}" for s, _ in SPLITS))
    for fam in fams:
        print(f"{fam:<10}  " + "  ".join(f"{counts[(fam, s)]:>6}" for s, _ in SPLITS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
