#!/usr/bin/env bash
# Rebuilds the text detector's head and calibration from scratch (version 4):
#   models/text/hidden-head.json, models/text/calibration.json
# and the per-item scores of the generated evaluation (.candor/data/text/v4/heads/).
#
# Steps (each deterministic; outputs under .candor/data/text/, git-ignored):
#   1. human and machine texts from public repository    scripts/text/collect_public_text.py
#      snapshots (fetched beforehand; every row names     scripts/text/collect_extra_text.py
#      repo@commit, path, licence, generator, family)     (bios, learner / native essays)
#   2. normalised, truncated, capped, split sets          scripts/text/make_detector_sets.py
#   3. the language model's statistics and mean hidden   candor text-features --hidden-out
#      states (the service's own code; taps of the
#      manifest's smollm2 model)
#   4. head on train, leave-one-family-out and           scripts/text/train_text_head.py
#      leave-one-domain-out refits, minimum length
#   5. Platt calibration; `likely_manipulated` where no   candor calibrate --target-fpr 0.003
#      calib human text is (0 of ~320: the 95% upper
#      bound of the FPR is below 1%)
#
# Environment: CANDOR_BIN (default: build target/release/candor), MIRROR (folder of the
# fetched snapshots, default /work/.mirror), VERSION (artefact version, default 5).
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=.candor/data/text
MIRROR=${MIRROR:-/work/.mirror}
VERSION=${VERSION:-5}
if [[ -n "${CANDOR_BIN:-}" ]]; then
  CANDOR=("$CANDOR_BIN")
else
  cargo build --release -q -p candor
  CANDOR=(target/release/candor)
fi
bash scripts/setup.sh --quiet
[[ -s $DATA/public/records.jsonl ]] || python3 scripts/text/collect_public_text.py --mirror-root "$MIRROR"
[[ -s $DATA/extra/records.jsonl ]] || python3 scripts/text/collect_extra_text.py --mirror-root "$MIRROR"
python3 scripts/text/make_detector_sets.py   # deterministic; existing rows keep their split
mkdir -p "$DATA/v4/feat"
# The rows the features are taken on: every train and test row and every fairness row,
# a hashed 70% of calib (the language model costs ~0.5 s per text on 2 cores).
# Rebuilt on every run; features already taken on a row are kept (merge_features.py),
# so adding a source scores only its rows.
python3 - "$DATA/v4" <<'PY'
import hashlib, json, sys
root = sys.argv[1]
keep = {"train": 1.0, "calib": 0.7, "test": 1.0}
u = lambda s: int.from_bytes(hashlib.sha256(s.encode()).digest()[:8], "big") / 2**64
with open(f"{root}/meta.jsonl") as mi, open(f"{root}/manifest.jsonl") as fi, \
        open(f"{root}/meta-feat.jsonl", "w") as mo, open(f"{root}/manifest-feat.jsonl", "w") as fo:
    for m, f in zip(mi, fi):
        row = json.loads(m)
        share = 1.0 if row["role"] != "fit" else keep[row["split"]]
        if u("feat:" + row["id"]) < share:
            mo.write(m)
            fo.write(f)
PY
TAPS="6, 12, 18, 24, 30"   # all five candidate taps, for train_text_head.py --explore
WIDTH=$((5 * 576))
todo=$(mktemp)
n=$(python3 scripts/text/merge_features.py missing "$DATA/v4/meta-feat.jsonl" "$DATA/v4/feat" "$todo")
if [[ $n -gt 0 ]]; then
  echo "text features for $n rows" >&2
  taps_manifest=$(mktemp)
  sed "s/^hidden_taps = .*/hidden_taps = [$TAPS]/" models/manifest.toml >"$taps_manifest"
  cp "$todo" "$DATA/v4/manifest-todo.jsonl"
  rm -rf "$DATA/v4/feat-new" && mkdir -p "$DATA/v4/feat-new" "$DATA/v4/feat"
  CANDOR_MANIFEST=$taps_manifest "${CANDOR[@]}" text-features --set "$DATA/v4/manifest-todo.jsonl" \
    --out "$DATA/v4/feat-new/features.jsonl" --hidden-out "$DATA/v4/feat-new/hidden.f32"
  if [[ -s $DATA/v4/feat/features.jsonl ]]; then
    python3 scripts/text/merge_features.py merge "$DATA/v4/meta-feat.jsonl" "$DATA/v4/feat" \
      "$DATA/v4/feat-new" "$DATA/v4/feat-merged" "$WIDTH"
    rm -rf "$DATA/v4/feat" && mv "$DATA/v4/feat-merged" "$DATA/v4/feat"
  else
    rm -rf "$DATA/v4/feat" && mv "$DATA/v4/feat-new" "$DATA/v4/feat"
  fi
  rm -f "$taps_manifest" "$DATA/v4/manifest-todo.jsonl"
fi
rm -f "$todo"
VENV=.candor/venv-image
[[ -x $VENV/bin/python ]] || { python3 -m venv "$VENV"; "$VENV/bin/pip" install -q -r scripts/image/requirements.txt; }
"$VENV/bin/python" scripts/text/train_text_head.py --meta "$DATA/v4/meta-feat.jsonl" \
  --taps 12,18 --l2 1000 --version "$VERSION" "$@"
"${CANDOR[@]}" calibrate --scores "$DATA/v4/heads/scores-calib.jsonl" --format jsonl \
  --external-id text-hidden-head --detector text --id calibration/text \
  --artefact-version "$VERSION" --target-fpr 0.003 --out models/text/calibration.json
cp "$DATA/v4/heads/hidden-head.json" models/text/hidden-head.json
echo "wrote models/text/hidden-head.json and models/text/calibration.json"
