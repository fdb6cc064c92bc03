#!/usr/bin/env python3
"""Collect public speech (real and clearly labelled fake) from GitHub snapshots into 16 kHz WAVs.

Run with the venv python (numpy, soundfile, scipy; Debian ffmpeg for MP3/Opus):

    python3 -m venv .candor/venv-audiodata
    .candor/venv-audiodata/bin/pip install numpy soundfile scipy
    .candor/venv-audiodata/bin/python scripts/audio/collect_public_speech.py \
        --snapshot microsoft/AEC-Challenge=/work/.mirror/microsoft+AEC-Challenge/repo \
        --snapshot pyannote/pyannote-audio=/work/.mirror/pyannote+pyannote-audio/repo  ...

Every `--snapshot owner/repo=DIR` names a bare git directory (a snapshot from the search tool's
`fetch`, or any clone). Audio is read straight from git objects at the pinned commit of each
source below (`git ls-tree` + `git cat-file blob`); nothing is checked out and no network is used.
Sources whose snapshot is not given are skipped with a message. A pinned commit that is missing
from the snapshot is an error for that source (the snapshot is too old or too new).

Output (under --out, default .candor/data/audio/public, git-ignored):
  <slug>/<name>.wav        16 kHz mono PCM-16 (downmix = channel mean; resample = scipy
                           resample_poly, deterministic; no normalisation, no trimming)
  <slug>/orig/<src_path>   the original bytes (unless --no-orig)
  manifest.jsonl           one row per WAV: path (relative to --out), label
                           (authentic/manipulated), kind (read, spontaneous, interview,
                           conversational, tts, clone, vc, vocoder), tool (fakes: the system),
                           speaker, group (keep rows of one group in one split), source
                           (owner/repo@commit), src_path, licence, use (train_ok / eval_only),
                           duration_s, orig_sample_rate, orig_channels, language, channel,
                           sha256 (of the 16 kHz WAV), orig_path, rms_dbfs (whole file;
                           below about -60 the file is practically silent)
  SOURCES.json             the source table below, as run (with per-source counts)

Deterministic: files are visited in sorted order, nothing is random, and a rerun rewrites
byte-identical WAVs and manifest (existing WAVs are rewritten only with --force; the manifest is
always rebuilt from the sources).

Sources (checked against ../shared/research/reserved.md: none of these is reserved; the reserved
audio sources -- resemble-ai/Resemblyzer test-other / donald_trump / X2zqiX6yL3I.mp3, and
Kokoro-82M in any form -- are not read by this script; `RESERVED_REPOS` below makes the script
refuse them even if a snapshot is passed):

  aec-icassp2021   microsoft/AEC-Challenge@6c633d0a9d2a143a0e364899b91b06f127315b18, MIT (repo).
                   baseline/icassp2021/{noisy,clean}/<GUID>_doubletalk[_with_movement].wav:
                   the challenge baseline AEC's output on the initial test set: real double-talk
                   recordings of crowdsourced near-end talkers on their own Windows PCs while
                   far-end speech plays from the loudspeaker (datasets/test_set/README.md: the
                   "noisy" set is a random subset of real recordings; the "clean" set was rated
                   MOS >= 4 and had Wiener noise suppression + AGC applied before the AEC), i.e.
                   a video-call send channel. ~200 sessions. The far-end-only files are excluded
                   (loudspeaker replay, no near-end talker). Some outputs are near-silent: see
                   rms_dbfs.
  pyannote         pyannote/pyannote-audio@b749285c5cdd4636b2edc7f766f1352c8dde9369, MIT (repo).
                   tests/data/*.wav (14 x 60 s multi-speaker meeting excerpts, the "debug"
                   protocol; provenance not stated in the repo, looks like AMI-style meetings)
                   and src/pyannote/audio/sample/sample.wav (30 s, 2 speakers).
  speechbrain      speechbrain/speechbrain (Apache-2.0 repo), test samples from several commits:
                   VoxCeleb1 interview clips id10001/id10002 (@dfe9e634…, VoxCeleb CC BY 4.0),
                   SEP-28k podcast clips "HeStutters" (@830c1880…, SEP-28k CC BY-NC 4.0: eval only),
                   SpokenWOZ human-human phone dialogue MUL1011.opus (@f2624cc8…, CC BY-NC 4.0:
                   eval only), tests/samples/ASR spk1/spk2 read sentences (@9c826ef3…), and the
                   DSTC11 spoken-MultiWOZ **TTS** turns mul0981 (@3f04c58a…, fake: tts).
  picovoice        Picovoice/falcon@3085c22…, Picovoice/eagle@5d97c54…, Picovoice/koala@c4f782c…
                   (Apache-2.0 repos; audio provenance not stated): resources/audio_samples.
  whisper-jfk      openai/whisper@c0d2f624c09dc18e709e37c2ad90c039a4eb72a2, MIT repo;
                   tests/jfk.flac (JFK inaugural address, public domain).
  dns3-realrec     Xiaobin-Rong/gtcrn@d0531ca60551980d5b0f4fee9b3196ae192e2967 (MIT repo; the
                   files were removed from its HEAD later, so they are read at this commit):
                   GTCRN-demo/samples/DNS3_blind_test_set/ms_realrec_*_fileid_*.wav, 4 real
                   crowdsourced recordings of the Microsoft DNS Challenge 3 blind test set
                   (earphone, open speaker, headset, laptop mic; emotional, English, Polish),
                   CC BY 4.0 (microsoft/DNS-Challenge README, Legal Notices). The enhanced
                   `_GTCRN` / `_RNNoise` outputs beside them are not read.
  voxconverse      snakers4/silero-vad@806dcba3f0b5d95282d0889a074954a2f8c6397b (MIT repo):
                   examples/c++/aepyx_8k.wav, 2.8 min of a multi-speaker broadcast debate "part of
                   the Voxconverse dataset" (examples/c++/README.md). VoxConverse is CC BY 4.0 for
                   research; the video owners keep their copyright: eval only.
  tenvad           TEN-framework/ten-vad@dddbeb16e6a4b4e9fa3bc4bf87f30fc26a19e963: testset/
                   testset-audio-NN.wav, 30 hand-labelled VAD test clips "from librispeech,
                   gigaspeech, DNS Challenge etc." (README), no per-file source; repository
                   licence Apache-2.0 with extra conditions, GigaSpeech non-commercial: eval only
                   (counted as spontaneous speech; some clips may be read).
  lvc-vc-demo      lvc-vc/lvc-vc-demo@740a3b13267fe1444b566bbdc7e66e62821e9653 (gh-pages), no
                   licence stated: eval only. VCTK originals (CC BY 4.0 corpus) and zero-shot voice
                   conversions by AdaIN-VC, AGAIN-VC, AutoVC, AutoVC-F0, Blow, NVC-Net, LVC-VC,
                   LVC-VC XL, plus speaker-anonymised outputs.
  unilight-demos   unilight/Publication-Demos@0e38737…, no licence stated: eval only. VCC2020 /
                   CMU ARCTIC natural speech and conversions from S3PRL-VC (many SSL upstreams),
                   VTN / Transformer-VC / vq-wav2vec VC, seq2seq TTS, foreign-accent conversion,
                   speaker anonymisation; WORLD analysis-synthesis (kind vocoder).
  advspeech        yryMax/AdvSpeech@08d8124…, MIT repo, eval only (demo material): LibriSpeech /
                   AISHELL-style originals and their CosyVoice / CosyVoice2 zero-shot clones.

`use` is `eval_only` where the licence is non-commercial or not stated; training code must filter
on it. Splits are the caller's business: keep one `group` (a recording session or speaker) on one
side.
"""

