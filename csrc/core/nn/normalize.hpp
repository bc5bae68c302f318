// One BN column under each normalizing scale (docs/math/networks.md section 7), forward
// and backward, on double or Dual (nn/dual.hpp). The network uses these for the lp
// norms and for Hessian-vector products; plain BN on double takes the kernels of
// kernels/batchnorm.hpp instead (the same maths, vectorised over columns).
#pragma once

#include <cstdint>

#include "kernels/batchnorm.hpp"
#include "nn/dual.hpp"
#include "nn/layer.hpp"

namespace bnfast {

template <class T>
struct ColumnScale {
  T mu;           // the batch mean
  T s{0.0};       // the scale (not formed for std and l2, whose q needs only s2)
  T s2;           // its square: the biased variance for std
  T d;            // sqrt(s2 + eps)
  std::int64_t k = 0;  // linf: the first index of the largest |h_i|
};

inline double sign_of(double x) { return x > 0 ? 1.0 : (x < 0 ? -1.0 : 0.0); }

// Throws ZeroVarianceError(column) when eps == 0 and the scale is 0.
template <class T>
ColumnScale<T> column_scale(Norm norm, const T* h, std::int64_t m, double eps,
                            std::int64_t column) {
  using std::sqrt;
  ColumnScale<T> c;
  const double inv_m = 1.0 / static_cast<double>(m);
  T sum(0.0);
  for (std::int64_t i = 0; i < m; ++i) sum += h[i];
  c.mu = sum * T(inv_m);
  T acc(0.0);
  switch (norm) {
    case Norm::std:
      for (std::int64_t i = 0; i < m; ++i) {
        const T r = h[i] - c.mu;
        acc += r * r;
      }
      c.s2 = acc * T(inv_m);
      break;
    case Norm::l1:
      for (std::int64_t i = 0; i < m; ++i) acc += T(sign_of(value(h[i]))) * h[i];
      c.s = acc * T(inv_m);
      c.s2 = c.s * c.s;
      break;
    case Norm::l2:
      for (std::int64_t i = 0; i < m; ++i) acc += h[i] * h[i];
      c.s2 = acc * T(inv_m);
      break;
    case Norm::linf:
      for (std::int64_t i = 1; i < m; ++i)
        if (std::fabs(value(h[i])) > std::fabs(value(h[c.k]))) c.k = i;
      c.s = T(sign_of(value(h[c.k]))) * h[c.k];
      c.s2 = c.s * c.s;
      break;
  }
  if (eps == 0 && value(c.s2) == 0)
    throw ZeroVarianceError(column, "the normalizing scale is 0 and eps == 0");
  c.d = sqrt(c.s2 + T(eps));
  return c;
}

// z = gamma (h - mu)/d + beta over one column of m values; returns the scale.
template <class T>
ColumnScale<T> column_forward(Norm norm, const T* h, std::int64_t m, T gamma, T beta,
                              double eps, std::int64_t column, T* z) {
  const ColumnScale<T> c = column_scale(norm, h, m, eps, column);
  const T g = gamma / c.d;
  for (std::int64_t i = 0; i < m; ++i) z[i] = g * (h[i] - c.mu) + beta;
  return c;
}

// dh from g = dLoss/dz: dh_j = gamma/d (g_j - dbeta/m - dgamma q_j), with q_j of
// networks.md section 7; also dgamma = sum g zhat and dbeta = sum g.
template <class T>
void column_backward(Norm norm, const T* h, const T* g, std::int64_t m, T gamma, double eps,
                     std::int64_t column, T* dh, T& dgamma, T& dbeta) {
  const ColumnScale<T> c = column_scale(norm, h, m, eps, column);
  const T inv_d = T(1.0) / c.d;
  const T inv_m(1.0 / static_cast<double>(m));
  dgamma = T(0.0);
  dbeta = T(0.0);
  for (std::int64_t i = 0; i < m; ++i) {
    dbeta += g[i];
    dgamma += g[i] * ((h[i] - c.mu) * inv_d);
  }
  const T scale = gamma * inv_d;
  const T centre = dbeta * inv_m;
  const T s_over_d = c.s * inv_d;
  for (std::int64_t j = 0; j < m; ++j) {
    T q(0.0);
    switch (norm) {
      case Norm::std: q = (h[j] - c.mu) * inv_d * inv_m; break;
      case Norm::l1: q = s_over_d * T(sign_of(value(h[j]))) * inv_m; break;
      case Norm::l2: q = h[j] * inv_d * inv_m; break;
      case Norm::linf:
        if (j == c.k) q = s_over_d * T(sign_of(value(h[j])));
        break;
    }
    dh[j] = scale * (g[j] - centre - dgamma * q);
  }
}

}  // namespace bnfast
