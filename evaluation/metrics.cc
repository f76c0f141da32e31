#include "evaluation/metrics.h"

#include <cmath>
#include <cstddef>
#include <limits>

namespace dreambooth::evaluation {

std::vector<double> Distribution(const std::vector<int>& labels, int num_values, double alpha) {
  std::vector<double> p(num_values > 0 ? num_values : 0, alpha);
  double total = alpha * num_values;
  for (int label : labels) {
    if (label < 0 || label >= num_values) continue;
    p[label] += 1.0;
    total += 1.0;
  }
  if (total > 0) {
    for (double& v : p) v /= total;
  }
  return p;
}

double KlDivergence(const std::vector<double>& p, const std::vector<double>& q) {
  double kl = 0.0;
  for (size_t i = 0; i < p.size() && i < q.size(); ++i) {
    if (p[i] <= 0.0) continue;
    if (q[i] <= 0.0) return std::numeric_limits<double>::infinity();
    kl += p[i] * std::log(p[i] / q[i]);
  }
  return kl;
}

double TotalVariation(const std::vector<double>& p, const std::vector<double>& q) {
  double sum = 0.0;
  for (size_t i = 0; i < p.size() && i < q.size(); ++i) sum += std::fabs(p[i] - q[i]);
  return 0.5 * sum;
}

double CosineSimilarity(const std::vector<float>& a, const std::vector<float>& b) {
  double dot = 0.0, na = 0.0, nb = 0.0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    dot += static_cast<double>(a[i]) * b[i];
    na += static_cast<double>(a[i]) * a[i];
    nb += static_cast<double>(b[i]) * b[i];
  }
  if (na <= 0.0 || nb <= 0.0) return 0.0;
  return dot / std::sqrt(na * nb);
}

double MeanCrossSimilarity(const std::vector<std::vector<float>>& set_a,
                           const std::vector<std::vector<float>>& set_b) {
  if (set_a.empty() || set_b.empty()) return 0.0;
  double sum = 0.0;
  for (const auto& a : set_a) {
    for (const auto& b : set_b) sum += CosineSimilarity(a, b);
  }
  return sum / (static_cast<double>(set_a.size()) * set_b.size());
}

double MeanPairwiseDistance(const std::vector<std::vector<float>>& set) {
  if (set.size() < 2) return 0.0;
  double sum = 0.0;
  int pairs = 0;
  for (size_t i = 0; i < set.size(); ++i) {
    for (size_t j = i + 1; j < set.size(); ++j) {
      sum += 1.0 - CosineSimilarity(set[i], set[j]);
      ++pairs;
    }
  }
  return sum / pairs;
}

double Fraction(int hits, int total) { return total > 0 ? static_cast<double>(hits) / total : 0.0; }

}  // namespace dreambooth::evaluation