import argparse
import hashlib
import io
import json
import os
import re
import subprocess
import sys
from math import gcd

import numpy as np
import soundfile as sf
from scipy import signal as sps

SR = 16000
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
DEFAULT_OUT = os.path.join(REPO, ".candor", "data", "audio", "public")
AUDIO_EXT = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a")

# Sources kept for independent measurement (../shared/research/reserved.md). Never read.
RESERVED_REPOS = {"resemble-ai/Resemblyzer"}
RESERVED_PATH_RE = re.compile(r"kokoro", re.I)


# ------------------------------------------------------------------------------------------
# source table. Each rule: commit, path regex (matched against the full path), and a function
# (match, path) -> dict of row fields, or None to skip the file.

def _aec(m, p):
    sess = m.group(2)
    return dict(label="authentic", kind="read", speaker="aec:" + sess, group="aec:" + sess,
                channel="pc-mic+aec" if m.group(1) == "noisy" else "pc-mic+ns+agc+aec",
                language="en", tool="")


def _pyannote(m, p):
    name = os.path.basename(p)
    return dict(label="authentic", kind="conversational", speaker="", group="pyannote:" + name,
                channel="meeting-room", language="en", tool="")


def _vox(m, p):
    spk = m.group(1)
    return dict(label="authentic", kind="interview", speaker="voxceleb:" + spk,
                group="voxceleb:" + spk, channel="youtube", language="en", tool="")


