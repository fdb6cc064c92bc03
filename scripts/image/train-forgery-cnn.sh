#!/usr/bin/env bash
# Rebuilds the forgery CNN (evidence for the reviewer: the edit map in the heatmap and
# the forensics.forgery_cnn signals; not part of the image score):
#   models/image/forgery-cnn.onnx (+ forgery-cnn.train.json)
#
# 1. scripts/image/build-image.sh          edited photographs + masks, samples
# 2. scripts/image/train_forgery_cnn.py    the CNN (Debian python3-torch, ~11 min on 2 cores)
#
# After retraining, update the sha256 of `candor-image-forgery-cnn` in
# models/manifest.toml (printed at the end).
set -euo pipefail
cd "$(dirname "$0")/../.."

scripts/image/build-image.sh
if ! /usr/bin/python3 -c 'import torch, PIL' 2>/dev/null; then
  apt-get install -y -q python3-torch python3-pil
fi
nice /usr/bin/python3 scripts/image/train_forgery_cnn.py --steps 4000 --eval-every 250
echo "sha256 of models/image/forgery-cnn.onnx: $(sha256sum models/image/forgery-cnn.onnx | cut -d' ' -f1)"
