// Lemma 4.5 of Santurkar et al. (2018) on one random instance, in float64, for the
// sweeps (docs/math/search.md). Header-only: the sweep's Cython loop
// (bnfast/search/_lemma_4_5_batch.pyx) inlines it.
//
// One identity neuron, gamma = 1, beta = 0, eps = 0. With W* the least-squares slope
// WITHOUT intercept and a the slope WITH intercept (the BN optima are the open ray
// through a), docs/math/lemma_4_5.md shows
//     premise  <w0, W*> > 0
//     (1) holds  <=>  <w0, a> > 0  and  cos(w0, a) >= cos(w0, W*)
// and, for isotropic w0 and d >= 2, P[(1) holds | premise] = 1/2 - theta/(2 pi),
// theta = angle(a, W*) in (0, pi].
// Decisions closer to a boundary than the rounding of float64 can be trusted are
// returned as kUndecided, for the caller to decide exactly.
#pragma once

#include <cmath>
#include <cstdint>

#include "nn/splitmix.hpp"

namespace bnfast::search {

constexpr int kMaxDim = 8;
constexpr int kMaxSamples = 64;

enum Verdict : int {
  kNoPremise = 0,   // <w0, W*> <= 0: the lemma says nothing
  kHolds = 1,
  kFails = 2,       // a counterexample
  kUndecided = 3,   // too close to a boundary for float64: decide exactly
  kDegenerate = 4,  // centred X of rank < d, or a = 0 / W* = 0: BN undefined or flat
};

struct Check {
  int verdict;
  double predicted;  // 1/2 - theta/(2 pi) of this data set (NaN when degenerate)
};

// A verdict is trusted when its margins (differences of cosines) exceed this, and the
// Gram matrices' Cholesky pivots are not smaller than kMinPivot times their diagonal:
// float64 rounding of these d <= 8 systems is then orders of magnitude below it.
constexpr double kMargin = 1e-9;
constexpr double kMinPivot = 1e-6;

// Solves G v = r for symmetric positive definite G (d x d, row-major; overwritten by
// its Cholesky factor). Returns false when a pivot is below kMinPivot * its diagonal.
inline bool solve_spd(double* G, double* r, int d) {
  for (int j = 0; j < d; ++j) {
    double diag = G[j * d + j];
    const double scale = diag;
    for (int k = 0; k < j; ++k) diag -= G[j * d + k] * G[j * d + k];
    if (!(diag > kMinPivot * kMinPivot * scale)) return false;
    const double pivot = std::sqrt(diag);
    G[j * d + j] = pivot;
    for (int i = j + 1; i < d; ++i) {
      double s = G[i * d + j];
      for (int k = 0; k < j; ++k) s -= G[i * d + k] * G[j * d + k];
      G[i * d + j] = s / pivot;
    }
  }
  for (int i = 0; i < d; ++i) {          // L z = r
    double s = r[i];
    for (int k = 0; k < i; ++k) s -= G[i * d + k] * r[k];
    r[i] = s / G[i * d + i];
  }
  for (int i = d - 1; i >= 0; --i) {     // L^T v = z
    double s = r[i];
    for (int k = i + 1; k < d; ++k) s -= G[k * d + i] * r[k];
    r[i] = s / G[i * d + i];
  }
  return true;
}

// The check for a compile-time dimension D (the loops unroll); see check_lemma_4_5.
template <int D>
inline Check check_lemma_4_5_dim(const double* X, const double* y, const double* w0,
                                 int m) {
  constexpr int d = D;
  constexpr double kPi = 3.141592653589793;
  double mean_x[D] = {}, mean_y = 0.0;
  for (int i = 0; i < m; ++i) {
    for (int j = 0; j < D; ++j) mean_x[j] += X[i * D + j];
    mean_y += y[i];
  }
  for (int j = 0; j < D; ++j) mean_x[j] /= m;
  mean_y /= m;
  // The centred Gram matrix and right-hand side (a), accumulated from centred values
  // (no cancellation); the raw ones (W*) follow by adding the means' rank-one part,
  // X^T X = Xc^T Xc + m mean_x mean_x^T and X^T y = Xc^T yc + m mean_x mean_y.
  double Gc[D * D] = {}, a[D] = {};
  for (int i = 0; i < m; ++i) {
    double xc[D];
    for (int j = 0; j < D; ++j) xc[j] = X[i * D + j] - mean_x[j];
    const double yc = y[i] - mean_y;
    for (int j = 0; j < D; ++j) {
      a[j] += xc[j] * yc;
      for (int k = 0; k <= j; ++k) Gc[j * D + k] += xc[j] * xc[k];
    }
  }
  double G[D * D], w_star[D];
  for (int j = 0; j < D; ++j) {
    w_star[j] = a[j] + m * mean_x[j] * mean_y;
    for (int k = 0; k <= j; ++k) {
      G[j * D + k] = G[k * D + j] = Gc[j * D + k] + m * mean_x[j] * mean_x[k];
      Gc[k * D + j] = Gc[j * D + k];
    }
  }
  if (!solve_spd(Gc, a, d)) return {kDegenerate, NAN};
  if (!solve_spd(G, w_star, d)) return {kUndecided, NAN};   // X^T X near singular
  double aa = 0, ww = 0, aw = 0, w0a = 0, w0w = 0, w0w0 = 0;
  for (int j = 0; j < d; ++j) {
    aa += a[j] * a[j];
    ww += w_star[j] * w_star[j];
    aw += a[j] * w_star[j];
    w0a += w0[j] * a[j];
    w0w += w0[j] * w_star[j];
    w0w0 += w0[j] * w0[j];
  }
  if (!(aa > 0.0 && ww > 0.0 && w0w0 > 0.0)) return {kDegenerate, NAN};
  const double cos_theta = std::fmax(-1.0, std::fmin(1.0, aw / std::sqrt(aa * ww)));
  // d >= 2: only w0's projection on span(a, W*) matters, uniform in angle. d = 1:
  // a and W* are parallel (theta = 0: (1) always holds under the premise) or opposite
  // (theta = pi: never).
  const double predicted =
      d == 1 ? (aw > 0.0 ? 1.0 : 0.0) : 0.5 - std::acos(cos_theta) / (2.0 * kPi);
  const double cos_w = w0w / std::sqrt(w0w0 * ww);   // cos(w0, W*)
  const double cos_a = w0a / std::sqrt(w0w0 * aa);   // cos(w0, a)
  if (std::fabs(cos_w) <= kMargin) return {kUndecided, predicted};
  if (cos_w < 0.0) return {kNoPremise, predicted};
  // d = 1: both angles are 0 or pi, and equal angles are the generic case, decided by
  // the sign of <w0, a> alone.
  if (d == 1) return {w0a > 0.0 ? kHolds : kFails, predicted};
  if (std::fabs(cos_a) <= kMargin || std::fabs(cos_a - cos_w) <= kMargin)
    return {kUndecided, predicted};
  return {(cos_a > 0.0 && cos_a >= cos_w) ? kHolds : kFails, predicted};
}

// X (m, d) row-major, y (m,), w0 (d,); 1 <= d <= kMaxDim, d + 1 <= m <= kMaxSamples.
inline Check check_lemma_4_5(const double* X, const double* y, const double* w0, int m,
                             int d) {
  switch (d) {
    case 1: return check_lemma_4_5_dim<1>(X, y, w0, m);
    case 2: return check_lemma_4_5_dim<2>(X, y, w0, m);
    case 3: return check_lemma_4_5_dim<3>(X, y, w0, m);
    case 4: return check_lemma_4_5_dim<4>(X, y, w0, m);
    case 5: return check_lemma_4_5_dim<5>(X, y, w0, m);
    case 6: return check_lemma_4_5_dim<6>(X, y, w0, m);
    case 7: return check_lemma_4_5_dim<7>(X, y, w0, m);
    default: return check_lemma_4_5_dim<8>(X, y, w0, m);
  }
}

// Standard normals by Marsaglia and Tsang's ziggurat (J. Stat. Software 5(8), 2000):
// 128 layers of equal area under exp(-x^2/2); a draw is one 64-bit word (7 bits pick the
// layer, 53 bits a signed abscissa) and one comparison in about 98.8% of cases, the
// exact wedge test or the tail's exponential rejection otherwise. The table is
// computed once from its defining recurrence.
class Ziggurat {
 public:
  static constexpr int kLayers = 128;
  static constexpr double kR = 3.442619855899;           // the base layer's right edge
  static constexpr double kArea = 9.91256303526217e-3;   // every layer's area