def _sep28k(m, p):
    return dict(label="authentic", kind="spontaneous", speaker="sep28k:HeStutters",
                group="sep28k:HeStutters", channel="podcast", language="en", tool="")


def _spokenwoz(m, p):
    return dict(label="authentic", kind="conversational", speaker="spokenwoz:MUL1011",
                group="spokenwoz:MUL1011", channel="telephone", language="en", tool="")


def _sb_asr(m, p):
    spk = m.group(1)
    return dict(label="authentic", kind="read", speaker="sbasr:" + spk, group="sbasr:" + spk,
                channel="studio", language="en", tool="")


def _dstc11(m, p):
    return dict(label="manipulated", kind="tts", speaker="", group="dstc11:mul0981",
                channel="clean", language="en", tool="dstc11-multiwoz-tts")


def _pico(name):
    def f(m, p):
        base = os.path.basename(p)
        if base == "noise.wav":
            return None
        spk = re.sub(r"_(utt_\d+|test_utt)\.wav$", "", base)
        return dict(label="authentic", kind="read", speaker=f"{name}:{spk}",
                    group=f"{name}:{spk}", channel="unknown", language="en", tool="")
    return f


def _jfk(m, p):
    return dict(label="authentic", kind="read", speaker="jfk", group="jfk", channel="broadcast-1961",
                language="en", tool="")


def _dns3(m, p):
    # ms_realrec_<kind>_<mic>_<speaker id>_<noise>_..._fileid_<n>.wav: crowdsourced real recordings
    spk = m.group(3)
    return dict(label="authentic", kind="spontaneous" if m.group(1) == "emotional" else "read",
                speaker="dns3:" + spk, group="dns3:" + spk, channel="crowd-" + m.group(2),
                language="en" if m.group(1) != "nonenglish" else "pl", tool="")


def _voxconverse(m, p):
    return dict(label="authentic", kind="conversational", speaker="voxconverse:aepyx",
                group="voxconverse:aepyx", channel="broadcast-8k", language="en", tool="")


def _tenvad(m, p):
    n = m.group(1)
    return dict(label="authentic", kind="spontaneous", speaker="tenvad:" + n, group="tenvad:" + n,
                channel="mixed", language="en", tool="")


LVC_TOOLS = {"adain": "AdaIN-VC", "again": "AGAIN-VC", "autovc": "AutoVC", "autovc_f0": "AutoVC-F0",
             "blow": "Blow", "nvcnet": "NVC-Net", "lvc_vc": "LVC-VC", "lvc_vc_xl": "LVC-VC-XL",
             "lvn_anon": "LVC-VC-anonymiser", "vctk_anon": "LVC-VC-anonymiser(vctk)"}


def _lvc(m, p):
    sys_ = m.group(1)
    base = os.path.basename(p)
    if sys_ == "vctk_orig":
        spk = base.split("_")[0]
        return dict(label="authentic", kind="read", speaker="vctk:" + spk, group="vctk:" + spk,
                    channel="studio", language="en", tool="")
    tool = LVC_TOOLS.get(sys_)
    if tool is None:
        return None
    parts = base[:-4].split("_")
    tgt = parts[2] if len(parts) >= 4 else ""
    return dict(label="manipulated", kind="vc", speaker=("vctk:" + tgt) if tgt else "",
                group="lvc:" + sys_, channel="studio", language="en", tool=tool)


UNILIGHT_REAL_DIRS = {"source", "target", "ground-truth", "golden", "gt", "natural"}
UNILIGHT_PUBS = {"s3prl-vc", "prosody-asr-tts-vc", "vtn-taslp", "transformer-vc", "vq-wav2vec-vc",
                 "fac-evaluate", "sa-tts-spl", "ssw10"}


