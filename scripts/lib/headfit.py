"""Shared numpy pieces of the head trainers (scripts/{image,text,audio}/train_*_head.py):
class-balanced L2 logistic regression by Newton's method, a one-hidden-layer perceptron
(Adam), the linear score, rank AUROC,
TPR at a false-positive rate, and the licence note each head records in `trained_on`.

Import from a trainer with
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))
    from headfit import auroc, fit_logistic, fit_mlp, hidden_json, hidden_term, licence_note, raw,
                        tpr_at
Needs numpy only; deterministic.
"""
import base64

import numpy as np


def fit_logistic(x, y, l2, w_row=None, iters=60):
    """Standardised, class-balanced, L2 logistic regression (Newton, float64).

    `w_row` (optional) weighs the rows (e.g. every file the same whatever its
    number of segments); the standardisation and the class balance use those
    weights. Returns {"mean", "scale", "weights", "bias"}."""
    if w_row is None:
        mean = x.mean(0)
        scale = x.std(0)
        n = len(y)
        npos = y.sum()
        w = np.where(y, n / (2.0 * npos), n / (2.0 * (n - npos)))
    else:
        mean = np.average(x, axis=0, weights=w_row)
        scale = np.sqrt(np.average((x - mean) ** 2, axis=0, weights=w_row))
        pos = w_row[y].sum()
        neg = w_row[~y].sum()
        w = np.where(y, w_row * (pos + neg) / (2 * pos), w_row * (pos + neg) / (2 * neg))
    scale[scale < 1e-12] = 1.0
    z = (x - mean) / scale
    n, d = z.shape
    z1 = np.hstack([z, np.ones((n, 1))])
    beta = np.zeros(d + 1)
    reg = np.full(d + 1, l2)
    reg[-1] = 0.0
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(z1 @ beta, -40, 40)))
        g = z1.T @ (w * (p - y)) + reg * beta
        hess = (z1 * (w * p * (1 - p))[:, None]).T @ z1 + np.diag(reg)
        step = np.linalg.solve(hess, g)
        beta -= step
        if np.abs(step).max() < 1e-8:
            break
    return {"mean": mean, "scale": scale, "weights": beta[:-1], "bias": beta[-1]}


def fit_mlp(x, y, l2, units=256, epochs=40, seed=0, lr=1e-3, in_drop=0.2, drop=0.5, batch=128,
            w_row=None):
    """A perceptron with one hidden layer of rectified units on the
    standardised inputs, class-balanced cross-entropy, Adam, dropout on the
    inputs and the units, weight decay `l2` (here a per-step decay, not the
    ridge's penalty). Float32, one seeded generator: the same inputs give the
    same head. `w_row` (optional) weighs the rows (e.g. every file the same
    whatever its number of segments), in the standardisation, the class
    balance and the loss. Returned in the head file's shape: the linear
    weights are zero and the units sit in `hidden`."""
    rng = np.random.default_rng(seed)
    if w_row is None:
        mean = x.mean(0)
        scale = x.std(0)
    else:
        mean = np.average(x, axis=0, weights=w_row)
        scale = np.sqrt(np.average((x - mean) ** 2, axis=0, weights=w_row))
    scale[scale < 1e-12] = 1.0
    z = ((x - mean) / scale).astype(np.float32)
    n, d = z.shape
    w1 = (rng.standard_normal((d, units)) * np.sqrt(2.0 / d)).astype(np.float32)
    b1 = np.zeros(units, np.float32)
    w2 = (rng.standard_normal(units) * np.sqrt(1.0 / units)).astype(np.float32)
    b2 = np.float32(0.0)
    params = [w1, b1, w2]
    m1 = [np.zeros_like(q) for q in params]
    m2 = [np.zeros_like(q) for q in params]
    if w_row is None:
        npos = y.sum()
        w_row = np.where(y, n / (2.0 * npos), n / (2.0 * (n - npos))).astype(np.float32)
    else:
        pos, neg = w_row[y].sum(), w_row[~y].sum()
        w_row = np.where(y, w_row * n / (2.0 * pos), w_row * n / (2.0 * neg)).astype(np.float32)
    t = y.astype(np.float32)
    step = 0
    for _ in range(epochs):
        perm = rng.permutation(n)
        for a in range(0, n, batch):
            idx = perm[a : a + batch]
            xb = z[idx] * (rng.random((len(idx), d)) > in_drop) / (1.0 - in_drop)
            h = xb @ w1 + b1
            hr = np.maximum(h, 0.0)
            keep = (rng.random(hr.shape) > drop) / (1.0 - drop)
            hd = hr * keep
            p = 1.0 / (1.0 + np.exp(-(hd @ w2 + b2)))
            g = w_row[idx] * (p - t[idx]) / len(idx)
            gh = np.outer(g, w2) * keep * (h > 0)
            grads = [xb.T @ gh + l2 * w1, gh.sum(0), hd.T @ g + l2 * w2]
            step += 1
            for i, (q, gq) in enumerate(zip(params, grads)):
                m1[i] = 0.9 * m1[i] + 0.1 * gq
                m2[i] = 0.999 * m2[i] + 0.001 * gq * gq
                q -= lr * (m1[i] / (1 - 0.9**step)) / (np.sqrt(m2[i] / (1 - 0.999**step)) + 1e-8)
            b2 -= np.float32(lr * g.sum())
    # The file keeps the hidden weights as f16 (half the bytes); every score
    # here is computed from the rounded weights, as the service reads them.
    w1 = w1.astype("<f2").astype(np.float32)
    return {"mean": mean, "scale": scale, "weights": np.zeros(d), "bias": float(b2),
            "hidden": {"w": w1, "b": b1.astype(np.float64), "out": w2.astype(np.float64)}}


