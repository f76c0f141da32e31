#include "worker/diffusion/schedulers/scheduler_numpy.h"

#include <cmath>

namespace dreambooth::diffusion::numpy_compat {

std::vector<double> Linspace(double start, double stop, int64_t num) {
  std::vector<double> out;
  if (num <= 0) return out;
  if (num == 1) return {start};
  const double div = static_cast<double>(num - 1);
  const double delta = stop - start;
  const double step = delta / div;
  for (int64_t i = 0; i < num; ++i) {
    if (step == 0) {
      out.push_back(static_cast<double>(i) / div * delta + start);
    } else {
      out.push_back(static_cast<double>(i) * step + start);
    }
  }
  out.back() = stop;
  return out;
}

std::vector<double> Arange(double start, double stop, double step) {
  std::vector<double> out;
  const double length = std::ceil((stop - start) / step);
  if (!(length > 0)) return out;
  const int64_t n = static_cast<int64_t>(length);
  out.push_back(start);
  if (n == 1) return out;
  const double next = start + step;
  const double delta = next - start;
  out.push_back(next);
  for (int64_t i = 2; i < n; ++i) out.push_back(start + static_cast<double>(i) * delta);
  return out;
}

double RoundHalfEven(double x) { return std::nearbyint(x); }

std::vector<double> InterpOnIndex(const std::vector<double>& x, const std::vector<float>& fp) {
  std::vector<double> out;
  const int64_t n = static_cast<int64_t>(fp.size());
  for (double value : x) {
    if (n == 0) {
      out.push_back(NAN);
      continue;
    }
    if (std::isnan(value)) {
      out.push_back(value);
    } else if (value <= 0) {
      out.push_back(fp[0]);
    } else if (value >= static_cast<double>(n - 1)) {
      out.push_back(fp[n - 1]);
    } else {
      const int64_t j = static_cast<int64_t>(std::floor(value));
      const double xj = static_cast<double>(j);
      if (xj == value) {
        out.push_back(fp[j]);
      } else {
        const double slope = (static_cast<double>(fp[j + 1]) - static_cast<double>(fp[j])) /
                             (static_cast<double>(j + 1) - xj);
        double result = slope * (value - xj) + static_cast<double>(fp[j]);
        if (std::isnan(result)) {
          result = slope * (value - static_cast<double>(j + 1)) + static_cast<double>(fp[j + 1]);
        }
        out.push_back(result);
      }
    }
  }
  return out;
}

}  // namespace dreambooth::diffusion::numpy_compat
