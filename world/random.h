// Deterministic pseudo-random numbers for the toy world: a splitmix64 stream and stateless
// lattice hashes for textures. The same seed gives the same numbers on every platform, compiler
// and standard library (unlike std::uniform_*_distribution). Header-only; an Rng is not
// thread-safe (one per stream), the free functions are.
#ifndef DREAMBOOTH_WORLD_RANDOM_H_
#define DREAMBOOTH_WORLD_RANDOM_H_

#include <cstdint>

namespace dreambooth::world {

// splitmix64's finaliser: a bijective 64-bit mix.
inline uint64_t Mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// A seed derived from (seed, stream): independent-looking streams from one seed, e.g. image i of a
// dataset or the caption of a scene.
inline uint64_t DeriveSeed(uint64_t seed, uint64_t stream) {
  return Mix64(seed ^ Mix64(stream + 0x9E3779B97F4A7C15ull));
}

// Uniform in [0, 1) from 64 random bits (their top 53).
inline double ToUnit(uint64_t bits) { return static_cast<double>(bits >> 11) * 0x1.0p-53; }

// Uniform in [0, 1) from the hash of a 2-D lattice point (value-noise textures, per-pixel grain).
inline double HashUnit(uint64_t seed, int64_t x, int64_t y) {
  const uint64_t h = Mix64(seed ^ Mix64(static_cast<uint64_t>(x) * 0x9E3779B97F4A7C15ull +
                                        static_cast<uint64_t>(y) * 0xC2B2AE3D27D4EB4Full));
  return ToUnit(h);
}

// A splitmix64 stream.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(Mix64(seed)) {}

  uint64_t Next() {
    state_ += 0x9E3779B97F4A7C15ull;
    return Mix64(state_);
  }
  // Uniform in [0, 1), 53 bits.
  double Uniform() { return ToUnit(Next()); }
  // Uniform in [lo, hi).
  double Uniform(double lo, double hi) { return lo + (hi - lo) * Uniform(); }
  // Uniform integer in [0, n), n > 0 (multiply-shift; the bias is below 2^-32 for small n).
  int Below(int n) {
    return static_cast<int>((static_cast<unsigned __int128>(Next()) * static_cast<uint64_t>(n)) >>
                            64);
  }
  // True with probability p.
  bool Chance(double p) { return Uniform() < p; }

 private:
  uint64_t state_;
};

}  // namespace dreambooth::world

#endif  // DREAMBOOTH_WORLD_RANDOM_H_
