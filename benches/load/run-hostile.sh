#!/usr/bin/env bash
# Hostile-load battery (issue #16): builds release, starts `candor serve` on
# 127.0.0.1 (a free port) with its default limits, runs
# benches/load/hostile_load.py against it, writes docs/reliability.md, stops the
# server. Every loop in the load script is bounded in count and time, and only
# loopback addresses are accepted. Run by hand (it takes a few minutes and
# moves a few GiB through loopback and the spill directory); CI does not.
#
# Usage: benches/load/run-hostile.sh [hostile_load.py flags...]   e.g. --seconds 5
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

spill="$target_dir/hostile-spill"
log="$target_dir/hostile-server.log"
mkdir -p "$spill"
# Default limits, except a short shutdown grace for the last check.
grace=3
start_candor "$log" CANDOR_SPILL_DIR="$spill" CANDOR_SHUTDOWN_GRACE_SECS=$grace

out="$target_dir/reliability.md"
python3 benches/load/hostile_load.py --url "http://127.0.0.1:$port" --pid "$server" \
    --file samples/media/speech_opus.webm "$@" >"$out"

# Shutdown with a request in flight (its body never completes): the server must
# stop after the grace and log the request it drops.
python3 - "$port" <<'PY' &
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"POST /v1/analyze HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
          b"Content-Length: 100\r\n\r\npartial")
time.sleep(20)
PY
holder=$!
sleep 1
t0=$(date +%s.%N)
kill -TERM "$server"
wait "$server" || true
t1=$(date +%s.%N)
kill "$holder" 2>/dev/null || true
wait "$holder" 2>/dev/null || true
dropped="$(grep -c 'request dropped at shutdown' "$log" || true)"
left="$(find "$spill" -mindepth 1 | wc -l)"
{
    cat "$out"
    echo
    printf -- '- Shutdown (SIGTERM) with one request in flight whose body never completes: the server stopped after %.1f s (grace %s s) and logged %s "request dropped at shutdown" line(s).\n' \
        "$(python3 -c "print($t1 - $t0)")" "$grace" "$dropped"
    echo "- Spill directory after the run: $left entries (spilled inputs are unnamed files, gone when closed)."
} >docs/reliability.md
cat docs/reliability.md
