#!/usr/bin/env python3
"""Build the HUMAN side of the text detector's training corpus from registry packages.

Every passage comes from a pinned Debian artifact (a .deb fetched with `apt-get download`, or a
signed archive index fetched with `apt-get update` into a private lists folder). Each artifact's
sha256 is checked against the table below; a mismatch stops the run. All material predates
common LLM text (see the `written` note per source). Standard library only (Python >= 3.9).

    scripts/text/build_human_text.py [--out .candor/data/text/human.jsonl] [--cache DIR]
                                     [--only NAME,...] [--cap N] [--seed N]

Output: one JSON object per line
    {"id", "text", "source", "package", "version", "licence", "split", "group", "doc", "words"}
plus OUT.manifest.json (sources, sha256, counts per split, runtime).

`split` (train/calib/test, ~60/20/20) is a hash of the SOURCE DOCUMENT (a package description
family, an HTML chapter, a reST file, a man page, a lexicon entry), so passages of one document
never straddle splits.
"""

import argparse
import glob
import hashlib
import html
import html.parser
import io
import json
import lzma
import os
import gzip
import bz2
import random
import re
import shutil
import subprocess
import sys
import tarfile
import time

# --------------------------------------------------------------------------------------------
# Pinned sources. `kind`: "deb" = apt-get download PACKAGE=VERSION; "apt-index" = the signed
# archive index file named by `index_glob`, fetched with apt-get update into a private folder.
# sha256 is of the .deb as downloaded, or of the uncompressed index file (the value the
# suite's signed InRelease lists for it).
# --------------------------------------------------------------------------------------------
SOURCES = [
    {
        "name": "debian-descriptions",
        "kind": "apt-index",
        "package": "Debian bookworm main i18n/Translation-en (package long descriptions)",
        "version": "bookworm 12.15 (InRelease Date 2026-07-11)",
        "index_glob": "*_dists_bookworm_main_i18n_Translation-en*",
        "sha256": "62f59c3cdca9786e4f7adf9002f9f5729a684adcb4667e58e448dec9b5a46c7f",
        "licence": "DFSG-free; each description is part of its package's Debian packaging "
        "(debian/control) under that package's licence",
        "written": "1990s-2023 by Debian maintainers/upstreams; descriptions mostly predate 2021",
        "group": "native",
        "parser": "descriptions",
        "cap": 500,
    },
    {
        "name": "debian-handbook",
        "kind": "deb",
        "package": "debian-handbook",
        "version": "11.20220922",
        "sha256": "3d5dbeac1f1afc9c094eab9d0f701f6ecff99c4927d5a4794cf6c85678134faa",
        "licence": "GPL-2.0+ or CC-BY-SA-3.0 (R. Hertzog, R. Mas: The Debian Administrator's "
        "Handbook)",
        "written": "2012-2022 (edition of 2022-09-22)",
        "group": "native",
        "parser": "handbook",
        "cap": 500,
    },
    {
        "name": "python-docs",
        "kind": "deb",
        "package": "python3.11-doc",
        "version": "3.11.2-6+deb12u8",
        "sha256": "50eb63e7f636c4281e9ce1b8f10386f1def42159eddce34fc1f41c46261df71b",
        "licence": "PSF-2.0 (Python documentation, (c) Python Software Foundation)",
        "written": "1990s-2022 (CPython 3.11 docs, reST sources)",
        "group": "native",
        "parser": "python_rst",
        "cap": 500,
    },
    {
        "name": "linux-man-pages",
        "kind": "deb",
        "package": "manpages",
        "version": "6.03-2",
        "sha256": "efa1ba4cd19ad7baeae959c9209a7eb74be2ebb858bcabb412597bfc9f588c91",
        "licence": "per page: Linux-man-pages-copyleft (verbatim copying permitted), GPL-2+, "
        "BSD, Expat (see the package's copyright file)",
        "written": "1990s-2022 (Linux man-pages project)",
        "group": "native",
        "parser": "manpages",
        "cap": 500,
    },
    {
        "name": "jargon-file",
        "kind": "deb",
        "package": "jargon-text",
        "version": "4.4.7-4.1",
        "sha256": "17d05997e30eb3d5d6713929b8e2f81b63a5f50073858ad2a06701c71f54dcdb",
        "licence": "public domain (The Jargon File 4.4.7, E. S. Raymond et al.)",
        "written": "1975-2003",
        "group": "native",
        "parser": "jargon",
        "cap": 500,
    },
]

