// BN under each normalizing scale (docs/math/networks.md section 7), forward and
// backward, on a row-major (m, n) block H, one column per neuron, on double or Dual
// (nn/dual.hpp). Loops run over rows outside and columns inside, so the inner loops are
// contiguous. The network uses these for the lp norms and for Hessian-vector products;
// plain BN on double takes the kernels of kernels/batchnorm.hpp (the same maths,
// vectorised and threaded).
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/batchnorm.hpp"
#include "nn/dual.hpp"
#include "nn/layer.hpp"

namespace bnfast {

inline double sign_of(double x) { return x > 0 ? 1.0 : (x < 0 ? -1.0 : 0.0); }

// Per column: the batch mean, the scale s (formed for l1 and linf, whose q needs it),
// its square s2 (the biased variance for std), d = sqrt(s2 + eps), and for linf the
// first row of the largest |h|.
template <class T>
struct BlockScale {
  std::vector<T> mu, s, s2, d;
  std::vector<std::int64_t> k;

  // Throws ZeroVarianceError(column) when eps == 0 and a column's scale is 0.
  void compute(NormScale norm, const T* H, std::int64_t m, std::int64_t n, double eps) {
    using std::sqrt;
    const auto cols = static_cast<std::size_t>(n);
    mu.assign(cols, T(0.0));
    s.assign(cols, T(0.0));
    s2.assign(cols, T(0.0));
    d.resize(cols);
    k.assign(cols, 0);
    const T inv_m(1.0 / static_cast<double>(m));
    for (std::int64_t i = 0; i < m; ++i)
      for (std::int64_t j = 0; j < n; ++j) mu[j] += H[i * n + j];
    for (std::int64_t j = 0; j < n; ++j) mu[j] *= inv_m;
    switch (norm) {
      case NormScale::std:
        for (std::int64_t i = 0; i < m; ++i)
          for (std::int64_t j = 0; j < n; ++j) {
            const T r = H[i * n + j] - mu[j];
            s2[j] += r * r;
          }
        for (std::int64_t j = 0; j < n; ++j) s2[j] *= inv_m;
        break;
      case NormScale::l1:
        for (std::int64_t i = 0; i < m; ++i)
          for (std::int64_t j = 0; j < n; ++j)
            s[j] += T(sign_of(value(H[i * n + j]))) * H[i * n + j];
        for (std::int64_t j = 0; j < n; ++j) {
          s[j] *= inv_m;
          s2[j] = s[j] * s[j];
        }
        break;
      case NormScale::l2:
        for (std::int64_t i = 0; i < m; ++i)
          for (std::int64_t j = 0; j < n; ++j) s2[j] += H[i * n + j] * H[i * n + j];
        for (std::int64_t j = 0; j < n; ++j) s2[j] *= inv_m;
        break;
      case NormScale::linf:
        for (std::int64_t i = 1; i < m; ++i)
          for (std::int64_t j = 0; j < n; ++j)
            if (std::fabs(value(H[i * n + j])) > std::fabs(value(H[k[j] * n + j]))) k[j] = i;
        for (std::int64_t j = 0; j < n; ++j) {
          const T h = H[k[j] * n + j];
          s[j] = T(sign_of(value(h))) * h;
          s2[j] = s[j] * s[j];
        }
        break;
    }
    for (std::int64_t j = 0; j < n; ++j) {
      if (eps == 0 && value(s2[j]) == 0)
        throw ZeroVarianceError(j, "the normalizing scale is 0 and eps == 0");
      d[j] = sqrt(s2[j] + T(eps));
    }
  }
};

// Z = gamma (H - mu)/d + beta per column; `scale` keeps the statistics.
template <class T>
void block_forward(NormScale norm, const T* H, std::int64_t m, std::int64_t n, const T* gamma,
                   const T* beta, double eps, T* Z, BlockScale<T>& scale, std::vector<T>& g) {
  scale.compute(norm, H, m, n, eps);
  g.resize(static_cast<std::size_t>(n));
  for (std::int64_t j = 0; j < n; ++j) g[j] = gamma[j] / scale.d[j];
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j)
      Z[i * n + j] = g[j] * (H[i * n + j] - scale.mu[j]) + beta[j];
}

// dH from G = dLoss/dZ: dh_ij = gamma_j/d_j (G_ij - dbeta_j/m - dgamma_j q_ij), q of
// networks.md section 7; also dgamma = sum_i G zhat and dbeta = sum_i G. The statistics
// are recomputed from H (cheaper than keeping them per layer).
template <class T>
void block_backward(NormScale norm, const T* H, const T* G, std::int64_t m, std::int64_t n,
                    const T* gamma, double eps, T* dH, T* dgamma, T* dbeta,
                    BlockScale<T>& c, std::vector<T>& work) {
  c.compute(norm, H, m, n, eps);
  const auto cols = static_cast<std::size_t>(n);
  work.resize(4 * cols);
  T* inv_d = work.data();
  T* scale = inv_d + n;     // gamma / d
  T* centre = scale + n;    // dbeta / m
  T* factor = centre + n;   // dgamma times the column's constant part of q
  const T inv_m(1.0 / static_cast<double>(m));
  for (std::int64_t j = 0; j < n; ++j) {
    inv_d[j] = T(1.0) / c.d[j];
    dgamma[j] = T(0.0);
    dbeta[j] = T(0.0);
  }
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j) {
      const T g = G[i * n + j];
      dbeta[j] += g;
      dgamma[j] += g * ((H[i * n + j] - c.mu[j]) * inv_d[j]);
    }
  for (std::int64_t j = 0; j < n; ++j) {
    scale[j] = gamma[j] * inv_d[j];
    centre[j] = dbeta[j] * inv_m;
    switch (norm) {
      case NormScale::std:  // q = (h - mu)/(d m)
      case NormScale::l2:   // q = h/(d m)
        factor[j] = dgamma[j] * inv_d[j] * inv_m;
        break;
      case NormScale::l1:   // q = (s/d) sign(h)/m
        factor[j] = dgamma[j] * c.s[j] * inv_d[j] * inv_m;
        break;
      case NormScale::linf:  // q = (s/d) sign(h_k) at row k only
        factor[j] = dgamma[j] * c.s[j] * inv_d[j];
        break;
    }
  }
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j) {
      const T h = H[i * n + j];
      T q(0.0);
      switch (norm) {
        case NormScale::std: q = factor[j] * (h - c.mu[j]); break;
        case NormScale::l2: q = factor[j] * h; break;
        case NormScale::l1: q = factor[j] * T(sign_of(value(h))); break;
        case NormScale::linf:
          if (i == c.k[j]) q = factor[j] * T(sign_of(value(h)));
          break;
      }
      dH[i * n + j] = scale[j] * (G[i * n + j] - centre[j] - q);
    }
}

}  // namespace bnfast
