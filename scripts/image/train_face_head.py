#!/usr/bin/env python3
"""Fits the image detector's face heads (version 5) on CLIP features of
aligned faces, and writes the per-item scores that `candor eval` turns into
the generated evaluation reports: the in-distribution test split and one
leave-one-family-out fold per manipulated family.

Input:
  --meta   .candor/data/image/v5/meta.jsonl (make_face_sets.py)
  --embed  PREFIX of `candor image-embed` output (PREFIX.jsonl, PREFIX.f32),
           run on .candor/data/image/v5/manifest.jsonl with the views below
Output (--out, default .candor/data/image/v5/heads):
  face-head.json                 the head Candor ships (models/image/)
  scores-calib.jsonl             calib rows scored by it (for `candor calibrate`)
  scores-test.jsonl              test rows scored by it (holdout rows included)
  scores-lofo-<family>.jsonl     test rows of real + <family>, scored by a
                                 head fitted without any <family> row
  scores-loso-portraits.jsonl    test rows scored by a head fitted without any
                                 professional portrait (studio, stock, publicity,
                                 beauty photos), and -calib.jsonl its calib rows
  scores-format-baseline.jsonl   test rows scored by a logistic model that
                                 sees only format, width, height and file size
  summary.json                   quick figures (the reports are the reference)

The head: ridge regression onto +-1 (default; or logistic regression with
--method logistic), L2, classes weighted to equal mass, on the
standardised CLIP features of the largest face, aligned to the five-point
template: the parts chosen with --embeds / --cls / --mean (the projected
embedding; the class token and the mean patch token after the listed
blocks). Rows without a face are left out of fitting (at run time the
detector abstains `no_face` on them). Float64, deterministic. --explore prints a table of candidate inputs on the
leave-one-family-out folds instead.

Needs numpy only.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

# The shared pieces of the head trainers (scripts/lib/headfit.py).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))
from headfit import (auroc, fit_logistic, fit_mlp, hidden_json, hidden_term,  # noqa: E402
                     licence_note, raw, tpr_at)

EMBED = 512
HIDDEN = 768
LAYERS = 12
DIM = EMBED + 2 * LAYERS * HIDDEN  # embeds, class token per block, mean patch token per block
FAMILIES_FAKE = ("diffusion", "stylegan", "gan_other", "swap", "edit", "cgi", "other")
# The evidence heads: generated faces, and swapped or edited ones.
GENERATION = ("diffusion", "stylegan", "gan_other", "cgi")
SWAP = ("swap", "edit")
METHODS = {
    "ridge": "ridge regression onto +-1",
    "logistic": "logistic regression, Newton",
    "mlp": "one hidden layer of {units} rectified units, Adam, {epochs} epochs, dropout 0.2 on inputs and 0.5 on units",
}
# Real professional portraits (studio, stock, publicity, beauty, posed expressions;
# make_face_sets.py):
# the loso-portraits fold leaves them all out.
PORTRAITS = ("studio-portrait", "stock-portrait", "press-headshot", "beauty-photo",
             "expression-photo")
# Faces whose eyes are closer than this are too small to judge (abstain).
MIN_EYE_DISTANCE = 16.0


def load_embed(prefix: Path, views: int):
    rows = [json.loads(line) for line in open(str(prefix) + ".jsonl")]
    x = np.fromfile(str(prefix) + ".f32", dtype="<f4").reshape(len(rows), views, DIM)
    return rows, x


def fit_ridge(x, y, l2):
    """Standardised, class-balanced ridge regression onto +-1 (a linear
    discriminant): one linear solve, so wide inputs (several blocks) fit in
    seconds where Newton's logistic takes minutes. Its raw score is not a
    log-odds: the calibration (Platt) maps it to a probability."""
    mean = x.mean(0)
    scale = x.std(0)
    scale[scale < 1e-12] = 1.0
    z = (x - mean) / scale
    n, d = z.shape
    npos = y.sum()
    w_row = np.where(y, n / (2.0 * npos), n / (2.0 * (n - npos)))
    z1 = np.hstack([z, np.ones((n, 1))])
    zw = z1 * w_row[:, None]
    a = zw.T @ z1
    a[np.arange(d), np.arange(d)] += l2
    beta = np.linalg.solve(a, zw.T @ np.where(y, 1.0, -1.0))
    return {"mean": mean, "scale": scale, "weights": beta[:-1], "bias": beta[-1]}


def score(head, x):
    """Log-odds of the rows of `x` by a linear or a hidden-layer head (the
    same arithmetic as Head::raw in crates/detectors/src/image/facehead.rs)."""
    z = (x - head["mean"]) / head["scale"]
    s = z @ head["weights"] + head["bias"]
    hid = head.get("hidden")
    if hid is not None:
        s = s + hidden_term(hid, z)
    return s


def fit_platt(s, y):
    """Platt scaling (a, b) of raw scores, classes weighted to equal mass."""
    z = np.stack([s, np.ones_like(s)], 1)
    n, npos = len(y), y.sum()
    w = np.where(y, n / (2.0 * npos), n / (2.0 * (n - npos)))
    beta = np.array([1.0, 0.0])
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-np.clip(z @ beta, -40, 40)))
        g = z.T @ (w * (p - y))
        hess = (z * (w * p * (1 - p))[:, None]).T @ z + 1e-9 * np.eye(2)
        step = np.linalg.solve(hess, g)
        beta -= step
        if np.abs(step).max() < 1e-10:
            break
    return [float(f"{beta[0]:.9g}"), float(f"{beta[1]:.9g}")]


def head_json(head, platt=None):
    out = {
        "mean": [float(f"{v:.9g}") for v in head["mean"]],
        "scale": [float(f"{v:.9g}") for v in head["scale"]],
        "weights": [float(f"{v:.9g}") for v in head["weights"]],
        "bias": float(f"{head['bias']:.9g}"),
    }
    hid = head.get("hidden")
    if hid is not None:
        out["hidden"] = hidden_json(hid)
    if platt is not None:
        out["platt"] = platt
    return out


def write_scores(path, ids, y, s, groups, splits):
    with open(path, "w") as f:
        for i in range(len(ids)):
            f.write(json.dumps({
                "id": ids[i],
                "manipulated": bool(y[i]),
                "score": None if not np.isfinite(s[i]) else round(float(s[i]), 6),
                "abstain_reason": None if np.isfinite(s[i]) else "no_face or face too small",
                "group": groups[i],
                "split": splits[i],
            }) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--meta", type=Path, default=Path(".candor/data/image/v5/meta.jsonl"))
    ap.add_argument("--embed", type=Path, default=Path(".candor/data/image/v5/embed/emb"))
    ap.add_argument("--views", type=int, default=1, help="views per row in the embed file")
    ap.add_argument("--view", type=int, default=0, help="which view the head reads")
    ap.add_argument("--zoom", type=float, default=1.0, help="template zoom of that view (recorded in the head)")
    ap.add_argument("--l2", type=float, default=30.0)
    ap.add_argument("--embeds", type=int, default=1)
    ap.add_argument("--cls", default="11", help="blocks whose class token the heads read")
    ap.add_argument("--mean", default="11", help="blocks whose mean patch token the heads read")
    ap.add_argument("--method", choices=("ridge", "logistic", "mlp"), default="ridge",
                    help="ridge: one solve, for wide inputs; logistic: Newton, slow above ~2,000 inputs; "
                         "mlp: one hidden layer (--units), Adam, --l2 is the weight decay")
    ap.add_argument("--units", type=int, default=256, help="hidden units of --method mlp")
    ap.add_argument("--epochs", type=int, default=40, help="epochs of --method mlp")
    ap.add_argument("--evidence-l2", type=float, default=30000.0,
                    help="L2 of the evidence heads (ridge)")
    ap.add_argument("--explore", action="store_true")
    ap.add_argument("--version", default="3")
    ap.add_argument("--out", type=Path, default=Path(".candor/data/image/v5/heads"))
    args = ap.parse_args()

    meta = [json.loads(line) for line in args.meta.open()]
    rows, emb = load_embed(args.embed, args.views)
    if len(rows) != len(meta):
        print(f"{len(rows)} embedded rows vs {len(meta)} meta rows", file=sys.stderr)
        return 1
    full = emb[:, args.view, :]

    def select(embeds, cls, mean):
        parts = [full[:, :EMBED]] if embeds else []
        parts += [full[:, EMBED + l * HIDDEN : EMBED + (l + 1) * HIDDEN] for l in cls]
        off = EMBED + LAYERS * HIDDEN
        parts += [full[:, off + l * HIDDEN : off + (l + 1) * HIDDEN] for l in mean]
        return np.hstack(parts).astype(np.float64)

    blocks = lambda t: [int(v) for v in t.split(",") if v != ""]
    inputs = {"embeds": bool(args.embeds), "cls": blocks(args.cls), "mean": blocks(args.mean)}
    x = select(inputs["embeds"], inputs["cls"], inputs["mean"])
    eyes = np.array([r.get("eye_distance") or 0.0 for r in rows])
    # Scored rows: a face was found and is large enough (the detector
    # abstains on the others: no_face / low_quality).
    has = np.isfinite(full).all(1) & (eyes >= MIN_EYE_DISTANCE)
    fam = np.array([m["family"] for m in meta])
    split = np.array([m["split"] for m in meta])
    role = np.array([m["role"] for m in meta])
    y = np.array([r["manipulated"] for r in rows])
    ids = [m["path"] for m in meta]
    groups = [f"{m['family']}/{m['generator']}" for m in meta]
    args.out.mkdir(parents=True, exist_ok=True)

    print(f"rows {len(meta)}, with a face {has.sum()} ({has.mean():.1%})")
    for f in sorted(set(fam)):
        sel = fam == f
        print(f"  {f:<10} faces {has[sel].sum():>5}/{sel.sum():<5}")

    fit_rows = (split == "train") & has & (role == "fit")
    summary = {"rows": len(meta), "with_face": int(has.sum()), "folds": {}}
    if args.explore:
        test_ok = (split == "test") & has
        for emb_, cls_, mean_ in (
            (1, [11], [11]), (0, [], [11]), (0, [8], [8]), (0, [6], [6]), (0, [4], [4]),
            (0, [4, 8], [4, 8]), (1, [4, 8, 11], [4, 8, 11]), (0, [2, 5, 8, 11], []),
            (0, [], [2, 5, 8, 11]), (1, [2, 4, 6, 8, 10, 11], [2, 4, 6, 8, 10, 11]),
        ):
            xx = select(emb_, cls_, mean_)
            for l2 in (3000.0, 30000.0):
                line = []
                h0 = fit_ridge(xx[fit_rows], y[fit_rows], l2)
                s0 = raw(h0, xx[test_ok])
                line.append(f"all {auroc(s0[y[test_ok]], s0[~y[test_ok]]):.3f}/{tpr_at(s0[y[test_ok]], s0[~y[test_ok]]):.2f}")
                for f in ("diffusion", "stylegan", "swap", "edit"):
                    hf = fit_ridge(xx[fit_rows & (fam != f)], y[fit_rows & (fam != f)], l2)
                    sf = raw(hf, xx[test_ok & ((fam == f) | ~y)])
                    yy = y[test_ok & ((fam == f) | ~y)]
                    line.append(f"{f} {auroc(sf[yy], sf[~yy]):.3f}")
                print(f"embeds {emb_} cls {cls_} mean {mean_} l2 {l2:g}: " + "  ".join(line), flush=True)
        return 0

    def evaluate(head, name, test_sel):
        s = np.full(len(meta), np.nan)
        s[has] = score(head, x[has])
        sel = test_sel
        write_scores(args.out / f"scores-{name}.jsonl", [ids[i] for i in np.where(sel)[0]],
                     y[sel], s[sel], [groups[i] for i in np.where(sel)[0]],
                     [split[i] for i in np.where(sel)[0]])
        ok = sel & has
        pos, neg = s[ok & y], s[ok & ~y]
        res = {"auroc": auroc(pos, neg), "tpr_at_1pct_fpr": tpr_at(pos, neg),
               "n_pos": int(len(pos)), "n_neg": int(len(neg))}
        per = {}
        for f in sorted(set(fam[ok & y])):
            p = s[ok & y & (fam == f)]
            per[f] = {"auroc": auroc(p, neg), "tpr_at_1pct_fpr": tpr_at(p, neg), "n": int(len(p))}
        res["per_family"] = per
        summary["folds"][name] = res
        print(f"{name:<22} AUROC {res['auroc']:.4f}  TPR@1%FPR {res['tpr_at_1pct_fpr']:.3f}  "
              f"({res['n_pos']} vs {res['n_neg']})")
        for f, r in per.items():
            print(f"    {f:<10} AUROC {r['auroc']:.4f}  TPR@1% {r['tpr_at_1pct_fpr']:.3f}  n={r['n']}")
        return s

    if args.method == "mlp":
        fit = lambda xx, yy, l2: fit_mlp(xx, yy, l2, units=args.units, epochs=args.epochs)
    else:
        fit = fit_ridge if args.method == "ridge" else fit_logistic
    head = fit(x[fit_rows], y[fit_rows], args.l2)
    s = evaluate(head, "test", split == "test")
    calib = (split == "calib") & (role == "fit")
    write_scores(args.out / "scores-calib.jsonl", [ids[i] for i in np.where(calib)[0]], y[calib],
                 s[calib], [groups[i] for i in np.where(calib)[0]], [split[i] for i in np.where(calib)[0]])

    for f in FAMILIES_FAKE:
        if not ((fam == f) & (split == "test") & has).any():
            continue
        h_f = fit(x[fit_rows & (fam != f)], y[fit_rows & (fam != f)], args.l2)
        evaluate(h_f, f"lofo-{f}", (split == "test") & ((fam == f) | ~y))

    # Leave the professional portraits out (a real source never seen): fitted
    # without any of their rows, calibration rows without them too (written
    # for `candor calibrate`), then every test row, so the report shows how
    # often real studio and stock photos are flagged by a head that never saw
    # one: the generalisation that the shared studio photos ask for.
    pro = np.array([m["generator"] in PORTRAITS for m in meta])
    if (pro & (split == "test") & has).any():
        h_p = fit(x[fit_rows & ~pro], y[fit_rows & ~pro], args.l2)
        s_p = evaluate(h_p, "loso-portraits", split == "test")
        cal_p = calib & ~pro
        write_scores(args.out / "scores-loso-portraits-calib.jsonl",
                     [ids[i] for i in np.where(cal_p)[0]], y[cal_p], s_p[cal_p],
                     [groups[i] for i in np.where(cal_p)[0]], [split[i] for i in np.where(cal_p)[0]])

    # Evidence heads: generated faces vs real, swapped/edited faces vs real,
    # each with a Platt calibration on calib.
    evidence = {}
    for name, fams in (("generation", GENERATION), ("swap", SWAP)):
        rows_ = fit_rows & (~y | np.isin(fam, fams))
        # Evidence only: linear (ridge), so that each stays a plain
        # weighted sum a reviewer can take apart.
        h_e = fit_ridge(x[rows_], y[rows_], args.evidence_l2)
        cal_rows = calib & has & (~y | np.isin(fam, fams))
        platt = fit_platt(raw(h_e, x[cal_rows]), y[cal_rows])
        evidence[name] = head_json(h_e, platt)
        s_e = raw(h_e, x[has & (split == "test")])
        te_y = y[has & (split == "test")]
        te_f = fam[has & (split == "test")]
        pos = s_e[te_y & np.isin(te_f, fams)]
        print(f"evidence head {name}: test AUROC vs real {auroc(pos, s_e[~te_y]):.4f}")

    # Format-only baseline: what the file itself says (format, size, bytes).
    fmt = np.array([[m["format"] == "png", np.log(m["width"]), np.log(m["height"]),
                     np.log(m["bytes"]), np.log(m["bytes"] / (m["width"] * m["height"]))]
                    for m in meta], dtype=float)
    tr = (split == "train") & (role == "fit")
    hb = fit_logistic(fmt[tr], y[tr], 1.0)
    sb = raw(hb, fmt)
    te = split == "test"
    write_scores(args.out / "scores-format-baseline.jsonl", [ids[i] for i in np.where(te)[0]], y[te],
                 sb[te], [groups[i] for i in np.where(te)[0]], [split[i] for i in np.where(te)[0]])
    summary["format_baseline_auroc"] = auroc(sb[te & y], sb[te & ~y])
    print(f"format-only baseline AUROC {summary['format_baseline_auroc']:.4f}")

    out_head = {
        "format": "candor.image-face-head/1",
        "id": "image-face-head",
        "version": args.version,
        "view": {"side": 224, "zoom": args.zoom},
        "inputs": inputs,
        "main": head_json(head),
        "generation": evidence["generation"],
        "swap": evidence["swap"],
        "min_eye_distance": MIN_EYE_DISTANCE,
        "trained_on": {
            "rows": int(fit_rows.sum()),
            "manipulated": int((fit_rows & y).sum()),
            "authentic": int((fit_rows & ~y).sum()),
            "families": sorted(set(fam[fit_rows & y])),
            "features": "CLIP ViT-B/16 INT8 tower on the aligned face; parts in `inputs`",
            "l2": args.l2,
            "method": f"{args.method} ({METHODS[args.method].format(units=args.units, epochs=args.epochs)}), standardised, class-balanced (scripts/image/train_face_head.py); evidence heads ridge (L2 {args.evidence_l2:g}); calibrated by Platt on calib (the evidence heads in the file, the main head by candor calibrate)",
            "sets": "scripts/image/make_face_sets.py, split train (calib for the evidence heads' Platt)",
            "licences": licence_note(meta, fit_rows),
        },
    }
    (args.out / "face-head.json").write_text(json.dumps(out_head) + "\n")
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
