# Sourced by the load scripts in benches/load: setup, release build, and
# `start_candor LOG [VAR=value...]`, which starts `candor serve` on a free
# loopback port with those environment variables, stops it on exit, and waits
# until /ready answers. Sets REPO, target_dir, port and server (the pid).
# CANDOR_LOAD_SKIP_SETUP=1 uses CANDOR_HOME as it is (a shared install this
# checkout must not write to).

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"
export CANDOR_HOME="${CANDOR_HOME:-$REPO/.candor}"
target_dir="${CARGO_TARGET_DIR:-$REPO/target}"

if [ "${CANDOR_LOAD_SKIP_SETUP:-0}" != 1 ]; then
    bash scripts/setup.sh --quiet
fi
cargo build --release -p candor

start_candor() {
    local log="$1"
    shift
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    env "$@" "$target_dir/release/candor" serve --host 127.0.0.1 --port "$port" >"$log" 2>&1 &
    server=$!
    # Every server started by this shell stops on exit.
    started_servers="${started_servers:-} $server"
    trap 'for s in $started_servers; do kill "$s" 2>/dev/null || true; wait "$s" 2>/dev/null || true; done' EXIT
    for _ in $(seq 1 150); do
        if curl -fsS "http://127.0.0.1:$port/ready" >/dev/null 2>&1; then break; fi
        sleep 0.2
    done
    curl -fsS "http://127.0.0.1:$port/ready" >/dev/null
}
