#!/usr/bin/env python3
"""Time the Python/llama.cpp reference scorer on a ~700-token resume (the denominator of the
Rust-vs-reference benchmark ratio).

    .candor/venv-ref/bin/python benches/text/bench_reference.py \
        [--text benches/text/resume_700tok.txt] [--model ...gguf] [--threads 2] [--batch 512] \
        [--runs 5] [--docs 16]

One "scoring" = what reference.py does for a text: tokenize (no BOS), one forward pass with
logits at every position (n_batch 512, so 720 tokens = 2 llama_decode calls), then logprob,
entropy, rank and var_logp for every position (numpy, float64). All tokens of the text are
scored (no truncation). 1 warm-up, then `--runs` timed scorings (median = p50_ms); then
`--docs` scorings back to back for docs_per_s. p50_forward_ms times tokenize + forward only.
Prints one JSON line. Wall-clock times; the machine should be otherwise idle: loadavg and
cpu_per_wall_docs (process CPU time / wall time over the docs loop; about n_threads when the
cores were ours, well below it under contention) are reported so a disturbed run shows.
"""

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as R  # noqa: E402


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--text", default=os.path.join(here, "resume_700tok.txt"))
    ap.add_argument("--model", default=R.DEFAULT_MODEL)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--docs", type=int, default=16)
    args = ap.parse_args()

    text = open(args.text, encoding="utf-8").read()
    t0 = time.perf_counter()
    llm = R.load_model(args.model, n_ctx=1024, threads=args.threads, batch=args.batch)
    load_s = time.perf_counter() - t0

    def score():
        ids = R.tokenize(llm, text, 0)
        logits = R.forward(llm, ids)
        R.token_stats(logits, ids)
        return ids

    def forward_only():
        ids = R.tokenize(llm, text, 0)
        R.forward(llm, ids)

    ids = score()  # warm-up
    n = len(ids)
    assert n <= 1024, f"{n} tokens do not fit n_ctx 1024"

    times = []
    for _ in range(args.runs):
        t = time.perf_counter()
        score()
        times.append(time.perf_counter() - t)
    fwd = []
    for _ in range(args.runs):
        t = time.perf_counter()
        forward_only()
        fwd.append(time.perf_counter() - t)

    t, c = time.perf_counter(), time.process_time()
    for _ in range(args.docs):
        score()
    total = time.perf_counter() - t
    cpu = time.process_time() - c

    p50 = statistics.median(times)
    print(json.dumps({
        "reference": R.reference_version(),
        "tokens": n,
        "p50_ms": round(p50 * 1000, 1),
        "docs_per_s": round(args.docs / total, 3),
        "p50_forward_ms": round(statistics.median(fwd) * 1000, 1),
        "tokens_per_s": round(n / p50, 1),
        "runs_ms": [round(x * 1000, 1) for x in times],
        "n_threads": args.threads,
        "n_batch": args.batch,
        "model_load_s": round(load_s, 2),
        "cpu_per_wall_docs": round(cpu / total, 2),  # ~n_threads when the cores were ours
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "cpu_count": os.cpu_count(),
    }))


if __name__ == "__main__":
    main()
