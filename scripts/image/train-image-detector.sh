#!/usr/bin/env bash
# Rebuilds the image detector's face heads and calibration from scratch:
#   models/image/face-head.json, models/image/calibration.json
# and the per-item scores of the generated evaluation (.candor/data/image/v5/heads/).
#
# 1. scripts/image/collect_faces.py   labelled faces from public repository snapshots
#                                     (fetched beforehand; the script lists them and names
#                                     repo@commit of every file), ~10 min
# 2. scripts/image/make_face_sets.py  the same random channel for both classes (aspect,
#                                     size, JPEG bytes per pixel), splits
# 3. candor image-embed               YuNet faces, alignment, CLIP tower (the service's code)
# 4. scripts/image/train_face_head.py heads, leave-one-family-out folds, format baseline
# 5. candor calibrate                 Platt calibration at 1% FPR on the calib split
#
# The forgery CNN (evidence only) is trained separately: scripts/image/build-image.sh and
# scripts/image/train_forgery_cnn.py.
# Environment: MIRROR (folder of the fetched snapshots, default /work/.mirror),
# CANDOR_BIN (default: cargo build --release), VERSION (artefact version, default 5).
set -euo pipefail
cd "$(dirname "$0")/../.."
MIRROR=${MIRROR:-/work/.mirror}
VERSION=${VERSION:-5}
DATA=.candor/data/image
VENV=.candor/venv-image
if [[ ! -x $VENV/bin/python ]]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q -r scripts/image/requirements.txt
fi

if [[ ! -f $DATA/faces/manifest.jsonl ]]; then
  nice "$VENV/bin/python" scripts/image/collect_faces.py --mirror-root "$MIRROR"
fi
if [[ ! -f $DATA/v5/manifest.jsonl ]]; then
  nice "$VENV/bin/python" scripts/image/make_face_sets.py
fi

if [[ -n "${CANDOR_BIN:-}" ]]; then
  CANDOR=$CANDOR_BIN
else
  cargo build --release -q -p candor
  CANDOR=target/release/candor
fi
mkdir -p "$DATA/v5/embed"
if [[ ! -f $DATA/v5/embed/emb.f32 ]]; then
  "$CANDOR" image-embed --set "$DATA/v5/manifest.jsonl" --out "$DATA/v5/embed/emb" \
    --zooms 0.8 --whole false --concurrency 2
fi
# Version 5 (the version 4 head on the v5 set: professional portraits and posed
# expressions added): one hidden layer (256 units) on the projected embedding and
# the class and mean patch tokens after blocks 3, 6, 9 and 11; evidence heads ridge.
"$VENV/bin/python" scripts/image/train_face_head.py --views 1 --zoom 0.8 --embeds 1 \
  --cls 3,6,9,11 --mean 3,6,9,11 --method mlp --units 256 --epochs 40 --l2 0.001 \
  --evidence-l2 30000 --version "$VERSION"
"$CANDOR" calibrate --scores "$DATA/v5/heads/scores-calib.jsonl" --format jsonl \
  --external-id image-face-head --detector image --id calibration/image \
  --artefact-version "$VERSION" --out models/image/calibration.json
cp "$DATA/v5/heads/face-head.json" models/image/face-head.json
echo "wrote models/image/face-head.json and models/image/calibration.json"
