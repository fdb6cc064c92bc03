#!/usr/bin/env python3
"""Collect extra HUMAN-written bios and learner / student essays from public GitHub snapshots.

Standard library only (Python >= 3.9). No network access: every byte is read from bare git
directories brought by the `fetch` tool (/work/.mirror/OWNER+NAME/repo, or OWNER+NAME/repo/.git), at
the PINNED commits below, with `git cat-file` / `git ls-tree`. Record format, cleaning, duplicate
removal and the shared-evaluation exclusion are those of collect_public_text.py (imported as `cp`).

    python3 scripts/text/collect_extra_text.py --mirror-root /work/.mirror
        [--out .candor/data/text/extra/records.jsonl] [--only KEY,KEY] [--list]
        [--eval-dir ../shared/eval/text | --no-eval-exclusion]

Output: .candor/data/text/extra/records.jsonl (git-ignored; + .manifest.json), same fields as
collect_public_text.py. Every row: label "human", generator "human", family "human", attack "none",
domain "bio" or "essay", native true/false/null as the source says, subset = finer origin.

Row ids: collect_public_text's (key + sha1 of repo|path|row key); the row key holds the line number
(an FCE script id covers two answers) and, for bios, the commit (one file is read at several commits).

Cleaning: collect_public_text.normalise (NFC, CRLF, blank lines); < 40 words dropped; exact
duplicates dropped (first kept); near duplicates (same domain, same first 12 words and word-set Jaccard >= 0.7) dropped (first
kept: e.g. the LOCNESS essays that W&I+LOCNESS N.dev.json re-releases, a speaker's bio repeated in a
later year); texts whose first 12 words match the reserved fairness sets (Weixin-Liang/ChatGPT-
Detector-Bias human essays, scrosseye/ELLIPSE-Corpus test essays; read ONLY to build this exclusion
list, never emitted) or the shared evaluation sets (../shared/eval/text) are dropped.
Bios: YAML scalars (plain, quoted, block) of the `bio` / `biography` keys are parsed with a small
reader (no PyYAML), HTML tags and markdown emphasis / links are removed.

RESERVED SOURCES ARE NOT USED as data (see collect_public_text.RESERVED_REPOS, plus
Weixin-Liang/ChatGPT-Detector-Bias and scrosseye/ELLIPSE-Corpus, which are fairness measurement sets).

SOURCES (key, repository@commit, paths, licence, contribution; counts after cleaning/dedup, 2026 run)
-------------------------------------------------------------------------------------------------
fce           Tianxu-Jia/LM-GEC@b3f9bd215f257608ba4267716466baedabe2d5e9   (commit 2019-09-05)
              data/fce/json/fce-{train,dev,test}.json: the public Cambridge Learner Corpus FCE
              dataset (Yannakoudakis et al. 2011), BEA-2019 JSON release: First Certificate in
              English exam scripts (2000-2001) - letters, compositions, articles, stories, reports -
              original learner text (edits ignored), l1 and age given. native=false.
              Licence: CLC FCE Dataset Licence (data/fce/licence.txt): NON-COMMERCIAL research and
              educational use only, excerpts < 100 words may be published. Repo code: none stated.
wi            stephen-cheng/grammar_correction_with_bert@ab1836434c42ad04ff90a610eb192be7ae458b16
              (commit 2020-11-04) data/wi+locness/json/{A,B,C}.{train,dev}.json: Cambridge English
              Write & Improve (BEA-2019), non-native learners' submissions with CEFR level A/B/C
              (letters, stories, articles, essays). native=false. Licence: CEWI Dataset Licence
              (licence.wi.txt): NON-COMMERCIAL research/education only. Repository: Apache-2.0 (code).
locness       same repository @37acc1e065a2ea8a13113a24238480bfff7470c1 (commit 2020-11-17)
              data/LOCNESS-corpus.zip (LOCNESS-corpus/*.txt): Louvain Corpus of Native English
              Essays - British A-level pupils (alevels*), British university students (BRSUR*), US
              university students (USARG, USMIXED); 1990s. native=true. Editorial tags are removed
              (<*> / <quote> omitted quotations, <?word?> uncertain transcriptions -> word, <R>,
              <figure> ...); hard-wrapped lines (USARG) are unwrapped. Also @ab1836434...
              data/wi+locness/json/N.dev.json (the W&I-annotated LOCNESS subset; all but a few are
              near duplicates of the zip and dropped). Licence: LOCNESS Dataset Licence
              (license.locness.txt): NON-COMMERCIAL only, no redistribution to third parties.
djangocon-us  djangocon/2018.djangocon.us@d99368daa1e68e8128d41270ebc6617a33ef65fc (2017-12-21,
              DjangoCon US 2017) and @0009c5b3101c346f80f6a3f5fae41973dd892b47 (2018-11-11, 2018):
              _schedule/talks/*.md front matter presenters[].bio. djangocon/2021.djangocon.us@
              cbba7387a4e287cb428f0a72f8bb5fc148bac288 (2019-11-13, 2019) and @f031fef77bdbc98d29567
              cda9cfa95a1f4f07309 (2021-12-02, 2021): _presenters/*.md (body = bio) and _schedule/
              talks/*.md presenters[].bio. Speaker bios written by the speakers (conference CFP),
              native=null. Licence: BSD-3-Clause (LICENSE, DEFNA; the site code - bios are the
              speakers' own text, no separate content licence stated).
pyohio        pyohio/pyohio-static-website@57988cf37d1272ac380ede6825624035bb8bfe3e (2021-08-01,
              PyOhio 2021) and @ade5c108b7f585b7301da707a575fdb5eca7d865 (2022-05-30, PyOhio 2022):
              data/speakers/*.yaml `biography` (pretalx export, HTML). native=null. Licence: MIT
              (LICENSE; site code, no separate content licence).
-------------------------------------------------------------------------------------------------
circl-cti     CIRCL/cti-summit@1a4a1a5f4cb719af8cbdabe2e9ae1b2b27204f0b (2021-09-27) and
              @c612ee6b273032fa58d178f77e07a15a3fd633a8 (2022-05-11): _data/speakers.yml `bio`.
              Licence: none stated.
angular-up    500tech/angular-up@{0d21ccac (2016-06-20), d3b642c1 (2016-11-23), 2d582d96 (2017-06-19),
              d876b8e8 (2018-06-19), 37ad5791 (2019-06-10), a80bfae2 (2019-11-25)} (full ids in ANGULARUP):
              _data/speakers.yml `bio`. Licence: MIT (LICENSE.txt; Zeppelin template code).
-------------------------------------------------------------------------------------------------
Counts (run of the snapshots above; about 6 s, light CPU):
    essay native=false  FCE 2,469 (Tianxu-Jia/LM-GEC), W&I 3,239 (stephen-cheng/...)
    essay native=true   LOCNESS 411 (stephen-cheng/...)
    bio   native=null   djangocon 2017/18 85, djangocon 2019/21 59, pyohio 49, circl-cti 67, angular-up 44
    total 6,423 rows (304 bios, 6,119 essays). Drops: < 40 words 191, empty 26, near duplicate 107;
    none matched the reserved fairness sets or the shared evaluation sets.
"""

