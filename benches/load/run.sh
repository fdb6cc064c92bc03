#!/usr/bin/env bash
# HTTP load benchmark: builds release, starts `candor serve` on 127.0.0.1 (a free
# port), runs benches/load/http_load.py against it, writes docs/benchmarks-http.md,
# stops the server. Every loop in the load script is bounded in count and time.
#
# Usage: benches/load/run.sh [http_load.py flags...]   e.g. --concurrency 8 --requests 200
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"
export CANDOR_HOME="${CANDOR_HOME:-$REPO/.candor}"

bash scripts/setup.sh --quiet
cargo build --release -p candor
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
target_dir="${CARGO_TARGET_DIR:-$REPO/target}"
# A queue deep enough for the flood: the load test measures scheduling, not shedding.
CANDOR_MAX_CONCURRENT_ANALYSES=64 "$target_dir/release/candor" serve --host 127.0.0.1 --port "$port" \
    >"$target_dir/load-server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT

for _ in $(seq 1 100); do
    if curl -fsS "http://127.0.0.1:$port/ready" >/dev/null 2>&1; then break; fi
    sleep 0.2
done
curl -fsS "http://127.0.0.1:$port/ready" >/dev/null

python3 benches/load/http_load.py --url "http://127.0.0.1:$port" \
    --file samples/media/speech_opus.webm "$@" >docs/benchmarks-http.md
cat docs/benchmarks-http.md
