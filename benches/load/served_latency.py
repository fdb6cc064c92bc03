#!/usr/bin/env python3
"""Served-path latency of one request per modality (Python 3 stdlib only).

POSTs the issue workloads one at a time (no concurrency) to a running
`candor serve` and reports, per workload, the wall-clock latency a client
sees (p50, p95) and, as the in-process reference of the same requests, the
analysis time the server itself measured (`timings.total_ms` of each
result): their ratio is what the HTTP layer, multipart parsing, the
pictures' encoding and the JSON cost on top of the analysis. A `GET /ready`
round trip is the transport floor.

Workloads (the targets named in issues 13, 14 and 15):
  * image: a 1024 px JPEG headshot (a committed sample scaled up with ffmpeg),
    pictures included (the default);
  * audio: 30 s of 16 kHz speech (the committed WAV samples concatenated);
  * text: benches/text/resume_700tok.txt (~700 tokens), sentence spans
    included.

Usage: served_latency.py --url http://127.0.0.1:PORT [--requests 15]
Writes Markdown to stdout.
"""
import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import wave

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from loadlib import cpu_model, loopback_only, multipart, pct  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def make_headshot(tmp):
    out = os.path.join(tmp, "headshot-1024.jpg")
    src = os.path.join(REPO, "samples/image/authentic-face-hopper.jpg")
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-i", src, "-vf",
         "scale=1024:1024:force_original_aspect_ratio=increase,crop=1024:1024", "-q:v", "3", out],
        check=True,
    )
    return out


def make_speech(tmp, seconds=30.0):
    """Concatenates the committed 16 kHz mono WAV samples (authentic first)."""
    out = os.path.join(tmp, "speech-30s.wav")
    frames, need = [], int(seconds * 16000)
    names = sorted(n for n in os.listdir(os.path.join(REPO, "samples/audio")) if n.endswith(".wav"))
    while need > 0:
        for n in names:
            with wave.open(os.path.join(REPO, "samples/audio", n)) as w:
                if w.getframerate() != 16000 or w.getnchannels() != 1 or w.getsampwidth() != 2:
                    continue
                data = w.readframes(min(w.getnframes(), need))
            frames.append(data)
            need -= len(data) // 2
            if need <= 0:
                break
        if not frames:
            sys.exit("no 16 kHz mono WAV sample in samples/audio")
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"".join(frames))
    return out