def _unilight(m, p):
    pub, rest = m.group(1), m.group(2)
    if pub not in UNILIGHT_PUBS:
        return None
    parts = rest.split("/")
    top = parts[0]
    base = parts[-1][:-4]
    lang = "en"
    if top in UNILIGHT_REAL_DIRS:
        spk = parts[1] if len(parts) > 2 else (base.split("_")[0] if pub == "sa-tts-spl" else pub)
        if pub in ("s3prl-vc", "prosody-asr-tts-vc") and spk[:2] in ("TF", "TG", "TM"):
            lang = {"TF": "fi", "TG": "de", "TM": "zh"}[spk[:2]]
        return dict(label="authentic", kind="read", speaker=f"{pub}:{spk}", group=f"unilight:{spk}",
                    channel="studio", language=lang, tool="")
    if top == "analysis-synthesis" or (pub == "ssw10" and top in ("world", "diff")):
        return dict(label="manipulated", kind="vocoder", speaker="", group=f"unilight:{pub}:{top}",
                    channel="studio", language="en", tool=f"{pub}:{top}")
    if pub == "s3prl-vc" and top == "vc":
        mm = re.match(r"(.+?)_(T[A-Z]{2}\d)_(S[A-Z]{2}\d)_", parts[-1])
        tool = "s3prl-vc:" + (mm.group(1) if mm else base)
        tgt = mm.group(2) if mm else ""
        return dict(label="manipulated", kind="vc", speaker=f"{pub}:{tgt}", group="unilight:" + tool,
                    channel="studio", language="en", tool=tool)
    kind = "vc"
    if top in ("text", "tts") or top.startswith("tts_"):
        kind = "tts"
    tool = f"{pub}:{'/'.join(parts[:2] if pub == 'prosody-asr-tts-vc' else parts[:1])}"
    return dict(label="manipulated", kind=kind, speaker="", group="unilight:" + tool,
                channel="studio", language="en", tool=tool)


def _adv(m, p):
    base = os.path.basename(p)
    real = {"libri_5694.wav": ("en", "librispeech:5694"), "original.wav": ("zh", "adv:cn-original"),
            "2277_1.wav": ("en", "librispeech:2277"), "84_1.wav": ("en", "librispeech:84")}
    fake = {"libri_cosyvoice.wav": ("en", "CosyVoice"), "original_cosyvoice.wav": ("zh", "CosyVoice"),
            "2277_1_syn_GT.wav": ("en", "CosyVoice2")}
    if base in real:
        lang, spk = real[base]
        return dict(label="authentic", kind="read", speaker=spk, group="adv:" + spk, channel="studio",
                    language=lang, tool="")
    if base in fake:
        lang, tool = fake[base]
        return dict(label="manipulated", kind="clone", speaker="", group="adv:" + base, channel="studio",
                    language=lang, tool=tool)
    return None


