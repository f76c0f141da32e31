# dreamboothd (CPU only; no LibTorch needed). Build from the repository root:
#   docker build -f docker/server.Dockerfile -t dreamboothd .
FROM debian:12 AS build
WORKDIR /src
COPY scripts/setup.sh scripts/torch-requirements.txt scripts/
RUN DB_SETUP_TORCH=0 bash scripts/setup.sh
COPY . .
RUN cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DDB_BUILD_TORCH=OFF \
      -DDB_BUILD_TESTS=OFF -DDB_BUILD_BENCH=OFF \
 && cmake --build build --target dreamboothd dbctl

FROM debian:12
RUN apt-get update && apt-get install -y --no-install-recommends \
      libgrpc++1.51 libprotobuf32 libsqlite3-0 libspdlog1.10 libpng16-16 libjpeg62-turbo \
      libre2-9 libssl3 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/build/server/dreamboothd /src/build/client/dbctl /usr/local/bin/
VOLUME /data
EXPOSE 50051
ENTRYPOINT ["dreamboothd", "--listen", "0.0.0.0:50051", "--data-dir", "/data"]