  Ziggurat() {
    x_[0] = kArea / density(kR);   // the base layer's width (it carries the tail)
    x_[1] = kR;
    for (int i = 2; i < kLayers; ++i)
      x_[i] = std::sqrt(-2.0 * std::log(kArea / x_[i - 1] + density(x_[i - 1])));
    x_[kLayers] = 0.0;
    for (int i = 0; i <= kLayers; ++i) f_[i] = density(x_[i]);
  }

  double operator()(SplitMix64& rng) const {
    for (;;) {
      const std::uint64_t bits = rng.next();
      const int layer = static_cast<int>(bits & (kLayers - 1));
      const double u = static_cast<double>(bits >> 11) * 0x1.0p-52 - 1.0;   // [-1, 1)
      const double z = u * x_[layer];
      if (std::fabs(z) < x_[layer + 1]) return z;   // inside the layer above: accept
      if (layer == 0) return tail(rng, u < 0.0);
      const double y = f_[layer + 1] + rng.uniform() * (f_[layer] - f_[layer + 1]);
      if (y < density(z)) return z;                  // under the curve in the wedge
    }
  }

  static double density(double x) { return std::exp(-0.5 * x * x); }

 private:
  // Beyond kR: Marsaglia's exponential rejection for the normal tail.
  static double tail(SplitMix64& rng, bool negative) {
    double a, b;
    do {
      a = -std::log(1.0 - rng.uniform()) / kR;
      b = -std::log(1.0 - rng.uniform());
    } while (b + b < a * a);
    return negative ? -(kR + a) : kR + a;
  }

  double x_[kLayers + 1];
  double f_[kLayers + 1];
};

// Fills out[0..count) with standard normals.
inline void standard_normals(SplitMix64& rng, double* out, int count) {
  static const Ziggurat ziggurat;
  for (int i = 0; i < count; ++i) out[i] = ziggurat(rng);
}

}  // namespace bnfast::search
