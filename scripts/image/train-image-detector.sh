#!/usr/bin/env bash
# Rebuilds the image detector's committed model files from scratch:
#   models/image/forgery-cnn.onnx (+ forgery-cnn.train.json)
#   models/image/fusion-head.json, models/image/calibration.json
#
# 1. scripts/image/build-image.sh          data + samples
# 2. scripts/image/train_forgery_cnn.py    the forgery CNN (Debian python3-torch, ~11 min on 2 cores)
# 3. candor image-features                 the service's own measures on every split
# 4. candor image-train                    head (train split) + calibration (calib split)
#
# After retraining, update the sha256 of `candor-image-forgery-cnn` in
# models/manifest.toml (printed at the end) and bump --artefact-version.
# Environment: CANDOR_BIN (default: cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/../.."

scripts/image/build-image.sh
if ! /usr/bin/python3 -c 'import torch, PIL' 2>/dev/null; then
  apt-get install -y -q python3-torch python3-pil
fi
nice /usr/bin/python3 scripts/image/train_forgery_cnn.py --steps 4000 --eval-every 250

if [[ -n "${CANDOR_BIN:-}" ]]; then
  CANDOR=$CANDOR_BIN
else
  cargo build --release -q -p candor
  CANDOR=target/release/candor
fi
sha=$(sha256sum models/image/forgery-cnn.onnx | cut -d' ' -f1)
if ! grep -q "$sha" models/manifest.toml; then
  echo "models/manifest.toml: set sha256 of candor-image-forgery-cnn to $sha, then rerun from step 3:" >&2
  echo "  $CANDOR image-features --set .candor/data/image/train/manifest.jsonl --out .candor/data/image/features.jsonl" >&2
  exit 1
fi
"$CANDOR" image-features --set .candor/data/image/train/manifest.jsonl \
  --out .candor/data/image/features.jsonl
"$CANDOR" image-train --features .candor/data/image/features.jsonl
