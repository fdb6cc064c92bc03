#!/usr/bin/env bash
# Served-path latency benchmark: builds release, starts `candor serve` on 127.0.0.1 (a free
# port), runs benches/load/served_latency.py against it (one request at a time per
# workload: 1024 px headshot, 30 s of speech, 700-token resume), writes
# docs/benchmarks-served.md, stops the server. Needs ffmpeg (for the headshot).
#
# Usage: benches/load/run-served.sh [served_latency.py flags...]   e.g. --requests 30
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

start_candor "$target_dir/served-server.log"

python3 benches/load/served_latency.py --url "http://127.0.0.1:$port" "$@" >docs/benchmarks-served.md
cat docs/benchmarks-served.md
