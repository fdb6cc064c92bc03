#!/usr/bin/env python3
"""Bulk re-screening benchmark (Python 3 stdlib only); writes Markdown to stdout.

Drives the release `candor` binary: `candor bulk submit --no-wait` fills a
queue (a SQLite file, or a throwaway PostgreSQL server on 127.0.0.1 started
from Debian's binaries), `candor worker` processes drain it, and the
wall-clock time from the workers' start to the batch's end gives items/s.
Inputs are copies of one real recording (samples/audio/authentic-01.wav)
whose PCM differs in a few bits per copy, so every item is a distinct file
(its own sha256) that goes through the real audio pipeline (decode, VAD,
detector) with the models installed under CANDOR_HOME.

Phases (every phase bounded in items and time):
  1. SQLite vs PostgreSQL, one worker process with one analysis at a time,
     the same items; and again with --no-models (decode + abstention only)
     to show what the queue costs per item beside the analysis.
  2. PostgreSQL, 1 vs 2 worker processes (one analysis at a time each).
  3. Live /v1/analyze latency (priority live) on a server whose in-process
     bulk worker is idle, then while it works through a batch.
  4. Worker RSS over a 10,000-item batch of small files.
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import loadlib  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Postgres:
    """initdb in a temporary directory, postgres on 127.0.0.1 only."""

    def __init__(self, root):
        cands = sorted(
            os.path.join("/usr/lib/postgresql", v, "bin")
            for v in (os.listdir("/usr/lib/postgresql") if os.path.isdir("/usr/lib/postgresql") else [])
        )
        if not cands:
            sys.exit("PostgreSQL is not installed (apt-get install postgresql)")
        self.bin = cands[-1]
        self.dir = os.path.join(root, "pg")
        os.makedirs(self.dir)
        self.root = os.getuid() == 0
        if self.root:
            # The server runs as `postgres`: it must be able to reach its
            # folder through the private temporary root (traverse only).
            os.chmod(root, 0o711)
            subprocess.check_call(["chown", "-R", "postgres:postgres", self.dir])
        self.port = free_port()
        self._run("initdb", "-D", os.path.join(self.dir, "data"), "-A", "trust", "-U", "candor",
                  "--no-sync", "-E", "UTF8", quiet=True)
        cmd = self._cmd("postgres", "-D", os.path.join(self.dir, "data"), "-h", "127.0.0.1",
                        "-p", str(self.port), "-k", self.dir, "-c", "max_connections=200")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                time.sleep(0.3)
                return
            except OSError:
                time.sleep(0.1)
        sys.exit("postgres did not start")

    def _cmd(self, name, *args):
        exe = [os.path.join(self.bin, name), *args]
        return (["runuser", "-u", "postgres", "--"] + exe) if self.root else exe

    def _run(self, name, *args, quiet=False):
        subprocess.check_call(self._cmd(name, *args), stdout=subprocess.DEVNULL if quiet else None)

    def url(self, db="postgres"):
        return f"postgres://candor@127.0.0.1:{self.port}/{db}"

    def new_db(self, name):
        psql = os.path.join(self.bin, "psql")
        if not os.path.exists(psql):
            psql = shutil.which("psql") or "psql"
        subprocess.check_call([psql, "-q", "-h", "127.0.0.1", "-p", str(self.port), "-U", "candor",
                               "-d", "postgres", "-c", f"CREATE DATABASE {name}"])
        return self.url(name)

    def stop(self):
        if self.proc.poll() is None:
            subprocess.call(["kill", "-INT", str(self.proc.pid)])
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def make_items(src, out_dir, n, per_dir=1000):
    """`n` copies of the WAV at `src`, each with a few PCM bits changed."""
    with open(src, "rb") as f:
        data = bytearray(f.read())
    # Past the 44-byte header, flip the low bit of a few samples per copy.
    lines = ["applicant_id,file"]
    for i in range(n):
        d = os.path.join(out_dir, f"d{i // per_dir}")
        os.makedirs(d, exist_ok=True)
        b = bytearray(data)
        for k in range(4):
            pos = 44 + 2 * ((i * 7919 + k * 104729) % ((len(b) - 46) // 2))
            b[pos] ^= 1 + (i >> (8 * k) & 0x7F)
        p = os.path.join(d, f"{i}.wav")
        with open(p, "wb") as f:
            f.write(b)
        lines.append(f"app{i:06d},{p}")
    m = os.path.join(out_dir, "manifest.csv")
    with open(m, "w") as f:
        f.write("\n".join(lines) + "\n")
    return m


class Candor:
    def __init__(self, binary, env):
        self.bin = binary
        self.env = env

    def run(self, *args, check=True):
        r = subprocess.run([self.bin, *args], env=self.env, capture_output=True, text=True, timeout=900)
        if check and r.returncode != 0:
            sys.exit(f"candor {' '.join(args)} failed: {r.stderr}")
        return r.stdout

    def submit(self, queue, manifest, batch):
        self.run("bulk", "submit", "--no-wait", "--queue", queue, "--batch-id", batch, manifest)

    def status(self, queue, batch):
        return json.loads(self.run("bulk", "status", "--json", "--queue", queue, batch))

    def worker(self, queue, extra=(), log=None):
        # One analysis at a time unless `extra` says otherwise (clap refuses a
        # flag given twice).
        conc = [] if "--worker-concurrency" in extra else ["--worker-concurrency", "1"]
        args = [self.bin, "worker", "--queue", queue, *conc, "--poll-interval-ms", "200", *extra]
        return subprocess.Popen(args, env=self.env, stdout=subprocess.DEVNULL,
                                stderr=log or subprocess.DEVNULL)


def drain(c, queue, batch, workers, limit_s, rss_every=None):
    """Waits until `batch` has no pending item; gives (seconds, rss samples MiB)."""
    t0 = time.perf_counter()
    rss = []
    last = 0.0
    while True:
        s = c.status(queue, batch)
        now = time.perf_counter() - t0
        if rss_every and now - last >= rss_every:
            last = now
            rss.append((now, s["total"] - s["pending"], [read_rss(w.pid) for w in workers]))
        if s["finished"]:
            break
        dead = [w.returncode for w in workers if w.poll() is not None]
        if dead:
            sys.exit(f"batch {batch}: a worker exited (status {dead}) with items pending: {s}")
        if now > limit_s:
            sys.exit(f"batch {batch} not done after {limit_s} s: {s}")
        time.sleep(0.25)
    dt = time.perf_counter() - t0
    return dt, rss


def read_rss(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def stop(procs):
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()


def analysis_ms(c, queue, batch):
    """Mean per-item analysis time (the result's timings.total_ms)."""
    out = c.run("bulk", "results", "--format", "jsonl", "--queue", queue, batch)
    xs = []
    for line in out.splitlines():
        r = json.loads(line)
        res = r.get("result") or {}
        t = (res.get("timings") or {}).get("total_ms")
        if t is not None:
            xs.append(t)
    return sum(xs) / len(xs) if xs else float("nan"), len(xs)


def throughput(c, queue, manifest, batch, n, procs, extra, limit_s):
    c.submit(queue, manifest, batch)
    workers = [c.worker(queue, extra) for _ in range(procs)]
    try:
        dt, _ = drain(c, queue, batch, workers, limit_s)
    finally:
        stop(workers)
    return n / dt, dt


def live_latency(c, url, sample, count, limit_s):
    body, ctype = loadlib.multipart(sample)
    lat = []
    codes = {}
    t0 = time.perf_counter()
    for _ in range(count):
        if time.perf_counter() - t0 > limit_s:
            break
        dt, code = loadlib.post(url + "/v1/analyze?priority=live", body, ctype, 60)
        codes[code] = codes.get(code, 0) + 1
        if code == 200:
            lat.append(dt * 1e3)
    return lat, codes


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--candor", default=os.path.join(REPO, "target", "release", "candor"))
    ap.add_argument("--items", type=int, default=300, help="items per throughput phase")
    ap.add_argument("--rss-items", type=int, default=10000)
    ap.add_argument("--live-requests", type=int, default=40)
    ap.add_argument("--limit-s", type=float, default=600)
    a = ap.parse_args()

    home = os.environ.get("CANDOR_HOME", os.path.join(REPO, ".candor"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANDOR_")}
    env["CANDOR_HOME"] = home
    env["CANDOR_LOG_LEVEL"] = "warn"
    c = Candor(a.candor, env)
    cnm = Candor(a.candor, dict(env, CANDOR_NO_MODELS="1"))
    sample = os.path.join(REPO, "samples", "audio", "authentic-01.wav")
    tmp = tempfile.mkdtemp(prefix="candor-bulk-bench-")
    pg = Postgres(tmp)
    out = []
    try:
        man = make_items(sample, os.path.join(tmp, "items"), a.items)
        with open("/proc/loadavg") as f:
            load = f.read().split()[0]
        rows = []
        res = {}
        for store in ("sqlite", "postgres"):
            for models in (True, False):
                cc = c if models else cnm
                tag = f"{store}-{'models' if models else 'nomodels'}"
                q = os.path.join(tmp, f"{tag}.db") if store == "sqlite" else pg.new_db(tag.replace("-", "_"))
                rate, dt = throughput(cc, q, man, tag, a.items, 1, (), a.limit_s)
                ams, _ = analysis_ms(cc, q, tag)
                res[tag] = (rate, dt, ams)
        for tag, (rate, dt, ams) in res.items():
            per = 1e3 / rate
            rows.append((tag, rate, per, ams))
        ref = res["sqlite-models"][0]

        # 1 vs 2 worker processes on PostgreSQL (analysis, one at a time each,
        # one ONNX Runtime thread each: one core per process).
        one = ("--intra-threads", "1")
        q1 = pg.new_db("scale1")
        r1, _ = throughput(c, q1, man, "scale1", a.items, 1, one, a.limit_s)
        q2 = pg.new_db("scale2")
        r2, _ = throughput(c, q2, man, "scale2", a.items, 2, one, a.limit_s)

        # Live latency on a server with an in-process bulk worker.
        port = free_port()
        qs = os.path.join(tmp, "serve.db")
        srv_log = open(os.path.join(tmp, "serve.log"), "w")
        srv = subprocess.Popen([a.candor, "serve", "--host", "127.0.0.1", "--port", str(port),
                                "--queue", qs, "--worker-concurrency", "2",
                                "--poll-interval-ms", "200"],
                               env=env, stdout=srv_log, stderr=srv_log)
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    urllib.request.urlopen(url + "/ready", timeout=2).read()
                    break
                except Exception:
                    time.sleep(0.2)
            live_file = os.path.join(REPO, "samples", "media", "speech_opus.webm")
            if not os.path.exists(live_file):
                live_file = sample
            live_latency(c, url, live_file, 5, 30)  # warm-up
            alone, codes_a = live_latency(c, url, live_file, a.live_requests, 120)
            c.submit(qs, man, "live")
            time.sleep(1.0)
            busy, codes_b = live_latency(c, url, live_file, a.live_requests, 120)
            during = c.status(qs, "live")
        finally:
            srv.terminate()
            try:
                srv.wait(timeout=60)
            except subprocess.TimeoutExpired:
                srv.kill()

        # RSS over a 10,000-item batch (small files, decode + abstention).
        small = os.path.join(tmp, "small")
        os.makedirs(small)
        lines = ["applicant_id,file"]
        for i in range(a.rss_items):
            p = os.path.join(small, f"{i}.txt")
            with open(p, "w") as f:
                f.write(f"Applicant {i} kept the warehouse night shift running for three years.")
            lines.append(f"a{i:06d},{p}")
        sm = os.path.join(small, "m.csv")
        with open(sm, "w") as f:
            f.write("\n".join(lines) + "\n")
        qr = pg.new_db("rss")
        cnm.submit(qr, sm, "rss")
        w = cnm.worker(qr, ("--worker-concurrency", "2"))
        try:
            dt_rss, rss = drain(cnm, qr, "rss", [w], a.limit_s * 2, rss_every=2.0)
        finally:
            stop([w])

        p = lambda xs, q: loadlib.pct(xs, q)  # noqa: E731
        out.append("# Bulk re-screening\n")
        out.append("Generated by `benches/load/run-bulk.sh` (runs `benches/load/bulk_load.py` with the release "
                   "`candor`; PostgreSQL is a throwaway server on 127.0.0.1). Absolute numbers depend on the "
                   "machine and on what else runs on it; quote the ratios, measured in the same run.\n")
        out.append(f"- Machine: {loadlib.cpu_model()}, {os.cpu_count()} cores (load average {load} at the start)")
        out.append(f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
        out.append(f"- Items: {a.items} copies of `samples/audio/authentic-01.wav` (5.2 s of speech), each with "
                   "a few PCM bits changed (distinct files); one worker process analyses one item at a time "
                   "unless stated\n")
        out.append("## Items per second, same worker, SQLite vs PostgreSQL\n")
        out.append("| queue | analysis | items/s | ms per item (wall) | of which analysis (result `total_ms`) | vs SQLite with models |")
        out.append("|---|---|---:|---:|---:|---:|")
        for tag, rate, per, ams in rows:
            store, mode = tag.split("-")
            label = "models (decode, VAD, audio detector)" if mode == "models" else "`--no-models` (decode, abstention)"
            out.append(f"| {store} | {label} | {rate:.1f} | {per:.1f} | {ams:.1f} | {rate / ref:.2f}x |")
        for store in ("sqlite", "postgres"):
            rate, _, ams = res[f"{store}-models"]
            over = 1e3 / rate - ams
            out.append(f"\n{store}: queue and bookkeeping cost {over:.1f} ms per item beside "
                       f"{ams:.1f} ms of analysis ({over / (1e3 / rate) * 100:.0f}% of the wall time per item).")
        out.append("\n## Scaling out on PostgreSQL\n")
        out.append("| worker processes (one analysis at a time each, `--intra-threads 1`) | items/s | vs one |")
        out.append("|---:|---:|---:|")
        out.append(f"| 1 | {r1:.1f} | 1.00x |")
        out.append(f"| 2 | {r2:.1f} | {r2 / r1:.2f}x |")
        out.append(f"\n(The machine has {os.cpu_count()} cores, shared with the PostgreSQL server and the status "
                   "polling of this script; each worker process runs ONNX Runtime on one thread.)\n")
        out.append("## Live latency while a batch runs\n")
        out.append("`candor serve --queue` with its in-process bulk worker (2 items at a time, `bulk` priority); "
                   f"{a.live_requests} sequential `/v1/analyze?priority=live` requests of "
                   f"`{os.path.basename(live_file)}` with the worker idle, then while it works through "
                   f"{a.items} items.\n")
        out.append("| phase | ok | statuses | p50 | p95 | p95 vs idle |")
        out.append("|---|---:|---|---:|---:|---:|")
        out.append(f"| bulk worker idle | {len(alone)} | {json.dumps(codes_a)} | {p(alone, .5):.1f} ms | {p(alone, .95):.1f} ms | 1.00x |")
        out.append(f"| batch running | {len(busy)} | {json.dumps(codes_b)} | {p(busy, .5):.1f} ms | {p(busy, .95):.1f} ms | "
                   f"{p(busy, .95) / p(alone, .95):.2f}x |")
        out.append(f"\nThe batch had {during['done']} of {during['total']} items done when the live requests ended.\n")
        out.append("## Worker memory over a 10,000-item batch\n")
        out.append(f"{a.rss_items} small text files on PostgreSQL, one `candor worker --no-models` (2 at a time): "
                   f"{dt_rss:.0f} s, {a.rss_items / dt_rss:.0f} items/s. Resident set size sampled every 2 s:\n")
        out.append("| items finished | worker RSS |")
        out.append("|---:|---:|")
        step = max(1, len(rss) // 8)
        for t, done, r in rss[::step] + ([rss[-1]] if rss and (len(rss) - 1) % step else []):
            out.append(f"| {done} | {r[0]:.1f} MiB |")
        vals = [r[0] for _, d, r in rss if d >= a.rss_items // 10]
        if vals:
            out.append(f"\nAfter the first 10% of items: min {min(vals):.1f} MiB, max {max(vals):.1f} MiB "
                       f"(spread {max(vals) - min(vals):.1f} MiB).")
    finally:
        pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print("\n".join(out))


if __name__ == "__main__":
    main()
