#!/usr/bin/env python3
"""Trains Candor's anti-spoofing model (LCNN on LFCC) and exports it to ONNX.

Input: the clip manifest written by scripts/audio/build_audio_data.py
(`.candor/data/audio/manifest.jsonl`, 16 kHz mono WAV clips with a
`train` / `calib` / `test` split that holds out whole speakers, tools and
codecs). Only `train` rows are read here: 10% of the training speakers are
kept aside as a validation set for choosing the epoch; `calib` is left for
the calibration (`candor audio-train`), `test` for the evaluation.

Output: `models/audio/lcnn-lfcc.onnx` whose graph takes raw audio,
`waveform` f32 [B, 32000] (2 s at 16 kHz), and returns `logit` f32 [B, 1]
(higher = more likely synthetic or voice-changed). The LFCC front end
(RMS normalisation, pre-emphasis, 25 ms Hann frames every 10 ms as a
convolution with fixed DFT kernels, 70 linear triangular filters, log,
DCT to 20 coefficients, deltas and delta-deltas) is part of the graph, so
the Rust service feeds samples and there is no second feature
implementation to keep in step.

Deterministic: seeded, single-threaded data order, `torch.use_deterministic_algorithms`.
Runs on CPU (Debian `python3-torch` 1.13) in about 15-30 minutes on 2 cores.
"""
import argparse
import hashlib
import json
import math
import os
import random
import sys
import time
import wave

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

SR = 16000
SEG = 2 * SR
N_FFT = 512
WIN = 400
HOP = 160
N_FILTERS = 70
N_CEPS = 20


def read_wav(path):
    with wave.open(path, "rb") as w:
        if w.getframerate() != SR or w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise SystemExit(f"{path}: expected 16 kHz mono int16")
        data = w.readframes(w.getnframes())
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


