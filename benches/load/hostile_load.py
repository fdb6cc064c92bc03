#!/usr/bin/env python3
"""Hostile-load battery for a Candor server on this machine (loopback only).

Reproduces the attacks of issue #16 against one running server and shows
each refused or bounded:

  1. reference: /v1/analyze alone (latency), idle server RSS;
  2. 8 idle live streams (connect, send nothing) while /v1/analyze is used;
  3. 8 x 250 MiB uploads: declared (Content-Length) raw bodies, and chunked
     multipart bodies with one 250 MiB part;
  4. a flood of 8, then 32 clients sending 200 MiB bodies next to 2
     well-behaved clients (goodput against a no-flood reference);
  5. 32 x 200 MiB uploads while every analysis slot is busy (429 path);
  6. async jobs with 60 MiB inputs (job byte budget, spill area);
  7. a 3.6 KB WAV declaring a 1 Hz sample rate;
  8. slow headers (one byte a second) and 2,000 half-open connections.

For every attack: what the server answered, how many body bytes it read
(its own counter), and its peak RSS growth over idle (sampled from
/proc/<pid>/status every 5 ms). Every loop is bounded in count and time;
only loopback addresses are accepted. Output: a Markdown report on stdout.
Python 3 stdlib only.
"""

import argparse
import json
import multiprocessing
import os
import resource
import select
import selectors
import socket
import statistics
import struct
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

from loadlib import cpu_model, loopback_only, multipart, pct, post

MIB = 1024 * 1024
mp = multiprocessing.get_context("fork")
ZEROS = bytes(MIB)

HOW = """## How the server holds up

- **Admission before reading.** A request's declared `Content-Length` is
  checked against the body limit (and, for a raw single-input body, the
  per-input limit), and it must get an analysis slot (synchronous) or room
  in the job store (async: a job slot and its bytes against
  `max_job_bytes`) before a byte of its body is read. A refusal (413, 429)
  costs the headers; the connection is closed after it.
- **Bodies are streamed.** Multipart parts are parsed as they arrive
  (part headers capped at 16 KiB, names at `max_file_name_bytes`), with a
  running byte count refused at the first byte past the per-input or body
  limit. An input over `spill_threshold_bytes` moves to an unnamed file in
  the spill directory while it arrives (disk bounded by `spill_max_bytes`)
  and is read back, once, when its analysis starts, within
  `max_loaded_input_bytes` of memory for all such inputs together.
- **Timeouts.** A body that sends nothing for `body_idle_timeout` is
  answered 408, a body not complete by the request deadline too. The
  accept loop closes connections whose headers are not complete
  `header_read_timeout` after they open (or after the request's first
  byte), that sit idle between requests for `keep_alive_timeout`, or whose
  client stops reading a response for `body_idle_timeout`; it caps open
  connections (`max_connections`) and connections per client address
  (`max_connections_per_client`).
- **Streams** have their own `max_concurrent_streams` slots, separate from
  the analysis slots of uploads, an idle timeout (`stream_idle_timeout`) and
  a wall-clock cap (`stream_max_duration`).
- **Decoders** refuse audio headers declaring less than
  `min_audio_sample_rate`, or more audio than the file's bytes can hold
  (`implausible_header`); truncated JPEGs and audio are analysed but
  flagged (`input_truncated: true` and a warning).
- **Keys and jobs.** Wrong API keys are counted per client address
  (`auth_max_failures` per `auth_failure_window`, then 429 for the rest of
  the window); an async job is visible only to the key that created it.
- **Telemetry** is off in ONNX Runtime's environment (the CLI test
  `startup_writes_nothing_outside_candor_home_and_resolves_no_host` checks
  start-up under strace, or with an empty `HOME` without it).
- **Logs and metrics.** INFO lines carry problem codes, never file names or
  text; requests and async jobs still running when the shutdown grace ends
  are logged one line each. Metrics: `candor_admission_refused_total{reason}`,
  `candor_http_request_body_bytes_total`, `candor_http_connections_*`,
  `candor_http_client_disconnects_total`, `candor_audio_streams_total{outcome}`,
  `candor_spill_bytes`, `candor_job_bytes`, `candor_shutdown_dropped_total`.
- **What stays bounded only by configuration:** an input that is admitted
  is analysed; while it is, it is in memory (whole, plus what its decoder
  makes of it), so peak memory under legitimate heavy load is about
  `max_concurrent_analyses` x (decoded size of an input), with large inputs
  capped together by `max_loaded_input_bytes`."""


