#!/usr/bin/env bash
# Create .candor/venv-ref with the pinned Python reference for the text scorer:
# llama-cpp-python built from its PyPI sdist (CPU only, AVX2 baseline, no BLAS), numpy, gguf.
# Idempotent: does nothing when the venv already has the pinned versions.
#
#   bash benches/text/setup-reference.sh          # ~7 min on 2 cores (one compile job)
#   FORCE=1 bash benches/text/setup-reference.sh  # rebuild
#
# Needs python3 (>= 3.9) with venv, gcc/g++ and make-free build tools: cmake and ninja come from
# PyPI as build dependencies of the sdist, so Debian's cmake is not required. OpenMP (libgomp,
# part of gcc) is picked up when present.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${VENV:-$ROOT/.candor/venv-ref}"
PY="${PYTHON:-python3}"

LLAMA_CPP_PYTHON_VERSION="0.3.36"   # vendors llama.cpp 0c1e570 (ggml 0.25.3, libllama 0.5.0)
NUMPY_VERSION="2.3.5"
GGUF_VERSION="0.19.0"                # only for numpy_forward.py (llama.cpp-free cross-check)

want="llama_cpp_python==$LLAMA_CPP_PYTHON_VERSION numpy==$NUMPY_VERSION gguf==$GGUF_VERSION"

have_pins() {
  [ -x "$VENV/bin/python" ] || return 1
  "$VENV/bin/python" - "$LLAMA_CPP_PYTHON_VERSION" "$NUMPY_VERSION" "$GGUF_VERSION" <<'EOF' 2>/dev/null
import sys
from importlib.metadata import version
import llama_cpp  # also checks that the shared libraries load
ok = (llama_cpp.__version__ == sys.argv[1] and version("numpy") == sys.argv[2]
      and version("gguf") == sys.argv[3])
sys.exit(0 if ok else 1)
EOF
}

if [ "${FORCE:-0}" != "1" ] && have_pins; then
  echo "venv-ref: up to date ($want)"
  exit 0
fi

if ! command -v g++ >/dev/null 2>&1; then
  echo "venv-ref: g++ is missing (Debian: apt-get install -y build-essential)" >&2
  exit 1
fi

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip

start=$(date +%s)
# One compile job (2-core machine shared with cargo); CPU only, portable x86-64-v3 baseline
# (GGML_NATIVE=OFF turns on SSE4.2/AVX/AVX2/FMA/F16C/BMI2, no AVX-512), no BLAS, no GPU,
# no llava/mtmd, tools, tests or examples.
CMAKE_BUILD_PARALLEL_LEVEL=1 \
CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_BLAS=OFF -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_CURL=OFF" \
  nice -n "${NICE:-19}" "$VENV/bin/python" -m pip install --no-cache-dir \
    --no-binary llama-cpp-python --force-reinstall --no-deps \
    "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION"
"$VENV/bin/python" -m pip install --quiet \
  "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" "numpy==$NUMPY_VERSION" "gguf==$GGUF_VERSION"

have_pins || { echo "venv-ref: install finished but the pins do not check out" >&2; exit 1; }
echo "venv-ref: installed $want in $(( $(date +%s) - start )) s"
