# dreambooth-worker and dbtool with LibTorch 2.x + CUDA from the PyPI torch wheel (what
# scripts/setup.sh installs into .deps/venv). The same image runs on CPU-only hosts; on GPU hosts
# run it with the NVIDIA container runtime (--gpus all) and --device cuda. Not built on the
# project's machines (they have no Docker engine). Build from the repository root:
#   docker build -f docker/worker.Dockerfile -t dreambooth-worker .
FROM debian:12 AS build
WORKDIR /src
COPY scripts/setup.sh scripts/torch-requirements.txt scripts/
RUN bash scripts/setup.sh
COPY . .
RUN cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DDB_BUILD_TESTS=OFF \
      -DDB_BUILD_BENCH=OFF \
 && cmake --build build --target dreambooth-worker dbtool

FROM debian:12
RUN apt-get update && apt-get install -y --no-install-recommends \
      libgrpc++1.51 libprotobuf32 libspdlog1.10 libpng16-16 libjpeg62-turbo libre2-9 libssl3 \
      libicu72 && rm -rf /var/lib/apt/lists/*
# The binaries' RUNPATH names the wheel's lib folder at its build path; keep the same path.
ARG SITE=/src/.deps/venv/lib/python3.11/site-packages
COPY --from=build ${SITE}/torch/lib ${SITE}/torch/lib
COPY --from=build ${SITE}/nvidia ${SITE}/nvidia
COPY --from=build /src/build/worker/dreambooth-worker /src/build/tools/dbtool /usr/local/bin/
VOLUME ["/models", "/cache"]
ENTRYPOINT ["dreambooth-worker", "--model-root", "/models", "--cache-dir", "/cache"]
