# Sourced by the scripts that build on a GPU machine (gpu_check.sh, gpu_pretrain_toy.sh): a
# machine with CUDA, CMake, Ninja and a Python torch 2.x, but no gRPC, no SQLite and no network.
# Reads PY (the Python whose torch provides LibTorch; empty: python3 if it has torch, else
# .deps/venv/bin/python3), DEPS (Debian packages unpacked with dpkg -x; empty: .gpu-deps/root when
# scripts/gpu_deps.sh has downloaded .gpu-deps/debs) and BUILD (the build folder); sets PY and DEPS,
# exports the library paths the unpacked packages need and sets GPU_CMAKE_ARGS, the configure
# command line of the LibTorch-only targets (-DDB_BUILD_SERVICE=OFF).
if [[ -z "${PY:-}" ]]; then
  if python3 -c 'import torch' 2>/dev/null; then PY="$(command -v python3)";
  else PY="$PWD/.deps/venv/bin/python3"; fi
fi
if [[ -z "${DEPS:-}" && -d .gpu-deps/debs ]]; then
  DEPS="$PWD/.gpu-deps/root"
  if [[ ! -d "$DEPS" ]]; then
    mkdir -p "$DEPS"
    for deb in .gpu-deps/debs/*.deb; do dpkg-deb -x "$deb" "$DEPS"; done
    # Absolute links (libz.so -> /lib/.../libz.so.1.2.13) point into the unpacked tree instead.
    find "$DEPS" -type l | while read -r link; do
      target="$(readlink "$link")"
      if [[ "$target" == /* && -e "$DEPS$target" ]]; then ln -sfn "$DEPS$target" "$link"; fi
    done
  fi
fi
GPU_CMAKE_ARGS=(-S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDB_BUILD_SERVICE=OFF
                -DDB_BUILD_BENCH=OFF -DDB_TORCH_PYTHON="$PY")
if [[ -n "${DEPS:-}" ]]; then
  GPU_LIBDIR="$DEPS/usr/lib/x86_64-linux-gnu"
  GPU_CMAKE_ARGS+=(-DCMAKE_PREFIX_PATH="$DEPS/usr;$GPU_LIBDIR/cmake"
                   -DCMAKE_INCLUDE_PATH="$DEPS/usr/include" -DCMAKE_LIBRARY_PATH="$GPU_LIBDIR"
                   -DICU_ROOT="$DEPS/usr" -DOPENSSL_ROOT_DIR="$DEPS/usr")
  export LD_LIBRARY_PATH="$GPU_LIBDIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export PKG_CONFIG_SYSROOT_DIR="$DEPS"
  export PKG_CONFIG_LIBDIR="$GPU_LIBDIR/pkgconfig:$DEPS/usr/share/pkgconfig"
fi