import argparse
import html
import io
import json
import os
import re
import sys
import time
import zipfile
from collections import Counter, OrderedDict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import collect_public_text as cp  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))

FCE = ("Tianxu-Jia/LM-GEC", "b3f9bd215f257608ba4267716466baedabe2d5e9")
WI = ("stephen-cheng/grammar_correction_with_bert", "ab1836434c42ad04ff90a610eb192be7ae458b16")
LOCNESS_ZIP_COMMIT = "37acc1e065a2ea8a13113a24238480bfff7470c1"
DJ18 = ("djangocon/2018.djangocon.us", ("d99368daa1e68e8128d41270ebc6617a33ef65fc",
                                          "0009c5b3101c346f80f6a3f5fae41973dd892b47"))
DJ21 = ("djangocon/2021.djangocon.us", ("cbba7387a4e287cb428f0a72f8bb5fc148bac288",
                                          "f031fef77bdbc98d29567cda9cfa95a1f4f07309"))
PYOHIO = ("pyohio/pyohio-static-website", ("57988cf37d1272ac380ede6825624035bb8bfe3e",
                                            "ade5c108b7f585b7301da707a575fdb5eca7d865"))
ANGULARUP = ("500tech/angular-up", ("0d21ccac6186b9300ebb11744d069d352e457692", "d3b642c187f575695f4fc84369a08a205af428e1",
                                     "2d582d96b5a1645e4f5eb503d145a7d66f057a5d", "d876b8e8c77e219abc24d84ce16376fb5b16a68a",
                                     "37ad579138132e27d6029ffc88ccf010d25c5c36", "a80bfae2b2f4f03ce17fe27ed33f87bdf79f24a7"))
