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

// X (m, d) row-major, y (m,), w0 (d,); 1 <= d <= kMaxDim, d + 1 <= m <= kMaxSamples.
inline Check check_lemma_4_5(const double* X, const double* y, const double* w0, int m,
                             int d) {
  constexpr double kPi = 3.141592653589793;
  double mean_x[kMaxDim] = {}, mean_y = 0.0;
  for (int i = 0; i < m; ++i) {
    for (int j = 0; j < d; ++j) mean_x[j] += X[i * d + j];
    mean_y += y[i];
  }
  for (int j = 0; j < d; ++j) mean_x[j] /= m;
  mean_y /= m;
  // Gram matrices and right-hand sides, raw (W*) and centred (a).
  double G[kMaxDim * kMaxDim] = {}, Gc[kMaxDim * kMaxDim] = {};
  double w_star[kMaxDim] = {}, a[kMaxDim] = {};
  for (int i = 0; i < m; ++i) {
    const double* x = X + i * d;
    const double yc = y[i] - mean_y;
    for (int j = 0; j < d; ++j) {
      const double xcj = x[j] - mean_x[j];
      w_star[j] += x[j] * y[i];
      a[j] += xcj * yc;
      for (int k = 0; k <= j; ++k) {
        G[j * d + k] += x[j] * x[k];
        Gc[j * d + k] += xcj * (x[k] - mean_x[k]);
      }
    }
  }
  for (int j = 0; j < d; ++j)
    for (int k = 0; k < j; ++k) {
      G[k * d + j] = G[j * d + k];
      Gc[k * d + j] = Gc[j * d + k];
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

// Two independent standard normals from the generator (Marsaglia's polar method: no
// trigonometric functions; about 1.27 pairs of uniforms per pair of normals).
inline void normal_pair(SplitMix64& rng, double& first, double& second) {
  double u, v, s;
  do {
    u = 2.0 * rng.uniform() - 1.0;
    v = 2.0 * rng.uniform() - 1.0;
    s = u * u + v * v;
  } while (s >= 1.0 || s == 0.0);
  const double f = std::sqrt(-2.0 * std::log(s) / s);
  first = u * f;
  second = v * f;
}

// Fills out[0..count) with standard normals.
inline void standard_normals(SplitMix64& rng, double* out, int count) {
  int i = 0;
  for (; i + 1 < count; i += 2) normal_pair(rng, out[i], out[i + 1]);
  if (i < count) {
    double spare;
    normal_pair(rng, out[i], spare);
  }
}

}  // namespace bnfast::search
