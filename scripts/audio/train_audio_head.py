#!/usr/bin/env python3
"""Fits the audio detector's head (version 4) on the speech encoder's
statistics of 2 s segments, and writes the per-item scores that
`candor calibrate` and `candor eval` use: segment and file scores of the
calib split (for the two calibrations), file scores of the test split, and
one leave-one-tool-out refit per generated tool.

Input:
  --manifest  .candor/data/audio/v3/manifest.jsonl (build_audio_v3.py): the
              rows `candor audio-features` was run on, in the same order
  --features  `candor audio-features` output (JSONL, one row per file, its
              segments with the named features) and its side file
              FEATURES.enc.f32 (per segment: mean of each of the encoder's 5
              states, then their standard deviations, 384 values each)
Output (--out, default .candor/data/audio/v3/heads):
  head.json                     the head Candor ships (models/audio/)
  scores-seg-calib.jsonl        calib segments (for the segment calibration)
  scores-calib.jsonl            calib files (for the file calibration)
  scores-test.jsonl             test files (fit rows: real and generated tools)
  scores-eval-only.jsonl        files of tools and real speakers never fitted on
  scores-lotoo-<tool>.jsonl     test files of real + <tool>, by a head refitted
                                without any <tool> row
  summary.json                  quick figures (the reports are the reference)

The head: logistic regression (L2, classes weighted to equal mass, every
file weighing the same whatever its number of segments) on the standardised
encoder statistics it selects and the named features it lists. The file
log-odds is the mean of the top quarter of its segment log-odds, as in the
detector. Newton's method in float64; deterministic. Needs numpy only.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

# The shared pieces of the head trainers (scripts/lib/headfit.py).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))
from headfit import (auroc, fit_logistic, fit_mlp, hidden_json, hidden_term,  # noqa: E402
                     licence_note, tpr_at)

STATES = 5
WIDTH = 384
ENC = 2 * STATES * WIDTH
FEATURES = [
    "lcnn.logit",
    "pitch.f0_std_semitones",
    "pitch.jitter",
    "pitch.periodicity",
    "spectrum.cutoff_hz",
    "spectrum.high_band_flatness",
    "spectrum.transient_sharpness",
    "modulation.syllabic_share",
]
TOP = 0.25


def raw(h, x):
    """The head's log-odds (linear term, plus the rectified units of a hidden
    layer, as AudioHead::raw computes them); a non-finite standardised input
    counts as average (0)."""
    z = (x - h["mean"]) / h["scale"]
    z = np.where(np.isfinite(z), z, 0.0)
    s = z @ h["weights"] + h["bias"]
    hid = h.get("hidden")
    if hid is not None:
        s = s + hidden_term(hid, z)
    return s


def file_scores(seg_s, seg_file, n_files):
    out = np.full(n_files, np.nan)
    order = np.argsort(seg_file, kind="stable")
    seg_file_s = seg_file[order]
    seg_s_s = seg_s[order]
    starts = np.searchsorted(seg_file_s, np.arange(n_files))
    ends = np.searchsorted(seg_file_s, np.arange(n_files), side="right")
    for f in range(n_files):
        v = np.sort(seg_s_s[starts[f] : ends[f]])[::-1]
        if len(v):
            k = max(1, int(np.ceil(len(v) * TOP)))
            out[f] = v[:k].mean()
    return out


def at_hop(f, hop):
    """Which of a file's segments (extracted every 1 s) the detector places
    at `hop` seconds: starts 0, hop, 2 hop, ... while a 2 s segment fits,
    then one ending at the file's end when it starts more than a quarter hop
    after the last (AudioDetector's rule); a file of 2 s or less is one
    segment. A start the features lack (a segment with too little speech)
    is skipped; the 1 s grid's nearest start (within 0.26 s) stands in for
    an end-aligned one."""
    starts = np.array([s["start_s"] for s in f["segments"]], dtype=float)
    keep = np.zeros(len(starts), bool)
    d = f["duration_s"]
    if len(starts) == 0:
        return keep
    if d <= 2.0 + 1e-9:
        keep[:] = True
        return keep
    targets, t = [], 0.0
    while t + 2.0 <= d + 1e-9:
        targets.append(t)
        t += hop
    last = d - 2.0
    if targets and last - targets[-1] > 0.25 * hop:
        targets.append(last)
    for t in targets:
        k = int(np.argmin(np.abs(starts - t)))
        if abs(starts[k] - t) < 0.26:
            keep[k] = True
    return keep


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    root = Path(".candor/data/audio/v3")
    ap.add_argument("--manifest", type=Path, default=root / "manifest.jsonl")
    ap.add_argument("--features", type=Path, default=root / "feat/features.jsonl")
    ap.add_argument("--states", default="1,2,3,4", help="encoder states the head reads")
    ap.add_argument("--stats", default="mean,std")
    ap.add_argument("--named", default="", help="named features appended (comma-separated)")
    ap.add_argument("--l2", type=float, default=1000.0, help="L2 of the logistic head")
    ap.add_argument("--method", choices=("logistic", "mlp"), default="logistic",
                    help="logistic: one standardised linear layer (Newton); mlp: one hidden layer "
                         "of --units rectified units (Adam, dropout, weight decay --mlp-l2)")
    ap.add_argument("--units", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--mlp-l2", type=float, default=1e-4)
    ap.add_argument("--min-speech", type=float, default=1.5)
    ap.add_argument("--min-window-speech", type=float, default=1.0)
    ap.add_argument("--hop", type=float, default=2.0,
                    help="the service's segment hop (CANDOR_AUDIO_HOP_S) the file scores and the file "
                         "calibration are for: the features hold every 1 s segment; a file is scored on "
                         "the segments the detector would place at this hop (the head is fitted on all)")
    ap.add_argument("--version", default="4")
    ap.add_argument("--out", type=Path, default=root / "heads")
    ap.add_argument("--explore", action="store_true")
    args = ap.parse_args()

    meta = [json.loads(line) for line in args.manifest.open()]
    feats = [json.loads(line) for line in args.features.open()]
    assert len(meta) == len(feats), (len(meta), len(feats))
    enc = np.fromfile(args.features.with_suffix(".enc.f32"), dtype="<f4")
    n_seg_total = sum(len(f["segments"]) for f in feats)
    enc = enc.reshape(n_seg_total, ENC)
    seg_file, seg_x, seg_ok = [], [], []
    for i, f in enumerate(feats):
        for s in f["segments"]:
            seg_file.append(i)
            seg_x.append([np.nan if v is None else v for v in s["x"]])
            seg_ok.append(s["speech_s"] >= min(args.min_window_speech, s["end_s"] - s["start_s"]))
    seg_file = np.array(seg_file)
    seg_x = np.array(seg_x, dtype=float)
    seg_hop = np.concatenate([at_hop(f, args.hop) for f in feats]) if n_seg_total else np.zeros(0, bool)
    seg_ok = np.array(seg_ok) & np.isfinite(enc).all(1)
    n = len(meta)
    y_file = np.array([f["manipulated"] for f in feats])
    speech = np.array([f["speech_s"] for f in feats])
    split = np.array([m["split"] for m in meta])
    role = np.array([m.get("role", "fit") for m in meta])
    tool = np.array([m.get("tool", "") for m in meta])
    channel = np.array([m.get("channel", "") for m in meta])
    kind = np.array([m.get("kind", "") for m in meta])
    ids = [m["path"] for m in meta]
    scored_file = speech >= args.min_speech

    def xmat(states, stats, named):
        cols = []
        for st in stats:
            base = 0 if st == "mean" else STATES * WIDTH
            for l in states:
                cols.append(enc[:, base + l * WIDTH : base + (l + 1) * WIDTH])
        for nm in named:
            cols.append(seg_x[:, [FEATURES.index(nm)]])
        return np.hstack(cols).astype(np.float64)

    def fit(x, file_sel):
        sel = seg_ok & file_sel[seg_file] & scored_file[seg_file]
        counts = np.bincount(seg_file[sel], minlength=n).astype(float)
        w_row = 1.0 / counts[seg_file[sel]]
        if args.method == "mlp":
            return fit_mlp(x[sel], y_file[seg_file[sel]], args.mlp_l2, units=args.units,
                           epochs=args.epochs, batch=256, w_row=w_row)
        return fit_logistic(x[sel], y_file[seg_file[sel]], args.l2, w_row)

    def files(h, x):
        s = np.full(len(seg_file), np.nan)
        s[seg_ok] = raw(h, x[seg_ok])
        ok = seg_ok & seg_hop
        fs = file_scores(s[ok], seg_file[ok], n)
        fs[~scored_file] = np.nan
        return s, fs

    fit_train = (split == "train") & (role == "fit")
    test_fit = (split == "test") & (role == "fit")
    real_test = test_fit & ~y_file

    def summarize(name, fs, pos_sel, neg_sel):
        pos = fs[pos_sel & np.isfinite(fs)]
        neg = fs[neg_sel & np.isfinite(fs)]
        if len(pos) == 0 or len(neg) == 0:
            return None
        r = {"auroc": auroc(pos, neg), "tpr_at_1pct_fpr": tpr_at(pos, neg), "n_pos": len(pos), "n_neg": len(neg)}
        print(f"{name:<30} AUROC {r['auroc']:.4f}  TPR@1%FPR {r['tpr_at_1pct_fpr']:.3f}  ({len(pos)} vs {len(neg)})", flush=True)
        return r

    states = [int(s) for s in args.states.split(",") if s != ""]
    stats = [s for s in args.stats.split(",") if s]
    named = [s for s in args.named.split(",") if s]

    if args.explore:
        for st_, sts_, nm_ in (
            ([4], ["mean"], []), ([4], ["mean", "std"], []), ([2], ["mean", "std"], []),
            ([1, 2, 3, 4], ["mean", "std"], []), ([0, 1, 2, 3, 4], ["mean", "std"], []),
            ([1, 2, 3, 4], ["mean", "std"], ["lcnn.logit"]),
        ):
            x = xmat(st_, sts_, nm_)
            h = fit(x, fit_train)
            _, fs = files(h, x)
            print(f"states {st_} stats {sts_} named {nm_}")
            summarize("  test (fit tools)", fs, test_fit & y_file, real_test)
            summarize("  eval-only fakes vs test real", fs, (role == "eval_only") & y_file, real_test)
            summarize("  eval-only fakes vs eval-only real", fs, (role == "eval_only") & y_file, (role == "eval_only") & ~y_file)
        return 0

    x = xmat(states, stats, named)
    args.out.mkdir(parents=True, exist_ok=True)
    h = fit(x, fit_train)
    seg_s, fs = files(h, x)
    summary = {"folds": {}}

    def write(path, sel, scores, group_of=None):
        with open(path, "w") as f:
            for i in np.where(sel)[0]:
                ok = np.isfinite(scores[i])
                f.write(json.dumps({
                    "id": ids[i], "manipulated": bool(y_file[i]),
                    "score": round(float(scores[i]), 6) if ok else None,
                    "abstain_reason": None if ok else "too little speech",
                    "group": (tool if group_of is None else group_of)[i], "split": split[i],
                }) + "\n")

    calib = (split == "calib") & (role == "fit")
    write(args.out / "scores-calib.jsonl", calib, fs)
    with open(args.out / "scores-seg-calib.jsonl", "w") as f:
        for k in np.where(seg_ok & calib[seg_file])[0]:
            i = seg_file[k]
            f.write(json.dumps({"id": f"{ids[i]}#{k}", "manipulated": bool(y_file[i]),
                                "score": round(float(seg_s[k]), 6), "group": tool[i], "split": "calib"}) + "\n")
    write(args.out / "scores-test.jsonl", test_fit, fs)
    write(args.out / "scores-test-channel.jsonl", test_fit, fs, channel)
    write(args.out / "scores-test-kind.jsonl", test_fit & ~y_file, fs, kind)
    write(args.out / "scores-eval-only.jsonl", role == "eval_only", fs)
    summary["folds"]["test"] = summarize("test (fit tools)", fs, test_fit & y_file, real_test)
    summary["folds"]["eval_only"] = summarize("eval-only fakes vs test real", fs, (role == "eval_only") & y_file, real_test)
    fit_tools = sorted(set(tool[(role == "fit") & y_file & (split == "train")]))
    for t in fit_tools:
        ht = fit(x, fit_train & (tool != t))
        _, ft = files(ht, x)
        write(args.out / f"scores-lotoo-{t}.jsonl", test_fit & ((tool == t) | ~y_file), ft)
        summary["folds"][f"lotoo-{t}"] = summarize(f"leave out {t}", ft, test_fit & (tool == t), real_test)

    out = {
        "format": "candor.audio-head/3",
        "id": "audio-head",
        "version": args.version,
        "encoder_states": states,
        "encoder_stats": stats,
        "features": named,
        "mean": [float(f"{v:.9g}") for v in h["mean"]],
        "scale": [float(f"{v:.9g}") for v in h["scale"]],
        "weights": [float(f"{v:.9g}") for v in h["weights"]],
        "bias": float(f"{h['bias']:.9g}"),
        **({"hidden": hidden_json(h["hidden"])} if "hidden" in h else {}),
        "file_top_fraction": TOP,
        "min_speech_s": args.min_speech,
        "min_window_speech_s": args.min_window_speech,
        "trained_on": {
            "files": int((fit_train & scored_file).sum()),
            "manipulated": int((fit_train & scored_file & y_file).sum()),
            "authentic": int((fit_train & scored_file & ~y_file).sum()),
            "tools": fit_tools,
            **({"l2": args.l2,
                "method": "logistic regression on 2 s segments (every file weighing the same), standardised, class-balanced, Newton (scripts/audio/train_audio_head.py)"}
               if args.method == "logistic" else
               {"weight_decay": args.mlp_l2,
                "method": f"one hidden layer of {args.units} rectified units on 2 s segments (every file weighing the same), standardised, class-balanced, Adam, {args.epochs} epochs, dropout 0.2 on inputs and 0.5 on units, weights stored f16 (scripts/audio/train_audio_head.py --method mlp)"}),
            "licences": licence_note(meta, fit_train & scored_file),
        },
    }
    (args.out / "head.json").write_text(json.dumps(out) + "\n")
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
