// The translation unit that builds the shared LibTorch precompiled header (cmake/DbTorchPch.cmake).
