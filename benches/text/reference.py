#!/usr/bin/env python3
"""Independent Python reference for Candor's text scorer (SmolLM2-135M-Instruct, Q4_1 GGUF).

Runs the GGUF through llama.cpp (llama-cpp-python, see setup-reference.sh) and writes, per text,
the per-token statistics that the Rust (candle) scorer computes, so the two can be compared
(parity fixture) and timed against each other (bench_reference.py).

    .candor/venv-ref/bin/python benches/text/reference.py --in texts.jsonl --out ref.json \
        [--model .candor/models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf] \
        [--max-tokens 256] [--threads 2] [--batch 512] [--positions K] [--decimals D]

Input: JSONL, one object per line with a `text` field (an `id` field is copied when present).

Per text:
  * tokenize with the GGUF's own tokenizer (llama.cpp, pre-tokenizer "smollm"), no BOS
    (the GGUF says add_bos_token=false), special=False; keep the first --max-tokens tokens;
  * ONE forward pass over those n tokens with logits at every position (logits_all);
  * for each position t = 1..n-1, from the predictive distribution p = softmax(logits[t-1]):
      logprob[t-1]  = log p(token_t | tokens_<t)                       (nats)
      entropy[t-1]  = -sum_v p_v log p_v                               (nats)
      rank[t-1]     = 1 + #{v : logits[t-1][v] > logits[t-1][token_t]} (1 = most likely)
      var_logp[t-1] = sum_v p_v (log p_v)^2 - (sum_v p_v log p_v)^2    (Fast-DetectGPT variance)
    Position 0 has no prediction (no BOS), so each array has n-1 entries.
Statistics are computed in float64 from llama.cpp's float32 logits.

Output JSON: {"reference", "llama_cpp_python", "model", "model_sha256", "settings", "texts": [...]}
where each text has "id", "text", "n_tokens", "token_ids", "pieces" (token strings, UTF-8 with
replacement for partial bytes), "logprob", "entropy", "rank", "var_logp". --positions K keeps only
the first K entries of the per-position arrays (token_ids stay complete); --decimals D rounds the
float statistics.
"""

import argparse
import hashlib
import json
import os
import sys

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEFAULT_MODEL = os.path.join(
    ROOT, ".candor/models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf"
)
MODEL_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_model(path, n_ctx, threads=2, batch=512):
    """llama.cpp context with logits for every position. CPU only, no BOS, no mmap tricks."""
    from llama_cpp import Llama

    return Llama(
        model_path=path,
        n_ctx=n_ctx,
        n_batch=batch,
        n_ubatch=batch,
        n_threads=threads,
        n_threads_batch=threads,
        logits_all=True,
        n_gpu_layers=0,
        verbose=False,
    )


def reference_version():
    import llama_cpp

    return "llama-cpp-python " + llama_cpp.__version__


def tokenize(llm, text, max_tokens):
    ids = llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)
    return ids[:max_tokens] if max_tokens > 0 else ids


def forward(llm, ids):
    """One forward pass over ids (split into n_batch chunks by llama.cpp); float32 [n, vocab]."""
    llm.reset()  # n_tokens = 0; eval() then clears the KV cache from position 0
    llm.eval(ids)
    return llm.scores[: len(ids), :]


def token_stats(logits, ids, chunk=128):
    """logprob, entropy, rank, var_logp for positions 1..n-1 (arrays of length n-1)."""
    n = len(ids)
    m = max(n - 1, 0)
    logprob = np.empty(m)
    entropy = np.empty(m)
    var_logp = np.empty(m)
    rank = np.empty(m, dtype=np.int64)
    if m == 0:
        return logprob, entropy, rank, var_logp
    targets = np.asarray(ids[1:], dtype=np.int64)
    for s in range(0, m, chunk):
        e = min(m, s + chunk)
        rows32 = logits[s:e]  # logits at t-1 predict token t
        tgt = targets[s:e]
        idx = np.arange(e - s)
        tgt_logit32 = rows32[idx, tgt]
        rank[s:e] = 1 + (rows32 > tgt_logit32[:, None]).sum(axis=1)
        rows = rows32.astype(np.float64)
        mx = rows.max(axis=1, keepdims=True)
        z = rows - mx
        lse = np.log(np.exp(z).sum(axis=1, keepdims=True))
        logp = z - lse  # log-softmax
        p = np.exp(logp)
        mean = (p * logp).sum(axis=1)  # = -entropy
        second = (p * logp * logp).sum(axis=1)
        logprob[s:e] = logp[idx, tgt]
        entropy[s:e] = -mean
        var_logp[s:e] = second - mean * mean
    return logprob, entropy, rank, var_logp


