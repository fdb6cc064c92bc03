#!/usr/bin/env python3
"""Writes the committed face samples (samples/image/authentic-face-*) and their labelled
set samples/eval/image-faces.jsonl, deterministically.

Sources (all redistributable):
  * authentic-face-hopper.jpg: Grace Hopper, US Navy photograph (public
    domain), as shipped in the Debian package facedetect 0.1-3+b4
    (`/usr/share/doc/facedetect/examples/grace_hopper_512x512.jpg`), fetched
    with `apt-get download` and pinned by sha256 below;
  * authentic-face-astronaut.jpg: Eileen Collins, NASA photograph (public
    domain), from python3-skimage (the same picture as authentic-astronaut.jpg,
    cropped on the face);
No generated face is committed: data fetched from repository snapshots is
never committed, so the tests take generated people from ../shared/eval/images
when it is present.
Each file is re-saved as JPEG quality 90 without metadata, like the training
channel does.

Usage: make_face_samples.py [--out samples]
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
HOPPER_SHA256 = "ee9d775343587100337da3bd24f9f9daf49756132362f09ca3ac9b676c4341b3"


def save_jpeg(im: Image.Image, path: Path) -> None:
    buf = io.BytesIO()
    im.convert("RGB").save(buf, "JPEG", quality=90)
    path.write_bytes(buf.getvalue())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
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