CIRCL = ("CIRCL/cti-summit", ("1a4a1a5f4cb719af8cbdabe2e9ae1b2b27204f0b", "c612ee6b273032fa58d178f77e07a15a3fd633a8"))
# reserved fairness sets: read ONLY to build the exclusion list
LIANG = ("Weixin-Liang/ChatGPT-Detector-Bias", "1d05ed8242d4694a0ed7b73a79c52be8864470f9")
ELLIPSE = ("scrosseye/ELLIPSE-Corpus", "b5f4469611d2596810d31d1a60921e54ce97ad07")

USED_AS_DATA_REFUSED = cp.RESERVED_REPOS | {"weixin-liang/chatgpt-detector-bias", "scrosseye/ellipse-corpus"}


def gitdir_for(mirror_root, name):
    d = os.path.join(mirror_root, name.replace("/", "+"), "repo")
    if os.path.isdir(os.path.join(d, ".git")):
        return os.path.join(d, ".git")
    if os.path.isdir(os.path.join(d, "objects")):
        return d
    return None


# ------------------------------------------------------------------------------------------------
# minimal YAML scalar reader for `bio:` keys
# ------------------------------------------------------------------------------------------------
def _fold(lines):
    """YAML flow folding: single line breaks -> space, blank lines -> newline."""
    out, para = [], []
    for l in lines:
        s = l.strip()
        if not s:
            out.append(" ".join(para))
            para = []
        else:
            para.append(s)
    out.append(" ".join(para))
    return "\n".join(x for x in out)


def yaml_key_scalars(text, keys=("bio", "biography")):
    """Yield the string value of every `key:` (any indentation, also `- key:`) in a YAML text."""
    lines = text.split("\n")
    key_re = re.compile(r"^(\s*)(-\s+)?(%s)\s*:(?:\s+(.*)|\s*)$" % "|".join(keys))
    i = 0
    while i < len(lines):
        m = key_re.match(lines[i])
        if not m:
            i += 1
            continue
        ind = len(m.group(1)) + (len(m.group(2)) if m.group(2) else 0)
        rest = (m.group(4) or "").rstrip()
        j = i + 1
        # continuation lines: blank or indented deeper than the key
        while j < len(lines) and (not lines[j].strip() or len(lines[j]) - len(lines[j].lstrip()) > ind):
            j += 1
        cont = lines[i + 1:j]
        while cont and not cont[-1].strip():
            cont.pop()
        val = None
        if rest[:1] in ("|", ">"):
            nonblank = [l for l in cont if l.strip()]
            if nonblank:
                bi = min(len(l) - len(l.lstrip()) for l in nonblank)
                body = [l[bi:] for l in cont]
                val = "\n".join(body) if rest[0] == "|" else _fold(body)
        elif rest[:1] == "'":
            raw = "\n".join([rest[1:]] + cont)
            k, buf = 0, []
            while k < len(raw):
                ch = raw[k]
                if ch == "'":
                    if raw[k + 1:k + 2] == "'":
                        buf.append("'")
                        k += 2
                        continue
                    break
                buf.append(ch)
                k += 1
            val = _fold("".join(buf).split("\n"))
        elif rest[:1] == '"':
            raw = "\n".join([rest[1:]] + cont)
            k, buf = 0, []
            esc = {"n": "\n", "t": "\t", '"': '"', "\\": "\\", "/": "/"}
            while k < len(raw):
                ch = raw[k]
                if ch == "\\" and k + 1 < len(raw):
                    nx = raw[k + 1]
                    if nx == "\n":
                        k += 2
                        continue
                    buf.append(esc.get(nx, nx))
                    k += 2
                    continue
                if ch == '"':
                    break
                buf.append(ch)
                k += 1
            val = _fold("".join(buf).split("\n"))
        elif rest:
            val = _fold([rest] + cont)
        if val and val.strip() not in ("null", "~", "''", '""'):
            yield val
        i = j


