#!/usr/bin/env python3
"""Trains Candor's image forgery CNN (a small fully-convolutional net on noise
residuals) and exports it to ONNX.

Input: the manifest written by scripts/image/build_image_data.py
(`.candor/data/image/train/manifest.jsonl`): authentic crops of photographs from
Debian packages and, for each, manipulated copies (splice, copy-move, local
resample, self-blend (SBI), 2x upsampling, double JPEG) with a mask of the pixels
each edit touched. `train` rows train the net, `calib` rows choose the step (image
AUROC of the score the Rust detector computes); `test` is never read here.

The net sees the luminance (BT.601, 0-255) of a 128x128 tile and returns a 16x16
map of log-odds, one per 8x8 cell, that the cell belongs to an edited region.
Pixel-level labels: a cell is positive when at least 25% of it is covered by the
edit mask, negative in authentic images and where the mask is empty, ignored in
between. The front end is fixed: four high-pass residual filters (SRM-style, so
the net learns from noise and resampling traces rather than from content),
clipped to +-3; then six 3x3 convolutions (three with stride 2), batch norm folded
at export. About 96k parameters, 61 M multiply-adds per tile.

Output: `models/image/forgery-cnn.onnx` with input `luma` f32 [B,1,128,128] and
output `logits` f32 [B,1,16,16]; `models/image/forgery-cnn.train.json` (history,
data sha256, command line) and a parity fixture for the Rust test.

Deterministic: seeded; CPU (Debian `python3-torch` 1.13); ~10-15 min on 2 cores.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

TILE = 128
CELL = 8


def luma(path: Path) -> np.ndarray:
    a = np.asarray(Image.open(path).convert("RGB")).astype(np.float32)
    return (0.299 * a[..., 0] + 0.587 * a[..., 1] + 0.114 * a[..., 2]).astype(np.float32)


def fixed_filters() -> torch.Tensor:
    kv = np.array([[-1, 2, -2, 2, -1], [2, -6, 8, -6, 2], [-2, 8, -12, 8, -2],
                   [2, -6, 8, -6, 2], [-1, 2, -2, 2, -1]], np.float32) / 12.0
    lap = np.zeros((5, 5), np.float32)
    lap[1:4, 1:4] = np.array([[-1, 2, -1], [2, -4, 2], [-1, 2, -1]], np.float32) / 4.0
    h2 = np.zeros((5, 5), np.float32)
    h2[2, 1:4] = [1, -2, 1]
    h2 /= 2.0
    v2 = h2.T.copy()
    return torch.from_numpy(np.stack([kv, lap, h2, v2])[:, None])


class ForgeryNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("hp", fixed_filters())
        def block(i, o, s, d=1):
            return nn.Sequential(nn.Conv2d(i, o, 3, stride=s, padding=d, dilation=d, bias=False),
                                 nn.BatchNorm2d(o), nn.ReLU(inplace=True))
        self.body = nn.Sequential(
            block(4, 16, 2), block(16, 32, 1), block(32, 32, 2),
            block(32, 48, 1), block(48, 64, 2), block(64, 64, 1, 2),
        )
        self.head = nn.Conv2d(64, 1, 1)

    def forward(self, luma):
        x = F.conv2d(luma, self.hp, padding=2)
        x = torch.clamp(x, -3.0, 3.0)
        return self.head(self.body(x))


def fold_bn(model: ForgeryNet) -> nn.Module:
    """A copy with every BatchNorm folded into its convolution (eval mode)."""
    class Folded(nn.Module):
        def __init__(self, m):
            super().__init__()
            self.register_buffer("hp", m.hp.clone())
            convs = []
            for blk in m.body:
                conv, bn = blk[0], blk[1]
                w = conv.weight.detach()
                scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
                c = nn.Conv2d(conv.in_channels, conv.out_channels, 3, stride=conv.stride,
                              padding=conv.padding, dilation=conv.dilation, bias=True)
                c.weight.data = w * scale[:, None, None, None]
                c.bias.data = bn.bias.detach() - bn.running_mean * scale
                convs.append(c)
            self.convs = nn.ModuleList(convs)
            self.head = m.head

        def forward(self, luma):
            x = torch.clamp(F.conv2d(luma, self.hp, padding=2), -3.0, 3.0)
            for c in self.convs:
                x = F.relu(c(x))
            return self.head(x)
    return Folded(model).eval()


def parity_probes() -> np.ndarray:
    """Three probe tiles the Rust test rebuilds exactly: a sin/cos texture, hash
    noise around 120 and a 16 px checkerboard."""
    yy, xx = np.mgrid[0:TILE, 0:TILE]
    h = ((xx.astype(np.uint64) * 7919 + yy.astype(np.uint64) * 104729 + 17) * 2654435761) % (1 << 32)
    noise = 120.0 + 24.0 * (h.astype(np.float64) / float(1 << 32) - 0.5)
    xf, yf = xx.astype(np.float32), yy.astype(np.float32)
    return np.stack([
        128 + 60 * np.sin(xf / 9.0) * np.cos(yf / 13.0),
        noise,
        np.where((xx // 16 + yy // 16) % 2 == 0, 60.0, 190.0),
    ]).astype(np.float32)[:, None]


def parity_fixture(outs: np.ndarray) -> dict:
    return {"probes": "sin/cos texture, hash noise around 120, 16 px checkerboard 60/190 (parity_probes)",
            "cell_logit_sums": [float(o.sum()) for o in outs],
            "cell_logit_max": [float(o.max()) for o in outs]}


def image_score(cell_logits: np.ndarray) -> float:
    """What the Rust detector does: mean of the top 2% of cell logits (at least 4)."""
    v = np.sort(cell_logits.ravel())[::-1]
    k = max(4, int(math.ceil(0.02 * v.size)))
    return float(v[:k].mean())


def tiles_of(h: int, w: int) -> list[tuple[int, int]]:
    """Tile origins as in the Rust detector: a 128 grid from the top-left, the
    last row/column aligned to the far edge."""
    def axis(n):
        if n < TILE:
            return []
        o = list(range(0, n - TILE + 1, TILE))
        if o[-1] + TILE < n:
            o.append(n - TILE)
        return o
    return [(y, x) for y in axis(h) for x in axis(w)]


def score_images(model, items) -> list[float]:
    out = []
    model.eval()
    with torch.no_grad():
        for y, _ in items:
            t = tiles_of(*y.shape)
            if not t:
                out.append(float("nan"))
                continue
            batch = torch.from_numpy(np.stack([y[a:a + TILE, b:b + TILE] for a, b in t])[:, None])
            out.append(image_score(model(batch).numpy()))
    return out


def auroc(pos, neg) -> float:
    s = 0.0
    for p in pos:
        for n in neg:
            s += 1.0 if p > n else 0.5 if p == n else 0.0
    return s / max(1, len(pos) * len(neg))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--manifest", type=Path, default=Path(".candor/data/image/train/manifest.jsonl"))
    ap.add_argument("--out", type=Path, default=Path("models/image/forgery-cnn.onnx"))
    ap.add_argument("--steps", type=int, default=1800)
    ap.add_argument("--batch", type=int, default=24)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--eval-every", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=20261125)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    random.seed(args.seed)

    base = args.manifest.parent
    rows = [json.loads(l) for l in open(args.manifest)]
    data_sha = hashlib.sha256(args.manifest.read_bytes()).hexdigest()
    train, val = [], []
    t0 = time.time()
    for r in rows:
        if r["split"] not in ("train", "calib"):
            continue
        p = base / r["path"]
        y = luma(p)
        if r["label"] == "manipulated":
            mp = p.with_name(p.name.rsplit(".", 1)[0] + ".mask.png")
            m = np.asarray(Image.open(mp)).astype(np.float32) / 255.0
        else:
            m = np.zeros_like(y)
        item = (y, m)
        (train if r["split"] == "train" else val).append((item, r))
    print(f"loaded {len(train)} train / {len(val)} calib images in {time.time() - t0:.0f}s", flush=True)
    pos_imgs = [it for it, r in train if r["label"] == "manipulated"]
    neg_imgs = [it for it, r in train if r["label"] == "authentic"]

    def sample(it, want_edit: bool):
        y, m = it
        h, w = y.shape
        if want_edit and m.max() > 0 and m.mean() < 0.99:
            ys, xs = np.nonzero(m > 0.25)
            if len(ys):
                k = rng.integers(0, len(ys))
                cy = int(np.clip(ys[k] + rng.integers(-48, 49) - TILE // 2, 0, h - TILE))
                cx = int(np.clip(xs[k] + rng.integers(-48, 49) - TILE // 2, 0, w - TILE))
            else:
                cy, cx = int(rng.integers(0, h - TILE + 1)), int(rng.integers(0, w - TILE + 1))
        else:
            cy, cx = int(rng.integers(0, h - TILE + 1)), int(rng.integers(0, w - TILE + 1))
        ty = y[cy:cy + TILE, cx:cx + TILE]
        tm = m[cy:cy + TILE, cx:cx + TILE]
        if rng.random() < 0.5:
            ty, tm = ty[:, ::-1], tm[:, ::-1]
        cov = tm.reshape(TILE // CELL, CELL, TILE // CELL, CELL).mean(axis=(1, 3))
        lab = (cov >= 0.25).astype(np.float32)
        wgt = ((cov >= 0.25) | (cov <= 0.02)).astype(np.float32)
        return ty.copy(), lab, wgt

    model = ForgeryNet()
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.steps, pct_start=0.15)
    history, best = [], (-1.0, None, 0)
    val_items = [it for it, _ in val]
    val_lab = [r["label"] == "manipulated" for _, r in val]
    t0 = time.time()
    run_loss = 0.0
    for step in range(1, args.steps + 1):
        model.train()
        xs, ls, ws = [], [], []
        for b in range(args.batch):
            if b % 2 == 0:
                it = neg_imgs[rng.integers(0, len(neg_imgs))]
                t = sample(it, False)
            else:
                it = pos_imgs[rng.integers(0, len(pos_imgs))]
                t = sample(it, True)
            xs.append(t[0]); ls.append(t[1]); ws.append(t[2])
        x = torch.from_numpy(np.stack(xs)[:, None])
        lab = torch.from_numpy(np.stack(ls)[:, None])
        wgt = torch.from_numpy(np.stack(ws)[:, None])
        logits = model(x)
        npos = (lab * wgt).sum().clamp(min=1)
        nneg = ((1 - lab) * wgt).sum().clamp(min=1)
        cw = wgt * torch.where(lab > 0, 0.5 / npos, 0.5 / nneg)
        loss = (F.binary_cross_entropy_with_logits(logits, lab, reduction="none") * cw).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        run_loss += loss.item()
        if step % args.eval_every == 0 or step == args.steps:
            scores = score_images(model, val_items)
            pos = [s for s, l in zip(scores, val_lab) if l and not math.isnan(s)]
            neg = [s for s, l in zip(scores, val_lab) if not l and not math.isnan(s)]
            a = auroc(pos, neg)
            history.append({"step": step, "loss": run_loss / args.eval_every, "calib_image_auroc": a,
                            "seconds": round(time.time() - t0, 1)})
            print(f"step {step}: loss {run_loss / args.eval_every:.4f} calib image AUROC {a:.4f} "
                  f"({time.time() - t0:.0f}s)", flush=True)
            run_loss = 0.0
            if a > best[0]:
                best = (a, {k: v.clone() for k, v in model.state_dict().items()}, step)
    model.load_state_dict(best[1])
    model.eval()
    folded = fold_bn(model)
    dummy = torch.zeros(1, 1, TILE, TILE)
    with torch.no_grad():
        diff = (folded(dummy + 100) - model(dummy + 100)).abs().max().item()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        folded, dummy, str(args.out), input_names=["luma"], output_names=["logits"],
        dynamic_axes={"luma": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17,
        do_constant_folding=True,
    )
    with torch.no_grad():
        outs = folded(torch.from_numpy(parity_probes())).numpy()
    fixture = parity_fixture(outs)
    meta = {
        "model": "candor-image-forgery-cnn", "params": n_params, "tile": TILE, "cell": CELL,
        "best_step": best[2], "best_calib_image_auroc": best[0], "bn_fold_max_abs_diff": diff,
        "history": history, "manifest_sha256": data_sha, "train_images": len(train),
        "calib_images": len(val), "args": {k: str(v) for k, v in vars(args).items()},
        "command": " ".join(sys.argv), "torch": torch.__version__, "parity": fixture,
        "onnx_sha256": hashlib.sha256(args.out.read_bytes()).hexdigest(),
    }
    args.out.with_suffix(".train.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"best step {best[2]} calib AUROC {best[0]:.4f}; wrote {args.out} ({n_params} params)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
