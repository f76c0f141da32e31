# syntax=docker/dockerfile:1
# dreambooth-worker, dbtool and dbctl with LibTorch 2.x + CUDA from the PyPI torch wheel, exactly as
# scripts/setup.sh installs it for every other build (scripts/torch-requirements.txt). The same
# image runs on CPU-only hosts (--device=cpu) and on NVIDIA GPUs with the NVIDIA container
# toolkit (docker run --gpus all, or compose's device reservation) and --device=cuda: the driver's
# libcuda comes from the host, everything else of CUDA from the wheel's nvidia/ folder. Build from
# the repository root (BuildKit, the default builder since Docker 23):
#   docker build -f docker/worker.Dockerfile -t dreambooth-worker .
# Never built on the project's machines (they have no Docker engine): scripts/check_docker.sh
# checks what can be checked without one (docs/operations.md#docker says what that is).
# The builder has no nvcc, so the optional fused CUDA kernels of kernels/ (DB_FUSED_KERNELS, off by
# default) are not compiled in; everything else is the same code as a source build.

FROM debian:12.11-slim AS build
WORKDIR /src
# Debian packages and the torch wheel (~3.3 GB download) first, cached while the sources change.
COPY scripts/setup.sh scripts/torch-requirements.txt scripts/
RUN bash scripts/setup.sh
COPY . .
# BUILD_JOBS: parallel compile jobs (empty: one per core; LibTorch units need ~2 GB RAM each).
ARG BUILD_JOBS=
RUN --mount=type=cache,target=/root/.cache/ccache,id=dreambooth-ccache \
    cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DDB_BUILD_TESTS=OFF \
      -DDB_BUILD_BENCH=OFF \
 && cmake --build build --target dreambooth-worker dbtool dbctl ${BUILD_JOBS:+-j "$BUILD_JOBS"}

FROM debian:12.11-slim
# What `ldd` lists for the binaries outside the torch wheel, by Debian package
# (scripts/check_docker.sh maps them), plus tini (PID 1: forwards signals, reaps the rank
# processes of multi-device jobs) and the CA roots for --tls.
# Versions follow the release's security updates (the base image pins the release).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libabsl20220623 libc-ares2 libgrpc++1.51 libgrpc29 libicu72 libjpeg62-turbo libpng16-16 \
      libfmt9 libprotobuf32 libre2-9 libspdlog1.10 libssl3 zlib1g \
      ca-certificates tini \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 dreambooth \
 && useradd --system --uid 10001 --gid dreambooth --home-dir /cache --shell /usr/sbin/nologin \
      dreambooth \
 && mkdir -p /cache /models \
 && chown dreambooth:dreambooth /cache
# The binaries' RUNPATH names the wheel's folders at their build path (torch/lib, and
# nvidia/cu13/include/../lib, so nvidia/ keeps its include folders): they are copied to the same
# path. libcuda.so.1 is not among them: the NVIDIA container toolkit mounts the host driver's.
ARG SITE=/src/.deps/venv/lib/python3.11/site-packages
COPY --from=build ${SITE}/torch/lib ${SITE}/torch/lib
COPY --from=build ${SITE}/nvidia ${SITE}/nvidia
COPY --from=build /src/build/worker/dreambooth-worker /src/build/tools/dbtool \
     /src/build/client/dbctl /usr/local/bin/
# The built-in `toy` model and its evaluator (the binaries look for them here, not in /src).
COPY --from=build /src/assets/models /usr/local/share/dreambooth/models
ENV DREAMBOOTH_TOY_MODEL_DIR=/usr/local/share/dreambooth/models/toy \
    DREAMBOOTH_TOY_CLASSIFIER=/usr/local/share/dreambooth/models/toy-classifier.safetensors \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    DREAMBOOTH_SERVER=127.0.0.1:50052
USER 10001:10001
# /cache: class images, latents, downloaded checkpoints, per-job work folders (a named volume gets
# its owner from the image); /models: diffusers model folders, mounted read-only.
VOLUME ["/cache"]
# The worker has no RPC port of its own. Its health check asks the daemon it pulls from
# (DREAMBOOTH_SERVER: set it to the worker's --server) through the worker's network path and TLS
# trust; it does not look inside the worker (a stuck worker shows as expiring leases instead).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["sh", "-c", "dbctl --ca-cert=/run/secrets/ca.pem --timeout=3s health || exit 1"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["tini", "--", "dreambooth-worker"]
CMD ["--server=127.0.0.1:50052", "--ca-cert=/run/secrets/ca.pem", "--api-key=@/run/secrets/worker_key", "--model-root=/models", "--cache-dir=/cache"]
