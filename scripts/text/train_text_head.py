#!/usr/bin/env python3
"""Fits the text detector's head (version 4) on the language model's hidden
states, and writes the per-item scores that `candor eval` turns into the
generated evaluation reports: the test split, one leave-one-family-out fold
per generator family, one leave-one-domain-out fold per domain, and the
fairness rows (non-native vs native human writing).

Input:
  --meta      .candor/data/text/v4/meta.jsonl (make_detector_sets.py)
  --features  `candor text-features` output (JSONL, zero-shot features) and
  --hidden    its --hidden-out file: per row the mean of the tapped hidden
              states over the prose tokens (taps as in --taps-available)
Output (--out, default .candor/data/text/v4/heads):
  hidden-head.json           the head Candor ships (models/text/)
  scores-calib.jsonl         calib rows scored by it (for `candor calibrate`)
  scores-test.jsonl          test rows scored by it
  scores-lofo-<family>.jsonl test rows of human + <family>, by a head fitted
                             without any <family> row
  scores-lodo-<domain>.jsonl test rows of <domain>, by a head fitted without
                             any <domain> row
  summary.json               quick figures (the reports are the reference)

The head: logistic regression (L2, classes weighted to equal mass) on the
standardised mean hidden state of the prose tokens at the chosen taps.
Newton's method in float64; deterministic. Needs numpy only.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

# The shared pieces of the head trainers (scripts/lib/headfit.py).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))
from headfit import auroc, fit_logistic, licence_note, raw, tpr_at  # noqa: E402

FRONTIER = ("gpt4", "claude", "gemini")
# Prefix lengths of `candor text-features --hidden-out` (FILE.prefixes).
PREFIXES = (24, 32, 48, 64, 96, 128, 192)
# Sentences with fewer scored tokens get no span score.
MIN_SENTENCE_TOKENS = 8


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    root = Path(".candor/data/text/v4")
    ap.add_argument("--meta", type=Path, default=root / "meta.jsonl")
    ap.add_argument("--features", type=Path, default=root / "feat/features.jsonl")
    ap.add_argument("--hidden", type=Path, default=root / "feat/hidden.f32")
    ap.add_argument("--taps-available", default="6,12,18,24,30")
    ap.add_argument("--taps", default="18", help="taps the head reads (manifest hidden_taps must match)")
    ap.add_argument("--width", type=int, default=576)
    ap.add_argument("--l2", type=float, default=100.0)
    ap.add_argument("--version", default="4")
    ap.add_argument("--out", type=Path, default=root / "heads")
    ap.add_argument("--explore", action="store_true", help="print a table of tap sets and L2 values")
    args = ap.parse_args()

    meta = [json.loads(line) for line in args.meta.open()]
    feats = [json.loads(line) for line in args.features.open()]
    avail = [int(t) for t in args.taps_available.split(",")]
    hid = np.fromfile(args.hidden, dtype="<f4").reshape(len(meta), len(avail), args.width)
    assert len(feats) == len(meta)
    y = np.array([f["manipulated"] for f in feats])
    ok = np.isfinite(hid).all((1, 2)) & np.array([f.get("features") is not None for f in feats])
    fam = np.array([m["family"] for m in meta])
    dom = np.array([m["domain"] for m in meta])
    split = np.array([m["split"] for m in meta])
    role = np.array([m["role"] for m in meta])
    native = np.array([m.get("native") for m in meta], dtype=object)
    ids = [m["path"] for m in meta]
    groups = [f"{m['family']}/{m['domain']}" for m in meta]
    print(f"rows {len(meta)}, scored {ok.sum()}")

    def xmat(taps):
        idx = [avail.index(t) for t in taps]
        return hid[:, idx, :].reshape(len(meta), -1).astype(np.float64)

    train = ok & (split == "train") & (role == "fit")
    test = ok & (split == "test")
    human_test = test & ~y & (role == "fit")

    def fold_eval(x, l2, excl):
        h = fit_logistic(x[train & ~excl], y[train & ~excl], l2)
        return h, raw(h, x)

    if args.explore:
        for taps in ([6], [12], [18], [24], [30], [12, 18], [6, 18, 30], [12, 18, 24], [6, 12, 18, 24, 30]):
            x = xmat(taps)
            for l2 in (10.0, 100.0, 1000.0):
                line = []
                for f in FRONTIER:
                    _, s = fold_eval(x, l2, fam == f)
                    pos = s[test & (fam == f)]
                    neg = s[human_test]
                    line.append(f"{f} {auroc(pos, neg):.3f}/{tpr_at(pos, neg):.2f}")
                _, s = fold_eval(x, l2, np.zeros(len(meta), bool))
                line.append(f"all {auroc(s[test & y], s[human_test]):.3f}/{tpr_at(s[test & y], s[human_test]):.2f}")
                print(f"taps {taps} l2 {l2:g}: " + "  ".join(line), flush=True)
        return 0

    taps = [int(t) for t in args.taps.split(",")]
    x = xmat(taps)
    args.out.mkdir(parents=True, exist_ok=True)
    summary = {"taps": taps, "l2": args.l2, "folds": {}}

    def write(name, sel, s, group_of=None):
        with open(args.out / f"scores-{name}.jsonl", "w") as f:
            for i in np.where(sel)[0]:
                f.write(json.dumps({
                    "id": ids[i], "manipulated": bool(y[i]),
                    "score": round(float(s[i]), 6) if ok[i] else None,
                    "abstain_reason": None if ok[i] else "not scored",
                    "group": (group_of or groups)[i], "split": split[i],
                }) + "\n")

    def report(name, pos, neg):
        r = {"auroc": auroc(pos, neg), "tpr_at_1pct_fpr": tpr_at(pos, neg), "n_pos": len(pos), "n_neg": len(neg)}
        summary["folds"][name] = r
        print(f"{name:<24} AUROC {r['auroc']:.4f}  TPR@1%FPR {r['tpr_at_1pct_fpr']:.3f}  ({len(pos)} vs {len(neg)})")

    head, s = fold_eval(x, args.l2, np.zeros(len(meta), bool))
    write("test", (split == "test") & (role == "fit"), s)
    write("calib", (split == "calib") & (role == "fit"), s)
    # Fairness rows by writer: native / non-native English (ELLIPSE, the
    # TOEFL-essay sets) where the source says so, otherwise the domain.
    fair_groups = [
        f"{m['family']}/{'native' if m.get('native') else 'non-native'}" if m.get("native") is not None
        else f"{m['family']}/{m['domain']}"
        for m in meta
    ]
    write("fairness", role == "fairness", s, fair_groups)
    report("test", s[test & y & (role == "fit")], s[human_test])
    for f in sorted(set(fam[y])):
        report(f"  test/{f}", s[test & (fam == f)], s[human_test])
    for f in sorted(set(fam[y])):
        _, sf = fold_eval(x, args.l2, fam == f)
        write(f"lofo-{f}", (split == "test") & (role == "fit") & ((fam == f) | ~y), sf)
        report(f"lofo-{f}", sf[test & (fam == f)], sf[human_test])
    for d in sorted(set(dom[role == "fit"])):
        sel_d = dom == d
        if not (test & sel_d & ~y).any() or not (test & sel_d & y).any():
            continue
        _, sd = fold_eval(x, args.l2, sel_d)
        write(f"lodo-{d}", (split == "test") & (role == "fit") & sel_d, sd)
        report(f"lodo-{d}", sd[test & sel_d & y], sd[test & sel_d & ~y])
    fair = role == "fairness"
    for nat in (True, False):
        sel = fair & ~y & (native == nat)
        print(f"fairness native={nat}: {sel.sum()} human texts")

    # Minimum length: the shortest prose prefix at which the head's 1%-FPR
    # threshold (on calib human texts at full length) still holds on calib
    # human prefixes (FPR <= 2%) while catching at least half the machine
    # prefixes that it catches at full length.
    min_tokens, min_table = PREFIXES[-1], []
    pre_path = Path(str(args.hidden).rsplit(".", 1)[0] + ".prefixes")
    if pre_path.exists():
        pre = np.memmap(pre_path, dtype="<f4", mode="r").reshape(len(meta), len(PREFIXES), len(avail), args.width)
        idx = [avail.index(t) for t in taps]
        calib = ok & (split == "calib") & (role == "fit")
        t = np.quantile(s[calib & ~y], 0.99)
        tpr_full = float((s[calib & y] >= t).mean())
        chosen = None
        for k, n_tok in enumerate(PREFIXES):
            xp = np.asarray(pre[:, k, idx, :]).reshape(len(meta), -1).astype(np.float64)
            have = calib & np.isfinite(xp).all(1)
            sp = raw(head, np.nan_to_num(xp))
            fpr = float((sp[have & ~y] >= t).mean()) if (have & ~y).any() else float("nan")
            tpr = float((sp[have & y] >= t).mean()) if (have & y).any() else float("nan")
            min_table.append({"tokens": n_tok, "fpr": fpr, "tpr": tpr, "n": int(have.sum())})
            print(f"prefix {n_tok:>4} tokens: calib FPR {fpr:.3f}  TPR {tpr:.3f}  (n {have.sum()})")
            if chosen is None and fpr <= 0.02 and tpr >= 0.5 * tpr_full:
                chosen = n_tok
        if chosen is not None:
            min_tokens = chosen
    else:
        print(f"{pre_path} not found: min_prose_tokens = {min_tokens}", file=sys.stderr)
    summary["min_prose_tokens"] = {"chosen": min_tokens, "table": min_table}
    print(f"min_prose_tokens = {min_tokens}")

    (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    out = {
        "format": "candor.text-hidden-head/1",
        "id": "text-hidden-head",
        "version": args.version,
        "taps": taps,
        "width": args.width,
        "mean": [float(f"{v:.9g}") for v in head["mean"]],
        "scale": [float(f"{v:.9g}") for v in head["scale"]],
        "weights": [float(f"{v:.9g}") for v in head["weights"]],
        "bias": float(f"{head['bias']:.9g}"),
        "min_prose_tokens": int(min_tokens),
        "min_sentence_tokens": MIN_SENTENCE_TOKENS,
        "trained_on": {
            "rows": int(train.sum()),
            "machine": int((train & y).sum()),
            "human": int((train & ~y).sum()),
            "l2": args.l2,
            "method": "logistic regression on the mean hidden state of the prose tokens, standardised, class-balanced, Newton (scripts/text/train_text_head.py)",
            "licences": licence_note(meta, train),
        },
    }
    (args.out / "hidden-head.json").write_text(json.dumps(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
