#!/usr/bin/env bash
# Live-audio stream benchmark: builds release, starts `candor serve` on 127.0.0.1
# (a free port), streams a sample at real time with benches/load/stream_load.py
# (1 stream, then N concurrent), writes docs/benchmarks-stream.md, stops the server.
#
# Usage: benches/load/run-stream.sh [stream_load.py flags...]   e.g. --concurrency 8
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"
export CANDOR_HOME="${CANDOR_HOME:-$REPO/.candor}"

bash scripts/setup.sh --quiet
cargo build --release -p candor
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
target_dir="${CARGO_TARGET_DIR:-$REPO/target}"
"$target_dir/release/candor" serve --host 127.0.0.1 --port "$port" \
    >"$target_dir/stream-server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT

for _ in $(seq 1 150); do
    if curl -fsS "http://127.0.0.1:$port/ready" >/dev/null 2>&1; then break; fi
    sleep 0.2
done
curl -fsS "http://127.0.0.1:$port/ready" >/dev/null

python3 benches/load/stream_load.py --url "http://127.0.0.1:$port" \
    --file samples/audio/authentic-07.wav "$@" >docs/benchmarks-stream.md
cat docs/benchmarks-stream.md
