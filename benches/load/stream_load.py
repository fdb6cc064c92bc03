#!/usr/bin/env python3
"""Live-audio stream benchmark for a Candor server on this machine (loopback).

Streams a 16 kHz mono WAV file to POST /v1/stream/audio as raw PCM at real
time (chunks of --chunk-ms, paced by the clock, as a live interview would
send), while reading the newline-delimited JSON answer on the same
connection. For every segment it records:
  * the server-side added latency (`latency_ms`: last sample of the segment
    in -> score out), and
  * the client-side latency: from sending the chunk that completed the
    segment to receiving its line (adds loopback and framing).

It runs 1 stream alone (the reference), then N concurrent streams, and
prints a Markdown report (p50 / p95 / max, and the N-stream p95 as a ratio
of the 1-stream p95). Every loop is bounded; only loopback addresses are
accepted. Python 3 stdlib only.
"""

import argparse
import ipaddress
import json
import socket
import statistics
import sys
import threading
import time
import urllib.parse
import wave


def pcm16k(path):
    with wave.open(path, "rb") as w:
        if w.getframerate() != 16000 or w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise SystemExit(f"{path}: need a 16 kHz mono 16-bit WAV")
        return w.readframes(w.getnframes())


def stream_once(host, port, pcm, chunk_ms, timeout_s):
    """One stream at real time; returns (segments, summary, client latencies)."""
    chunk = int(16000 * chunk_ms / 1000) * 2
    s = socket.create_connection((host, port), timeout=timeout_s)
    s.sendall(
        (
            "POST /v1/stream/audio?sample_rate=16000&encoding=pcm_s16le HTTP/1.1\r\n"
            f"Host: {host}\r\nContent-Type: application/octet-stream\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        ).encode()
    )
    sent_at = {}  # byte offset reached -> time sent
    lines = []
    received = {}

    def reader():
        buf = b""
        f = s.makefile("rb")
        status = f.readline()
        if b" 200 " not in status:
            lines.append({"type": "http_error", "status": status.decode(errors="replace")})
            return
        chunked = False
        while True:
            h = f.readline()
            if h in (b"\r\n", b""):
                break
            if h.lower().startswith(b"transfer-encoding:") and b"chunked" in h.lower():
                chunked = True
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if chunked:
                size_line = f.readline()
                if not size_line:
                    break
                n = int(size_line.strip().split(b";")[0], 16)
                if n == 0:
                    break
                data = f.read(n)
                f.readline()
            else:
                data = f.readline()
                if not data:
                    break
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if line.strip():
                    obj = json.loads(line)
                    received[len(lines)] = time.monotonic()
                    lines.append(obj)

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    start = time.monotonic()
    off = 0
    while off < len(pcm):
        piece = pcm[off : off + chunk]
        target = start + off / 32000.0
        delay = target - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        s.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
        off += len(piece)
        sent_at[off] = time.monotonic()
    s.sendall(b"0\r\n\r\n")
    t.join(timeout_s)
    s.close()
    offsets = sorted(sent_at)
    client = []
    segments = [l for l in lines if l.get("type") == "segment"]
    for i, l in enumerate(lines):
        if l.get("type") != "segment" or l.get("end_s") is None:
            continue
        need = int(round(l["end_s"] * 32000))
        sent = next((sent_at[o] for o in offsets if o >= need), None)
        if sent is not None and i in received:
            client.append((received[i] - sent) * 1e3)
    summary = next((l for l in lines if l.get("type") == "summary"), None)
    errors = [l for l in lines if l.get("type") in ("error", "http_error")]
    return segments, summary, client, errors


def pct(v, p):
    if not v:
        return float("nan")
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def run(host, port, pcm, chunk_ms, n, timeout_s):
    results = [None] * n

    def one(i):
        results[i] = stream_once(host, port, pcm, chunk_ms, timeout_s)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout_s + 5)
    server = [s["latency_ms"] for r in results if r for s in r[0]]
    client = [c for r in results if r for c in r[2]]
    errors = [e for r in results if r for e in r[3]]
    summaries = [r[1] for r in results if r and r[1]]
    return server, client, errors, summaries


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--file", required=True, help="16 kHz mono 16-bit WAV")
    ap.add_argument("--repeat", type=int, default=4, help="play the file this many times per stream")
    ap.add_argument("--chunk-ms", type=int, default=100)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--timeout", type=float, default=300.0)
    a = ap.parse_args()
    u = urllib.parse.urlparse(a.url)
    host = u.hostname
    if not ipaddress.ip_address(socket.gethostbyname(host)).is_loopback:
        raise SystemExit("loopback addresses only")
    pcm = pcm16k(a.file) * max(1, a.repeat)
    secs = len(pcm) / 32000
    rows = []
    ref_p95 = None
    for n in (1, a.concurrency):
        server, client, errors, summaries = run(host, u.port, pcm, a.chunk_ms, n, a.timeout)
        if errors:
            print(f"errors at {n} streams: {errors[:3]}", file=sys.stderr)
        p95 = pct(server, 95)
        if n == 1:
            ref_p95 = p95
        rows.append((n, len(server), pct(server, 50), p95, max(server or [float("nan")]),
                     pct(client, 50), pct(client, 95), p95 / ref_p95 if ref_p95 else float("nan"),
                     len(errors), len(summaries)))
    print("# Live audio stream latency (generated)\n")
    print(f"Generated by `benches/load/run-stream.sh` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: "
          f"`{a.file}` repeated to {secs:.1f} s, streamed as raw 16 kHz PCM at real time in "
          f"{a.chunk_ms} ms chunks to `POST /v1/stream/audio` on loopback; machine: "
          f"{__import__('os').cpu_count()} CPUs.\n")
    print("Added latency = from the arrival of a segment's last sample to its score "
          "(server-measured `latency_ms`); client = from sending the chunk that completed "
          "the segment to receiving its line.\n")
    print("| Streams | Segments | p50 added (ms) | p95 added (ms) | max added (ms) | p50 client (ms) | p95 client (ms) | p95 vs 1 stream | Errors | Summaries |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print("| {} | {} | {:.1f} | {:.1f} | {:.1f} | {:.1f} | {:.1f} | {:.2f}x | {} | {} |".format(*r))


if __name__ == "__main__":
    main()
