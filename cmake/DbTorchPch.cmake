# One precompiled header for every LibTorch translation unit: the ATen and torch::nn::Module
# headers, compiled once (target db_torch_pch) and reused by each LibTorch target through
# db_use_torch_pch(). Reuse needs identical code-generation flags everywhere, hence no per-target
# -fPIC/-fPIE (see the top-level CMakeLists.txt).
add_library(db_torch_pch OBJECT ${CMAKE_CURRENT_LIST_DIR}/torch_pch.cc)
target_link_libraries(db_torch_pch PUBLIC db::torch)
target_precompile_headers(db_torch_pch PUBLIC <ATen/ATen.h> <torch/nn/module.h>)

function(db_use_torch_pch target)
  target_precompile_headers(${target} REUSE_FROM db_torch_pch)
endfunction()
