# syntax=docker/dockerfile:1
# dreamboothd and dbctl: the daemon image (CPU only, no LibTorch). Build from the repository root
# (BuildKit, the default builder since Docker 23):
#   docker build -f docker/server.Dockerfile -t dreamboothd .
# Never built on the project's machines (they have no Docker engine): scripts/check_docker.sh
# checks what can be checked without one (docs/operations.md#docker says what that is).
#
# By default the daemon serves TLS on 0.0.0.0 (public API 50051, worker service 50052) with the
# certificate and key at /run/secrets/server.{pem,key}, and so requires API keys (--auth=auto on a
# non-loopback listener); the health check trusts /run/secrets/ca.pem. Data lives in /data.

# Build and runtime stages use the same Debian point release, so the runtime libraries are the
# ones the build linked against.
FROM debian:12.11-slim AS build
WORKDIR /src
# The package install first, on its own, so that it stays cached while the sources change.
COPY scripts/setup.sh scripts/torch-requirements.txt scripts/
RUN DB_SETUP_TORCH=0 bash scripts/setup.sh
COPY . .
# BUILD_JOBS: parallel compile jobs (empty: one per core).
ARG BUILD_JOBS=
RUN --mount=type=cache,target=/root/.cache/ccache,id=dreambooth-ccache \
    cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DDB_BUILD_TORCH=OFF \
      -DDB_BUILD_TESTS=OFF -DDB_BUILD_BENCH=OFF \
 && cmake --build build --target dreamboothd dbctl ${BUILD_JOBS:+-j "$BUILD_JOBS"}

FROM debian:12.11-slim
# What `ldd` lists for dreamboothd and dbctl, by Debian package (scripts/check_docker.sh maps
# them), plus tini (PID 1: forwards signals, reaps children) and the CA roots for --tls.
# Versions follow the release's security updates (the base image pins the release).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libabsl20220623 libc-ares2 libcivetweb1 libfmt9 libgrpc++1.51 libgrpc29 libjpeg62-turbo \
      libpng16-16 libprometheus-cpp-core1.0 libprometheus-cpp-pull1.0 libprotobuf32 libre2-9 \
      libspdlog1.10 libsqlite3-0 libssl3 libcurl4 zlib1g \
      ca-certificates tini \
 && rm -rf /var/lib/apt/lists/*
# A fixed uid, so that files in volumes and bind-mounted secrets can be given to it on the host.
RUN groupadd --system --gid 10001 dreambooth \
 && useradd --system --uid 10001 --gid dreambooth --home-dir /data --shell /usr/sbin/nologin \
      dreambooth \
 && mkdir -p /data /models \
 && chown dreambooth:dreambooth /data
COPY --from=build /src/build/server/dreamboothd /src/build/client/dbctl /usr/local/bin/
USER 10001:10001
# A fresh named volume copies /data's owner from the image, so the daemon can write it.
VOLUME ["/data"]
# 50051: the public API; 50052: the worker service (keep it inside the cluster); 9464: Prometheus
# /metrics when --metrics-listen asks for it (plain HTTP, no credentials: never publish it widely).
EXPOSE 50051 50052 9464
# dbctl reads the server's address from DREAMBOOTH_SERVER; health needs no API key.
ENV DREAMBOOTH_SERVER=127.0.0.1:50051
# dbctl health: 0 when SERVING, 1 not serving, 3 no answer; Docker wants 0 or 1.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["sh", "-c", "dbctl --ca-cert=/run/secrets/ca.pem --timeout=3s health || exit 1"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["tini", "--", "dreamboothd"]
CMD ["--listen=0.0.0.0:50051", "--worker-listen=0.0.0.0:50052", "--data-dir=/data", "--tls-cert=/run/secrets/server.pem", "--tls-key=/run/secrets/server.key", "--log-format=json"]