def front_matter(text):
    """(front matter YAML text, body) of a Jekyll markdown file."""
    m = re.match(r"^---\s*\n(.*?)\n---\s*\n?(.*)$", text, re.S)
    if not m:
        return "", text
    return m.group(1), m.group(2)


def clean_markup(t):
    t = html.unescape(t) if "&" in t else t
    t = re.sub(r"(?i)<\s*br\s*/?>", "\n", t)
    t = re.sub(r"(?i)</\s*(p|div|li|h\d)\s*>", "\n\n", t)
    t = re.sub(r"<[^<>]{1,300}>", "", t)
    t = html.unescape(t)
    t = re.sub(r"!\[[^\]]*\]\([^)]*\)", "", t)               # markdown images
    t = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", t)            # markdown links
    t = re.sub(r"(\*\*|__)(.+?)\1", r"\2", t)
    t = re.sub(r"(?<![\w*])\*(?!\s)([^*\n]+?)\*(?!\w)", r"\1", t)
    t = re.sub(r"(?m)^\s{0,3}#{1,6}\s+", "", t)
    t = re.sub(r"[ \t]+", " ", t)
    return cp.normalise(t)


# ------------------------------------------------------------------------------------------------
# sources
# ------------------------------------------------------------------------------------------------
def src_fce(c, repo, commit, key):
    lic = "CLC FCE Dataset Licence: non-commercial research/education only (data/fce/licence.txt)"
    for split in ("train", "dev", "test"):
        path = "data/fce/json/fce-%s.json" % split
        for i, line in enumerate(repo.text(commit, path).split("\n")):
            if not line.strip():
                continue
            d = json.loads(line)
            c.add(key, repo.name, commit, path, "%s|%d" % (d.get("id"), i), d.get("text"), "human", "human", "essay",
                  "none", lic, False, subset="FCE/%s/L1=%s" % (split, d.get("l1") or "?"),
                  notes="Cambridge FCE exam script 2000-2001 (letter/composition/article/story), "
                        "non-native learner, age %s" % (d.get("age") or "?"))


def src_wi(c, repo, commit, key):
    lic = "CEWI Dataset Licence: non-commercial research/education only (licence.wi.txt)"
    for lev in ("A", "B", "C"):
        for split in ("train", "dev"):
            path = "data/wi+locness/json/%s.%s.json" % (lev, split)
            for i, line in enumerate(repo.text(commit, path).split("\n")):
                if not line.strip():
                    continue
                d = json.loads(line)
                c.add(key, repo.name, commit, path, "%s|%d" % (d.get("id"), i), d.get("text"), "human", "human", "essay",
                      "none", lic, False, subset="W&I/%s/CEFR=%s" % (split, d.get("cefr") or lev),
                      notes="Write & Improve learner submission (letter/story/article/essay), non-native")


LOCNESS_GROUP = {
    "alevels": "British A-level pupils", "BRSUR": "British university students",
    "USARG": "US university students (argumentative)", "USMIXED": "US university students (mixed)",
}
LOC_TITLE_RE = re.compile(r"^\s*(<ICLE[^>]*>|(Transport|Fox hunting|Parliamentary system|Boxing)\b[^\n]{0,20}\d+|\d{3})\s*$")