MIN_WORDS, MAX_WORDS = 60, 400
TARGET_LO, TARGET_HI = 80, 250
SPLITS = (("train", 60), ("calib", 80), ("test", 100))
CODE_CHARS = set("_(){}[]<>=/\\$#@|;`~^")
STOPWORDS = set(
    "the a an and or of to in is are was were be been it its this that these those for on with "
    "as by at from not no can will may which who what when if than then there their they you "
    "your we our he she his her has have had do does but so such also more most other into "
    "only any all each some one".split()
)


def die(msg):
    sys.stderr.write("build_human_text: error: " + msg + "\n")
    sys.exit(1)


def log(msg):
    sys.stderr.write("build_human_text: " + msg + "\n")
    sys.stderr.flush()


def sha256_bytes(b):
    return hashlib.sha256(b).hexdigest()


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------
# Fetching
# --------------------------------------------------------------------------------------------
def apt_private_opts(cache):
    """apt options that keep every index and cache file under our own folder."""
    lists = os.path.join(cache, "apt", "lists")
    os.makedirs(os.path.join(lists, "partial"), exist_ok=True)
    conf = os.path.join(cache, "apt", "apt.conf")
    with open(conf, "w") as f:
        # Debian container images often disable translation indexes; we need the English one.
        f.write('#clear Acquire::Languages;\nAcquire::Languages { "en"; };\n')
    opts = ["-c", conf, "-o", "Dir::State::Lists=" + lists,
            "-o", "Dir::Cache::pkgcache=", "-o", "Dir::Cache::srcpkgcache=",
            "-o", "APT::Sandbox::User=root"]
    for t in ("DEP-11", "DEP-11-icons", "DEP-11-icons-small", "DEP-11-icons-hidpi",
              "Contents-deb", "Contents-all"):
        opts += ["-o", "Acquire::IndexTargets::deb::%s::DefaultEnabled=false" % t]
    return opts, lists


_APT_UPDATED = []


def apt_update(cache):
    opts, lists = apt_private_opts(cache)
    if _APT_UPDATED:
        return opts, lists
    log("apt-get update (private lists under %s)" % lists)
    r = subprocess.run(["apt-get", "update", "-q"] + opts, capture_output=True, text=True)
    if r.returncode != 0:
        die("apt-get update failed (needs the machine's Debian bookworm sources and root):\n"
            + r.stdout[-2000:] + r.stderr[-2000:])
    _APT_UPDATED.append(True)
    return opts, lists


def fetch_deb(src, cache):
    d = os.path.join(cache, "debs")
    os.makedirs(d, exist_ok=True)
    pat = os.path.join(d, "%s_*.deb" % src["package"])
    want_ver = src["version"].replace(":", "%3a")

    def find():
        for p in sorted(glob.glob(pat)):
            if os.path.basename(p).split("_")[1] == want_ver:
                return p
        return None

    path = find()
    if path is None:
        opts, _ = apt_update(cache)
        spec = "%s=%s" % (src["package"], src["version"])
        log("apt-get download " + spec)
        r = subprocess.run(["apt-get", "download", "-q"] + opts + [spec], cwd=d,
                           capture_output=True, text=True)
        path = find()
        if r.returncode != 0 or path is None:
            die("apt-get download %s failed (pinned version no longer in the archive?):\n%s%s"
                % (spec, r.stdout[-1500:], r.stderr[-1500:]))
    got = sha256_file(path)
    if got != src["sha256"]:
        die("sha256 mismatch for %s: expected %s, got %s (file %s). Delete it to re-download, or "
            "review the new artifact and update the pin in SOURCES." % (
                src["package"], src["sha256"], got, path))
    return path, got


