#!/usr/bin/env bash
# Builds the image detector's training/calibration/test data and the committed
# image samples, deterministically:
#
# 1. apt-get download of two pinned Debian packages into .candor/cache/image, checked
#    against the sha256 below (opencv-doc: example and tutorial photographs;
#    python3-skimage: skimage/data photographs). No root needed.
# 2. A venv .candor/venv-image with scripts/image/requirements.txt (numpy, Pillow).
# 3. scripts/image/build_image_data.py -> .candor/data/image/train/ (2,896 images and
#    2,172 masks, ~200 MB).
# 4. scripts/image/make_image_samples.py -> samples/image/, samples/eval/image.jsonl.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
CACHE=.candor/cache/image
VENV=.candor/venv-image
REQ=scripts/image/requirements.txt
mkdir -p "$CACHE"

fetch() { # package version sha256
  local f="$CACHE/${1}_${2//:/%3a}_all.deb"
  if [[ ! -f $f ]] || ! echo "$3  $f" | sha256sum -c --status; then
    echo "[build-image] apt-get download $1=$2"
    (cd "$CACHE" && apt-get download -q "$1=$2")
  fi
  echo "$3  $f" | sha256sum -c --status || { echo "[build-image] $f: sha256 mismatch" >&2; exit 1; }
}
fetch opencv-doc 4.6.0+dfsg-12 4b12681df35878207ac7097dc66184b2ae552e4bf4ddd2af04a0f03ed0b8682a
fetch python3-skimage 0.19.3-8 728d88c3e3440f1f3712de0805dc834d29248ff07e1eec8c0f3da07606f752f9

if [[ ! -x $VENV/bin/python ]]; then
  echo "[build-image] creating $VENV"
  python3 -m venv "$VENV"
fi
stamp="$VENV/.requirements.sha256"
if [[ ! -f $stamp ]] || ! sha256sum -c --status "$stamp" 2>/dev/null; then
  echo "[build-image] pip install -r $REQ"
  nice "$VENV/bin/pip" install -q -r "$REQ"
  sha256sum "$REQ" > "$stamp"
fi
echo "[build-image] build_image_data.py"
rm -rf .candor/data/image/train
nice "$VENV/bin/python" -W ignore scripts/image/build_image_data.py --debs "$CACHE" --out .candor/data/image/train
echo "[build-image] make_image_samples.py"
nice "$VENV/bin/python" scripts/image/make_image_samples.py --debs "$CACHE"
