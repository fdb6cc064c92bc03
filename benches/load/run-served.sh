#!/usr/bin/env bash
# Served-path latency benchmark: builds release, starts `candor serve` on 127.0.0.1 (a free
# port), runs benches/load/served_latency.py against it (one request at a time per
# workload: 1024 px headshot, 30 s of speech, 700-token resume; the resume again against
# a second server with CANDOR_TEXT_SIGNALS=true, as the reference; the headshot and the
# speech again against a third with CANDOR_ORT_SPINNING=true, as the reference; the
# headshot against a fourth with CANDOR_IMAGE_PICTURE=false, and against a fifth with
# CANDOR_IMAGE_MAX_SIDE=64, the face path alone, as the references; the speech against a
# sixth with CANDOR_AUDIO_HOP_S=1, overlapping segments, as the reference), writes
# docs/benchmarks-served.md, stops the server. Needs ffmpeg (for the headshot).
#
# Usage: benches/load/run-served.sh [served_latency.py flags...]   e.g. --requests 30
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Reference: the same binary with the text detector's zero-shot signals on
# (the language model runs all 30 blocks and its vocabulary head).
start_candor "$target_dir/served-server-signals.log" CANDOR_TEXT_SIGNALS=true
ref_port=$port
# Reference: ONNX Runtime's own default, its threads spinning between operators.
start_candor "$target_dir/served-server-spinning.log" CANDOR_ORT_SPINNING=true
spin_port=$port
# Reference: no evidence pictures (what drawing and encoding them costs).
start_candor "$target_dir/served-server-nopicture.log" CANDOR_IMAGE_PICTURE=false
nopic_port=$port
# Reference: the face path alone (forensic measures on a 64 px crop, no forgery CNN).
start_candor "$target_dir/served-server-facepath.log" CANDOR_IMAGE_MAX_SIDE=64
face_port=$port
# Reference: overlapping audio segments (a 1 s hop: twice the encoder rows).
start_candor "$target_dir/served-server-hop1.log" CANDOR_AUDIO_HOP_S=1
hop1_port=$port
start_candor "$target_dir/served-server.log"

python3 benches/load/served_latency.py --url "http://127.0.0.1:$port" \
    --signals-url "http://127.0.0.1:$ref_port" --spinning-url "http://127.0.0.1:$spin_port" \
    --nopicture-url "http://127.0.0.1:$nopic_port" --facepath-url "http://127.0.0.1:$face_port" \
    --hop1-url "http://127.0.0.1:$hop1_port" "$@" \
    >docs/benchmarks-served.md
cat docs/benchmarks-served.md
