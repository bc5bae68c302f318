#include "nn/noise.hpp"

#include <algorithm>
#include <cmath>

namespace bnfast {

using i64 = std::int64_t;
constexpr double kPi = 3.141592653589793;

bool NoiseSource::any(const std::vector<LayerSpec>& layers) {
  return std::any_of(layers.begin(), layers.end(),
                     [](const LayerSpec& L) { return L.noise.on; });
}

double NoiseSource::normal() {
  const double u1 = gen_.uniform();
  const double u2 = gen_.uniform();
  return std::sqrt(-2.0 * std::log(1.0 - u1)) * std::cos(2.0 * kPi * u2);
}

void NoiseSource::draw(const std::vector<LayerSpec>& layers, i64 rows, BatchNoise& out) {
  out.scale.resize(layers.size());
  out.shift.resize(layers.size());
  for (std::size_t l = 0; l < layers.size(); ++l) {
    const LayerSpec& L = layers[l];
    if (!L.noise.on) {
      out.scale[l].clear();
      out.shift[l].clear();
      continue;
    }
    const NoiseSpec& n = L.noise;
    std::vector<double>& s = out.scale[l];
    std::vector<double>& m = out.shift[l];
    s.resize(static_cast<std::size_t>(rows * L.out));
    m.resize(s.size());
    for (i64 j = 0; j < L.out; ++j) {
      const double mu = n.n_mu * (2.0 * gen_.uniform() - 1.0);
      const double s0 = 1.0 + (n.n_sigma - 1.0) * gen_.uniform();
      for (i64 i = 0; i < rows; ++i) {
        m[i * L.out + j] = mu + n.r_mu * (2.0 * gen_.uniform() - 1.0);
        s[i * L.out + j] = s0 + n.r_sigma * normal();
      }
    }
  }
}

}  // namespace bnfast