SOURCES = [
    dict(slug="aec-icassp2021", repo="microsoft/AEC-Challenge",
         licence="MIT (repository); crowdsourced recordings by Microsoft", use="train_ok",
         rules=[("6c633d0a9d2a143a0e364899b91b06f127315b18",
                 r"^baseline/icassp2021/(noisy|clean)/(.+)_doubletalk(_with_movement)?\.wav$", _aec)]),
    dict(slug="pyannote", repo="pyannote/pyannote-audio",
         licence="MIT (repository); audio provenance not stated", use="train_ok",
         rules=[("b749285c5cdd4636b2edc7f766f1352c8dde9369",
                 r"^(tests/data/(dev|trn|tst)\d\d\.wav|src/pyannote/audio/sample/sample\.wav)$",
                 _pyannote)]),
    dict(slug="speechbrain", repo="speechbrain/speechbrain",
         licence="Apache-2.0 (repository); VoxCeleb CC BY 4.0; SEP-28k and SpokenWOZ CC BY-NC 4.0",
         use="per-rule",
         rules=[("dfe9e634504952d31a677a5b8ce16a73caea0159",
                 r"^samples/voxceleb_samples/wav/(id\d+)/[^/]+/\d+\.wav$", _vox, "train_ok"),
                ("830c18805b7f820b4380a130ba1025354a36ef27",
                 r"^tests/samples/StutterDetection/HeStutters/\d/HeStutters_\d+_\d+\.wav$", _sep28k,
                 "eval_only"),
                ("f2624cc8a428cf5f88ad090e0dd60eab98752d07",
                 r"^tests/samples/DST/SpokenWOZ/audio_5700_train_dev/MUL1011\.opus$", _spokenwoz,
                 "eval_only"),
                ("9c826ef3937bac885c8a6ca86c6889a30f256fb5",
                 r"^tests/samples/ASR/(spk\d)_snt\d\.wav$", _sb_asr, "train_ok"),
                ("3f04c58a2a1095cf283089b8045b8fa35d1c2f87",
                 r"^tests/samples/DST/MultiWOZ/DSTC11_train_tts/mul0981/Turn-\d+\.wav$", _dstc11,
                 "eval_only")]),
    dict(slug="picovoice", repo="Picovoice/falcon",
         licence="Apache-2.0 (repository); audio provenance not stated", use="train_ok",
         rules=[("3085c22", r"^resources/audio_samples/[^/]+\.wav$", _pico("falcon"))]),
    dict(slug="picovoice", repo="Picovoice/eagle",
         licence="Apache-2.0 (repository); audio provenance not stated", use="train_ok",
         rules=[("5d97c54e0c94417176a382cb687499c81d0697f5", r"^resources/audio_samples/[^/]+\.wav$",
                 _pico("eagle"))]),
    dict(slug="picovoice", repo="Picovoice/koala",
         licence="Apache-2.0 (repository); audio provenance not stated", use="train_ok",
         rules=[("c4f782c0ccb8b45d135d174fc338474dc35d5c63", r"^resources/audio_samples/[^/]+\.wav$",
                 _pico("koala"))]),
    dict(slug="whisper-jfk", repo="openai/whisper",
         licence="MIT (repository); speech public domain (US government work)", use="train_ok",
         rules=[("c0d2f624c09dc18e709e37c2ad90c039a4eb72a2", r"^tests/jfk\.flac$", _jfk)]),
    dict(slug="lvc-vc-demo", repo="lvc-vc/lvc-vc-demo",
         licence="no licence stated (demo page); VCTK originals CC BY 4.0", use="eval_only",
         rules=[("740a3b13267fe1444b566bbdc7e66e62821e9653", r"^audio/([a-z0-9_]+)/(?:[a-z0-9]+/)?[^/]+\.wav$",
                 _lvc)]),
    dict(slug="unilight-demos", repo="unilight/Publication-Demos",
         licence="no licence stated (demo pages); VCC2020 / CMU ARCTIC corpora", use="eval_only",
         rules=[("0e38737", r"^publications/([^/]+)/samples/(.+\.wav)$", _unilight)]),
    dict(slug="advspeech", repo="yryMax/AdvSpeech",
         licence="MIT (repository); demo audio, eval only", use="eval_only",
         rules=[("08d8124", r"^(audios/(en|cn)_sample|sample_web/audios/V2_(cosyvoice|Spark))/[^/]+\.wav$",
                 _adv)]),
    dict(slug="dns3-realrec", repo="Xiaobin-Rong/gtcrn",
         licence="MIT (repository); DNS Challenge 3 blind-test real recordings by Microsoft, CC BY 4.0 "
                 "(microsoft/DNS-Challenge README, Legal Notices)", use="train_ok",
         rules=[("d0531ca60551980d5b0f4fee9b3196ae192e2967",
                 r"^GTCRN-demo/samples/DNS3_blind_test_set/ms_realrec_(emotional|english|nonenglish)_"
                 r"(earphone|openspeaker|headset|laptop_mic)_([A-Za-z0-9]+)_.*fileid_\d+(?:_PLpart_\d+)?\.wav$",
                 _dns3)]),
    dict(slug="voxconverse", repo="snakers4/silero-vad",
         licence="MIT (repository); VoxConverse clip (examples/c++/README.md), CC BY 4.0 for research, "
                 "video owners keep copyright: eval only", use="eval_only",
         rules=[("806dcba3f0b5d95282d0889a074954a2f8c6397b", r"^examples/c\+\+/aepyx_8k\.wav$",
                 _voxconverse)]),
    dict(slug="tenvad", repo="TEN-framework/ten-vad",
         licence="Apache-2.0 with extra conditions (repository LICENSE); test clips from LibriSpeech, "
                 "GigaSpeech (non-commercial) and the DNS Challenge (README): eval only", use="eval_only",
         rules=[("dddbeb16e6a4b4e9fa3bc4bf87f30fc26a19e963", r"^testset/testset-audio-(\d+)\.wav$",
                 _tenvad)]),
]


