#!/usr/bin/env python3
"""Per-dataset evaluation subsets of the third-party text sets (../shared,
evaluation only), small enough to score on 2 CPU cores.

Reads .candor/data/text/shared/manifest.jsonl (made by make_manifests.py)
and writes eval-<dataset>.jsonl next to it: for every group of the dataset
(its human texts and each generator) the first N rows by sha256 of the path.
Paths stay relative to the shared/ folder.

    python3 scripts/text/make_eval_subsets.py [--per-group 30] [DIR]
"""
import argparse
import collections
import hashlib
import json
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dir", nargs="?", default=".candor/data/text/shared")
    ap.add_argument("--per-group", type=int, default=30)
    a = ap.parse_args()
    root = Path(a.dir)
    rows = [json.loads(l) for l in (root / "manifest.jsonl").read_text().splitlines() if l.strip()]
    by_ds = collections.defaultdict(list)
    for r in rows:
        by_ds[r["group"].split("/")[0]].append(r)
    key = lambda r: hashlib.sha256(r["path"].encode()).hexdigest()  # noqa: E731
    for ds, rs in sorted(by_ds.items()):
        seen = collections.Counter()
        out = []
        for r in sorted(rs, key=key):
            if seen[r["group"]] < a.per_group:
                seen[r["group"]] += 1
                out.append(r)
        out.sort(key=lambda r: (r["group"], r["path"]))
        dest = root / f"eval-{ds}.jsonl"
        dest.write_text("".join(json.dumps(r) + "\n" for r in out))
        print(f"{dest}: {len(out)} rows in {len(seen)} groups")


if __name__ == "__main__":
    main()
