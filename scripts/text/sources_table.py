#!/usr/bin/env python3
"""Prints the text detector's training-data table (markdown) for models/README.md
from the sets make_detector_sets.py wrote: one line per source repository (commits
abbreviated), its recorded licence, families, domains and rows per split; fit
totals; fairness rows (test only).

Usage: python3 scripts/text/sources_table.py [--meta .candor/data/text/v4/meta.jsonl]
"""
import argparse
import json
from collections import Counter, defaultdict

FAMILY_ORDER = ["human", "gpt35", "gpt4", "claude", "gemini", "llama", "mistral", "other"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--meta", default=".candor/data/text/v4/meta.jsonl")
    a = ap.parse_args()
    rows = [json.loads(line) for line in open(a.meta)]
    by = defaultdict(list)
    for r in rows:
        by[r["source"].split("@")[0]].append(r)
    print(f"Training data (`{a.meta}`, {len(rows):,} rows). Families: "
          + ", ".join(f"`{f}`" for f in FAMILY_ORDER) + ":\n")
    print("| source | licence (as recorded) | families | domains | rows (train / calib / test) |")
    print("| --- | --- | --- | --- | --- |")
    total = Counter()
    fairness = []
    for src in sorted(by, key=str.lower):
        for role in ("fit", "fairness"):
            rs = [r for r in by[src] if (r["role"] == "fit") == (role == "fit")]
            if not rs:
                continue
            commits = sorted({r["source"].split("@")[1][:8] for r in rs})
            lic = Counter(r.get("licence") or "not stated" for r in rs).most_common()
            lic_s = "; ".join(f"{l} ({n})" if len(lic) > 1 else l for l, n in lic)
            fams = ", ".join(f for f in FAMILY_ORDER if any(r["family"] == f for r in rs))
            doms = ", ".join(d for d, _ in Counter(r["domain"] for r in rs).most_common())
            name = f"`{src}@{','.join(commits)}`"
            if role == "fit":
                c = Counter(r["split"] for r in rs)
                total.update(c)
                print(f"| {name} | {lic_s} | {fams} | {doms} | {c['train']:,} / {c['calib']:,} / {c['test']:,} |")
            else:
                fairness.append((name, lic_s, fams, doms, len(rs)))
    print(f"| **fitted, total** | | | | **{total['train']:,} / {total['calib']:,} / {total['test']:,}** |")
    for name, lic_s, fams, doms, n in fairness:
        print(f"| {name} | {lic_s} | {fams} | {doms} | **fairness**: {n:,}, test only |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
