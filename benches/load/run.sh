#!/usr/bin/env bash
# HTTP load benchmark: builds release, starts `candor serve` on 127.0.0.1 (a free
# port), runs benches/load/http_load.py against it, writes docs/benchmarks-http.md,
# stops the server. Every loop in the load script is bounded in count and time.
#
# Usage: benches/load/run.sh [http_load.py flags...]   e.g. --concurrency 8 --requests 200
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# A queue deep enough for the flood: the load test measures scheduling, not shedding.
start_candor "$target_dir/load-server.log" CANDOR_MAX_CONCURRENT_ANALYSES=64

python3 benches/load/http_load.py --url "http://127.0.0.1:$port" \
    --file samples/media/speech_opus.webm "$@" >docs/benchmarks-http.md
cat docs/benchmarks-http.md
