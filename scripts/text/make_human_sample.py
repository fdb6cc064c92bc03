#!/usr/bin/env python3
"""Write samples/text/human_sample.jsonl: 10 redistributable passages of the human corpus.

Picks, deterministically, short passages (80-140 words) from the test split of sources whose
licences allow redistribution with attribution: the Jargon File (public domain), the Debian
Administrator's Handbook (CC-BY-SA-3.0 / GPL-2+), the Python docs (PSF-2.0) and Linux man pages
whose source says `SPDX-License-Identifier: Linux-man-pages-copyleft`. Package descriptions are
left out (their licences vary by package).

    scripts/text/make_human_sample.py [--corpus .candor/data/text/human.jsonl]
"""

import argparse
import glob
import gzip
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from build_human_text import deb_members  # noqa: E402

PLAN = [("jargon-file", 3), ("debian-handbook", 3), ("python-docs", 2), ("linux-man-pages", 2)]
LICENCE_OVERRIDE = {"linux-man-pages": "Linux-man-pages-copyleft (verbatim copying permitted)"}


def man_licences(cache):
    debs = sorted(glob.glob(os.path.join(cache, "debs", "manpages_6.03-2_all.deb")))
    if not debs:
        sys.exit("manpages .deb not cached: run build_human_text.py first")
    lic = {}
    for name, data in deb_members(debs[0], lambda n: n.startswith("usr/share/man/man")):
        txt = gzip.decompress(data).decode("utf-8", errors="replace")
        for line in txt.split("\n")[:20]:
            if "SPDX-License-Identifier:" in line:
                lic[name[len("usr/share/man/"):]] = line.split(":", 1)[1].strip()
    return lic


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", default=".candor/data/text/human.jsonl")
    ap.add_argument("--cache", default=".candor/cache/text-src")
    ap.add_argument("--out", default="samples/text/human_sample.jsonl")
    args = ap.parse_args()
    rows = [json.loads(line) for line in open(args.corpus, encoding="utf-8")]
    mlic = man_licences(args.cache)
    out = []
    for source, n in PLAN:
        cands = sorted((r for r in rows if r["source"] == source and r["split"] == "test"
                        and 80 <= r["words"] <= 140), key=lambda r: r["id"])
        docs = set()
        for r in cands:
            if source == "linux-man-pages" and mlic.get(r["doc"]) != "Linux-man-pages-copyleft":
                continue
            if r["doc"] in docs:
                continue
            docs.add(r["doc"])
            r = dict(r)
            r["licence"] = LICENCE_OVERRIDE.get(source, r["licence"])
            out.append(r)
            if len(docs) == n:
                break
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in out)
    if len(data.encode()) > 20000:
        sys.exit("sample too large: %d bytes" % len(data.encode()))
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(data)
    print("wrote %d passages (%d bytes) to %s" % (len(out), len(data.encode()), args.out))


if __name__ == "__main__":
    main()
