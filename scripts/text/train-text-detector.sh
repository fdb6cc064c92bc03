#!/usr/bin/env bash
# Rebuilds the text detector's fusion head and calibration from scratch:
#   models/text/fusion-head.json, models/text/calibration.json
#
# Steps (each deterministic; outputs under .candor/data/text/, git-ignored):
#   1. human passages from pinned Debian packages      scripts/text/build_human_text.py
#   2. machine passages: SmolLM2-135M-Instruct answers  scripts/text/generate_llm_text.py
#      to scripts/text/prompts.jsonl (llama-cpp-python  (needs benches/text/setup-reference.sh)
#      in .candor/venv-ref, ~30 min on 2 cores)
#   3. labelled sets for `candor eval`                 scripts/text/make_manifests.py
#   4. the fitting subset (all machine rows, capped     scripts/text/make_fit_manifest.py
#      human rows per source and split)
#   5. features (language model + style)                candor text-features
#   6. head on train, calibration on calib              candor text-train
# Steps 1-3 are skipped when their outputs exist (delete them to redo).
#
# Environment: CANDOR_BIN (default: build target/release/candor).
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=.candor/data/text
if [[ -n "${CANDOR_BIN:-}" ]]; then
  CANDOR=("$CANDOR_BIN")
else
  cargo build --release -q -p candor
  CANDOR=(target/release/candor)
fi
bash scripts/setup.sh --quiet
[[ -s $DATA/human.jsonl ]] || python3 scripts/text/build_human_text.py --out "$DATA/human.jsonl"
if [[ ! -s $DATA/llm.jsonl ]]; then
  bash benches/text/setup-reference.sh
  .candor/venv-ref/bin/python scripts/text/generate_llm_text.py --out "$DATA/llm.jsonl"
fi
[[ -s $DATA/own/manifest.jsonl ]] || python3 scripts/text/make_manifests.py
python3 scripts/text/make_fit_manifest.py "$DATA/own"
"${CANDOR[@]}" text-features --set "$DATA/own/manifest-fit.jsonl" --out "$DATA/own/features-fit.jsonl"
"${CANDOR[@]}" text-train --features "$DATA/own/features-fit.jsonl" \
  --head-out models/text/fusion-head.json --calibration-out models/text/calibration.json "$@"
