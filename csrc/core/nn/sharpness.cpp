#include "nn/sharpness.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "linalg/gram_schmidt.hpp"
#include "linalg/tridiagonal.hpp"
#include "nn/splitmix.hpp"

namespace bnfast {

using i64 = std::int64_t;

SharpnessTracker::SharpnessTracker(i64 P, std::uint64_t seed, int first_steps, int steps)
    : P_(P),
      first_steps_(first_steps),
      steps_(steps),
      gen_(seed ^ 0x3C6EF372FE94F82BULL),  // a stream apart from SGD's and the noise's
      v_(static_cast<std::size_t>(P)) {
  draw_start();
}

void SharpnessTracker::draw_start() {
  for (auto& x : v_) x = 2.0 * gen_.uniform() - 1.0;
}

double SharpnessTracker::estimate(const SymmetricProduct& hvp) {
  const i64 budget = std::min<i64>(warm_ ? steps_ : first_steps_, P_);
  warm_ = true;
  Lanczos lz(P_, v_.data(), nullptr, 0);
  // budget, closed (an invariant subspace: its top Ritz value is exact) or exhausted
  lz.advance(hvp, 1, RitzEnd::largest, -1.0, budget, std::numeric_limits<double>::infinity());
  const i64 k = lz.size();
  std::vector<double> values, last, vectors;
  tridiagonal_eigen(lz.alpha().data(), lz.beta().data(), k, values, last, &vectors);
  // the next start: the top Ritz vector Q^T s
  std::fill(v_.begin(), v_.end(), 0.0);
  for (i64 i = 0; i < k; ++i) {
    const double s = vectors[i * k + (k - 1)];
    const double* q = lz.basis() + i * P_;
    for (i64 p = 0; p < P_; ++p) v_[p] += s * q[p];
  }
  // a non-finite estimate (NaN products) leaves no direction to warm-start from
  const double norm = std::sqrt(dot(v_.data(), v_.data(), P_));
  if (!(norm > 0 && std::isfinite(norm))) draw_start();
  return values[k - 1];
}

}  // namespace bnfast
