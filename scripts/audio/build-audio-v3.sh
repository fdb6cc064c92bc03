#!/usr/bin/env bash
# Audio data factory v3: one command, idempotent, low priority.
#
#   scripts/audio/build-audio-v3.sh [--librispeech DIR] [other build_audio_v3.py flags]
#
# 1. apt-get installs the generators and codecs (Debian bookworm; needs root; skipped when all are
#    present): espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts sox
#    libsox-fmt-all (AMR-NB, GSM) rubberband-cli ffmpeg opus-tools.
# 2. Creates the venv .candor/venv-audio (shared with build-audio.sh) and pip-installs
#    scripts/audio/requirements.txt without hibari-tts (a Kokoro-82M distillation, reserved).
# 3. scripts/audio/build_audio_v3.py at nice 15, one process: ~8,000 clips under
#    .candor/data/audio/v3 (~0.85 GB) from LibriSpeech in ../shared, the public speech collected by
#    collect_public_speech.py under .candor/data/audio/public, and Debian
#    asterisk-core-sounds-en-wav. Existing clips are kept, so a rerun resumes a stopped build and
#    otherwise only rewrites the manifests and re-checks; --force re-renders.
#
# Everything runs at `nice -n 15` (the script also raises its own niceness): it only takes idle
# CPU. Try it first on a random subset: --limit 200 --out /tmp/a3.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.candor/venv-audio"
REQ="$ROOT/scripts/audio/requirements.txt"
NICE="nice -n 15"

need=0
for b in espeak-ng flite text2wave sox rubberband ffmpeg opusenc opusdec; do
  command -v "$b" >/dev/null || need=1
done
[ -f /usr/share/festival/voices/english/kal_diphone/festvox/kal_diphone.scm ] || need=1
[ -d /usr/share/festival/voices/english/ked_diphone ] || need=1
[ -d /usr/share/festival/voices/us/cmu_us_slt_arctic_hts ] || need=1
dpkg-query -W -f '${Status}' libsox-fmt-all 2>/dev/null | grep -q "ok installed" || need=1
if [ "$need" = 1 ]; then
  echo "[build-audio-v3] apt-get install (generators, codecs)"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO $NICE apt-get install -y -q -o DPkg::Lock::Timeout=900 \
    espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts sox \
    libsox-fmt-all rubberband-cli ffmpeg opus-tools
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "[build-audio-v3] creating $VENV"
  python3 -m venv "$VENV"
fi
REQ3="$VENV/requirements-v3.txt"
grep -v '^hibari-tts' "$REQ" > "$REQ3.new"
stamp="$VENV/.requirements-v3.sha256"
if [ ! -f "$stamp" ] || ! cmp -s "$REQ3.new" "$REQ3" || ! sha256sum -c --status "$stamp" 2>/dev/null; then
  echo "[build-audio-v3] pip install -r $REQ (without hibari-tts)"
  mv "$REQ3.new" "$REQ3"
  $NICE "$VENV/bin/pip" install -q -r "$REQ3"
  sha256sum "$REQ3" > "$stamp"
else
  rm -f "$REQ3.new"
fi

echo "[build-audio-v3] build_audio_v3.py"
exec $NICE "$VENV/bin/python" scripts/audio/build_audio_v3.py "$@"