def fetch_index(src, cache):
    d = os.path.join(cache, "index")
    os.makedirs(d, exist_ok=True)
    out = os.path.join(d, src["name"] + "." + src["sha256"][:16])
    if not os.path.exists(out):
        _, lists = apt_update(cache)
        cands = sorted(p for p in glob.glob(os.path.join(lists, src["index_glob"]))
                       if not p.endswith(".diff_Index"))
        if not cands:
            die("index %s not found after apt-get update (are the bookworm sources configured?)"
                % src["index_glob"])
        r = subprocess.run(["/usr/lib/apt/apt-helper", "cat-file", cands[0]], capture_output=True)
        if r.returncode != 0:
            die("apt-helper cat-file %s failed: %s" % (cands[0], r.stderr.decode()[-500:]))
        got = sha256_bytes(r.stdout)
        if got != src["sha256"]:
            die("sha256 mismatch for %s: expected %s, got %s. The archive index moved on (a new "
                "point release?): review it and update the pin in SOURCES." % (
                    src["name"], src["sha256"], got))
        with open(out + ".tmp", "wb") as f:
            f.write(r.stdout)
        os.replace(out + ".tmp", out)
    got = sha256_file(out)
    if got != src["sha256"]:
        die("cached index %s is corrupt (sha256 %s); delete it" % (out, got))
    return out, got


def deb_members(path, want):
    """Yield (name, bytes) for members of the .deb's data tarball where want(name) is true."""
    with open(path, "rb") as f:
        if f.read(8) != b"!<arch>\n":
            die("%s is not a Debian archive" % path)
        while True:
            hdr = f.read(60)
            if len(hdr) < 60:
                break
            name = hdr[:16].decode().strip().rstrip("/")
            size = int(hdr[48:58].decode().strip())
            data = f.read(size)
            if size % 2:
                f.read(1)
            if not name.startswith("data.tar"):
                continue
            if name.endswith(".xz"):
                raw = lzma.decompress(data)
            elif name.endswith(".gz"):
                raw = gzip.decompress(data)
            elif name.endswith(".bz2"):
                raw = bz2.decompress(data)
            elif name == "data.tar":
                raw = data
            else:  # zstd: not in the stdlib; let dpkg-deb do it
                raw = subprocess.run(["dpkg-deb", "--fsys-tarfile", path], check=True,
                                     capture_output=True).stdout
            with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tf:
                for m in tf:
                    n = m.name[2:] if m.name.startswith("./") else m.name
                    if m.isfile() and want(n):
                        yield n, tf.extractfile(m).read()
            return
    die("%s has no data.tar member" % path)


# --------------------------------------------------------------------------------------------
# Text helpers
# --------------------------------------------------------------------------------------------
def norm_space(s):
    return re.sub(r"\s+", " ", s).strip()


def norm_key(s):
    return re.sub(r"[^a-z0-9]+", " ", s.lower()).strip()


def is_prose(p):
    """A paragraph of English running text (not code, a table row, a list or a heading)."""
    words = p.split()
    if len(words) < 8:
        return False
    if p.endswith(":") or p[-1] not in '.!?)"\'\u201d\u2019':
        return False
    letters = sum(c.isalpha() for c in p)
    nonspace = sum(not c.isspace() for c in p)
    if letters < 0.75 * nonspace:
        return False
    codey = sum(1 for w in words if any(c in CODE_CHARS for c in w) or "::" in w)
    if codey > 0.08 * len(words):
        return False
    stop = sum(1 for w in words if w.lower().strip('.,;:()"\'') in STOPWORDS)
    if stop < 0.2 * len(words):
        return False
    if not re.search(r"[a-z]{3,}[.!?]", p):
        return False
    return True


def sentences(p):
    return re.split(r"(?<=[.!?])\s+(?=[A-Z(\"\u201c])", p)