# ----------------------------------------------------------- measuring ----


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class RssPeak:
    """Samples the server's RSS every 5 ms while active."""

    def __init__(self, pid):
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, rss_kib(self.pid))
            except OSError:
                return
            time.sleep(0.005)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join(timeout=2)


def cpu_seconds(pid):
    """CPU time (user + system) the process has used, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def flood_process(host, port, clients, stop_at, out):
    """`clients` threads sending declared 200 MiB uploads until `stop_at`;
    sends their statuses to `out`."""
    st, lock = [], threading.Lock()

    def one():
        n = 0
        while time.time() < stop_at and n < 10_000:
            s, _, _ = hostile_upload(host, port, raw_upload_head(host, 200 * MIB), 200 * MIB, False, 10)
            n += 1
            with lock:
                st.append(s)

    t0 = time.perf_counter()
    ts = [threading.Thread(target=one) for _ in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    ru = resource.getrusage(resource.RUSAGE_SELF)
    out.send((st, (ru.ru_utime + ru.ru_stime) / (time.perf_counter() - t0)))


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def metric_sum(url, name, label=""):
    """Sum of the samples of `name` whose labels contain `label`."""
    text = urllib.request.urlopen(f"{url}/metrics", timeout=10).read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        metric = head.split("{", 1)[0]
        if metric == name and label in head:
            try:
                total += float(value)
            except ValueError:
                pass
    return total


def ms(x):
    return f"{x * 1e3:.1f} ms"


def mib(kib):
    return f"{kib / 1024:.0f} MiB"


# ------------------------------------------------------------ requests ----


def analyze_once(url, body, ctype, timeout=60.0):
    return post(f"{url}/v1/analyze", body, ctype, timeout)


def sequential(url, body, ctype, n):
    lat, st = [], {}
    for _ in range(n):
        dt, s = analyze_once(url, body, ctype)
        st[s] = st.get(s, 0) + 1
        if s == 200:
            lat.append(dt)
    return lat, st


def status_of(sock, timeout):
    """Reads an HTTP status line (and discards the rest that is there)."""
    sock.settimeout(timeout)
    buf = b""
    try:
        while b"\r\n" not in buf and len(buf) < 4096:
            c = sock.recv(4096)
            if not c:
                break
            buf += c
    except (socket.timeout, OSError):
        pass
    parts = buf.split(b" ", 2)
    try:
        return int(parts[1])
    except (IndexError, ValueError):
        return 0


def hostile_upload(host, port, head, total, chunked, max_seconds=60.0):
    """Sends `head`, then up to `total` body bytes in 1 MiB pieces until the
    server answers (or closes). Returns (status, body bytes sent, seconds)."""
    t = time.perf_counter()
    s = socket.create_connection((host, port), timeout=10)
    sent = 0
    try:
        s.sendall(head)
        while sent < total and time.perf_counter() - t < max_seconds:
            r, _, _ = select.select([s], [], [], 0)
            if r:
                break
            n = min(MIB, total - sent)
            piece = ZEROS[:n]
            if chunked:
                piece = f"{n:x}\r\n".encode() + piece + b"\r\n"
            s.sendall(piece)
            sent += n
        status = status_of(s, 10)
    except OSError:
        status = status_of(s, 2)
    finally:
        s.close()
    return status, sent, time.perf_counter() - t


def raw_upload_head(host, size, path="/v1/analyze"):
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/octet-stream\r\n"
        f"Content-Length: {size}\r\nConnection: close\r\n\r\n"
    ).encode()


def multipart_upload(size):
    """(head, prefix, suffix) of a chunked multipart body with one part."""
    b = uuid.uuid4().hex
    prefix = (
        f"--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\n"
        f"Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return b, prefix, size


def chunked_multipart_head(host, boundary, prefix):
    head = (
        f"POST /v1/analyze HTTP/1.1\r\nHost: {host}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    ).encode()
    return head + f"{len(prefix):x}\r\n".encode() + prefix + b"\r\n"


def in_threads(n, fn):
    out = [None] * n

    def run(i):
        out[i] = fn(i)

    ts = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return out


def statuses(xs):
    d = {}
    for x in xs:
        d[x] = d.get(x, 0) + 1
    return json.dumps(dict(sorted(d.items())))


def wav_header_only(rate, data_bytes):
    """8-bit mono PCM WAV declaring `rate` Hz, with `data_bytes` of samples."""
    fmt = struct.pack("<4sIHHIIHH", b"fmt ", 16, 1, 1, rate, rate, 1, 8)
    data = b"data" + struct.pack("<I", data_bytes) + bytes([128]) * data_bytes
    riff = b"WAVE" + fmt + data
    return b"RIFF" + struct.pack("<I", len(riff)) + riff


# -------------------------------------------------------------- phases ----


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--pid", type=int, required=True, help="server process id (for RSS)")
    ap.add_argument("--file", required=True, help="a small, valid input (legit traffic)")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each flood phase")
    ap.add_argument("--half-open", type=int, default=2000)
    a = ap.parse_args()
    loopback_only(a.url)
    u = urllib.parse.urlparse(a.url)
    host, port = u.hostname, u.port or 80
    load_at_start = os.getloadavg()[0]
    info = json.load(urllib.request.urlopen(f"{a.url}/info", timeout=10))
    srv = info["server"]
    body, ctype = multipart(a.file)
    rows = []

    def add(row):
        rows.append(row)
        print("done: " + row[0], file=sys.stderr, flush=True)

    def body_bytes():
        return metric_sum(a.url, "candor_http_request_body_bytes_total")

    # 1. Reference.
    sequential(a.url, body, ctype, 5)
    ref, ref_st = sequential(a.url, body, ctype, 30)
    idle = statistics.median(rss_kib(a.pid) for _ in range(5))
    ref_p50, ref_p95 = pct(ref, 0.5), pct(ref, 0.95)

    # 2. Idle streams.
    streams = []
    opened = time.perf_counter()
    for _ in range(8):
        s = socket.create_connection((host, port), timeout=10)
        s.sendall((
            "POST /v1/stream/audio?sample_rate=16000&encoding=pcm_s16le HTTP/1.1\r\n"
            f"Host: {host}\r\nContent-Type: application/octet-stream\r\n"
            "Transfer-Encoding: chunked\r\n\r\n").encode())
        streams.append(s)
    stream_status = [status_of(s, 5) for s in streams]
    lat, st = sequential(a.url, body, ctype, 30)
    # The accepted streams must be ended by the server.
    ended = []
    for s, code in zip(streams, stream_status):
        if code != 200:
            s.close()
            continue
        s.settimeout(srv["stream_idle_timeout_ms"] / 1e3 + 15)
        try:
            while s.recv(65536):
                pass
        except OSError:
            pass
        ended.append(time.perf_counter() - opened)
        s.close()
    # The machine is shared: measure the reference again now that the
    # streams are gone, and compare against both.
    after, _ = sequential(a.url, body, ctype, 30)
    base_p50 = (ref_p50 + pct(after, 0.5)) / 2
    base_p95 = (ref_p95 + pct(after, 0.95)) / 2
    add((
        "8 idle live streams (connect, send nothing)",
        f"streams: {statuses(stream_status)} ({srv['max_concurrent_streams']} stream slots); "
        f"/v1/analyze meanwhile: {json.dumps(st)}, "
        f"p50 {ms(pct(lat, 0.5))} / p95 {ms(pct(lat, 0.95))}; without streams, just before "
        f"and after: p50 {ms(ref_p50)} and {ms(pct(after, 0.5))}, p95 {ms(ref_p95)} and "
        f"{ms(pct(after, 0.95))}: {pct(lat, 0.5) / base_p50:.2f}x / {pct(lat, 0.95) / base_p95:.2f}x "
        f"their mean",
        f"accepted streams ended by the server after {max(ended) if ended else float('nan'):.1f} s "
        f"(stream idle timeout {srv['stream_idle_timeout_ms'] / 1e3:.0f} s)",
    ))

    # 3. 8 x 250 MiB uploads.
    size = 250 * MIB
    before = body_bytes()
    with RssPeak(a.pid) as peak:
        out = in_threads(8, lambda i: hostile_upload(host, port, raw_upload_head(host, size), size, False))
    read = body_bytes() - before
    add((
        "8 x 250 MiB raw uploads, declared length",
        f"{statuses([o[0] for o in out])}, answered in p95 {ms(pct([o[2] for o in out], 0.95))}; "
        f"client got {sum(o[1] for o in out) / MIB:.0f} MiB into socket buffers before the answer",
        f"server read {read / MIB:.2f} MiB of bodies ({read / 8:.0f} B per upload); "
        f"peak RSS +{mib(peak.peak - idle)} over idle",
    ))
    before = body_bytes()
    spilled0 = metric_sum(a.url, "candor_spilled_inputs_total")

    def chunked(_):
        b, prefix, n = multipart_upload(size)
        return hostile_upload(host, port, chunked_multipart_head(host, b, prefix), n, True)

    with RssPeak(a.pid) as peak:
        out = in_threads(8, chunked)
    read = body_bytes() - before
    spilled = metric_sum(a.url, "candor_spilled_inputs_total") - spilled0
    limit = info["analyzer"]["limits"]["max_upload_bytes"]
    add((
        "8 x 250 MiB multipart uploads, chunked (no length)",
        f"{statuses([o[0] for o in out])} at the first byte past the {limit / MIB:.0f} MiB "
        f"per-input limit, p95 {ms(pct([o[2] for o in out], 0.95))}",
        f"server read {read / MIB / 8:.0f} MiB per upload, to disk ({spilled:.0f} inputs spilled, "
        f"deleted); peak RSS +{mib(peak.peak - idle)} over idle",
    ))

    # 4. Flood next to well-behaved clients. The flood runs in its own
    # process, so that its threads do not take the interpreter lock from the
    # well-behaved clients; both share the machine's cores with the server.
    def goodput(flooders):
        stop_at = time.time() + a.seconds
        ok = [0, 0]
        lock = threading.Lock()

        def legit(i):
            n = 0
            while time.time() < stop_at and n < 10_000:
                _, s = analyze_once(a.url, body, ctype)
                n += 1
                with lock:
                    ok[0 if s == 200 else 1] += 1

        before = body_bytes()
        cpu0 = cpu_seconds(a.pid)
        with RssPeak(a.pid) as peak:
            rx, tx = mp.Pipe(duplex=False)
            child = None
            if flooders:
                child = mp.Process(target=flood_process, args=(host, port, flooders, stop_at, tx))
                child.start()
            ts = [threading.Thread(target=legit, args=(i,)) for i in range(2)]
            t0 = time.perf_counter()
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            flood_st, flood_cpu = rx.recv() if child else ([], 0.0)
            if child:
                child.join(timeout=30)
            wall = time.perf_counter() - t0
        cpu = (cpu_seconds(a.pid) - cpu0) / wall
        # The well-behaved bodies were read whole; the rest is the flood's.
        flood_read = max(0, body_bytes() - before - (ok[0] + ok[1]) * len(body))
        return ok[0] / wall, ok[1], flood_st, flood_read, peak.peak, cpu, flood_cpu

    g0, _, _, _, _, cpu_ref, _ = goodput(0)
    by_flood = {}
    for f in (8, 32):
        g, bad, fst, read, pk, cpu, fcpu = goodput(f)
        by_flood[f] = g
        add((
            f"{f} clients flooding 200 MiB uploads, 2 well-behaved clients",
            f"flood: {len(fst)} uploads {statuses(fst)}; well-behaved goodput {g:.1f} req/s "
            f"= {g / g0:.2f}x the no-flood reference ({g0:.1f} req/s)"
            + (f", {by_flood[32] / by_flood[8]:.2f}x the goodput under 8 flooding clients"
               if f == 32 else "") + f", {bad} failed",
            f"server read {read:.0f} B of the flood's bodies; server CPU {cpu:.2f} cores "
            f"({cpu_ref:.2f} without the flood), the flooding client's {fcpu:.2f} cores on the "
            f"same {os.cpu_count()}; peak RSS +{mib(pk - idle)} over idle",
        ))

    # 5. Every analysis slot busy: uploads are refused before their bodies.
    slots = srv["max_concurrent_analyses"]
    holders = []
    for _ in range(slots):
        s = socket.create_connection((host, port), timeout=10)
        s.sendall((f"POST /v1/analyze HTTP/1.1\r\nHost: {host}\r\nContent-Type: text/plain\r\n"
                   "Content-Length: 1000\r\n\r\nTen years of backend work").encode())
        holders.append(s)
    time.sleep(0.5)
    before = body_bytes()
    with RssPeak(a.pid) as peak:
        out = in_threads(32, lambda i: hostile_upload(
            host, port, raw_upload_head(host, 60 * MIB), 60 * MIB, False))
    read = body_bytes() - before
    for s in holders:
        s.close()
    add((
        f"32 x 60 MiB uploads while all {slots} analysis slots are busy",
        f"{statuses([o[0] for o in out])}, answered in p95 {ms(pct([o[2] for o in out], 0.95))}",
        f"server read {read:.0f} B of their bodies; peak RSS +{mib(peak.peak - idle)} over idle",
    ))

    # 6. Async jobs with large inputs.
    def job(_):
        head = raw_upload_head(host, 60 * MIB, "/v1/analyze?async=true")
        return hostile_upload(host, port, head, 60 * MIB, False)[0]

    job_peak = [0.0]

    def watch_jobs(stop):
        while not stop.is_set():
            try:
                job_peak[0] = max(job_peak[0], metric_sum(a.url, "candor_job_bytes"))
            except OSError:
                pass
            time.sleep(0.05)

    stop = threading.Event()
    w = threading.Thread(target=watch_jobs, args=(stop,))
    w.start()
    with RssPeak(a.pid) as peak:
        out = in_threads(20, job)
        deadline = time.perf_counter() + 120
        while time.perf_counter() < deadline and metric_sum(a.url, "candor_jobs", 'status="queued"') + \
                metric_sum(a.url, "candor_jobs", 'status="running"') > 0:
            time.sleep(0.2)
    stop.set()
    w.join()
    add((
        "20 async jobs with 60 MiB inputs (1.2 GiB)",
        f"{statuses(out)} (job budget {srv['max_job_bytes'] / MIB:.0f} MiB)",
        f"peak job bytes {job_peak[0] / MIB:.0f} MiB (inputs on disk while queued); "
        f"peak RSS +{mib(peak.peak - idle)} over idle "
        f"(loaded-input budget {srv['max_loaded_input_bytes'] / MIB:.0f} MiB)",
    ))

    # 7. The 1 Hz WAV.
    wav = wav_header_only(1, 3600)
    lat, st = [], []
    for _ in range(20):
        dt, s = analyze_once(a.url, wav, "audio/wav")
        lat.append(dt)
        st.append(s)
    add((
        f"{len(wav)} B WAV declaring 1 Hz (an hour of audio)",
        f"{statuses(st)} (`implausible_header`)",
        f"answered in p50 {ms(pct(lat, 0.5))}, max {ms(max(lat))}",
    ))

    # 8. Slow headers and half-open connections.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, a.half_open + 256)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    slow = [socket.create_connection((host, port), timeout=10) for _ in range(16)]
    t0 = time.perf_counter()
    closed = {}
    head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200
    i = 0
    while len(closed) < len(slow) and time.perf_counter() - t0 < 60 and i < len(head):
        for k, s in enumerate(slow):
            if k in closed:
                continue
            try:
                s.sendall(head[i:i + 1])
                r, _, _ = select.select([s], [], [], 0)
                if r and not s.recv(4096):
                    closed[k] = time.perf_counter() - t0
            except OSError:
                closed[k] = time.perf_counter() - t0
        i += 1
        time.sleep(1.0)
    for s in slow:
        s.close()
    slow_t = list(closed.values())
    add((
        "16 clients sending a header one byte a second",
        f"{len(closed)} of 16 dropped by the server",
        f"after {min(slow_t):.1f}-{max(slow_t):.1f} s (header read timeout "
        f"{srv['header_read_timeout_ms'] / 1e3:.0f} s)" if slow_t else "none dropped",
    ))

    fds_before = open_fds(a.pid)
    conns = []
    t0 = time.perf_counter()
    for _ in range(a.half_open):
        try:
            conns.append(socket.create_connection((host, port), timeout=5))
        except OSError:
            break
    # The per-address cap refuses this client's own /metrics now: count the
    # server's open files instead.
    time.sleep(0.5)
    fds_held = open_fds(a.pid)
    refused_fast, held = 0, []
    sel = selectors.DefaultSelector()  # epoll: more than 1024 sockets
    for c in conns:
        sel.register(c, selectors.EVENT_READ)
    pending = len(conns)
    deadline = t0 + srv["header_read_timeout_ms"] / 1e3 + 20
    while pending and time.perf_counter() < deadline:
        events = sel.select(timeout=1.0)
        now = time.perf_counter() - t0
        for key, _ in events:
            c = key.fileobj
            try:
                data = c.recv(4096)
            except OSError:
                data = b""
            if data.startswith(b"HTTP/1.1 429") or data.startswith(b"HTTP/1.1 503"):
                refused_fast += 1
            else:
                held.append(now)
            sel.unregister(c)
            c.close()
            pending -= 1
    for key in list(sel.get_map().values()):
        key.fileobj.close()
    sel.close()
    add((
        f"{len(conns)} half-open connections (connect, send nothing)",
        f"{refused_fast} refused at once over the per-address cap "
        f"({srv['max_connections_per_client']}), {len(held)} held, {pending} never closed; "
        f"server file descriptors {fds_before} before, {fds_held} while they were open",
        f"held ones dropped after {max(held):.1f} s (header read timeout "
        f"{srv['header_read_timeout_ms'] / 1e3:.0f} s)" if held else "none held",
    ))

    cpu = cpu_model()
    print("# Reliability under hostile load")
    print()
    print("Generated by `benches/load/run-hostile.sh` (runs `benches/load/hostile_load.py` "
          "against a release `candor serve` on 127.0.0.1 with its default limits). "
          "Absolute numbers depend on the machine; latencies are quoted against the "
          "reference measured in the same run.")
    print()
    print(f"- Machine: {cpu}, {os.cpu_count()} cores (load average {load_at_start:.1f} "
          f"at the start); device `{info['analyzer']['device']}`")
    print(f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"- Reference: `{os.path.basename(a.file)}` alone, {len(ref)} requests "
          f"{json.dumps(ref_st)}: p50 {ms(ref_p50)}, p95 {ms(ref_p95)}; idle server RSS {mib(idle)}")
    print()
    print("| attack | answer | cost to the server |")
    print("|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print()
    print(HOW)


if __name__ == "__main__":
    main()
