#!/usr/bin/env bash
# Browser tests of the review pages (issue 19): Debian's chromium, driven by
# playwright-core (npm, pinned in tests/browser/package-lock.json), against a
# real `candor serve` (debug build, real models from $CANDOR_HOME) with API
# keys, a bulk queue and a bulk root; axe-core checks accessibility.
# Installs chromium (apt, as root) and the npm packages when missing.
# Screenshots go to $CANDOR_SHOTS (default: a temporary folder; pass
# docs/screenshots to refresh the README's).
#
# Usage: scripts/browser-test.sh
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
export CANDOR_HOME="${CANDOR_HOME:-$REPO/.candor}"

if ! command -v chromium >/dev/null; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        export DEBIAN_FRONTEND=noninteractive
        { apt-get -qq update && apt-get -qq install -y --no-install-recommends chromium; } </dev/null >/dev/null
    else
        echo "browser-test: chromium is not installed (apt-get install chromium)" >&2
        exit 1
    fi
fi
(cd tests/browser && if [ ! -d node_modules/playwright-core ] || [ ! -d node_modules/axe-core ]; then
    npm ci --no-audit --no-fund --silent
fi)

cargo build -q -p candor
BIN="$REPO/target/debug/candor"

WORK="$(mktemp -d /tmp/candor-browser.XXXXXX)"
PID=""
cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# A batch of four applicants, their files copied under the bulk root.
ROOT="$WORK/root"
mkdir -p "$ROOT"/{amy,ben,cat,dev}
cp samples/image/authentic-face-hopper.jpg "$ROOT/amy/photo.jpg"
cp samples/text/files/human-01.txt "$ROOT/amy/resume.txt"
cp samples/image/manipulated-astronaut-selfblend.jpg "$ROOT/ben/photo.jpg"
cp samples/audio/manipulated-01.webm "$ROOT/ben/interview.webm"
cp samples/audio/authentic-05.webm "$ROOT/cat/interview.webm"
cp samples/text/files/human-02.txt "$ROOT/cat/resume.txt"
cp samples/image/declared-ai-xmp.jpg "$ROOT/dev/photo.jpg"
printf 'applicant_id,files,group:team\namy,amy,north\nben,ben,south\ncat,cat,north\ndev,dev,south\n' >"$ROOT/hires.csv"

PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
KEY="browser-test-$RANDOM$RANDOM"
CANDOR_API_KEYS="$KEY" CANDOR_STATE_DIR="$WORK/state" CANDOR_BULK_ROOTS="$ROOT" \
    CANDOR_INTRA_THREADS=1 RUST_LOG=warn \
    "$BIN" serve --host 127.0.0.1 --port "$PORT" --queue "$WORK/state/bulk.db" \
    >"$WORK/server.log" 2>&1 &
PID=$!
for _ in $(seq 1 240); do
    curl -sf "http://127.0.0.1:$PORT/ready" >/dev/null && break
    kill -0 "$PID" 2>/dev/null || { cat "$WORK/server.log" >&2; exit 1; }
    sleep 0.5
done
curl -sf "http://127.0.0.1:$PORT/ready" >/dev/null || { echo "browser-test: server not ready" >&2; tail -20 "$WORK/server.log" >&2; exit 1; }

SHOTS="${CANDOR_SHOTS:-$WORK/shots}"
mkdir -p "$SHOTS"
CANDOR_URL="http://127.0.0.1:$PORT" CANDOR_TEST_KEY="$KEY" \
    CANDOR_CASE_FILES="$REPO/samples/image/manipulated-astronaut-selfblend.jpg:$REPO/samples/audio/manipulated-01.webm:$REPO/samples/text/files/human-03.txt" \
    CANDOR_MANIFEST="$ROOT/hires.csv" CANDOR_SHOTS="$SHOTS" \
    node tests/browser/review.mjs || { echo "--- server log" >&2; tail -30 "$WORK/server.log" >&2; exit 1; }