def split_locness(t):
    """[(essay id, text)] from one LOCNESS file."""
    t = t.replace("\r\n", "\n").replace("\r", "\n").replace("\x1e", "-")
    essays, cur, cid = [], [], None
    for line in t.split("\n"):
        m = LOC_TITLE_RE.match(line)
        if m:
            if cur:
                essays.append((cid, cur))
            cid, cur = line.strip(), []
        else:
            cur.append(line)
    if cur:
        essays.append((cid, cur))
    out = []
    for cid, lines in essays:
        if cid is None and not "".join(lines).strip():
            continue
        # paragraphs: blank line or tab/space indent starts a new one; hard-wrapped lines are joined
        paras, p = [], []
        wrapped = sum(1 for l in lines if 55 <= len(l) <= 80) > 0.5 * max(1, sum(1 for l in lines if l.strip()))
        for l in lines:
            if not l.strip():
                if p:
                    paras.append(" ".join(p))
                    p = []
                continue
            if p and (l[:1] in ("\t", " ") or not wrapped):
                paras.append(" ".join(p))
                p = []
            p.append(l.strip())
        if p:
            paras.append(" ".join(p))
        body = "\n\n".join(paras)
        body = re.sub(r"<\?\s*([^<>?]*?)\s*\?>", r"\1", body)
        body = re.sub(r"<[^<>\n]{0,30}>", "", body)
        body = re.sub(r"[ \t]{2,}", " ", body)
        body = re.sub(r" +([.,;:!?])", r"\1", body)
        out.append((cid, body))
    return out


def src_locness(c, repo, commit, key):
    lic = ("LOCNESS Dataset Licence: non-commercial only, no distribution to third parties "
           "(license.locness.txt)")
    path = "data/LOCNESS-corpus.zip"
    z = zipfile.ZipFile(io.BytesIO(repo.blob(LOCNESS_ZIP_COMMIT, path)))
    for member in sorted(z.namelist()):
        if not member.startswith("LOCNESS-corpus/") or not member.endswith(".txt"):
            continue
        base = os.path.basename(member)[:-4]
        grp = next((v for k, v in LOCNESS_GROUP.items() if base.startswith(k)), "?")
        text = z.read(member).decode("cp1252", errors="replace")
        for n, (cid, body) in enumerate(split_locness(text)):
            c.add(key, repo.name, LOCNESS_ZIP_COMMIT, "%s!%s" % (path, member), "%s|%s|%d" % (base, cid, n), body,
                  "human", "human", "essay", "none", lic, True, subset="LOCNESS/%s" % base,
                  notes="LOCNESS native English student essay (%s), 1990s" % grp)
    path = "data/wi+locness/json/N.dev.json"
    for i, line in enumerate(repo.text(commit, path).split("\n")):
        if line.strip():
            d = json.loads(line)
            c.add(key, repo.name, commit, path, "%s|%d" % (d.get("id"), i), d.get("text"), "human", "human", "essay",
                  "none", lic, True, subset="LOCNESS/W&I-N.dev",
                  notes="LOCNESS native English student essay (BEA-2019 annotated subset)")


def src_djangocon(c, repo, commits, key):
    lic = "BSD-3-Clause (repository LICENSE, DEFNA); bios are the speakers' own text"
    for commit in commits:
        year = repo._git("log", "-1", "--format=%ad", "--date=format:%Y-%m-%d", commit).decode().strip()
        for path in repo.ls(commit, "_presenters"):
            if not path.endswith((".md", ".markdown")):
                continue
            fm, body = front_matter(repo.text(commit, path))
            c.add(key, repo.name, commit, path, commit + "|body", clean_markup(body), "human", "human", "bio", "none", lic,
                  None, subset="DjangoCon US speaker bio (_presenters, commit %s)" % year)
        for path in repo.ls(commit, "_schedule/talks"):
            if not path.endswith((".md", ".markdown")):
                continue
            fm, _ = front_matter(repo.text(commit, path))
            for n, bio in enumerate(yaml_key_scalars(fm)):
                c.add(key, repo.name, commit, path, "%s|bio%d" % (commit, n), clean_markup(bio), "human", "human", "bio", "none",
                      lic, None, subset="DjangoCon US speaker bio (talk page, commit %s)" % year)