def pieces(llm, ids):
    return [llm.detokenize([t]).decode("utf-8", errors="replace") for t in ids]


def score_text(llm, text, max_tokens):
    ids = tokenize(llm, text, max_tokens)
    logits = forward(llm, ids) if ids else np.zeros((0, 0), dtype=np.float32)
    lp, ent, rk, var = token_stats(logits, ids)
    return ids, lp, ent, rk, var


def _floats(a, k, decimals):
    a = a[:k] if k is not None else a
    if decimals is None:
        return [float(x) for x in a]
    return [round(float(x), decimals) for x in a]


def write_json(doc, f):
    """Compact but diff-friendly: one line per top-level key and one line per text."""
    compact = dict(ensure_ascii=False, separators=(",", ":"))
    keys = list(doc)
    f.write("{\n")
    for i, key in enumerate(keys):
        end = ",\n" if i + 1 < len(keys) else "\n"
        if key == "texts":
            f.write(json.dumps(key) + ":[\n")
            items = doc[key]
            for j, item in enumerate(items):
                f.write(json.dumps(item, **compact) + (",\n" if j + 1 < len(items) else "\n"))
            f.write("]" + end)
        else:
            f.write(json.dumps(key) + ":" + json.dumps(doc[key], **compact) + end)
    f.write("}\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--in", dest="inp", required=True, help="JSONL with a `text` field")
    ap.add_argument("--out", required=True)
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--positions", type=int, default=None,
                    help="keep only the first K per-position entries (default: all)")
    ap.add_argument("--decimals", type=int, default=None, help="round float stats")
    ap.add_argument("--no-pieces", action="store_true", help="omit token strings")
    ap.add_argument("--no-text", action="store_true", help="omit the input text")
    ap.add_argument("--skip-sha", action="store_true", help="do not hash the model file")
    args = ap.parse_args()

    rows = []
    with open(args.inp, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line:
                rows.append(json.loads(line))

    sha = None if args.skip_sha else sha256_file(args.model)
    if sha is not None and sha != MODEL_SHA256:
        print(f"warning: model sha256 {sha} != expected {MODEL_SHA256}", file=sys.stderr)

    n_ctx = max(512, args.max_tokens) if args.max_tokens > 0 else 8192
    llm = load_model(args.model, n_ctx=n_ctx, threads=args.threads, batch=args.batch)

    out_texts = []
    for i, row in enumerate(rows):
        text = row["text"]
        ids, lp, ent, rk, var = score_text(llm, text, args.max_tokens)
        k = args.positions
        item = {"id": row.get("id", i)}
        if not args.no_text:
            item["text"] = text
        item["n_tokens"] = len(ids)
        item["token_ids"] = [int(t) for t in ids]
        if not args.no_pieces:
            item["pieces"] = pieces(llm, ids)
        item["n_positions"] = len(lp) if k is None else min(k, len(lp))
        item["logprob"] = _floats(lp, k, args.decimals)
        item["entropy"] = _floats(ent, k, args.decimals)
        item["rank"] = [int(x) for x in (rk[:k] if k is not None else rk)]
        item["var_logp"] = _floats(var, k, args.decimals)
        out_texts.append(item)

    import llama_cpp

    doc = {
        "reference": reference_version(),
        "llama_cpp_python": llama_cpp.__version__,
        "llama_cpp_system_info": llama_cpp.llama_print_system_info().decode().strip(),
        "model": os.path.basename(args.model),
        "model_sha256": sha,
        "settings": {
            "add_bos": False,
            "special": False,
            "max_tokens": args.max_tokens,
            "n_ctx": n_ctx,
            "n_batch": args.batch,
            "n_threads": args.threads,
            "positions_kept": args.positions,
            "decimals": args.decimals,
            "stats_dtype": "float64 from float32 logits",
            "position_convention": "entry j is about token_ids[j+1] given token_ids[:j+1]",
        },
        "texts": out_texts,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)) or ".", exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        write_json(doc, f)
    print(f"wrote {args.out}: {len(out_texts)} texts", file=sys.stderr)


if __name__ == "__main__":
    main()
