#!/usr/bin/env python3
"""Builds the text detector's training / calibration / test sets (version 4)
from the public records collected by collect_public_text.py, plus the
project's own generated application texts when present.

Input:  .candor/data/text/public/records.jsonl (collect_public_text.py; every
        record names its source repo@commit, path, licence, generator, family,
        domain), optionally .candor/data/text/extra/records.jsonl
        (collect_extra_text.py: human speaker bios and learner / native student
        essays) and .candor/data/text/apps/records.jsonl
        (generate_app_text.py: cover letters, bios, interview answers and
        resume summaries written by packaged LMs, same record format).
Output: .candor/data/text/v4/
          txt/<id>.txt          one text per record (normalised, truncated)
          manifest.jsonl        candor eval manifest: path, label, group, split
          manifest-fairness.jsonl  the fairness rows only, group = native /
                                non-native (human) or rewrite (machine)
          meta.jsonl            per row: id, family, generator, domain, attack,
                                source, licence, native, role (see below)

Normalisation (the same for both classes, so that formatting cannot predict
the label): markdown headings, list markers, emphasis and code fences are
removed, whitespace is collapsed, and texts are cut at a sentence end after
at most MAX_WORDS words (the detector reads the first ~1,500 tokens anyway;
shorter texts keep feature extraction affordable on 2 cores).

Splits (train 60 / calib 20 / test 20) are drawn by a hash of a *group key*
so that related texts never straddle splits: the instruction for answers of
many models to one prompt (AlpacaEval, FastChat, arena-hard, EQ-Bench,
exam prompts), the domain folder for the L2R human/rewrite pairs (whole
domains are held out), the text itself otherwise.

Roles: `fit` rows are split as above; `fairness` rows (the Liang et al. 2023
TOEFL and US 8th-grade essays and their GPT rewrites, the ELLIPSE
learner essays, CC BY-NC-SA, and the LOCNESS native student essays:
measurement only) are always `test` and never trained or calibrated on.

Caps keep one source, family and domain from dominating (the AlpacaEval
answers alone are half of the records): at most CAP_MACHINE machine texts
per (source, family, domain) and CAP_HUMAN human texts per (source, domain),
drawn by hash, so the selection is deterministic.

Usage: python3 scripts/text/make_detector_sets.py [--root .candor/data/text]
"""
import argparse
import hashlib
import json
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

MAX_WORDS = 220
MIN_WORDS = 40
CAP_MACHINE = 45
CAP_HUMAN = {"default": 320, "essay": 200}
SPLITS = (("train", 0.6), ("calib", 0.8), ("test", 1.0))

FAIRNESS_SOURCES = ("Weixin-Liang/ChatGPT-Detector-Bias", "scrosseye/ELLIPSE-Corpus")
# Corpora inside a source (the first part of `subset` in extra/records.jsonl,
# collect_extra_text.py): LOCNESS (native English student essays; its licence
# allows non-commercial use without redistribution) is measured beside the
# non-native essays, never trained on.
FAIRNESS_CORPORA = ("LOCNESS",)
# Caps per corpus (learner essays: the non-native human writing the head
# learns from; all of LOCNESS is measured).
CAP_CORPUS = {"FCE": 300, "W&I": 300, "LOCNESS": 450}
EXTRA_KEYS = ("fce-", "wi-", "locness-")
# Sources whose rows share instructions across many generators.
PROMPT_GROUPED = (
    "tatsu-lab/alpaca_eval",
    "lm-sys/FastChat",
    "lmarena/arena-hard-auto",
    "EQ-bench/EQ-Bench",
    "EQ-bench/longform-writing-bench",
    "nd-hal/automated-ML-scoring-versus-generation",
    "huhailinguist/ArguGPT",
    "comnetsAD/ChatGPT",
    "candor/generate_app_text",
)


def h(s: str) -> int:
    return int.from_bytes(hashlib.sha256(s.encode()).digest()[:8], "big")


def unit(s: str) -> float:
    return h(s) / 2.0**64


FENCE = re.compile(r"```.*?```", re.S)
HEADING = re.compile(r"^\s{0,3}#{1,6}\s*", re.M)
BULLET = re.compile(r"^\s*(?:[-*+•]|\d{1,2}[.)])\s+", re.M)
EMPH = re.compile(r"(\*\*|__|\*|`)")
TABLE = re.compile(r"^\s*\|.*\|\s*$", re.M)
HRULE = re.compile(r"^\s*(?:-{3,}|\*{3,}|_{3,})\s*$", re.M)
SENT_END = re.compile(r"[.!?][\"')\]]?\s")


def normalise(text: str) -> str:
    t = FENCE.sub(" ", text)
    t = TABLE.sub("", t)
    t = HRULE.sub("", t)
    t = HEADING.sub("", t)
    t = BULLET.sub("", t)
    t = EMPH.sub("", t)
    lines = [re.sub(r"[ \t]+", " ", ln).strip() for ln in t.splitlines()]
    out, blank = [], False
    for ln in lines:
        if not ln:
            blank = bool(out)
            continue
        if blank:
            out.append("")
        out.append(ln)
        blank = False
    return "\n".join(out).strip()


