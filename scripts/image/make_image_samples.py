#!/usr/bin/env python3
"""Writes samples/image/ and samples/eval/image.jsonl, deterministically.

Sources: public-domain / CC0 photographs shipped in the Debian package python3-skimage
0.19.3-8 (skimage/data): astronaut.png (NASA, public domain), chelsea.png and
coffee.png (CC0), hubble_deep_field.jpg (NASA/ESA, public domain), rocket.jpg
(SpaceX, CC0). Manipulated samples are made with the edits of
scripts/image/build_image_data.py (the same code that makes the training data);
two files declare AI generation in their metadata (a PNG with an A1111
`parameters` chunk, a JPEG whose XMP says trainedAlgorithmicMedia) -- made here,
no generator involved.

Usage: make_image_samples.py --debs .candor/cache/image [--out samples]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

sys.path.insert(0, str(Path(__file__).resolve().parent))
import build_image_data as b  # noqa: E402

XMP = """<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description rdf:about="" xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
 Iptc4xmpExt:DigitalSourceType="http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"/>
</rdf:RDF></x:xmpmeta>"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--debs", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=Path("samples"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        deb = next(args.debs.glob("python3-skimage_*.deb"))
        subprocess.run(["dpkg-deb", "-x", str(deb), tmp], check=True)
        d = Path(tmp) / "usr/lib/python3/dist-packages/skimage/data"
        pic = {n: np.asarray(Image.open(d / f).convert("RGB")) for n, f in [
            ("astronaut", "astronaut.png"), ("chelsea", "chelsea.png"), ("coffee", "coffee.png"),
            ("hubble", "hubble_deep_field.jpg"), ("rocket", "rocket.jpg")]}
    # 384 px crops (the rocket is narrower: 384 x 427).
    crops = {
        "astronaut": pic["astronaut"][40:424, 64:448],
        "chelsea": pic["chelsea"][0:300, 40:424] if pic["chelsea"].shape[1] >= 424 else pic["chelsea"],
        "coffee": pic["coffee"][8:392, 100:484],
        "hubble": pic["hubble"][200:584, 300:684],
        "rocket": pic["rocket"][100:484, 0:384] if pic["rocket"].shape[1] >= 384 else pic["rocket"][:384],
    }
    out = args.out / "image"
    out.mkdir(parents=True, exist_ok=True)
    rows = []

    def put(name: str, a: np.ndarray, label: str, group: str, fmt: str, q: int = 90, **kw):
        p = out / f"{name}.{fmt}"
        im = Image.fromarray(a)
        if fmt == "jpg":
            im.save(p, "JPEG", quality=q, **kw)
        else:
            im.save(p, "PNG", **kw)
        rows.append({"path": f"../image/{p.name}", "label": label, "group": group, "split": "test"})

    put("authentic-astronaut", crops["astronaut"], "authentic", "photo", "jpg", 90)
    put("authentic-chelsea", crops["chelsea"], "authentic", "photo", "jpg", 85)
    put("authentic-coffee", crops["coffee"], "authentic", "photo", "png")
    put("authentic-hubble", crops["hubble"], "authentic", "photo", "jpg", 92)
    put("authentic-rocket", crops["rocket"], "authentic", "photo", "jpg", 88)

    rng = b.rng_for("samples")
    a = crops["astronaut"]
    # Self-blend over the face (the SBI idea), ellipse placed on the face.
    h, w, _ = a.shape
    yy, xx = np.mgrid[0:h, 0:w]
    m = ((((yy - 105) / 75.0) ** 2 + ((xx - 165) / 55.0) ** 2) <= 1).astype(np.float32)
    m = np.asarray(Image.fromarray((m * 255).astype(np.uint8)).filter(b.ImageFilter.GaussianBlur(3))) / 255.0
    jit = np.clip(a.astype(np.float32) * 1.08 + 6, 0, 255).astype(np.uint8)
    jit = np.asarray(Image.fromarray(jit).resize((int(w * 1.03), int(h * 1.03)), Image.Resampling.BILINEAR))[:h, :w]
    put("manipulated-astronaut-selfblend", b.blend(a, jit, m), "manipulated", "self_blend", "jpg", 90)
    put("manipulated-chelsea-splice", b.edit("splice", crops["chelsea"], crops["coffee"][:300], rng)[0],
        "manipulated", "splice", "jpg", 85)
    put("manipulated-hubble-copymove", b.edit("copy_move", crops["hubble"], crops["hubble"], rng)[0],
        "manipulated", "copy_move", "jpg", 92)
    put("manipulated-coffee-upsample", b.edit("upsample", crops["coffee"], crops["coffee"], rng)[0],
        "manipulated", "upsample", "png")
    put("manipulated-rocket-doublejpeg", b.edit("double_jpeg", crops["rocket"], crops["rocket"], rng)[0],
        "manipulated", "double_jpeg", "jpg", 95)
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "studio headshot of a software engineer, neutral background\n"
                  "Steps: 30, Sampler: DPM++ 2M, CFG scale: 7, Seed: 1234, Size: 384x384, Model: sd_xl_base_1.0")
    put("declared-ai-a1111", crops["coffee"], "manipulated", "ai_declared", "png", pnginfo=info)
    put("declared-ai-xmp", crops["chelsea"], "manipulated", "ai_declared", "jpg", 90, xmp=XMP.encode())
    ev = args.out / "eval" / "image.jsonl"
    with open(ev, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    total = sum((out / Path(r["path"]).name).stat().st_size for r in rows)
    print(f"{len(rows)} samples, {total / 1e6:.2f} MB -> {out}, {ev}")


if __name__ == "__main__":
    main()
