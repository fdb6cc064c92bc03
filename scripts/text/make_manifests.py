#!/usr/bin/env python3
"""Write labelled text sets for `candor eval` (manifest JSONL + one .txt file per row).

    scripts/text/make_manifests.py [--data .candor/data/text] [--shared ../shared/eval/text]
                                   [--only own,shared] [--small-per-group 100]
                                   [--dedup passage|exact]

Each manifest row (the format of crates/eval/src/manifest.rs; paths relative to the manifest):
    {"path": "files/...txt", "label": "authentic"|"manipulated", "group": "...",
     "split": "train"|"calib"|"test", "source": "...", "modality": "text"}

own/manifest.jsonl    the project's training corpus, all splits:
                      DATA/human.jsonl  -> authentic,   group = its `source` (debian-handbook, ...)
                      DATA/llm.jsonl    -> manipulated, group = "smollm2/<register>"
shared/manifest.jsonl third-party evaluation sets (evaluation only; every row split "test"):
    fast-detect-gpt (MIT)  exp_gpt3to4/data and exp_main/data *.raw_data.json:
                      `original` -> "<dataset>/human", `sampled` -> "<dataset>/<generator>"
                      (dataset = xsum | pubmed | writing | squad; generator from the file name:
                      davinci, gpt-3.5-turbo, gpt-4, gpt2-xl, gpt-j-6B, gpt-neo-2.7B,
                      gpt-neox-20b, opt-2.7b). NB: each `sampled` text continues the first
                      ~30 tokens of its paired `original`, so pairs share their opening.
    binoculars (BSD-3)     datasets/core/pubmed/pubmed-falcon7.jsonl: PubMed full articles
                      (lower-cased, tokenised as in the source) vs Falcon-7B continuations;
                      groups "pubmed-articles/human" and "pubmed-articles/falcon-7b" (not
                      "pubmed": a different corpus from fast-detect-gpt's PubMedQA answers).
                      The human article is cut to the word count of its paired continuation,
                      at a sentence end, so both classes have similar lengths.
shared/manifest-small.jsonl (when shared has over 4,000 rows): a deterministic subset of up to
                      N rows per group (lowest sha256 of the text first).

Human texts repeat across generator files of one dataset, and fast-detect-gpt truncates each
copy differently to match its generator's output length, so exact hashes do not catch them:
`--dedup passage` (default) keys a human text by the sha256 of its first 25 whitespace-separated
words (one copy per dataset, from the first file in sorted order); `--dedup exact` keys by the
sha256 of the whole text. Machine texts are deduplicated exactly within their group.

The `files/` folders are rewritten: stale .txt files there are removed. Standard library only.
"""

import argparse
import collections
import glob
import hashlib
import json
import os
import re
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def sha(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(l) for l in f if l.strip()]


def safe_name(s):
    return re.sub(r"[^A-Za-z0-9._-]+", "_", s).strip("._") or "x"


