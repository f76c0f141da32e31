// Helpers for the kernels/ suites: the error measure the CUDA-vs-reference checks use, seeded
// random inputs and the message of an expected c10::Error.
#ifndef TESTS_KERNELS_KERNEL_TEST_UTIL_H_
#define TESTS_KERNELS_KERNEL_TEST_UTIL_H_

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/util/Exception.h>

#include <cstdint>
#include <string>

namespace dreambooth::kernels::testing {

// Normalised mean squared error sum((actual - expected)^2) / sum(expected^2), computed in float64
// on the CPU whatever the inputs' dtypes and devices (0 when both are all zero).
inline double Nmse(const at::Tensor& actual, const at::Tensor& expected) {
  const at::Tensor a = actual.detach().to(at::kCPU, at::kDouble);
  const at::Tensor e = expected.detach().to(at::kCPU, at::kDouble);
  const double err = (a - e).pow(2).sum().item<double>();
  const double ref = e.pow(2).sum().item<double>();
  return ref == 0 ? err : err / ref;
}

// Largest |actual - expected| (float64, on the CPU).
inline double MaxAbsDiff(const at::Tensor& actual, const at::Tensor& expected) {
  const at::Tensor a = actual.detach().to(at::kCPU, at::kDouble);
  const at::Tensor e = expected.detach().to(at::kCPU, at::kDouble);
  return (a - e).abs().max().item<double>();
}

// Normal(mean, stddev) values of `dtype` on the CPU, from a generator seeded with `seed`.
inline at::Tensor Random(at::IntArrayRef sizes, at::ScalarType dtype, uint64_t seed,
                         double mean = 0.0, double stddev = 1.0) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return (at::randn(sizes, gen, at::TensorOptions().dtype(at::kDouble)) * stddev + mean).to(dtype);
}

// Runs f and returns the c10::Error message it throws ("" when it does not throw).
template <typename F>
std::string ErrorOf(F f) {
  try {
    f();
  } catch (const c10::Error& e) {
    return e.what_without_backtrace();
  }
  return "";
}

}  // namespace dreambooth::kernels::testing

#endif  // TESTS_KERNELS_KERNEL_TEST_UTIL_H_