def hidden_term(hid, z):
    """The rectified units' share of the log-odds for standardised rows `z`
    (`Hidden::output` in crates/detectors/src/fusion.rs)."""
    return np.maximum(z @ hid["w"].astype(np.float64) + hid["b"], 0.0) @ hid["out"]


def hidden_json(hid):
    """A hidden layer as the head files store it (f16 weights, base64)."""
    return {
        "units": int(hid["w"].shape[1]),
        "dtype": "f16",
        "weights": base64.b64encode(hid["w"].astype("<f2").tobytes()).decode(),
        "bias": [float(f"{v:.9g}") for v in hid["b"]],
        "out": [float(f"{v:.9g}") for v in hid["out"]],
    }


def raw(head, x):
    """The head's linear score of the rows of `x`."""
    return ((x - head["mean"]) / head["scale"]) @ head["weights"] + head["bias"]


def auroc(pos, neg):
    """Area under the ROC curve (ties count half), from average ranks."""
    s = np.concatenate([pos, neg])
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    ss = s[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and ss[j + 1] == ss[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1
        i = j + 1
    return (ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg))


def tpr_at(pos, neg, fpr=0.01):
    """Share of `pos` above the negatives' (1 - fpr) quantile."""
    t = np.quantile(neg, 1 - fpr, method="higher")
    return float((pos > t).mean())


NON_COMMERCIAL = ("non-commercial", "research", "nc ", "nc-", "cc by-nc", "s-lab")


def licence_note(meta, rows) -> str:
    """What the fitted rows' licences allow, for /info and the docs."""
    lic = [(meta[i].get("licence") or "not stated").lower() for i in np.where(rows)[0]]
    restricted = sum(1 for l in lic if any(k in l for k in NON_COMMERCIAL))
    unstated = sum(1 for l in lic if l.startswith(("not stated", "none stated", "no licence stated"))
                   and not any(k in l for k in NON_COMMERCIAL))
    return (f"{len(lic) - restricted - unstated} of {len(lic)} fitted rows from openly licensed sources, "
            f"{unstated} from sources that state no licence, {restricted} from research-only or "
            "non-commercial sources (see models/README.md): for research and evaluation use; "
            "retrain on licensed data before commercial use")
