#!/usr/bin/env bash
# Bulk re-screening benchmark: builds release, runs benches/load/bulk_load.py
# (SQLite vs PostgreSQL items/s with the same worker, 1 vs 2 worker processes
# on PostgreSQL, per-item queue overhead beside the analysis, live /v1/analyze
# latency while a batch runs, worker RSS over a 10,000-item batch) and writes
# docs/benchmarks-bulk.md. Needs Debian's postgresql package (the script starts
# a throwaway server on 127.0.0.1); every phase is bounded in items and time.
#
# Usage: benches/load/run-bulk.sh [bulk_load.py flags...]   e.g. --items 200
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
python3 -u benches/load/bulk_load.py --candor "$target_dir/release/candor" "$@" >"$target_dir/benchmarks-bulk.md"
cp "$target_dir/benchmarks-bulk.md" docs/benchmarks-bulk.md
cat docs/benchmarks-bulk.md