def pack(runs, rng):
    """runs: lists of contiguous prose paragraphs. Returns passages of MIN..MAX words."""
    res = []
    for run in runs:
        paras = []
        for p in run:  # split over-long paragraphs at sentence boundaries
            if len(p.split()) <= MAX_WORDS:
                paras.append(p)
                continue
            cur = []
            for s in sentences(p):
                if cur and len(" ".join(cur + [s]).split()) > TARGET_HI:
                    paras.append(" ".join(cur))
                    cur = []
                cur.append(s)
            if cur:
                paras.append(" ".join(cur))
        out, cur, n = [], [], 0
        target = rng.randint(TARGET_LO, TARGET_HI)
        for p in paras:
            w = len(p.split())
            if w > MAX_WORDS:  # one unsplittable sentence: breaks the run
                if cur:
                    out.append(cur)
                cur, n = [], 0
                continue
            if cur and n + w > target and n >= MIN_WORDS:
                out.append(cur)
                cur, n = [], 0
                target = rng.randint(TARGET_LO, TARGET_HI)
            cur.append(p)
            n += w
        if cur:
            # a short tail joins the previous passage of the same run when that fits
            if n < MIN_WORDS and out and sum(len(x.split()) for x in out[-1]) + n <= MAX_WORDS:
                out[-1].extend(cur)
            else:
                out.append(cur)
        for ps in out:
            text = "\n\n".join(ps)
            if MIN_WORDS <= len(text.split()) <= MAX_WORDS:
                res.append(text)
    return res


# --------------------------------------------------------------------------------------------
# Parsers: each yields (doc_id, sections) where sections is a list of lists of paragraphs;
# None inside a section marks removed non-prose material (it breaks a run).
# --------------------------------------------------------------------------------------------
def parse_descriptions(path, _src):
    with open(path, encoding="utf-8", errors="replace") as f:
        txt = f.read()
    for st in txt.split("\n\n"):
        m = re.search(r"^Package: (\S+)", st, re.M)
        d = re.search(r"^Description-en: .*\n((?: .*(?:\n|$))*)", st, re.M)
        if not m or not d:
            continue
        paras, cur = [], []
        for line in d.group(1).split("\n"):
            if not line.startswith(" "):
                continue
            body = line[1:]
            if body.strip() == ".":
                paras.append(cur)
                cur = []
            elif body.startswith(" ") or re.match(r"\s*([-*+o]|\d+[.)])\s", body):
                paras.append(cur)  # verbatim / list line: breaks the paragraph
                paras.append(None)
                cur = []
            else:
                cur.append(body)
        paras.append(cur)
        sec = []
        for p in paras:
            if p is None:
                sec.append(None)
            elif p:
                sec.append(norm_space(" ".join(p)))
        if not sec or sec[0] is None:
            continue
        # document = the family sharing the first paragraph (e.g. one upstream's many binaries)
        yield "family:" + hashlib.sha1(norm_key(sec[0]).encode()).hexdigest()[:16], \
            [sec], m.group(1)


