#!/usr/bin/env bash
# Run the Candor inference service: setup (if needed), release build, `candor serve`.
#
# Usage: scripts/serve.sh [candor serve flags...]   e.g. scripts/serve.sh --port 9000
# Every flag is also an env var CANDOR_*; defaults: host/port from the binary (port 8080).
# CANDOR_DEVICE=auto|cpu|cuda picks the ONNX Runtime flavour installed by setup.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
export CANDOR_HOME="${CANDOR_HOME:-$REPO/.candor}"

bash "$REPO/scripts/setup.sh"

features=()
flavour="$(cat "$CANDOR_HOME/onnxruntime/FLAVOR" 2>/dev/null || echo cpu)"
if [ "$flavour" = gpu ]; then
    # Build with CUDA support when the candor package declares a `cuda` feature.
    if cargo metadata --no-deps --format-version 1 2>/dev/null |
        python3 -c 'import json,sys; m=json.load(sys.stdin); sys.exit(0 if any(p["name"]=="candor" and "cuda" in p["features"] for p in m["packages"]) else 1)'; then
        features=(--features cuda)
    else
        echo "serve: warning: GPU runtime installed but package candor has no 'cuda' feature; building without it" >&2
    fi
fi

echo "serve: cargo build --release -p candor ${features[*]}"
cargo build --release -p candor "${features[@]}"

target_dir="${CARGO_TARGET_DIR:-$REPO/target}"
exec "$target_dir/release/candor" serve "$@"