def post_json(url, body, ctype, timeout=120):
    req = urllib.request.Request(url, data=body, headers={"Content-Type": ctype}, method="POST")
    t = time.perf_counter()
    with urllib.request.urlopen(req, timeout=timeout) as r:
        data = r.read()
    return time.perf_counter() - t, json.loads(data)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--requests", type=int, default=15, help="timed requests per workload (after 2 warm-ups)")
    ap.add_argument("--signals-url", help="a second server started with CANDOR_TEXT_SIGNALS=true: the "
                    "resume is timed there too, as the reference for the text row")
    ap.add_argument("--spinning-url", help="a server started with CANDOR_ORT_SPINNING=true: the headshot "
                    "and the speech are timed there too, as the reference for ONNX Runtime's own default")
    ap.add_argument("--nopicture-url", help="a server started with CANDOR_IMAGE_PICTURE=false: the "
                    "headshot is timed there too, as the reference for what drawing and encoding the "
                    "evidence pictures costs")
    ap.add_argument("--facepath-url", help="a server started with CANDOR_IMAGE_MAX_SIDE=64: the headshot "
                    "is timed there too, its forensic measures on a 64 px centre crop and no forgery CNN "
                    "(smaller than a tile), as the reference for the score's own path (faces, tower, heads)")
    ap.add_argument("--hop1-url", help="a server started with CANDOR_AUDIO_HOP_S=1: the speech is timed "
                    "there too, its 2 s segments overlapping (twice the encoder rows), as the reference "
                    "for the default's touching segments")
    a = ap.parse_args()
    loopback_only(a.url)
    for u in (a.signals_url, a.spinning_url, a.nopicture_url, a.facepath_url, a.hop1_url):
        if u:
            loopback_only(u)
    tmp = tempfile.mkdtemp(prefix="candor-served-")
    workloads = [
        ("image: 1024 px JPEG headshot, pictures included", make_headshot(tmp), "image", a.url),
        ("audio: 30 s of 16 kHz speech (WAV)", make_speech(tmp), "audio", a.url),
        ("text: 700-token resume, sentence spans included", os.path.join(REPO, "benches/text/resume_700tok.txt"), "text", a.url),
    ]
    if a.signals_url:
        workloads.append(("text: the same resume, zero-shot signals on (`CANDOR_TEXT_SIGNALS=true`; reference)",
                          os.path.join(REPO, "benches/text/resume_700tok.txt"), "text", a.signals_url))
    if a.spinning_url:
        workloads += [
            ("image: the same headshot, ONNX Runtime threads spinning (`CANDOR_ORT_SPINNING=true`; reference)",
             workloads[0][1], "image", a.spinning_url),
            ("audio: the same speech, ONNX Runtime threads spinning (`CANDOR_ORT_SPINNING=true`; reference)",
             workloads[1][1], "audio", a.spinning_url),
        ]
    nopicture_title = "image: the same headshot, no pictures (`CANDOR_IMAGE_PICTURE=false`; reference)"
    if a.nopicture_url:
        workloads.append((nopicture_title, workloads[0][1], "image", a.nopicture_url))
    facepath_title = ("image: the same headshot, forensic measures on a 64 px crop and no forgery CNN "
                      "(`CANDOR_IMAGE_MAX_SIDE=64`; reference: the face path alone)")
    if a.facepath_url:
        workloads.append((facepath_title, workloads[0][1], "image", a.facepath_url))
    hop1_title = "audio: the same speech, overlapping segments (`CANDOR_AUDIO_HOP_S=1`; reference)"
    if a.hop1_url:
        workloads.append((hop1_title, workloads[1][1], "audio", a.hop1_url))
    ready = []
    for _ in range(a.requests):
        t = time.perf_counter()
        urllib.request.urlopen(a.url + "/ready", timeout=10).read()
        ready.append(time.perf_counter() - t)
    rows = []
    for title, path, modality, url in workloads:
        body, ctype = multipart(path)
        walls, inproc, scored = [], [], 0
        for k in range(a.requests + 2):
            wall, resp = post_json(url + "/v1/analyze", body, ctype)
            res = (resp.get("results") or [{}])[0]
            if res.get("modality") != modality:
                sys.exit(f"{path}: analysed as {res.get('modality')}, expected {modality}")
            if k < 2:
                continue
            walls.append(wall * 1000.0)
            inproc.append(float(res.get("timings", {}).get("total_ms") or float("nan")))
            scored += res.get("score") is not None
        rows.append((title, os.path.getsize(path), walls, inproc, scored))
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print("# Served-path latency\n")
    print("Generated by `benches/load/run-served.sh` (runs `benches/load/served_latency.py` against a "
          "release `candor serve` on 127.0.0.1, one request at a time). The in-process column is the "
          "analysis time the server measured for the same requests (`timings.total_ms`); the ratio is "
          "what serving adds on top. Absolute numbers depend on the machine: quote the ratios.\n")
    print(f"- Machine: {cpu_model()}, {os.cpu_count()} cores")
    print(f"- Date: {now}; {a.requests} timed requests per workload after 2 warm-ups")
    print(f"- Transport floor (`GET /ready` round trip): p50 {statistics.median(ready) * 1000:.2f} ms\n")
    print("| workload | bytes | scored | served p50 | served p95 | in-process p50 | served / in-process (p50) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for title, size, walls, inproc, scored in rows:
        p50, p95, i50 = pct(walls, 0.5), pct(walls, 0.95), pct(inproc, 0.5)
        print(f"| {title} | {size} | {scored}/{len(walls)} | {p50:.0f} ms | {p95:.0f} ms | {i50:.0f} ms | {p50 / i50:.2f}x |")
    if a.signals_url:
        text = [statistics.median(w) for t, _, w, _, _ in rows if t.startswith("text:")]
        print(f"\nText, default (the language model stops at the head's block 18) against the reference "
              f"with the zero-shot signals on, same resume, same run: served p50 ratio {text[0] / text[1]:.2f}x.")
    if a.spinning_url:
        for m in ("image", "audio"):
            w = [statistics.median(w) for t, _, w, _, _ in rows if t.startswith(m + ":")]
            print(f"\n{m.capitalize()}, default (each model's threads as its manifest entry says: the audio "
                  f"models' spin between operators, the others' sleep) against the reference with every "
                  f"model's spinning (ONNX Runtime's own default), same input, same run: "
                  f"served p50 ratio {w[0] / w[1]:.2f}x.")
    by_title = {t: statistics.median(w) for t, _, w, _, _ in rows}
    if a.nopicture_url:
        with_pictures, without = by_title[workloads[0][0]], by_title[nopicture_title]
        print(f"\nImage with its evidence pictures (heatmap, face map, spectrum; PNG) against the same "
              f"headshot without them, same run: served p50 ratio {with_pictures / without:.2f}x.")
    if a.facepath_url:
        full, face = by_title[workloads[0][0]], by_title[facepath_title]
        print(f"\nImage, default (forensic measures on the whole headshot, forgery CNN on the 512 px square "
              f"around the face) against the face path alone, same headshot, same run: served p50 ratio "
              f"{full / face:.2f}x (what the forensic evidence adds on these cores).")
    if a.hop1_url:
        touching, overlapping = by_title[workloads[1][0]], by_title[hop1_title]
        print(f"\nAudio, default (2 s segments every 2 s: 15 encoder rows for 30 s) against the reference "
              f"with a 1 s hop (overlapping segments: 29 rows), same speech, same run: served p50 ratio "
              f"{touching / overlapping:.2f}x.")


if __name__ == "__main__":
    main()
