#!/usr/bin/env python3
"""Writes the image evaluation manifest over the third-party photos in
../shared/eval/images (evaluation only; nothing is copied into the repo):

  .candor/data/image/eval-shared.jsonl

* authentic: deepface press headshots, human-samples real photos
  (person-*, stock-*, group-*, solvay1927), and the C2PA public test JPEGs
  (real photos, some edited, with content credentials);
* manipulated: human-samples synthetic renders (cgi-*, ai-*).

`group` is the source folder (and for human-samples real vs cgi). Paths are
absolute-free: relative to the manifest, through the `shared` argument.
Deterministic (sorted). Usage: make_eval_manifest.py [--shared ../shared]
"""
import argparse
import json
import os


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", default="../shared")
    ap.add_argument("--out", default=".candor/data/image/eval-shared.jsonl")
    a = ap.parse_args()
    root = os.path.join(a.shared, "eval", "images")
    if not os.path.isdir(root):
        raise SystemExit(f"{root} not found")
    out_dir = os.path.dirname(a.out)
    os.makedirs(out_dir, exist_ok=True)
    rows = []

    def add(path, label, group):
        rows.append({"path": os.path.relpath(path, out_dir), "label": label, "group": group,
                     "split": "test", "source": "../shared/eval/images (third-party, evaluation only)"})

    exts = (".jpg", ".jpeg", ".png", ".webp")
    d = os.path.join(root, "deepface")
    for f in sorted(os.listdir(d)):
        if f.lower().endswith(exts):
            add(os.path.join(d, f), "authentic", "deepface-real")
    d = os.path.join(root, "human-samples")
    for f in sorted(os.listdir(d)):
        if not f.lower().endswith(exts) or f.startswith("background"):
            continue
        if f.startswith(("cgi-", "ai-")):
            add(os.path.join(d, f), "manipulated", "human-samples-cgi")
        else:
            add(os.path.join(d, f), "authentic", "human-samples-real")
    d = os.path.join(root, "c2pa", "image", "jpeg")
    for f in sorted(os.listdir(d)):
        if f.lower().endswith(exts):
            add(os.path.join(d, f), "authentic", "c2pa-public")
    with open(a.out, "w") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")
    n = sum(r["label"] == "authentic" for r in rows)
    print(f"{a.out}: {len(rows)} rows ({n} authentic, {len(rows) - n} manipulated)")


if __name__ == "__main__":
    main()
