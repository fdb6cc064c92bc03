#!/usr/bin/env python3
"""Keeps `candor text-features` outputs when the feature rows grow.

The language model costs about half a second per text on 2 cores, so when
sources are added to the text sets only the new rows are scored. This script
has two steps around one `candor text-features` run:

  missing  META OLD_DIR OUT_MANIFEST
           writes the manifest rows of META (a meta-feat.jsonl; the manifest
           row is read from the manifest-feat.jsonl beside it) whose `path` has
           no row in OLD_DIR/features.jsonl; prints how many.
  merge    META OLD_DIR NEW_DIR OUT_DIR WIDTH_PER_ROW
           writes OUT_DIR/{features.jsonl,hidden.f32,hidden.prefixes} in the
           order of META, each row taken from OLD_DIR or NEW_DIR (the run on
           the missing rows). WIDTH_PER_ROW is taps x hidden width (5 x 576).

Rows are matched by `path` (the id `text-features` writes), so the merged
files are exactly what one run over META would have written.
"""
import json
import sys
from pathlib import Path

N_PREFIXES = 7  # crates/cli/src/textdev.rs PREFIXES


def read_rows(d: Path):
    return [json.loads(line) for line in (d / "features.jsonl").open()]


def missing(meta: Path, old: Path, out: Path) -> int:
    have = {r["id"] for r in read_rows(old)} if (old / "features.jsonl").exists() else set()
    manifest = meta.with_name(meta.name.replace("meta-feat", "manifest-feat"))
    n = 0
    with meta.open() as mi, manifest.open() as fi, out.open("w") as fo:
        for m, f in zip(mi, fi):
            if json.loads(m)["path"] not in have:
                fo.write(f)
                n += 1
    print(n)
    return 0


def merge(meta: Path, old: Path, new: Path, out: Path, width: int) -> int:
    sources = []
    for d in (old, new):
        rows = read_rows(d)
        hid = (d / "hidden.f32").read_bytes()
        pre = (d / "hidden.prefixes").read_bytes()
        row_b, pre_b = 4 * width, 4 * width * N_PREFIXES
        assert len(hid) == row_b * len(rows) and len(pre) == pre_b * len(rows), d
        sources.append({r["id"]: (line, hid[i * row_b:(i + 1) * row_b], pre[i * pre_b:(i + 1) * pre_b])
                        for i, (r, line) in enumerate(zip(rows, (d / "features.jsonl").read_text().splitlines()))})
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    with (out / "features.jsonl").open("w") as fj, (out / "hidden.f32").open("wb") as fh, \
            (out / "hidden.prefixes").open("wb") as fp:
        for m in meta.open():
            p = json.loads(m)["path"]
            line, h, pr = sources[1].get(p) or sources[0][p]
            fj.write(line + "\n")
            fh.write(h)
            fp.write(pr)
            n += 1
    print(f"merged {n} rows -> {out}")
    return 0


if __name__ == "__main__":
    a = sys.argv[1:]
    if a and a[0] == "missing" and len(a) == 4:
        sys.exit(missing(Path(a[1]), Path(a[2]), Path(a[3])))
    if a and a[0] == "merge" and len(a) == 6:
        sys.exit(merge(Path(a[1]), Path(a[2]), Path(a[3]), Path(a[4]), int(a[5])))
    sys.exit(__doc__)