# ------------------------------------------------------------------------------------------
# git access

def git(d, *args, binary=False):
    out = subprocess.run(["git", "-C", d] + list(args), check=True, capture_output=True)
    return out.stdout if binary else out.stdout.decode("utf-8", "surrogateescape")


def resolve(d, commit):
    return git(d, "rev-parse", "--verify", commit + "^{commit}").strip()


def ls_tree(d, commit):
    rows = []
    for line in git(d, "ls-tree", "-r", "-l", "-z", commit).split("\0"):
        if not line:
            continue
        meta, path = line.split("\t", 1)
        mode, typ, sha, size = meta.split()
        if typ == "blob" and size.isdigit():  # "BAD": blob absent from the snapshot (>= 4 MiB)
            rows.append((path, sha, int(size)))
    return sorted(rows)


# ------------------------------------------------------------------------------------------
# audio

def decode(data, ext):
    """-> (float32 [n, ch], sr). soundfile for WAV/FLAC/OGG; ffmpeg for the rest."""
    if ext in (".wav", ".flac", ".ogg"):
        try:
            x, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
            return x, sr
        except Exception:
            pass
    probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries",
                            "stream=sample_rate,channels", "-of", "json", "-i", "pipe:0"],
                           input=data, capture_output=True, check=True)
    st = json.loads(probe.stdout)["streams"][0]
    sr, ch = int(st["sample_rate"]), int(st["channels"])
    if ext == ".opus":
        sr = 48000  # libopus decodes at 48 kHz; ffprobe reports the input rate hint
    out = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", "pipe:0", "-f", "f32le",
                          "-ar", str(sr), "-ac", str(ch), "pipe:1"], input=data,
                         capture_output=True, check=True)
    x = np.frombuffer(out.stdout, dtype="<f4").reshape(-1, ch)
    return x, sr


def to16k_mono(x, sr):
    y = x.mean(axis=1).astype(np.float64)
    if sr != SR:
        g = gcd(int(sr), SR)
        y = sps.resample_poly(y, SR // g, int(sr) // g)
    return np.clip(y, -1.0, 1.0)


def write_wav(path, y):
    pcm = np.round(y * 32767.0).astype("<i2")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    sf.write(tmp, pcm, SR, subtype="PCM_16", format="WAV")
    os.replace(tmp, path)


def sha256_file(p):
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def safe_name(path):
    stem = os.path.splitext(path)[0]
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem.replace("/", "__")) + ".wav"


# ------------------------------------------------------------------------------------------