class _HTMLParas(html.parser.HTMLParser):
    SKIP = {"pre", "table", "li", "dt", "dd", "script", "style", "head", "ul", "ol", "dl",
            "code_block", "nav", "footer"}
    BLOCK = {"p", "div"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.sections = [[]]
        self.stack = []  # (tag, kind) kind in {"para","skip","head",None}
        self.buf = None
        self.skip = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        cls = (a.get("class") or "").split()
        kind = None
        if tag in self.SKIP or "programlisting" in cls or "screen" in cls or \
                "docnav" in cls or "indexterm" in cls or a.get("id") == "title":
            kind = "skip"
        elif tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
            kind = "head"
        elif (tag == "p" or (tag == "div" and "para" in cls)) and not self.skip:
            kind = "para"
        if tag in ("br", "img", "meta", "link", "hr", "input"):
            return
        self.stack.append((tag, kind))
        if kind == "skip":
            self.skip += 1
            if self.buf is not None:
                self.buf.append(" \x00 ")  # material removed inside a paragraph
        elif kind == "head":
            self._flush()
            self.sections.append([])
            self.skip += 1
        elif kind == "para":
            self._flush()
            self.buf = []

    def handle_endtag(self, tag):
        if tag in ("br", "img", "meta", "link", "hr", "input"):
            return
        while self.stack:
            t, kind = self.stack.pop()
            if kind in ("skip", "head"):
                self.skip -= 1
            elif kind == "para":
                self._flush()
            if t == tag:
                break

    def handle_data(self, data):
        if self.buf is not None and not self.skip:
            self.buf.append(data)

    def _flush(self):
        if self.buf is None:
            return
        text = "".join(self.buf)
        self.buf = None
        if "\x00" in text:
            self.sections[-1].append(None)
            return
        text = norm_space(text)
        if text:
            self.sections[-1].append(text)


def parse_handbook(path, src):
    pre = "usr/share/doc/debian-handbook/html/en-US/"
    files = {}
    for name, data in deb_members(path, lambda n: n.startswith(pre) and n.endswith(".html")):
        base = name[len(pre):]
        if "/" in base or base in ("index.html",) or base.startswith("ix") or "legal" in base:
            continue
        files[base] = data
    for base in sorted(files):
        p = _HTMLParas()
        p.feed(files[base].decode("utf-8", errors="replace"))
        p.close()
        p._flush()
        yield "handbook:" + base, p.sections, base


_RST_ROLE = re.compile(r":[\w:.+-]+:`([^`]*)`")


def _rst_role(m):
    inner = m.group(1)
    mm = re.match(r"(.*?)\s*<[^>]*>$", inner, re.S)
    if mm and mm.group(1):
        inner = mm.group(1)
    inner = inner.lstrip("!")
    if inner.startswith("~"):
        inner = inner[1:].split(".")[-1]
    return inner


def _rst_unescape(s):
    return re.sub(r"\\(.)", r"\1", s.replace("\\ ", ""))


def rst_inline(s):
    # backslash escapes apply outside ``literals`` only
    parts = re.split(r"(``.+?``)", s)
    s = "".join(p if p.startswith("``") and p.endswith("``") and len(p) > 4
                else _rst_unescape(p) for p in parts)
    s = _RST_ROLE.sub(_rst_role, s)
    s = re.sub(r"``(.+?)``", r"\1", s)
    s = re.sub(r"`([^`<]+?)\s*<[^>]+>`__?", r"\1", s)
    s = re.sub(r"`([^`]+)`__?", r"\1", s)
    s = re.sub(r"`([^`]+)`", r"\1", s)
    s = re.sub(r"\*\*(.+?)\*\*", r"\1", s)
    s = re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", r"\1", s)
    s = re.sub(r"\s*\[(#\w*|\d+|\*)\]_", "", s)
    s = re.sub(r"\|(\w[\w -]*)\|", r"\1", s)
    s = s.replace("---", "\u2014").replace(" -- ", " \u2013 ")
    return norm_space(s)


PY_DIRS = ("tutorial/", "howto/", "faq/", "whatsnew/", "reference/", "library/", "using/",
           "extending/", "installing/", "distributing/", "glossary")


def parse_python_rst(path, src):
    pre = "usr/share/doc/python3.11/html/_sources/"
    files = {}
    for name, data in deb_members(path, lambda n: n.startswith(pre) and n.endswith(".rst.txt")):
        base = name[len(pre):]
        if base.startswith(PY_DIRS) and "changelog" not in base:
            files[base] = data.decode("utf-8", errors="replace")
    for base in sorted(files):
        lines = files[base].split("\n")
        sections, sec = [], []
        blocks, cur = [], []
        for ln in lines + [""]:
            if ln.strip():
                cur.append(ln.rstrip())
            elif cur:
                blocks.append(cur)
                cur = []
        for b in blocks:
            first = b[0]
            if len(b) >= 2 and re.fullmatch(r"([=\-~^*#+\"'`])\1{2,}", b[-1].strip()):
                sections.append(sec)  # a section title
                sec = []
                continue
            if re.fullmatch(r"([=\-~^*#+\"'`])\1{2,}", first.strip()):
                sections.append(sec)
                sec = []
                continue
            if first[:1].isspace() or first.startswith(("..", ">>>", "|", "::")) or \
                    re.match(r"([-*+\u2022]|#\.|\d+\.|\(\w\)|:[\w -]+:\s)\s*", first) or \
                    any(ln[:1].isspace() for ln in b):
                sec.append(None)
                continue
            text = rst_inline(" ".join(b))
            if text.endswith("::"):
                text = text[:-1]
            sec.append(text)
        sections.append(sec)
        yield "python:" + base, sections, base


_ROFF_ESC = [
    (r"\\f\[[A-Z]*\]", ""), (r"\\f\([A-Z]{2}", ""), (r"\\f[A-Z1-4P]", ""),
    (r"\\\(em", "\u2014"), (r"\\\(en", "\u2013"), (r"\\\[em\]", "\u2014"), (r"\\\[en\]", "\u2013"),
    (r"\\\(aq", "'"), (r"\\\(dq", '"'), (r"\\\(lq", "\u201c"), (r"\\\(rq", "\u201d"),
    (r"\\\(oq", "\u2018"), (r"\\\(cq", "\u2019"), (r"\\\(bu", "\u2022"), (r"\\\(co", "\u00a9"),
    (r"\\\(mu", "\u00d7"), (r"\\\(ti", "~"), (r"\\\(ha", "^"), (r"\\\(rs", "\\\\"),
    (r"\\\(..", ""), (r"\\\[[^\]]*\]", ""), (r"\\\*\(..", ""), (r"\\\*.", ""),
    (r"\\-", "-"), (r"\\e", "\\\\"), (r"\\&", ""), (r"\\%", ""), (r"\\~", " "), (r"\\ ", " "),
    (r"\\0", " "), (r"\\\|", ""), (r"\\\^", ""), (r"\\c", ""), (r"\\:", ""), (r"\\s[-+]?\d", ""),
    (r"\\\.", "."),
]
_ROFF_ESC = [(re.compile(a), b) for a, b in _ROFF_ESC]
_FONT_MACROS = {"B", "I", "BR", "IR", "RB", "BI", "IB", "RI", "SM", "SB"}
_MAN_KEEP = {"DESCRIPTION", "NOTES", "OVERVIEW"}
_MAN_DROP = {"NAME", "SYNOPSIS", "SEE ALSO", "EXAMPLES", "EXAMPLE", "COLOPHON", "FILES", "ERRORS",
             "VERSIONS", "STANDARDS", "CONFORMING TO", "AUTHORS", "AUTHOR", "RETURN VALUE",
             "ATTRIBUTES", "OPTIONS", "ENVIRONMENT", "REPORTING BUGS", "COPYRIGHT", "HISTORY"}


def roff_text(s):
    s = re.sub(r'\\".*$', "", s)
    for rx, rep in _ROFF_ESC:
        s = rx.sub(rep, s)
    return s


def roff_args(rest):
    args = re.findall(r'"((?:[^"]|"")*)"|(\S+)', rest)
    return [a or b for a, b in args]


def parse_manpages(path, src):
    pre = "usr/share/man/"
    pages = {}
    for name, data in deb_members(path, lambda n: n.startswith(pre + "man") and n.endswith(".gz")):
        pages[name[len(pre):]] = gzip.decompress(data).decode("utf-8", errors="replace")
    for base in sorted(pages):
        t = pages[base]
        if t.lstrip().startswith(".so "):
            continue
        section7 = base.startswith("man7/")
        sections, sec, para = [], [], []
        keep, skip_list, skip_fill, depth = False, False, False, 0

        def end_para(mark_break=False):
            nonlocal para
            if para and keep:
                sec.append(norm_space(" ".join(para)))
            para = []
            if mark_break and keep:
                sec.append(None)

        for raw in t.split("\n"):
            if raw.startswith((".", "'")):
                m = re.match(r"[.'](\S*)\s*(.*)", raw)
                mac, rest = (m.group(1), m.group(2)) if m else ("", "")
                if mac in ("\\\"", "\\}", "\\{") or mac.startswith('\\"'):
                    continue
                if mac == "SH":
                    end_para()
                    sections.append(sec)
                    sec = []
                    title = " ".join(roff_args(roff_text(rest))).upper()
                    keep = (title in _MAN_KEEP) or (section7 and title not in _MAN_DROP)
                    skip_list = skip_fill = False
                    depth = 0
                elif mac == "SS":
                    end_para()
                    sections.append(sec)
                    sec = []
                    skip_list = False
                elif mac in ("PP", "P", "LP", "sp"):
                    end_para()
                    skip_list = False
                elif mac in ("TP", "IP", "TQ", "HP"):
                    end_para(mark_break=not skip_list)
                    skip_list = True
                elif mac in ("nf", "EX", "TS", "EQ"):
                    end_para(mark_break=True)
                    skip_fill = True
                elif mac in ("fi", "EE", "TE", "EN"):
                    skip_fill = False
                elif mac == "RS":
                    end_para(mark_break=True)
                    depth += 1
                elif mac == "RE":
                    end_para()
                    depth = max(0, depth - 1)
                elif mac in _FONT_MACROS:
                    if not (skip_list or skip_fill or depth):
                        args = roff_args(roff_text(rest))
                        joiner = "" if len(mac) == 2 and mac not in ("SM", "SB") else " "
                        para.append(joiner.join(args))
                elif mac in ("UR", "MT"):
                    pass
                elif mac in ("UE", "ME"):
                    if para and rest:
                        para[-1] = para[-1] + roff_text(rest).strip()
                continue
            if skip_list or skip_fill or depth:
                continue
            line = roff_text(raw).strip()
            if line:
                para.append(line)
        end_para()
        sections.append(sec)
        yield "man:" + base, sections, base


def jargon_clean(p):
    p = norm_space(re.sub(r"\{([^{}]*)\}", r"\1", p))
    while True:  # leading sense numbers, usage tags, etymologies, parts of speech
        q = re.sub(r"^(\d+\.|\[[^\]]{1,60}\]|(n|v|vt|vi|adj|adv|excl|interj|pref|suff|alt)"
                   r"\.:?)\s+", "", p)
        if q == p:
            break
        p = q
    p = re.sub(r"\s*\u2014[A-Z]{2,4}\]?$", "", p)  # editor's initials after a bracketed note
    return p


def parse_jargon(path, src):
    txt = None
    for name, data in deb_members(path, lambda n: n.endswith("doc/jargon-text/jargon.txt.gz")):
        txt = gzip.decompress(data).decode("utf-8", errors="replace")
    if txt is None:
        die("jargon.txt.gz not found in %s" % path)
    m = re.search(r"^\s*Part\s+III\.\s+Appendices\s*$", txt, re.M)
    body = txt[:m.start()] if m else txt
    parts = re.split(r"^   :(.+?): .*$", body, flags=re.M)
    for i in range(1, len(parts) - 1, 2):
        head, content = parts[i].strip(), parts[i + 1]
        paras = [jargon_clean(p) for p in re.split(r"\n\s*\n", content) if p.strip()]
        sec = []
        for p in paras:
            # indented example lines / quoted program text break the run
            sec.append(p if p else None)
        yield "jargon:" + head, [sec], head


PARSERS = {
    "descriptions": parse_descriptions,
    "handbook": parse_handbook,
    "python_rst": parse_python_rst,
    "manpages": parse_manpages,
    "jargon": parse_jargon,
}


# --------------------------------------------------------------------------------------------
def split_of(source, doc):
    h = int(hashlib.sha256(("candor-text-split-v1|%s|%s" % (source, doc)).encode()).hexdigest(),
            16) % 100
    for name, upper in SPLITS:
        if h < upper:
            return name
    return "test"


def build(args):
    t0 = time.time()
    cache = os.path.abspath(args.cache)
    os.makedirs(cache, exist_ok=True)
    if not shutil.which("apt-get"):
        die("apt-get is required (Debian/Ubuntu)")
    chosen = [s for s in SOURCES if not args.only or s["name"] in args.only.split(",")]
    if not chosen:
        die("--only matched no source; known: " + ",".join(s["name"] for s in SOURCES))
    seen_para = set()
    seen_passage = set()
    records, manifest = [], []
    t_fetch = 0.0
    for src in chosen:
        tf = time.time()
        if src["kind"] == "deb":
            path, sha = fetch_deb(src, cache)
        else:
            path, sha = fetch_index(src, cache)
        t_fetch += time.time() - tf
        log("%s: %s %s sha256 %s ok" % (src["name"], src["package"], src["version"], sha))
        cands = []
        ndocs = 0
        for doc, sections, title in PARSERS[src["parser"]](path, src):
            ndocs += 1
            rng = random.Random("%d|%s|%s" % (args.seed, src["name"], doc))
            runs = []
            for sec in sections:
                run = []
                prev_removed = False
                for p in sec:
                    ok = p is not None and is_prose(p)
                    if ok and prev_removed and p[0].islower():
                        ok = False  # continues a sentence that ran into removed code
                    prev_removed = p is None or not ok
                    if ok:
                        k = norm_key(p)
                        if k in seen_para:  # boilerplate repeated across documents
                            ok = False
                        else:
                            seen_para.add(k)
                    if ok:
                        run.append(p)
                    elif run:
                        runs.append(run)
                        run = []
                if run:
                    runs.append(run)
            for text in pack(runs, rng):
                k = hashlib.sha1(norm_key(text).encode()).hexdigest()
                if k in seen_passage:
                    continue
                seen_passage.add(k)
                cands.append((doc, title, text))
        cap = args.cap or src["cap"]
        rng = random.Random("%d|cap|%s" % (args.seed, src["name"]))
        rng.shuffle(cands)
        kept = cands[:cap]
        counts = {"train": 0, "calib": 0, "test": 0}
        for doc, title, text in kept:
            split = split_of(src["name"], doc)
            counts[split] += 1
            records.append({
                "id": "%s-%s" % (src["name"], hashlib.sha1(text.encode()).hexdigest()[:12]),
                "text": text,
                "source": src["name"],
                "package": src["package"],
                "version": src["version"],
                "licence": src["licence"],
                "split": split,
                "group": src["group"],
                "doc": title,
                "words": len(text.split()),
            })
        manifest.append({k: src[k] for k in ("name", "kind", "package", "version", "sha256",
                                             "licence", "written", "group")}
                        | {"documents": ndocs, "candidates": len(cands), "kept": len(kept),
                           "per_split": counts})
        log("%s: %d documents, %d candidate passages, kept %d %s" % (
            src["name"], ndocs, len(cands), len(kept), counts))
    rng = random.Random("%d|final" % args.seed)
    records.sort(key=lambda r: r["id"])
    rng.shuffle(records)
    out = os.path.abspath(args.out)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out + ".tmp", "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    os.replace(out + ".tmp", out)
    total = {"train": 0, "calib": 0, "test": 0}
    for r in records:
        total[r["split"]] += 1
    elapsed = time.time() - t0
    with open(out + ".manifest.json", "w", encoding="utf-8") as f:
        json.dump({"generator": "scripts/text/build_human_text.py", "seed": args.seed,
                   "passages": len(records), "per_split": total, "sources": manifest,
                   "output_sha256": sha256_file(out),
                   "seconds": round(elapsed, 1), "seconds_fetching": round(t_fetch, 1)},
                  f, indent=2, ensure_ascii=False)
        f.write("\n")
    log("wrote %d passages to %s %s in %.1fs (%.1fs fetching)" % (
        len(records), out, total, elapsed, t_fetch))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=".candor/data/text/human.jsonl")
    ap.add_argument("--cache", default=".candor/cache/text-src")
    ap.add_argument("--only", default="", help="comma-separated source names")
    ap.add_argument("--cap", type=int, default=0, help="passages per source (default: per table)")
    ap.add_argument("--seed", type=int, default=20240601)
    build(ap.parse_args())


if __name__ == "__main__":
    main()
