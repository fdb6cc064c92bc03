#!/usr/bin/env bash
# Live-audio stream benchmark: builds release, starts `candor serve` on 127.0.0.1
# (a free port), streams a sample at real time with benches/load/stream_load.py
# (1 stream, then N concurrent), writes docs/benchmarks-stream.md, stops the server.
#
# Usage: benches/load/run-stream.sh [stream_load.py flags...]   e.g. --concurrency 8
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

start_candor "$target_dir/stream-server.log"

python3 benches/load/stream_load.py --url "http://127.0.0.1:$port" \
    --file samples/audio/authentic-07.wav "$@" >docs/benchmarks-stream.md
cat docs/benchmarks-stream.md
