#!/usr/bin/env bash
# Rebuilds the text detector's head and calibration from scratch (version 4):
#   models/text/hidden-head.json, models/text/calibration.json
# and the per-item scores of the generated evaluation (.candor/data/text/v4/heads/).
#
# Steps (each deterministic; outputs under .candor/data/text/, git-ignored):
#   1. human and machine texts from public repository    scripts/text/collect_public_text.py
#      snapshots (fetched beforehand; every row names
#      repo@commit, path, licence, generator, family)
#   2. normalised, truncated, capped, split sets          scripts/text/make_detector_sets.py
#   3. the language model's statistics and mean hidden   candor text-features --hidden-out
#      states (the service's own code; taps of the
#      manifest's smollm2 model)
#   4. head on train, leave-one-family-out and           scripts/text/train_text_head.py
#      leave-one-domain-out refits, minimum length
#   5. Platt calibration at 1% FPR on calib               candor calibrate
#
# Environment: CANDOR_BIN (default: build target/release/candor), MIRROR (folder of the
# fetched snapshots, default /work/.mirror), VERSION (artefact version, default 4).
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=.candor/data/text
MIRROR=${MIRROR:-/work/.mirror}
VERSION=${VERSION:-4}
if [[ -n "${CANDOR_BIN:-}" ]]; then
  CANDOR=("$CANDOR_BIN")
else
  cargo build --release -q -p candor
  CANDOR=(target/release/candor)
fi
bash scripts/setup.sh --quiet
[[ -s $DATA/public/records.jsonl ]] || python3 scripts/text/collect_public_text.py --mirror-root "$MIRROR"
[[ -s $DATA/v4/manifest.jsonl ]] || python3 scripts/text/make_detector_sets.py
mkdir -p "$DATA/v4/feat"
# The rows the features are taken on: every calib, test and fairness row, and a
# hashed 30% of train (the language model costs ~1 s per text on 2 cores).
if [[ ! -s $DATA/v4/meta-feat.jsonl ]]; then
  python3 - "$DATA/v4" <<'PY'
import hashlib, json, sys
root = sys.argv[1]
keep = {"train": 0.3, "calib": 0.7, "test": 1.0}
u = lambda s: int.from_bytes(hashlib.sha256(s.encode()).digest()[:8], "big") / 2**64
with open(f"{root}/meta.jsonl") as mi, open(f"{root}/manifest.jsonl") as fi, \
        open(f"{root}/meta-feat.jsonl", "w") as mo, open(f"{root}/manifest-feat.jsonl", "w") as fo:
    for m, f in zip(mi, fi):
        row = json.loads(m)
        if u("feat:" + row["id"]) < (1.0 if row["role"] != "fit" else keep[row["split"]]):
            mo.write(m)
            fo.write(f)
PY
fi
if [[ ! -s $DATA/v4/feat/hidden.f32 ]]; then
  # All five candidate taps, for the choice of train_text_head.py --explore.
  taps_manifest=$(mktemp)
  sed 's/^hidden_taps = .*/hidden_taps = [6, 12, 18, 24, 30]/' models/manifest.toml >"$taps_manifest"
  CANDOR_MANIFEST=$taps_manifest "${CANDOR[@]}" text-features --set "$DATA/v4/manifest-feat.jsonl" \
    --out "$DATA/v4/feat/features.jsonl" --hidden-out "$DATA/v4/feat/hidden.f32"
  rm -f "$taps_manifest"
fi
VENV=.candor/venv-image
[[ -x $VENV/bin/python ]] || { python3 -m venv "$VENV"; "$VENV/bin/pip" install -q -r scripts/image/requirements.txt; }
"$VENV/bin/python" scripts/text/train_text_head.py --meta "$DATA/v4/meta-feat.jsonl" \
  --taps 18 --l2 100 --version "$VERSION" "$@"
"${CANDOR[@]}" calibrate --scores "$DATA/v4/heads/scores-calib.jsonl" --format jsonl \
  --external-id text-hidden-head --detector text --id calibration/text \
  --artefact-version "$VERSION" --out models/text/calibration.json
cp "$DATA/v4/heads/hidden-head.json" models/text/hidden-head.json
echo "wrote models/text/hidden-head.json and models/text/calibration.json"
