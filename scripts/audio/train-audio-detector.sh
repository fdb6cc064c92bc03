#!/usr/bin/env bash
# Rebuilds the audio detector's head and calibrations (version 4):
#   models/audio/head.json, calibration.json (file), calibration-segment.json
# and the per-item scores of the generated evaluation (.candor/data/audio/v3/heads/).
#
# 1. scripts/audio/build-audio-v3.sh     the data: real speech (LibriSpeech in ../shared, public
#                                        repository snapshots, Debian prompts) and voice changers
#                                        and TTS, every clip through one random channel
#                                        (~8,000 clips, ~0.85 GB, under .candor/data/audio/v3)
# 2. candor audio-features               the service's own code: VAD, 2 s segments, the Whisper
#                                        encoder's statistics (.enc.f32) and the named features
#                                        (~10 min on 2 cores)
# 3. scripts/audio/train_audio_head.py   head on train, leave-one-tool-out refits
# 4. candor calibrate (twice)            Platt at 1% FPR on calib: segments, then files
#
# The LCNN (models/audio/lcnn-lfcc.onnx) is trained separately by scripts/audio/train_lcnn.py;
# the head reads its logit only when --named lists `lcnn.logit`.
# Environment: CANDOR_BIN (default: cargo build --release), VERSION (artefact version, default 4);
# further arguments go to train_audio_head.py.
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=.candor/data/audio/v3
VERSION=${VERSION:-4}
if [[ -n "${CANDOR_BIN:-}" ]]; then
  CANDOR=("$CANDOR_BIN")
else
  cargo build --release -q -p candor
  CANDOR=(target/release/candor)
fi
bash scripts/setup.sh --quiet
[[ -s $DATA/manifest.jsonl ]] || bash scripts/audio/build-audio-v3.sh
mkdir -p "$DATA/feat"
if [[ ! -s $DATA/feat/features.enc.f32 ]]; then
  "${CANDOR[@]}" audio-features --set "$DATA/manifest.jsonl" --out "$DATA/feat/features.jsonl"
fi
python3 -c 'import numpy' 2>/dev/null || { echo "needs numpy (e.g. .candor/venv-audio)" >&2; exit 1; }
python3 scripts/audio/train_audio_head.py --version "$VERSION" "$@"
"${CANDOR[@]}" calibrate --scores "$DATA/heads/scores-seg-calib.jsonl" --format jsonl \
  --external-id audio-head --detector audio-segment --id calibration/audio-segment \
  --artefact-version "$VERSION" --out models/audio/calibration-segment.json
"${CANDOR[@]}" calibrate --scores "$DATA/heads/scores-calib.jsonl" --format jsonl \
  --external-id audio-head --detector audio --id calibration/audio \
  --artefact-version "$VERSION" --out models/audio/calibration.json
cp "$DATA/heads/head.json" models/audio/head.json
echo "wrote models/audio/head.json, calibration.json, calibration-segment.json"