class Lfcc(nn.Module):
    """Waveform [B, N] -> LFCC+deltas [B, 1, 60, T]."""

    def __init__(self):
        super().__init__()
        n = np.arange(WIN)
        window = 0.5 - 0.5 * np.cos(2 * np.pi * n / WIN)  # periodic Hann
        k = np.arange(N_FFT // 2 + 1)[:, None]
        ang = 2 * np.pi * k * n[None, :] / N_FFT
        kernel = np.concatenate([np.cos(ang) * window, -np.sin(ang) * window])
        self.register_buffer("kernel", torch.tensor(kernel[:, None, :], dtype=torch.float32))
        bins = N_FFT // 2 + 1
        edges = np.linspace(0, bins - 1, N_FILTERS + 2)
        fb = np.zeros((N_FILTERS, bins))
        for i in range(N_FILTERS):
            lo, c, hi = edges[i], edges[i + 1], edges[i + 2]
            for b in range(bins):
                if lo <= b <= c and c > lo:
                    fb[i, b] = (b - lo) / (c - lo)
                elif c < b <= hi:
                    fb[i, b] = (hi - b) / (hi - c)
        self.register_buffer("fb", torch.tensor(fb, dtype=torch.float32))
        m = np.arange(N_FILTERS)
        dct = np.cos(np.pi / N_FILTERS * (m[None, :] + 0.5) * np.arange(N_CEPS)[:, None])
        dct *= np.sqrt(2.0 / N_FILTERS)
        dct[0] /= np.sqrt(2.0)
        self.register_buffer("dct", torch.tensor(dct, dtype=torch.float32))
        delta = np.array([-2, -1, 0, 1, 2], dtype=np.float32) / 10.0
        self.register_buffer("delta", torch.tensor(np.tile(delta, (N_CEPS, 1, 1))))
        self.specaug = False
        self.register_buffer("mean", torch.zeros(1, 1, 3 * N_CEPS, 1))
        self.register_buffer("std", torch.ones(1, 1, 3 * N_CEPS, 1))

    def _delta(self, c):
        return F.conv1d(F.pad(c, (2, 2), mode="replicate"), self.delta, groups=N_CEPS)

    def raw(self, x):
        x = x - x.mean(dim=1, keepdim=True)
        x = x / torch.sqrt((x * x).mean(dim=1, keepdim=True) + 1e-8)
        x = torch.cat([x[:, :1], x[:, 1:] - 0.97 * x[:, :-1]], dim=1)
        spec = F.conv1d(x.unsqueeze(1), self.kernel, stride=HOP)
        half = N_FFT // 2 + 1
        re, im = spec[:, :half], spec[:, half:]
        power = re * re + im * im
        logfb = torch.log(torch.matmul(self.fb, power) + 1e-4)
        if self.training and self.specaug:
            logfb = spec_augment(logfb)
        c = torch.matmul(self.dct, logfb)
        d1 = self._delta(c)
        d2 = self._delta(d1)
        return torch.cat([c, d1, d2], dim=1).unsqueeze(1)

    def forward(self, x):
        return (self.raw(x) - self.mean) / self.std


def spec_augment(logfb):
    """Training only: per item, one band of up to 10 filters and one span of
    up to 20 frames set to the item's mean log energy (SpecAugment-style
    masking in the filterbank domain, before the DCT)."""
    b, f, t = logfb.shape
    out = logfb.clone()
    fill = logfb.mean(dim=(1, 2))
    for i in range(b):
        w = int(torch.randint(0, 11, (1,)))
        if w:
            f0 = int(torch.randint(0, f - w + 1, (1,)))
            out[i, f0 : f0 + w, :] = fill[i]
        w = int(torch.randint(0, 21, (1,)))
        if w:
            t0 = int(torch.randint(0, t - w + 1, (1,)))
            out[i, :, t0 : t0 + w] = fill[i]
    return out


class Mfm(nn.Module):
    def forward(self, x):
        a, b = torch.chunk(x, 2, dim=1)
        return torch.max(a, b)


def conv(cin, cout, k):
    return nn.Sequential(nn.Conv2d(cin, 2 * cout, k, padding=k // 2), Mfm())


class Lcnn(nn.Module):
    """A narrow LCNN (max-feature-map CNN, as in the ASVspoof LFCC-LCNN baseline)."""

    def __init__(self, width=16):
        super().__init__()
        w = width
        self.front = Lfcc()
        self.body = nn.Sequential(
            conv(1, w, 5), nn.MaxPool2d(2),
            conv(w, w, 1), nn.BatchNorm2d(w), conv(w, w + w // 2, 3), nn.MaxPool2d(2),
            nn.BatchNorm2d(w + w // 2),
            conv(w + w // 2, w + w // 2, 1), nn.BatchNorm2d(w + w // 2), conv(w + w // 2, 2 * w, 3),
            nn.MaxPool2d(2),
            conv(2 * w, 2 * w, 1), nn.BatchNorm2d(2 * w), conv(2 * w, w, 3), nn.BatchNorm2d(w),
            conv(w, w, 1), nn.BatchNorm2d(w), conv(w, w, 3), nn.MaxPool2d(2),
        )
        feat = w * (3 * N_CEPS // 16)
        self.head = nn.Sequential(
            nn.Dropout(0.5), nn.Linear(2 * feat, 64), Mfm(), nn.BatchNorm1d(32), nn.Linear(32, 1)
        )

    def forward(self, waveform):
        x = self.body(self.front(waveform))  # [B, C, F, T]
        x = x.flatten(1, 2)  # [B, C*F, T]
        pooled = torch.cat([x.mean(dim=2), x.amax(dim=2)], dim=1)
        return self.head(pooled)


def stable_unit(s):
    return int(hashlib.sha256(s.encode()).hexdigest()[:8], 16) / 2**32


def crop(rng, x):
    """A random 2 s window; shorter audio (or, 10% of the time, a 1.5-2 s
    piece) is zero-padded at the end, as the service pads a short file."""
    if len(x) > SEG:
        s = rng.randrange(0, len(x) - SEG + 1)
        x = x[s : s + SEG]
    if rng.random() < 0.1:
        n = rng.randrange(int(1.5 * SR), SEG)
        x = x[:n]
    if len(x) < SEG:
        x = np.concatenate([x, np.zeros(SEG - len(x), dtype=np.float32)])
    return x


def windows(x):
    """Deterministic evaluation windows: 2 s every 1 s (padded if short)."""
    if len(x) <= SEG:
        return [np.concatenate([x, np.zeros(SEG - len(x), dtype=np.float32)])]
    starts = list(range(0, len(x) - SEG + 1, SR))
    return [x[s : s + SEG] for s in starts]


def eer(scores, labels):
    order = np.argsort(-scores)
    labels = labels[order]
    pos = labels.sum()
    neg = len(labels) - pos
    tpr = np.cumsum(labels) / max(pos, 1)
    fpr = np.cumsum(1 - labels) / max(neg, 1)
    i = np.argmin(np.abs((1 - tpr) - fpr))
    return float((1 - tpr[i] + fpr[i]) / 2)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=".candor/data/audio")
    ap.add_argument("--out", default="models/audio/lcnn-lfcc.onnx")
    ap.add_argument("--epochs", type=int, default=14)
    ap.add_argument("--crops-per-clip", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--seed", type=int, default=20261125)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0, help="use only N clips (smoke test)")
    ap.add_argument("--specaug", action="store_true", help="filterbank band/time masking while training")
    ap.add_argument("--noise-prob", type=float, default=0.0, help="share of training crops given white noise at 15-40 dB SNR")
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    rng = random.Random(args.seed)
    t0 = time.time()

    rows = [json.loads(l) for l in open(os.path.join(args.data, "manifest.jsonl"))]
    rows = [r for r in rows if r["split"] == "train"]
    rows.sort(key=lambda r: r["path"])
    if args.limit:
        rng.shuffle(rows)
        rows = sorted(rows[: args.limit], key=lambda r: r["path"])
    val_rows = [r for r in rows if stable_unit("val:" + r["speaker"]) < 0.1]
    fit_rows = [r for r in rows if stable_unit("val:" + r["speaker"]) >= 0.1]
    print(f"train clips {len(fit_rows)}, validation clips {len(val_rows)}", flush=True)

    def load(rs):
        return [(read_wav(os.path.join(args.data, r["path"])), 1.0 if r["label"] == "manipulated" else 0.0) for r in rs]

    fit = load(fit_rows)
    val = load(val_rows)
    n_pos = sum(y for _, y in fit)
    pos_weight = (len(fit) - n_pos) / max(n_pos, 1)
    print(f"loaded in {time.time() - t0:.0f} s; positives {int(n_pos)}/{len(fit)}; pos_weight {pos_weight:.2f}", flush=True)

    model = Lcnn(args.width)
    model.front.specaug = args.specaug
    # Feature normalisation statistics from a sample of training crops.
    with torch.no_grad():
        sample = torch.tensor(np.stack([crop(rng, x) for x, _ in rng.sample(fit, min(256, len(fit)))]))
        model.front.eval()
        raw = model.front.raw(sample)
        model.front.train()
        model.front.mean.copy_(raw.mean(dim=(0, 3), keepdim=True))
        model.front.std.copy_(raw.std(dim=(0, 3), keepdim=True) + 1e-3)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"parameters {n_params}", flush=True)

    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-3)
    steps_per_epoch = math.ceil(len(fit) * args.crops_per_clip / args.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.epochs * steps_per_epoch)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pos_weight))

    val_windows = []
    val_labels = []
    val_owner = []
    for i, (x, y) in enumerate(val):
        for w in windows(x):
            val_windows.append(w)
            val_labels.append(y)
            val_owner.append(i)
    val_windows = torch.tensor(np.stack(val_windows)) if val_windows else None
    val_labels = np.array(val_labels)

    best = (9.0, None, -1)
    history = []
    for epoch in range(args.epochs):
        model.train()
        items = [(x, y) for x, y in fit for _ in range(args.crops_per_clip)]
        rng.shuffle(items)
        total = 0.0
        te = time.time()
        for s in range(0, len(items), args.batch):
            chunk = items[s : s + args.batch]
            if len(chunk) < 2:
                continue
            crops = [crop(rng, x) for x, _ in chunk]
            if args.noise_prob > 0:
                for c in crops:
                    if rng.random() < args.noise_prob:
                        p = float(np.mean(c * c)) + 1e-10
                        snr = rng.uniform(15.0, 40.0)
                        g = np.random.default_rng(rng.randrange(2**32))
                        c += g.standard_normal(len(c)).astype(np.float32) * np.float32(np.sqrt(p / 10 ** (snr / 10)))
            xb = torch.tensor(np.stack(crops))
            yb = torch.tensor([[y] for _, y in chunk], dtype=torch.float32)
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(chunk)
        model.eval()
        with torch.no_grad():
            scores = torch.cat([model(val_windows[i : i + 128]) for i in range(0, len(val_windows), 128)]).squeeze(1).numpy()
        v = eer(scores, val_labels)
        history.append({"epoch": epoch + 1, "loss": total / len(items), "val_segment_eer": v, "seconds": time.time() - te})
        print(f"epoch {epoch + 1}: loss {total / len(items):.4f}  val segment EER {v:.4f}  ({time.time() - te:.0f} s)", flush=True)
        if v <= best[0]:
            best = (v, {k: t.clone() for k, t in model.state_dict().items()}, epoch + 1)

    model.load_state_dict(best[1])
    model.eval()
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    dummy = torch.zeros(2, SEG)
    torch.onnx.export(
        model, dummy, args.out, input_names=["waveform"], output_names=["logit"],
        dynamic_axes={"waveform": {0: "batch"}, "logit": {0: "batch"}}, opset_version=17,
        do_constant_folding=True,
    )
    # Parity fixture: the exported graph on fixed inputs, for the Rust test.
    t = torch.arange(SEG, dtype=torch.float32) / SR
    probe = torch.stack([
        0.3 * torch.sin(2 * math.pi * 220 * t),
        0.2 * torch.sin(2 * math.pi * 150 * t) + 0.1 * torch.sin(2 * math.pi * 1200 * t) + 0.05 * torch.sin(2 * math.pi * 3100 * t),
        0.5 * torch.sign(torch.sin(2 * math.pi * 110 * t)) * torch.exp(-((t % 0.25) * 20)),
    ])
    with torch.no_grad():
        probe_out = model(probe).squeeze(1).tolist()
    info = {
        "format": "candor.audio-lcnn-train/1",
        "onnx": args.out,
        "onnx_sha256": hashlib.sha256(open(args.out, "rb").read()).hexdigest(),
        "parameters": n_params,
        "best_epoch": best[2],
        "val_segment_eer": best[0],
        "history": history,
        "args": vars(args),
        "train_clips": len(fit),
        "validation_clips": len(val),
        "torch": torch.__version__,
        "wall_seconds": round(time.time() - t0, 1),
        "probe": {"rows": ["0.3 sin(2pi 220 t)", "0.2 sin(2pi 150 t) + 0.1 sin(2pi 1200 t) + 0.05 sin(2pi 3100 t)", "0.5 sign(sin(2pi 110 t)) exp(-20 (t mod 0.25))"], "logits": probe_out},
    }
    with open(os.path.splitext(args.out)[0] + ".train.json", "w") as f:
        json.dump(info, f, indent=1)
    print(json.dumps({k: info[k] for k in ("onnx_sha256", "parameters", "best_epoch", "val_segment_eer", "wall_seconds")}))


if __name__ == "__main__":
    sys.exit(main())
