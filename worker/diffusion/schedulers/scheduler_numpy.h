// Bit-exact C++ equivalents of the few NumPy routines diffusers' schedulers use to build their
// timestep and sigma tables (float64 arithmetic in NumPy's order, round half to even).
// Internal to worker/diffusion.
#ifndef DREAMBOOTH_WORKER_DIFFUSION_SCHEDULERS_SCHEDULER_NUMPY_H_
#define DREAMBOOTH_WORKER_DIFFUSION_SCHEDULERS_SCHEDULER_NUMPY_H_

#include <cstdint>
#include <vector>

namespace dreambooth::diffusion::numpy_compat {

// np.linspace(start, stop, num) (endpoint included), float64.
std::vector<double> Linspace(double start, double stop, int64_t num);
// np.arange(start, stop, step) for float64 arguments (NumPy fills start + i * delta with
// delta = (start + step) - start).
std::vector<double> Arange(double start, double stop, double step);
// np.round / ndarray.round(): round half to even.
double RoundHalfEven(double x);
// np.interp(x, arange(len(fp)), fp) with fp widened to float64.
std::vector<double> InterpOnIndex(const std::vector<double>& x, const std::vector<float>& fp);

}  // namespace dreambooth::diffusion::numpy_compat

#endif  // DREAMBOOTH_WORKER_DIFFUSION_SCHEDULERS_SCHEDULER_NUMPY_H_
