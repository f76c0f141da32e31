# LibTorch 2.x from the PyPI `torch` wheel (scripts/setup.sh installs it into .deps/venv).
#
# Defines the interface target `db::torch` and these variables:
#   DB_TORCH_VERSION     the wheel's version, e.g. 2.15.0
#   DB_TORCH_CUDA        ON when the wheel carries libtorch_cuda (then it is linked)
#   DB_TORCH_CUDART      ON when the CUDA runtime (headers + libcudart) was found beside the wheel
#   DB_TORCH_LIB_DIR     torch/lib (libtorch*.so, libc10*.so)
#
# Where the torch package is found: -DDB_TORCH_PREFIX=<site-packages/torch>, else the Python in
# -DDB_TORCH_PYTHON (default: .deps/venv/bin/python3, then python3 on PATH) is asked for it, as
# `torch.utils.cmake_prefix_path` would be.
#
# The wheel's include folder also carries its own copies of third-party headers (protobuf, fmt,
# pybind11) that would shadow Debian's. db::torch therefore points at a folder of links in the
# build tree that holds every entry of torch/include except those, so a translation unit that
# includes both LibTorch and a generated .pb.h or spdlog sees Debian's protobuf and fmt.
#
# The CUDA libraries are linked whenever the wheel has them: the same binaries run on a CPU-only
# machine (CUDA is then simply unavailable at run time) and on GPUs. The wheel's CUDA headers come
# from its nvidia-* dependencies, so no CUDA toolkit is needed to compile against ATen/cuda.

set(DB_TORCH_PYTHON "" CACHE FILEPATH "Python whose torch package provides LibTorch")
set(DB_TORCH_PREFIX "" CACHE PATH "site-packages/torch folder of a torch wheel")

if(NOT DB_TORCH_PREFIX)
  if(NOT DB_TORCH_PYTHON)
    if(EXISTS ${CMAKE_SOURCE_DIR}/.deps/venv/bin/python3)
      set(_db_python ${CMAKE_SOURCE_DIR}/.deps/venv/bin/python3)
    else()
      find_program(_db_python NAMES python3 REQUIRED)
    endif()
  else()
    set(_db_python ${DB_TORCH_PYTHON})
  endif()
  execute_process(
    COMMAND ${_db_python} -c "import os, torch; print(os.path.dirname(torch.__file__))"
    OUTPUT_VARIABLE _db_torch_dir OUTPUT_STRIP_TRAILING_WHITESPACE
    ERROR_VARIABLE _db_torch_err RESULT_VARIABLE _db_torch_rc)
  if(NOT _db_torch_rc EQUAL 0)
    message(FATAL_ERROR "LibTorch: '${_db_python}' cannot import torch (${_db_torch_err}). "
                        "Run scripts/setup.sh, or pass -DDB_TORCH_PYTHON=<python with torch> "
                        "or -DDB_TORCH_PREFIX=<site-packages/torch>.")
  endif()
  set(DB_TORCH_PREFIX ${_db_torch_dir} CACHE PATH "site-packages/torch folder of a torch wheel" FORCE)
endif()

set(_db_version_h ${DB_TORCH_PREFIX}/include/torch/headeronly/version.h)  # 2.9+
if(NOT EXISTS ${_db_version_h})
  set(_db_version_h ${DB_TORCH_PREFIX}/include/torch/csrc/api/include/torch/version.h)
endif()
if(NOT EXISTS ${_db_version_h})
  message(FATAL_ERROR "LibTorch: ${DB_TORCH_PREFIX} has no C++ headers (torch/version.h)")
endif()
file(STRINGS ${_db_version_h} _db_version_lines REGEX "#define TORCH_VERSION_(MAJOR|MINOR|PATCH) ")
foreach(_part MAJOR MINOR PATCH)
  string(REGEX MATCH "TORCH_VERSION_${_part} ([0-9]+)" _m "${_db_version_lines}")
  set(_db_${_part} ${CMAKE_MATCH_1})
