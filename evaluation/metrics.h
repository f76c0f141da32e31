// The arithmetic of the toy-world evaluation (dbtool eval), free of LibTorch: attribute
// distributions and their divergence, and similarity / diversity of feature vectors. The
// analogues of the DreamBooth paper's metrics are built from these (evaluation/evaluator.h).
#ifndef DREAMBOOTH_EVALUATION_METRICS_H_
#define DREAMBOOTH_EVALUATION_METRICS_H_

#include <vector>

namespace dreambooth::evaluation {

// Counts of each of `num_values` labels -> probabilities with additive (Laplace) smoothing:
// (count + alpha) / (total + alpha * num_values). Labels outside [0, num_values) are ignored.
std::vector<double> Distribution(const std::vector<int>& labels, int num_values, double alpha);

// KL(p || q) in nats. p and q must have the same size; terms with p = 0 contribute 0; a q of 0
// where p > 0 gives +infinity (smooth q to avoid it).
double KlDivergence(const std::vector<double>& p, const std::vector<double>& q);

// Total variation distance: half the L1 distance between two distributions.
double TotalVariation(const std::vector<double>& p, const std::vector<double>& q);

// Cosine similarity of two equally long vectors (0 when either is all zeros).
double CosineSimilarity(const std::vector<float>& a, const std::vector<float>& b);

// Mean cosine similarity over every pair (a in `set_a`, b in `set_b`); 0 when either is empty.
double MeanCrossSimilarity(const std::vector<std::vector<float>>& set_a,
                           const std::vector<std::vector<float>>& set_b);

// Mean of (1 - cosine similarity) over the unordered pairs of `set` (0 with fewer than 2): the
// diversity of a set of images, from their features.
double MeanPairwiseDistance(const std::vector<std::vector<float>>& set);

// The fraction of `hits` over `total` (0 when total is 0).
double Fraction(int hits, int total);

}  // namespace dreambooth::evaluation

#endif  // DREAMBOOTH_EVALUATION_METRICS_H_