def src_pyohio(c, repo, commits, key):
    lic = "MIT (repository LICENSE; site code); bios are the speakers' own text"
    for commit in commits:
        year = repo._git("log", "-1", "--format=%ad", "--date=format:%Y-%m-%d", commit).decode().strip()
        for path in repo.ls(commit, "data/speakers"):
            if not path.endswith((".yaml", ".yml")):
                continue
            for n, bio in enumerate(yaml_key_scalars(repo.text(commit, path))):
                c.add(key, repo.name, commit, path, "%s|bio%d" % (commit, n), clean_markup(bio), "human", "human", "bio", "none",
                      lic, None, subset="PyOhio speaker bio (pretalx, commit %s)" % year)


SPEAKERS_YML = {
    "circl-cti": ("no licence stated (repository has no LICENSE); bios are the speakers' own text",
                  "CIRCL CTI summit (Luxembourg) speaker bio"),
    "angular-up": ("MIT (LICENSE.txt, Zeppelin site template); bios are the speakers' own text",
                   "AngularUP (Tel Aviv) speaker bio"),
}


def src_speakers_yml(c, repo, commits, key):
    lic, what = SPEAKERS_YML[key]
    for commit in commits:
        year = repo._git("log", "-1", "--format=%ad", "--date=format:%Y-%m-%d", commit).decode().strip()
        path = "_data/speakers.yml"
        for n, bio in enumerate(yaml_key_scalars(repo.text(commit, path))):
            c.add(key, repo.name, commit, path, "%s|bio%d" % (commit, n), clean_markup(bio), "human", "human", "bio", "none",
                  lic, None, subset="%s (commit %s)" % (what, year))


# key, repo, commit(s), handler
SOURCES = [
    ("fce", FCE[0], FCE[1], src_fce),
    ("wi", WI[0], WI[1], src_wi),
    ("locness", WI[0], WI[1], src_locness),
    ("djangocon-17-18", DJ18[0], DJ18[1], src_djangocon),
    ("djangocon-19-21", DJ21[0], DJ21[1], src_djangocon),
    ("pyohio", PYOHIO[0], PYOHIO[1], src_pyohio),
    ("circl-cti", CIRCL[0], CIRCL[1], src_speakers_yml),
    ("angular-up", ANGULARUP[0], ANGULARUP[1], src_speakers_yml),
]