endforeach()
set(DB_TORCH_VERSION ${_db_MAJOR}.${_db_MINOR}.${_db_PATCH})
if(DB_TORCH_VERSION VERSION_LESS 2.4)
  message(FATAL_ERROR "LibTorch ${DB_TORCH_VERSION} at ${DB_TORCH_PREFIX}: 2.4 or newer is needed")
endif()

set(DB_TORCH_LIB_DIR ${DB_TORCH_PREFIX}/lib)
set(DB_TORCH_CUDA OFF)
if(EXISTS ${DB_TORCH_LIB_DIR}/libtorch_cuda.so)
  file(GLOB _db_cudart ${DB_TORCH_PREFIX}/../nvidia/*/include/cuda_runtime_api.h
       ${DB_TORCH_PREFIX}/../nvidia/cuda_runtime/include/cuda_runtime_api.h)
  set(DB_TORCH_CUDA ON)
endif()

# The folder of links: torch/include minus the bundled third-party headers.
set(_db_inc ${CMAKE_BINARY_DIR}/torch-include)
file(REMOVE_RECURSE ${_db_inc})
file(MAKE_DIRECTORY ${_db_inc})
file(GLOB _db_entries RELATIVE ${DB_TORCH_PREFIX}/include ${DB_TORCH_PREFIX}/include/*)
foreach(_e IN LISTS _db_entries)
  if(NOT _e MATCHES "^(google|fmt|pybind11|python[0-9.]*)$")
    file(CREATE_LINK ${DB_TORCH_PREFIX}/include/${_e} ${_db_inc}/${_e} SYMBOLIC)
  endif()
endforeach()

set(_db_libs ${DB_TORCH_LIB_DIR}/libtorch.so ${DB_TORCH_LIB_DIR}/libtorch_cpu.so
             ${DB_TORCH_LIB_DIR}/libc10.so)
set(_db_includes ${_db_inc} ${_db_inc}/torch/csrc/api/include)
if(DB_TORCH_CUDA)
  # --no-as-needed: nothing of ours names a libtorch_cuda symbol, yet loading it is what
  # registers the CUDA backend.
  list(APPEND _db_libs "-Wl,--no-as-needed" ${DB_TORCH_LIB_DIR}/libtorch_cuda.so
       ${DB_TORCH_LIB_DIR}/libc10_cuda.so "-Wl,--as-needed")
  # The CUDA runtime of the wheel (device queries in worker/diffusion/device.cc, kernels/).
  foreach(_h IN LISTS _db_cudart)
    get_filename_component(_d ${_h} DIRECTORY)
    list(APPEND _db_includes ${_d})
    file(GLOB _db_cudart_lib ${_d}/../lib/libcudart.so.*)
    list(APPEND _db_libs ${_db_cudart_lib})
  endforeach()
endif()
# ON when the CUDA runtime's headers and library were found beside the wheel: device.cc then
# reports GPU names and free memory (without them it still runs on GPUs, with less detail).
set(DB_TORCH_CUDART OFF)
if(DB_TORCH_CUDA AND _db_cudart_lib)
  set(DB_TORCH_CUDART ON)
elseif(DB_TORCH_CUDA)
  message(STATUS "LibTorch: the wheel's CUDA runtime headers were not found beside it; "
                 "dbtool devices will not name GPUs")
endif()

add_library(db_torch INTERFACE)
add_library(db::torch ALIAS db_torch)
target_include_directories(db_torch SYSTEM INTERFACE ${_db_includes})
target_link_libraries(db_torch INTERFACE ${_db_libs} Threads::Threads)
target_compile_features(db_torch INTERFACE cxx_std_20)
target_link_options(db_torch INTERFACE "LINKER:-rpath,${DB_TORCH_LIB_DIR}")
message(STATUS "LibTorch ${DB_TORCH_VERSION} from ${DB_TORCH_PREFIX}"
               " (CUDA libraries: ${DB_TORCH_CUDA})")
