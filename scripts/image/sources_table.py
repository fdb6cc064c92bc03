#!/usr/bin/env python3
"""Prints the image detector's training-data table (markdown) for models/README.md
from the sets make_face_sets.py wrote: one line per source repository (commits
abbreviated), its recorded licence, whether that licence says research-only or
non-commercial, the families and rows per split (training rows repeated through
fresh channel draws are counted once, their copies in brackets); fit totals and
the held-out rows.

Usage: python3 scripts/image/sources_table.py [--meta .candor/data/image/v5/meta.jsonl]
"""
import argparse
import json
import re
from collections import Counter, defaultdict

FAMILY_ORDER = ["real", "diffusion", "stylegan", "gan_other", "cgi", "swap", "edit", "other"]
NC = re.compile(r"non-commercial|research|\bNC\b|BY-NC", re.I)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--meta", default=".candor/data/image/v5/meta.jsonl")
    a = ap.parse_args()
    rows = [json.loads(line) for line in open(a.meta)]
    by = defaultdict(list)
    for r in rows:
        by[r["source"].split("@")[0]].append(r)
    print("| source | licence (as recorded) | NC / research | families used | rows (train / calib / test) |")
    print("| --- | --- | --- | --- | --- |")
    total, total_copies = Counter(), 0
    held = []
    nc_rows = nc_train = fit_rows = 0
    for src in sorted(by, key=str.lower):
        rs = by[src]
        commits = sorted({r["source"].split("@")[1][:8] for r in rs})
        lic = Counter(r.get("licence") or "not stated" for r in rs).most_common()
        lic_s = "; ".join(f"{l} ({n})" if len(lic) > 1 else l for l, n in lic)
        nc = any(NC.search(l) for l, _ in lic)
        fams = ", ".join(f for f in FAMILY_ORDER if any(r["family"] == f for r in rs))
        name = f"`{src}@{','.join(commits)}`"
        fit = [r for r in rs if r["role"] == "fit"]
        if fit:
            seen, c, copies = set(), Counter(), 0
            for r in fit:
                if (r["split"], r["sha256"]) in seen:
                    copies += 1
                    continue
                seen.add((r["split"], r["sha256"]))
                c[r["split"]] += 1
            total.update(c)
            total_copies += copies
            fit_rows += sum(c.values())
            if nc:
                nc_rows += sum(c.values())
                nc_train += c["train"]
            extra = f" (+{copies:,} copies)" if copies else ""
            print(f"| {name} | {lic_s} | {'**yes**' if nc else ''} | {fams} | "
                  f"{c['train']:,}{extra} / {c['calib']:,} / {c['test']:,} |")
        if len(fit) < len(rs):
            held.append((name, lic_s, fams, len(rs) - len(fit)))
    print(f"| **fitted, total** | | | | **{total['train']:,} (+{total_copies:,} copies) / "
          f"{total['calib']:,} / {total['test']:,}** |")
    for name, lic_s, fams, n in held:
        print(f"| {name} | {lic_s} | | {fams} | **held out**: {n:,}, test only |")
    print(f"\n{nc_rows:,} of the {fit_rows:,} distinct train / calib / test rows ({nc_train:,} of the "
          f"{total['train']:,} distinct `train` rows) come from sources whose recorded licence says "
          "research-only or non-commercial.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