def collect_source(src, snap_dir, out_root, force, keep_orig, log):
    rows = []
    for rule in src["rules"]:
        commit, pattern, fn = rule[:3]
        use = rule[3] if len(rule) > 3 else src["use"]
        full = resolve(snap_dir, commit)
        rx = re.compile(pattern)
        n_lfs = 0
        for path, sha, size in ls_tree(snap_dir, full):
            if not path.lower().endswith(AUDIO_EXT) or RESERVED_PATH_RE.search(path):
                continue
            m = rx.match(path)
            if not m:
                continue
            meta = fn(m, path)
            if meta is None:
                continue
            if size < 1024:
                data = git(snap_dir, "cat-file", "blob", sha, binary=True)
                if data.startswith(b"version https://git-lfs"):
                    n_lfs += 1
                    continue
            name = safe_name(path)
            wav = os.path.join(out_root, src["slug"], name)
            orig_rel = os.path.join(src["slug"], "orig", src["repo"].replace("/", "+"), path)
            data = None
            if keep_orig and not os.path.exists(os.path.join(out_root, orig_rel)):
                data = git(snap_dir, "cat-file", "blob", sha, binary=True)
                op = os.path.join(out_root, orig_rel)
                os.makedirs(os.path.dirname(op), exist_ok=True)
                with open(op, "wb") as f:
                    f.write(data)
            side = wav[:-4] + ".info.json"
            if force or not (os.path.exists(wav) and os.path.exists(side)):
                if data is None:
                    data = git(snap_dir, "cat-file", "blob", sha, binary=True)
                try:
                    x, sr = decode(data, os.path.splitext(path)[1].lower())
                except Exception as e:  # report and continue
                    log(f"  [skip] {src['repo']}:{path}: {e}")
                    continue
                y = to16k_mono(x, sr)
                if len(y) < SR // 4:
                    log(f"  [skip] {path}: shorter than 0.25 s")
                    continue
                write_wav(wav, y)
                with open(side, "w") as f:
                    json.dump({"orig_sample_rate": int(sr), "orig_channels": int(x.shape[1]),
                               "blob": sha}, f, sort_keys=True)
            info = json.load(open(side))
            pcm, _ = sf.read(wav, dtype="float64")
            dur = len(pcm) / SR
            rms_db = 10.0 * np.log10(np.mean(pcm ** 2) + 1e-12)
            row = {"path": os.path.relpath(wav, out_root), "label": meta["label"],
                   "kind": meta["kind"], "tool": meta["tool"], "speaker": meta["speaker"],
                   "group": meta["group"], "source": f"{src['repo']}@{full}", "src_path": path,
                   "licence": src["licence"], "use": use, "duration_s": round(dur, 3),
                   "orig_sample_rate": info["orig_sample_rate"],
                   "orig_channels": info["orig_channels"], "language": meta["language"],
                   "channel": meta["channel"], "sha256": sha256_file(wav),
                   "orig_path": orig_rel if keep_orig else "", "rms_dbfs": round(float(rms_db), 1)}
            rows.append(row)
        if n_lfs:
            log(f"  {src['repo']}@{full[:10]}: {n_lfs} Git LFS pointers skipped")
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--snapshot", action="append", default=[], metavar="OWNER/REPO=DIR",
                    help="bare git dir of a snapshot (repeatable)")
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--only", action="append", default=[], help="source slug(s) to run")
    ap.add_argument("--force", action="store_true", help="re-decode existing WAVs")
    ap.add_argument("--no-orig", action="store_true", help="do not keep original files")
    ap.add_argument("--list", action="store_true", help="list the sources and exit")
    a = ap.parse_args()

    if a.list:
        for s in SOURCES:
            print(f"{s['slug']:16s} {s['repo']:32s} {s['use']:9s} {s['licence']}")
        return 0
    snaps = {}
    for spec in a.snapshot:
        repo, _, d = spec.partition("=")
        if repo in RESERVED_REPOS:
            sys.exit(f"{repo} is reserved for independent measurement (../shared/research/reserved.md)")
        if not os.path.isdir(d):
            sys.exit(f"--snapshot {spec}: not a directory")
        snaps[repo] = d
    os.makedirs(a.out, exist_ok=True)
    rows, ran = [], []

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    for src in SOURCES:
        if a.only and src["slug"] not in a.only:
            continue
        d = snaps.get(src["repo"])
        if d is None:
            log(f"[skip] {src['slug']}: no --snapshot {src['repo']}=DIR given")
            continue
        log(f"[{src['slug']}] {src['repo']}")
        try:
            r = collect_source(src, d, a.out, a.force, not a.no_orig, log)
        except subprocess.CalledProcessError as e:
            log(f"  [error] {src['repo']}: {e.stderr.decode(errors='replace').strip()}")
            continue
        rows += r
        ran.append({k: v for k, v in src.items() if k != "rules"} |
                   {"commits": sorted({x["source"].split("@")[1] for x in r}), "files": len(r),
                    "minutes": round(sum(x["duration_s"] for x in r) / 60, 2)})
        log(f"  {len(r)} files, {sum(x['duration_s'] for x in r) / 60:.1f} min")
    rows.sort(key=lambda r: r["path"])
    with open(os.path.join(a.out, "manifest.jsonl"), "w") as f:
        for r in rows:
            f.write(json.dumps(r, sort_keys=False, ensure_ascii=False) + "\n")
    with open(os.path.join(a.out, "SOURCES.json"), "w") as f:
        json.dump(ran, f, indent=1, sort_keys=True)
    tot = {}
    for r in rows:
        k = (r["label"], r["kind"])
        tot[k] = tot.get(k, 0) + r["duration_s"]
    for (lab, kind), s in sorted(tot.items()):
        log(f"{lab:12s} {kind:15s} {s / 60:7.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