# ------------------------------------------------------------------------------------------------
# exclusion of texts from the reserved fairness sets
# ------------------------------------------------------------------------------------------------
def reserved_keys(mirror_root):
    keys, notes = set(), []
    g = gitdir_for(mirror_root, LIANG[0])
    if g and cp.Repo(LIANG[0], g).has_commit(LIANG[1]):
        r = cp.Repo(LIANG[0], g)
        for path in r.ls(LIANG[1], "Data_and_Results/Human_Data"):
            if path.endswith("data.json"):
                for row in json.loads(r.text(LIANG[1], path)):
                    if isinstance(row, dict) and isinstance(row.get("document"), str):
                        keys.add(cp.prefix_key(row["document"]))
        notes.append("%s@%s" % LIANG)
    else:
        print("WARNING: no snapshot of %s: its essays are not excluded" % LIANG[0], file=sys.stderr)
    g = gitdir_for(mirror_root, ELLIPSE[0])
    if g and cp.Repo(ELLIPSE[0], g).has_commit(ELLIPSE[1]):
        r = cp.Repo(ELLIPSE[0], g)
        z = zipfile.ZipFile(io.BytesIO(r.blob(ELLIPSE[1], "ELLIPSE_Final_github_test.zip")))
        for row in cp.read_csv(z.open("ELLIPSE_Final_github_test.csv", pwd=b"ellipse_test").read()):
            if row.get("full_text"):
                keys.add(cp.prefix_key(row["full_text"]))
        notes.append("%s@%s" % ELLIPSE)
    else:
        print("WARNING: no snapshot of %s: its essays are not excluded" % ELLIPSE[0], file=sys.stderr)
    keys.discard("")
    return keys, notes


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mirror-root", default="/work/.mirror",
                    help="folder holding OWNER+NAME/repo snapshots (as laid out by fetch)")
    ap.add_argument("--out", default=os.path.join(ROOT, ".candor", "data", "text", "extra", "records.jsonl"))
    ap.add_argument("--only", help="comma-separated source keys")
    ap.add_argument("--eval-dir", default=os.path.join(ROOT, "..", "shared", "eval", "text"))
    ap.add_argument("--no-eval-exclusion", action="store_true")
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args()
    if args.list:
        for key, name, commit, _ in SOURCES:
            print("%-16s %s@%s" % (key, name, commit if isinstance(commit, str) else ",".join(commit)))
        return 0
    only = set(args.only.split(",")) if args.only else None
    t0 = time.time()
    c = cp.Collector()
    used = []
    for key, name, commit, handler in SOURCES:
        if only and key not in only:
            continue
        assert name.lower() not in USED_AS_DATA_REFUSED, name
        gd = gitdir_for(args.mirror_root, name)
        if not gd:
            print("skip %-16s no snapshot of %s under %s" % (key, name, args.mirror_root), file=sys.stderr)
            continue
        repo = cp.Repo(name, gd)
        commits = (commit,) if isinstance(commit, str) else tuple(commit)
        if key == "locness":
            commits = commits + (LOCNESS_ZIP_COMMIT,)
        missing = [cm for cm in commits if not repo.has_commit(cm)]
        if missing:
            print("skip %-16s %s lacks pinned commit(s) %s" % (key, gd, ",".join(missing)), file=sys.stderr)
            continue
        n0 = len(c.rows)
        handler(c, repo, commit, key)
        print("%-16s %6d rows before dedup (%s)" % (key, len(c.rows) - n0, name), file=sys.stderr)
        used.append(OrderedDict([("key", key), ("repo", name), ("commits", list(commits)), ("gitdir", gd),
                                 ("rows_before_dedup", len(c.rows) - n0)]))

    # reserved fairness sets, then shared eval sets, then near duplicates (12-word prefix, per domain)
    rkeys, rnotes = reserved_keys(args.mirror_root)
    print("reserved-set exclusion keys: %d (%s)" % (len(rkeys), ", ".join(rnotes)), file=sys.stderr)
    kept = []
    for r in c.rows:
        if cp.prefix_key(r["text"]) in rkeys:
            c.drops["in_reserved_fairness_set"] += 1
            c.drops_by_source[r["id"].rsplit("-", 1)[0]]["in_reserved_fairness_set"] += 1
            continue
        kept.append(r)
    seen = {}
    rows = []
    for r in kept:
        k = (r["domain"], cp.prefix_key(r["text"]))
        ws = set(re.findall(r"[a-z0-9']+", r["text"].lower()))
        if any(len(ws & o) >= 0.7 * len(ws | o) for o in seen.get(k, ())):
            c.drops["near_duplicate"] += 1
            continue
        seen.setdefault(k, []).append(ws)
        rows.append(r)
    evkeys = set() if args.no_eval_exclusion else cp.eval_keys(os.path.abspath(args.eval_dir))
    print("shared-eval exclusion keys: %d" % len(evkeys), file=sys.stderr)
    rows = cp.finalise(rows, c.drops, evkeys)

    out = os.path.abspath(args.out)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    tmp = out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    os.replace(tmp, out)
    summary = cp.summarise(rows, c.drops, c.drops_by_source, used, time.time() - t0)
    summary["reserved_exclusion_sources"] = rnotes
    with open(out + ".manifest.json", "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=1, ensure_ascii=False)
    tab = Counter((r["source"].split("@")[0], r["subset"].split("/")[0] if r["domain"] == "essay" else "bio",
                   r["domain"], str(r["native"])) for r in rows)
    print("\n%-45s %-10s %-6s %-6s %6s" % ("source", "subset", "domain", "native", "rows"))
    for (src, sub, dom, nat), n in sorted(tab.items()):
        print("%-45s %-10s %-6s %-6s %6d" % (src, sub, dom, nat, n))
    print("drops: %s" % dict(sorted(c.drops.items())))
    print("wrote %d records to %s (%.1f s)" % (len(rows), out, time.time() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
