#!/usr/bin/env bash
# Candor setup step (idempotent; a fast no-op when everything is installed and verified).
#
#   1. Debian packages the build links against: pkg-config, libopus-dev
#      (installed with apt-get only when missing; needs root).
#   2. scripts/setup.py: ONNX Runtime shared library, model files and Swagger UI assets,
#      all pinned in models/manifest.toml, into $CANDOR_HOME (default <repo>/.candor).
#
# Usage: scripts/setup.sh [--check] [--force] [--quiet]
# Env:   CANDOR_HOME, CANDOR_DEVICE=auto|cpu|cuda, CANDOR_WHEELHOUSE (see setup.py)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CANDOR_HOME="${CANDOR_HOME:-$REPO/.candor}"

QUIET=0
CHECK=0
for arg in "$@"; do
    case "$arg" in
        -q | --quiet) QUIET=1 ;;
        --check) CHECK=1 ;;
    esac
done

say() { [ "$QUIET" = 1 ] || echo "setup: $*"; }

# ---- Debian packages -------------------------------------------------------
DEB_PACKAGES=(pkg-config libopus-dev)

deb_installed() {
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}

missing=()
if command -v dpkg-query >/dev/null 2>&1; then
    for p in "${DEB_PACKAGES[@]}"; do
        deb_installed "$p" || missing+=("$p")
    done
    # setup.py fetches wheels with `python3 -m pip download`.
    if ! python3 -c 'import importlib.util as u, sys; sys.exit(u.find_spec("pip") is None)' 2>/dev/null; then
        missing+=(python3-pip)
    fi
else
    # Not Debian: just check that what the build needs is there.
    if ! command -v pkg-config >/dev/null 2>&1 || ! pkg-config --exists opus; then
        echo "setup: error: pkg-config and the opus development files (opus.pc) are required;" \
            "install them with your package manager" >&2
        exit 1
    fi
fi

if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$CHECK" = 1 ]; then
        echo "setup --check: missing Debian packages: ${missing[*]}" >&2
        exit 1
    fi
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: error: missing Debian packages: ${missing[*]}" >&2
        echo "setup: run as root:  apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
        exit 1
    fi
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt_q=()
    [ "$QUIET" = 1 ] && apt_q=(-qq)
    apt-get "${apt_q[@]}" update </dev/null
    apt-get "${apt_q[@]}" install -y --no-install-recommends "${missing[@]}" </dev/null >/dev/null
    say "installed: ${missing[*]}"
fi

# ---- runtime, models, web assets ------------------------------------------
exec python3 "$REPO/scripts/setup.py" "$@"
