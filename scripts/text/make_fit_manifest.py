#!/usr/bin/env python3
"""Deterministic subset of the project's own text set used to fit the text
detector (scoring every human passage on 2 CPU cores takes too long).

Keeps every machine row and at most 70 / 100 / 100 human rows per source in
train / calib / test, chosen by the sha256 of the row's path.

    python3 scripts/text/make_fit_manifest.py [.candor/data/text/own]
"""
import collections
import hashlib
import json
import sys
from pathlib import Path

CAPS = {"train": 70, "calib": 100, "test": 100}


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else ".candor/data/text/own")
    rows = [json.loads(l) for l in (root / "manifest.jsonl").read_text().splitlines() if l.strip()]
    key = lambda r: hashlib.sha256(r["path"].encode()).hexdigest()  # noqa: E731
    seen = collections.Counter()
    out = []
    for r in sorted(rows, key=key):
        if r["label"] == "authentic":
            k = (r["group"], r["split"])
            if seen[k] >= CAPS[r["split"]]:
                continue
            seen[k] += 1
        out.append(r)
    dest = root / "manifest-fit.jsonl"
    dest.write_text("".join(json.dumps(r) + "\n" for r in out))
    counts = collections.Counter((r["label"], r["split"]) for r in out)
    print(f"{dest}: {len(out)} rows", dict(sorted(counts.items())))


if __name__ == "__main__":
    main()
