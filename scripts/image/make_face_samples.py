#!/usr/bin/env python3
"""Writes the committed face samples (samples/image/face-*) and their labelled
set samples/eval/image-faces.jsonl, deterministically.

Sources (all redistributable):
  * authentic-face-hopper.jpg: Grace Hopper, US Navy photograph (public
    domain), as shipped in the Debian package facedetect 0.1-3+b4
    (`/usr/share/doc/facedetect/examples/grace_hopper_512x512.jpg`), fetched
    with `apt-get download` and pinned by sha256 below;
  * authentic-face-astronaut.jpg: Eileen Collins, NASA photograph (public
    domain), from python3-skimage (the same picture as authentic-astronaut.jpg,
    cropped on the face);
  * generated-face-*.jpg: tiles of the SFHQ-T2I figures (FLUX.1-dev, SDXL) and
    of the SFHQ StyleGAN2 variability figures (SelfishGene/SFHQ-T2I-dataset and
    SelfishGene/SFHQ-dataset, both MIT: "Copyright (c) 2022-2024 David Beniaguev",
    licence texts in samples/image/LICENSE-SFHQ.txt), taken from the TEST split of
    scripts/image/make_face_sets.py (never trained or calibrated on) in the
    collection written by scripts/image/collect_faces.py, each pinned by the
    sha256 of the tile.
Each file is re-saved as JPEG quality 90 without metadata, like the training
channel does.

Usage: make_face_samples.py [--faces .candor/data/image/faces] [--out samples]
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

FACEDETECT = ("facedetect", "0.1-3+b4", "usr/share/doc/facedetect/examples/grace_hopper_512x512.jpg")
# name, path in the face collection, sha256 of the tile, group
TILES = [
    ("generated-face-flux", "sfhq-t2i/flux-dev/textual_search_2_Hair_Color_top_10_matches_r05c02.png",
     "158488e643a7af9e3a28747e1383f505035a77f03f8229b940b0976d56441f48", "flux-dev"),
    ("generated-face-sdxl", "sfhq-t2i/sdxl/textual_search_2_Facial_Hair_top_10_matches_r04c09.png",
     "13e2a5f072f221ce334275b6632aa903a3d189211bbe2c039e4b5c2aca003134", "sdxl"),
    ("generated-face-stylegan2", "sfhq-stylegan2/ethnicity_r00c10.png",
     "057967b7a00fd477e4b7c8616ec3f240ca3ca7409b15a720da9053841c169a45", "stylegan2"),
]
HOPPER_SHA256 = "ee9d775343587100337da3bd24f9f9daf49756132362f09ca3ac9b676c4341b3"


def save_jpeg(im: Image.Image, path: Path) -> None:
    buf = io.BytesIO()
    im.convert("RGB").save(buf, "JPEG", quality=90)
    path.write_bytes(buf.getvalue())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--faces", type=Path, default=Path(".candor/data/image/faces"))
    ap.add_argument("--out", type=Path, default=Path("samples"))
    args = ap.parse_args()
    out = args.out / "image"
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        name, version, member = FACEDETECT
        subprocess.run(["apt-get", "download", "-q", f"{name}={version}"], cwd=tmp, check=True,
                       capture_output=True)
        deb = next(Path(tmp).glob("facedetect_*.deb"))
        subprocess.run(["dpkg-deb", "-x", str(deb), tmp], check=True)
        got = hashlib.sha256((Path(tmp) / member).read_bytes()).hexdigest()
        if got != HOPPER_SHA256:
            print(f"{member}: sha256 {got} differs from the pinned {HOPPER_SHA256}", file=sys.stderr)
            return 1
        hopper = Image.open(Path(tmp) / member)
        hopper.load()
    save_jpeg(hopper, out / "authentic-face-hopper.jpg")
    rows.append(("authentic-face-hopper.jpg", "authentic", "real/photo"))
    astro = Image.open(out / "authentic-astronaut.jpg")
    save_jpeg(astro.crop((40, 0, 300, 260)), out / "authentic-face-astronaut.jpg")
    rows.append(("authentic-face-astronaut.jpg", "authentic", "real/photo"))
    for name, rel, sha, group in TILES:
        src = args.faces / rel
        if not src.is_file():
            print(f"missing {src}: run scripts/image/collect_faces.py first", file=sys.stderr)
            return 1
        if hashlib.sha256(src.read_bytes()).hexdigest() != sha:
            print(f"{src}: sha256 differs from the pinned tile", file=sys.stderr)
            return 1
        save_jpeg(Image.open(src), out / f"{name}.jpg")
        rows.append((f"{name}.jpg", "manipulated", f"generated/{group}"))
    ev = args.out / "eval" / "image-faces.jsonl"
    with open(ev, "w") as f:
        for file, label, group in rows:
            f.write(json.dumps({"path": f"../image/{file}", "label": label, "group": group,
                                "split": "test"}) + "\n")
    for file, _, _ in rows:
        p = out / file
        print(f"{hashlib.sha256(p.read_bytes()).hexdigest()[:12]}  {p.stat().st_size:>7}  {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
