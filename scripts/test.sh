#!/usr/bin/env bash
# Everything CI checks, in order: setup, rustfmt, clippy (-D warnings), doc tests, tests.
# Runs on a clean clone with nothing installed by hand (setup.sh installs what it needs).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
export CANDOR_HOME="${CANDOR_HOME:-$REPO/.candor}"
if [ -d "$REPO/../shared" ]; then
    CANDOR_SHARED="$(cd "$REPO/../shared" && pwd)"
    export CANDOR_SHARED
fi
if [ "${CI:-}" = true ]; then
    # One-shot build in a fresh clone: incremental artefacts are pure overhead.
    export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
fi

START=$SECONDS
step() { printf '\n[%s +%ss] == %s\n' "$(date +%H:%M:%S)" "$((SECONDS - START))" "$*"; }
on_exit() {
    local rc=$?
    if [ "$rc" -ne 0 ]; then
        printf '\n[%s +%ss] == FAILED (exit %s) during: %s\n' \
            "$(date +%H:%M:%S)" "$((SECONDS - START))" "$rc" "${CURRENT:-?}" >&2
    fi
}
trap on_exit EXIT

CURRENT="setup"
step "setup (CANDOR_HOME=$CANDOR_HOME${CANDOR_SHARED:+, CANDOR_SHARED=$CANDOR_SHARED})"
bash "$REPO/scripts/setup.sh" --quiet

# The bulk tests run against a real PostgreSQL: each test starts its own
# throwaway server (initdb in a temporary directory, 127.0.0.1 and a Unix
# socket in that directory only; as root, run as the `postgres` user) from
# Debian's server binaries, installed here when missing (no default
# cluster). When they cannot be installed, those tests print SKIP and pass.
CURRENT="PostgreSQL server binaries (bulk tests)"
step "$CURRENT"
if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        export DEBIAN_FRONTEND=noninteractive
        mkdir -p /etc/postgresql-common
        [ -e /etc/postgresql-common/createcluster.conf ] ||
            echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.conf
        { apt-get -qq update && apt-get -qq install -y --no-install-recommends postgresql; } \
            </dev/null >/dev/null || true
    fi
fi
if compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
    echo "test: PostgreSQL $(ls /usr/lib/postgresql | sort -n | tail -1) for the bulk tests"
else
    echo "test: WARNING: no PostgreSQL server binaries; the Postgres bulk tests will SKIP" >&2
fi

CURRENT="cargo fmt --all --check"
step "$CURRENT"
cargo fmt --all --check

CURRENT="cargo clippy --workspace --all-targets -- -D warnings"
step "$CURRENT"
cargo clippy --workspace --all-targets -- -D warnings

if cargo nextest --version >/dev/null 2>&1; then
    # nextest does not run doc tests: run them first so the nextest summary closes the log.
    CURRENT="cargo test --workspace --doc"
    step "$CURRENT"
    cargo test --workspace --doc

    CURRENT="cargo nextest run --workspace"
    step "$CURRENT"
    cargo nextest run --workspace --no-fail-fast
else
    # cargo test runs unit, integration and doc tests.
    CURRENT="cargo test --workspace"
    step "$CURRENT (cargo-nextest not installed)"
    cargo test --workspace --no-fail-fast
fi
# The review pages in a real browser (Debian's chromium, installed by the
# script when missing), after the Rust tests built target/debug/candor.
CURRENT="browser tests (scripts/browser-test.sh)"
step "$CURRENT"
bash "$REPO/scripts/browser-test.sh"

CURRENT=""
step "all checks passed in $((SECONDS - START))s"
