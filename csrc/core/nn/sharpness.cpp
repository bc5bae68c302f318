#include "nn/sharpness.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "nn/splitmix.hpp"

namespace bnfast {

using i64 = std::int64_t;

namespace {

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  return std::inner_product(a.begin(), a.end(), b.begin(), 0.0);
}

// w -= (q . w) q for every basis vector, twice ("twice is enough": the second pass
// removes what the rounding of the first left).
void reorthogonalize(std::vector<double>& w, const std::vector<std::vector<double>>& q) {
  for (int pass = 0; pass < 2; ++pass)
    for (const auto& qi : q) {
      const double c = dot(qi, w);
      for (std::size_t k = 0; k < w.size(); ++k) w[k] -= c * qi[k];
    }
}

}  // namespace

void symmetric_eigen(std::vector<double>& a, int n, std::vector<double>& values,
                     std::vector<double>& vectors) {
  vectors.assign(static_cast<std::size_t>(n) * n, 0.0);
  for (int i = 0; i < n; ++i) vectors[i * n + i] = 1.0;
  for (int sweep = 0; sweep < 64; ++sweep) {
    double off = 0, total = 0;
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j) {
        total += a[i * n + j] * a[i * n + j];
        if (i != j) off += a[i * n + j] * a[i * n + j];
      }
    if (off <= 1e-30 * total) break;
    for (int p = 0; p < n; ++p)
      for (int q = p + 1; q < n; ++q) {
        const double apq = a[p * n + q];
        if (apq == 0) continue;
        // the rotation that zeroes a[p][q]: tan(2 theta) = 2 a_pq / (a_qq - a_pp)
        const double tau = (a[q * n + q] - a[p * n + p]) / (2 * apq);
        const double t = (tau >= 0 ? 1.0 : -1.0) / (std::fabs(tau) + std::sqrt(1 + tau * tau));
        const double c = 1 / std::sqrt(1 + t * t), s = t * c;
        for (int k = 0; k < n; ++k) {  // columns p and q
          const double akp = a[k * n + p], akq = a[k * n + q];
          a[k * n + p] = c * akp - s * akq;
          a[k * n + q] = s * akp + c * akq;
        }
        for (int k = 0; k < n; ++k) {  // rows p and q
          const double apk = a[p * n + k], aqk = a[q * n + k];
          a[p * n + k] = c * apk - s * aqk;
          a[q * n + k] = s * apk + c * aqk;
        }
        for (int k = 0; k < n; ++k) {
          const double vkp = vectors[k * n + p], vkq = vectors[k * n + q];
          vectors[k * n + p] = c * vkp - s * vkq;
          vectors[k * n + q] = s * vkp + c * vkq;
        }
      }
  }
  std::vector<int> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int i, int j) { return a[i * n + i] < a[j * n + j]; });
  values.resize(n);
  std::vector<double> sorted(vectors.size());
  for (int c = 0; c < n; ++c) {
    values[c] = a[order[c] * n + order[c]];
    for (int r = 0; r < n; ++r) sorted[r * n + c] = vectors[r * n + order[c]];
  }
  vectors.swap(sorted);
}

SharpnessTracker::SharpnessTracker(i64 P, std::uint64_t seed, int first_steps, int steps)
    : P_(P), first_steps_(first_steps), steps_(steps), v_(static_cast<std::size_t>(P)) {
  SplitMix64 gen(seed ^ 0x3C6EF372FE94F82BULL);  // a stream apart from SGD's and the noise's
  double norm = 0;
  for (auto& x : v_) {
    x = 2.0 * gen.uniform() - 1.0;
    norm += x * x;
  }
  norm = std::sqrt(norm);
  for (auto& x : v_) x /= norm;
}

double SharpnessTracker::estimate(const HessianProduct& hvp) {
  const int k_max = static_cast<int>(std::min<i64>(warm_ ? steps_ : first_steps_, P_));
  warm_ = true;
  q_.assign(1, v_);
  w_.resize(static_cast<std::size_t>(P_));
  std::vector<double> alpha, beta;
  for (int j = 0; j < k_max; ++j) {
    hvp(q_[j].data(), w_.data());
    alpha.push_back(dot(q_[j], w_));
    reorthogonalize(w_, q_);
    const double b = std::sqrt(dot(w_, w_));
    if (j + 1 == k_max || !(b > 1e-12 * std::fabs(alpha.back()) && b > 0)) break;
    beta.push_back(b);
    q_.emplace_back(w_);
    for (auto& x : q_.back()) x /= b;
  }
  const int k = static_cast<int>(alpha.size());
  std::vector<double> t(static_cast<std::size_t>(k) * k, 0.0), values, vectors;
  for (int i = 0; i < k; ++i) {
    t[i * k + i] = alpha[i];
    if (i + 1 < k) t[i * k + i + 1] = t[(i + 1) * k + i] = beta[i];
  }
  symmetric_eigen(t, k, values, vectors);
  // the next start: the top Ritz vector Q s
  std::fill(v_.begin(), v_.end(), 0.0);
  for (int i = 0; i < k; ++i) {
    const double s = vectors[i * k + (k - 1)];
    for (i64 p = 0; p < P_; ++p) v_[p] += s * q_[i][p];
  }
  const double norm = std::sqrt(dot(v_, v_));
  if (norm > 0)
    for (auto& x : v_) x /= norm;
  return values[k - 1];
}

}  // namespace bnfast
