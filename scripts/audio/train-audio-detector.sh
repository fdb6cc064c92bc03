#!/usr/bin/env bash
# Rebuilds the audio detector's committed model files from scratch:
#   models/audio/lcnn-lfcc.onnx (+ lcnn-lfcc.train.json)
#   models/audio/fusion-head.json, calibration.json, calibration-segment.json
#
# 1. scripts/audio/build-audio.sh        data (~8 min on 2 cores)
# 2. scripts/audio/train_lcnn.py         the LCNN (Debian python3-torch, ~30 min on 2 cores)
# 3. candor audio-features               the service's own features on train + calib (~3 min)
# 4. candor audio-train                  head + calibrations
#
# After retraining, update the sha256 of `candor-audio-lcnn` in models/manifest.toml
# (printed at the end) and bump --artefact-version.
# Environment: CANDOR_BIN (default: cargo build --release), LIBRISPEECH (folder of
# LibriSpeech train-clean-100 FLACs; default ../shared/train/audio/...).
set -euo pipefail
cd "$(dirname "$0")/../.."

args=()
[[ -n "${LIBRISPEECH:-}" ]] && args=(--librispeech "$LIBRISPEECH")
scripts/audio/build-audio.sh "${args[@]}"

if ! /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  apt-get install -y -q python3-torch
fi
/usr/bin/python3 scripts/audio/train_lcnn.py --width 24 --crops-per-clip 6 --epochs 24

if [[ -n "${CANDOR_BIN:-}" ]]; then
  CANDOR=$CANDOR_BIN
else
  cargo build --release -q -p candor
  CANDOR=target/release/candor
fi
sha=$(sha256sum models/audio/lcnn-lfcc.onnx | cut -d' ' -f1)
if ! grep -q "$sha" models/manifest.toml; then
  echo "models/manifest.toml: set sha256 of candor-audio-lcnn to $sha, then rerun from step 3:" >&2
  echo "  $CANDOR audio-features --set .candor/data/audio/manifest-fit.jsonl --out .candor/data/audio/features-fit.jsonl" >&2
  exit 1
fi
"$CANDOR" audio-features --set .candor/data/audio/manifest-fit.jsonl \
  --out .candor/data/audio/features-fit.jsonl
"$CANDOR" audio-train --features .candor/data/audio/features-fit.jsonl
