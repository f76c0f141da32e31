# dreambooth-worker against a CUDA LibTorch 2.x. The build stage expects a LibTorch tree in
# ./third_party/libtorch (the cxx11-ABI CUDA build, unpacked by the operator: nothing downloads
# here). Build from the repository root:
#   docker build -f docker/worker.Dockerfile -t dreambooth-worker .
FROM nvidia/cuda:12.4.1-cudnn-devel-ubuntu22.04 AS build
WORKDIR /src
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev \
      libabsl-dev libsqlite3-dev libspdlog-dev libpng-dev libjpeg-turbo8-dev libre2-dev \
      nlohmann-json3-dev libssl-dev pkg-config && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_PREFIX_PATH=/src/third_party/libtorch -DDB_BUILD_TESTS=OFF -DDB_BUILD_BENCH=OFF \
 && cmake --build build --target dreambooth-worker dbtool

FROM nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04
RUN apt-get update && apt-get install -y --no-install-recommends \
      libgrpc++1 libprotobuf23 libspdlog1 libpng16-16 libjpeg-turbo8 libre2-9 libgomp1 \
      && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/third_party/libtorch/lib /opt/libtorch/lib
COPY --from=build /src/build/worker/dreambooth-worker /src/build/tools/dbtool/dbtool /usr/local/bin/
ENV LD_LIBRARY_PATH=/opt/libtorch/lib
VOLUME ["/models", "/cache"]
ENTRYPOINT ["dreambooth-worker", "--model-root", "/models", "--cache-dir", "/cache"]