def truncate(text: str, max_words: int) -> str:
    words = 0
    for m in re.finditer(r"\S+", text):
        words += 1
        if words == max_words:
            cut = m.end()
            ends = [e.end() for e in SENT_END.finditer(text[: cut + 1])]
            if ends and ends[-1] > cut // 2:
                return text[: ends[-1]].strip()
            return text[:cut].strip()
    return text


def corpus(r: dict) -> str:
    """The corpus inside a source of the extra records (FCE, W&I, LOCNESS), else ""."""
    if not r.get("id", "").startswith(EXTRA_KEYS):
        return ""
    return (r.get("subset") or "").split("/")[0].strip()


def group_key(r: dict) -> str:
    src = r["source"].split("@")[0]
    if src == "scott-matkosky/AI_Text_Detector":
        return "l2r:" + (r.get("subset") or r["domain"])
    if src in PROMPT_GROUPED and r.get("prompt"):
        return "prompt:" + " ".join(r["prompt"].split())[:300].lower()
    return "text:" + r["id"]


def split_of(key: str) -> str:
    u = unit("split:" + key)
    for name, edge in SPLITS:
        if u < edge:
            return name
    return "test"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default=".candor/data/text", type=Path)
    args = ap.parse_args()
    sources = [args.root / "public" / "records.jsonl", args.root / "apps" / "records.jsonl",
               args.root / "extra" / "records.jsonl"]
    recs = []
    for p in sources:
        if p.exists():
            with p.open() as f:
                recs.extend(json.loads(line) for line in f)
            print(f"read {p}", file=sys.stderr)
    if not recs:
        print("no records: run scripts/text/collect_public_text.py first", file=sys.stderr)
        return 1
    out = args.root / "v4"
    (out / "txt").mkdir(parents=True, exist_ok=True)

    # Normalise, truncate, drop short and duplicate texts.
    seen = set()
    kept = []
    for r in recs:
        t = truncate(normalise(r["text"]), MAX_WORDS)
        if len(t.split()) < MIN_WORDS:
            continue
        d = hashlib.sha256(" ".join(t.lower().split()).encode()).hexdigest()
        if d in seen:
            continue
        seen.add(d)
        r = dict(r, text=t)
        src = r["source"].split("@")[0]
        r["role"] = "fairness" if src in FAIRNESS_SOURCES or corpus(r) in FAIRNESS_CORPORA else "fit"
        kept.append(r)

    # Caps, drawn by hash.
    buckets = defaultdict(list)
    for r in kept:
        src = r["source"].split("@")[0]
        if r["label"] == "human":
            buckets[("human", src, r["domain"], corpus(r))].append(r)
        else:
            buckets[("machine", src, r["family"], r["domain"])].append(r)
    chosen = []
    for key, rows in sorted(buckets.items()):
        if key[0] == "human":
            cap = CAP_CORPUS.get(key[3]) or CAP_HUMAN.get(key[2], CAP_HUMAN["default"])
        else:
            cap = CAP_MACHINE
        rows.sort(key=lambda r: h("pick:" + r["id"]))
        chosen.extend(rows[:cap])
    chosen.sort(key=lambda r: r["id"])

    counts = Counter()
    with (out / "manifest.jsonl").open("w") as mf, (out / "meta.jsonl").open("w") as xf, (
        out / "manifest-fairness.jsonl"
    ).open("w") as ff:
        for r in chosen:
            split = "test" if r["role"] == "fairness" else split_of(group_key(r))
            path = f"txt/{r['id']}.txt"
            (out / path).write_text(r["text"] + "\n")
            label = "authentic" if r["label"] == "human" else "manipulated"
            mf.write(json.dumps({
                "path": path,
                "label": label,
                "group": f"{r['family']}/{r['domain']}",
                "split": split,
                "source": r["source"],
            }) + "\n")
            if r["role"] == "fairness":
                who = "rewrite" if label == "manipulated" else (
                    "native" if r.get("native") else "non-native" if r.get("native") is False else "unknown")
                ff.write(json.dumps({"path": path, "label": label, "group": who, "split": "test",
                                     "source": r["source"]}) + "\n")
            xf.write(json.dumps({
                "id": r["id"],
                "path": path,
                "family": r["family"],
                "generator": r["generator"],
                "domain": r["domain"],
                "attack": r.get("attack"),
                "source": r["source"],
                "licence": r.get("licence"),
                "native": r.get("native"),
                "role": r["role"],
                "split": split,
                "group_key": group_key(r),
            }) + "\n")
            counts[(r["family"], split)] += 1
    fams = sorted({f for f, _ in counts})
    print(f"{len(chosen)} texts -> {out}")
    print("family      " + "  ".join(f"{s:>6}" for s, _ in SPLITS))
    for fam in fams:
        print(f"{fam:<10}  " + "  ".join(f"{counts[(fam, s)]:>6}" for s, _ in SPLITS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
