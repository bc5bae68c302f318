// The noise of noisy BN (Santurkar et al. 2018, Algorithm 1; docs/math/networks.md
// section 8), drawn per training step in the order bnfast.reference draws it; applied by
// nn/ops/noise.hpp.
#pragma once

#include <cstdint>
#include <vector>

#include "nn/layer.hpp"
#include "nn/splitmix.hpp"

namespace bnfast {

// One step's draws: per layer, empty (no noise) or (rows, out) row-major scale s and
// shift m, out the layer's features or channels; the noisy value becomes s * z + m (a
// channel's draw shared by its positions).
struct BatchNoise {
  std::vector<std::vector<double>> scale, shift;
};

class NoiseSource {
 public:
  // Seeded with seed XOR a constant, so the noise and the SGD shuffles of one seed are
  // different streams.
  explicit NoiseSource(std::uint64_t seed) : gen_(seed ^ 0x6A09E667F3BCC909ULL) {}
  static bool any(const std::vector<LayerSpec>& layers);
  void draw(const std::vector<LayerSpec>& layers, std::int64_t rows, BatchNoise& out);

 private:
  double normal();  // Box-Muller, the cosine branch
  SplitMix64 gen_;
};

}  // namespace bnfast