class SetWriter:
    """Collects rows and writes MANIFEST + files/ under one folder."""

    def __init__(self, folder):
        self.folder = folder
        self.rows = []  # (row dict, text)
        self.names = set()

    def add(self, rel_name, text, label, group, split, source):
        rel = "files/" + rel_name
        if rel in self.names:
            raise SystemExit(f"duplicate file name {rel}")
        self.names.add(rel)
        row = {
            "path": rel,
            "label": label,
            "group": group,
            "split": split,
            "source": source,
            "modality": "text",
        }
        self.rows.append((row, text))

    def write(self, manifest_name="manifest.jsonl"):
        files = os.path.join(self.folder, "files")
        os.makedirs(files, exist_ok=True)
        wanted = set()
        for row, text in self.rows:
            path = os.path.join(self.folder, row["path"])
            wanted.add(os.path.abspath(path))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            data = text.encode("utf-8")
            try:
                with open(path, "rb") as f:
                    same = f.read() == data
            except OSError:
                same = False
            if not same:
                with open(path, "wb") as f:
                    f.write(data)
        stale = 0
        for dirpath, _dirs, names in os.walk(files):
            for n in names:
                p = os.path.abspath(os.path.join(dirpath, n))
                if n.endswith(".txt") and p not in wanted:
                    os.remove(p)
                    stale += 1
        self.write_manifest([r for r, _ in self.rows], manifest_name)
        return stale

    def write_manifest(self, rows, manifest_name):
        path = os.path.join(self.folder, manifest_name)
        with open(path, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        return path


def summarize(title, rows):
    print(f"\n== {title}: {len(rows)} rows", file=sys.stderr)
    by = collections.Counter((r["group"], r["label"], r["split"]) for r in rows)
    groups = sorted({(g, l) for g, l, _ in by})
    splits = ["train", "calib", "test"]
    print(f"{'group':40s} {'label':12s} " + " ".join(f"{s:>6s}" for s in splits) + "  total", file=sys.stderr)
    for g, l in groups:
        counts = [by.get((g, l, s), 0) for s in splits]
        print(f"{g:40s} {l:12s} " + " ".join(f"{c:6d}" for c in counts) + f"  {sum(counts):5d}", file=sys.stderr)
    tot = collections.Counter((r["label"], r["split"]) for r in rows)
    for l in ("authentic", "manipulated"):
        counts = [tot.get((l, s), 0) for s in splits]
        print(f"{'TOTAL':40s} {l:12s} " + " ".join(f"{c:6d}" for c in counts) + f"  {sum(counts):5d}", file=sys.stderr)


# ---------------------------------------------------------------------------------------------
def build_own(data_dir):
    out = SetWriter(os.path.join(data_dir, "own"))
    human = read_jsonl(os.path.join(data_dir, "human.jsonl"))
    for r in human:
        out.add(
            "human/" + safe_name(r["id"]) + ".txt",
            r["text"],
            "authentic",
            r["source"],
            r["split"],
            f"{r['source']} ({r.get('package', '?')} {r.get('version', '?')}): {r.get('doc', '')}",
        )
    llm_path = os.path.join(data_dir, "llm.jsonl")
    if os.path.exists(llm_path):
        for r in read_jsonl(llm_path):
            out.add(
                "smollm2/" + safe_name(r["id"]) + ".txt",
                r["text"],
                "manipulated",
                "smollm2/" + r["register"],
                r["split"],
                f"{r['generator']}, T={r['temperature']}, prompt {r.get('prompt_id', r['id'])}",
            )
    else:
        print(f"warning: {llm_path} missing: own set has no machine rows", file=sys.stderr)
    out.rows.sort(key=lambda rt: (rt[0]["split"], rt[0]["group"], rt[0]["path"]))
    stale = out.write()
    summarize(f"own ({out.folder}/manifest.jsonl, {stale} stale files removed)", [r for r, _ in out.rows])
    return out


def passage_key(text, mode):
    if mode == "exact":
        return sha(text)
    return sha(" ".join(text.split()[:25]))


def cut_words(text, n):
    """First ~n words of text, ending at a sentence end (' .' in the tokenised PubMed text)."""
    words = text.split()
    if len(words) <= n:
        return " ".join(words)
    head = " ".join(words[:n])
    ends = [m.end() for m in re.finditer(r"[.!?](?=\s|$)", head)]
    if ends and ends[-1] > len(head) // 2:
        return head[: ends[-1]]
    return head


def build_shared(data_dir, shared_dir, dedup, small_per_group):
    out = SetWriter(os.path.join(data_dir, "shared"))
    seen_human = {}  # dataset -> set of keys
    seen_machine = collections.defaultdict(set)
    dup_human = dup_machine = 0

    def add(dataset, generator, text, source, label):
        nonlocal dup_human, dup_machine
        text = text.strip()
        if not text:
            return
        group = f"{dataset}/{generator}"
        if label == "authentic":
            key = passage_key(text, dedup)
            keys = seen_human.setdefault(dataset, set())
            if key in keys:
                dup_human += 1
                return
            keys.add(key)
        else:
            key = sha(text)
            if key in seen_machine[group]:
                dup_machine += 1
                return
            seen_machine[group].add(key)
        out.add(f"{safe_name(dataset)}/{safe_name(generator)}/{sha(text)[:16]}.txt", text, label, group, "test", source)

    fdg = os.path.join(shared_dir, "fast-detect-gpt")
    files = sorted(glob.glob(os.path.join(fdg, "exp_gpt3to4/data/*.raw_data.json"))) + sorted(
        glob.glob(os.path.join(fdg, "exp_main/data/*.raw_data.json"))
    )
    if not files:
        print(f"warning: no fast-detect-gpt data under {fdg}", file=sys.stderr)
    for path in files:
        base = os.path.basename(path)[: -len(".raw_data.json")]
        dataset, generator = base.split("_", 1)
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
        rel = os.path.relpath(path, fdg)
        for i, t in enumerate(d["original"]):
            add(dataset, "human", t, f"fast-detect-gpt (MIT) {rel}#original[{i}]", "authentic")
        for i, t in enumerate(d["sampled"]):
            add(dataset, generator, t, f"fast-detect-gpt (MIT) {rel}#sampled[{i}]", "manipulated")

    bino = sorted(glob.glob(os.path.join(shared_dir, "binoculars/datasets/**/*.jsonl"), recursive=True))
    for path in bino:
        rel = os.path.relpath(path, os.path.join(shared_dir, "binoculars"))
        name = os.path.basename(path)[: -len(".jsonl")]  # e.g. pubmed-falcon7
        corpus = name.split("-")[0]
        dataset = {"pubmed": "pubmed-articles"}.get(corpus, corpus + "-binoculars")
        for i, r in enumerate(read_jsonl(path)):
            gen_keys = [k for k in r if k.endswith("_generated_text_wo_prompt")]
            if not gen_keys:
                continue
            gk = gen_keys[0]
            m = re.search(r"(falcon|llama)[-_]?(\d+b)", gk, re.I)
            generator = (m.group(1).lower() + "-" + m.group(2).lower()) if m else gk
            machine = r[gk].strip()
            human_field = "article" if "article" in r else ("text" if "text" in r else None)
            if human_field:
                human = cut_words(r[human_field], max(len(machine.split()), 50))
                add(dataset, "human", human, f"binoculars (BSD-3) {rel}#{i}.{human_field} (cut)", "authentic")
            add(dataset, generator, machine, f"binoculars (BSD-3) {rel}#{i}.{gk}", "manipulated")

    out.rows.sort(key=lambda rt: (rt[0]["group"], rt[0]["path"]))
    stale = out.write()
    rows = [r for r, _ in out.rows]
    summarize(
        f"shared ({out.folder}/manifest.jsonl; dedup={dedup}: {dup_human} repeated human texts "
        f"and {dup_machine} repeated machine texts dropped; {stale} stale files removed)",
        rows,
    )
    small_path = os.path.join(out.folder, "manifest-small.jsonl")
    if len(rows) > 4000:
        by_group = collections.defaultdict(list)
        for row, text in out.rows:
            by_group[row["group"]].append((sha(text), row))
        small = []
        for g in sorted(by_group):
            small.extend(r for _, r in sorted(by_group[g], key=lambda x: (x[0], x[1]["path"]))[:small_per_group])
        small.sort(key=lambda r: (r["group"], r["path"]))
        out.write_manifest(small, "manifest-small.jsonl")
        summarize(f"shared small ({small_path}, up to {small_per_group} per group)", small)
    elif os.path.exists(small_path):
        os.remove(small_path)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=os.path.join(ROOT, ".candor/data/text"))
    ap.add_argument("--shared", default=os.path.join(ROOT, "..", "shared", "eval", "text"))
    ap.add_argument("--only", default="own,shared")
    ap.add_argument("--small-per-group", type=int, default=100)
    ap.add_argument("--dedup", choices=["passage", "exact"], default="passage")
    args = ap.parse_args()
    which = set(args.only.split(","))
    if "own" in which:
        build_own(args.data)
    if "shared" in which:
        build_shared(args.data, os.path.normpath(args.shared), args.dedup, args.small_per_group)


if __name__ == "__main__":
    main()
