#!/usr/bin/env python3
"""Second, llama.cpp-free reference: SmolLM2-135M forward pass in plain numpy (float64).

Dequantizes the GGUF with the `gguf` package (Q4_1 weights, Q8_0 token embedding) and runs the
Llama architecture written out below, then compares its per-token statistics with a fixture
written by reference.py. It exists to pin down the architecture (and to show the numerical
noise floor of this Q4_1 model), not for speed: ~10 s for the parity fixture on 2 cores.

    .candor/venv-ref/bin/python benches/text/numpy_forward.py \
        [--fixture benches/text/parity_fixture.json] [--model ...gguf]

Architecture as stored in the GGUF (general.architecture = llama):
  * 30 blocks, d_model 576, 9 query heads x 64, 3 KV heads (GQA, each KV head serves 3
    consecutive query heads), FFN 1536 with SiLU gate, RMSNorm eps 1e-5 (weight only).
  * RoPE base 100000 over all 64 head dims in llama.cpp's NORM mode: rotates ADJACENT pairs
    (x[2i], x[2i+1]) with theta_i = pos * base^(-2i/64). The GGUF converter permuted the HF
    q/k weights for this, so do NOT use the half-split (NeoX / HF rotate_half) layout here.
  * No output.weight: the LM head is tied to token_embd (Q8_0).
  * No BOS (add_bos_token = false); position 0 is the first text token.
"""

import argparse
import json
import os
import sys

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEFAULT_MODEL = os.path.join(
    ROOT, ".candor/models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf"
)
D, H, KV, HD, EPS, BASE = 576, 9, 3, 64, 1e-5, 100000.0


def load_weights(path):
    from gguf import GGUFReader
    from gguf.quants import dequantize

    r = GGUFReader(path)
    # dequantize() gives numpy shape (out_features, in_features) for matrices
    return {t.name: dequantize(t.data, t.tensor_type).astype(np.float64) for t in r.tensors}


def rmsnorm(x, w):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + EPS) * w


def rope_norm(x, pos):
    """x: [n, heads, 64]; llama.cpp LLAMA_ROPE_TYPE_NORM (adjacent pairs)."""
    i = np.arange(HD // 2)
    th = pos[:, None] * (BASE ** (-2.0 * i / HD))[None, :]
    c, s = np.cos(th)[:, None, :], np.sin(th)[:, None, :]
    x0, x1 = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = x0 * c - x1 * s
    out[..., 1::2] = x0 * s + x1 * c
    return out


def forward(W, ids):
    n = len(ids)
    n_layers = 1 + max(int(k.split(".")[1]) for k in W if k.startswith("blk."))
    pos = np.arange(n, dtype=np.float64)
    x = W["token_embd.weight"][ids]
    mask = np.triu(np.full((n, n), -np.inf), 1)
    for l in range(n_layers):
        p = f"blk.{l}."
        h = rmsnorm(x, W[p + "attn_norm.weight"])
        q = (h @ W[p + "attn_q.weight"].T).reshape(n, H, HD)
        k = (h @ W[p + "attn_k.weight"].T).reshape(n, KV, HD)
        v = (h @ W[p + "attn_v.weight"].T).reshape(n, KV, HD)
        q, k = rope_norm(q, pos), rope_norm(k, pos)
        k, v = np.repeat(k, H // KV, axis=1), np.repeat(v, H // KV, axis=1)
        a = np.einsum("qhd,khd->hqk", q, k) / np.sqrt(HD) + mask
        a = np.exp(a - a.max(-1, keepdims=True))
        a /= a.sum(-1, keepdims=True)
        o = np.einsum("hqk,khd->qhd", a, v).reshape(n, D)
        x = x + o @ W[p + "attn_output.weight"].T
        h = rmsnorm(x, W[p + "ffn_norm.weight"])
        g, u = h @ W[p + "ffn_gate.weight"].T, h @ W[p + "ffn_up.weight"].T
        x = x + ((g / (1.0 + np.exp(-g))) * u) @ W[p + "ffn_down.weight"].T
    x = rmsnorm(x, W["output_norm.weight"])
    head = W.get("output.weight", W["token_embd.weight"])  # tied
    return x @ head.T


def stats(logits, ids):
    z = logits[:-1] - logits[:-1].max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    p = np.exp(logp)
    tg = np.asarray(ids[1:])
    idx = np.arange(len(tg))
    rank = 1 + (logits[:-1] > logits[:-1][idx, tg][:, None]).sum(1)
    return logp[idx, tg], -(p * logp).sum(1), rank


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fixture", default=os.path.join(ROOT, "benches/text/parity_fixture.json"))
    ap.add_argument("--model", default=DEFAULT_MODEL)
    args = ap.parse_args()
    fx = json.load(open(args.fixture, encoding="utf-8"))
    W = load_weights(args.model)
    print(f"numpy float64 forward vs {fx['reference']} fixture")
    for t in fx["texts"]:
        ids = t["token_ids"]
        lp, ent, rk = stats(forward(W, ids), ids)
        k = t["n_positions"]
        dlp = np.abs(lp[:k] - np.asarray(t["logprob"]))
        dent = np.abs(ent[:k] - np.asarray(t["entropy"]))
        top1 = ((rk[:k] == 1) == (np.asarray(t["rank"]) == 1)).mean()
        print(
            f"{t['id']:>8}: |dlogp| mean {dlp.mean():.4f} max {dlp.max():.4f}; "
            f"|dentropy| mean {dent.mean():.4f} max {dent.max():.4f}; "
            f"mean-logp diff {abs(lp[:k].mean() - np.mean(t['logprob'])):.4f}; "
            f"rank==1 agreement {top1:.2f}; rank equal {(rk[:k] == np.asarray(t['rank'])).mean():.2f}"
        )


if __name__ == "__main__":
    sys.exit(main())
