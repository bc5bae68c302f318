// LayerNorm and GroupNorm on a row-major (N, C, S) block (docs/math/networks.md section
// 14): each sample's C channels (of S positions each; S = 1 for a dense layer, a channel
// per feature) split into G contiguous groups, each (sample, group) normalized by its own
// mean and biased variance over its C/G channels and their positions, then scaled and
// shifted per channel:  z = gamma_c (h - mu_ig) / sqrt(var_ig + eps) + beta_c.
// LayerNorm is G = 1. On double or Dual (nn/dual.hpp). The statistics are per sample, so
// training and inference compute the same thing.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/batchnorm.hpp"
#include "nn/dual.hpp"

namespace bnfast {

// What the backward needs of a forward: zhat (N, C, S) and 1/sqrt(var + eps) per
// (sample, group).
template <class T>
struct RowStats {
  std::vector<T> zhat, inv_d;
};

// Throws ZeroVarianceError(sample) when eps == 0 and a group of a sample is constant.
template <class T>
void row_forward(const T* H, const Dims& dims, std::int64_t groups, const T* gamma,
                 const T* beta, double eps, T* Z, RowStats<T>& st) {
  using std::sqrt;
  const std::int64_t m = dims.n, S = dims.s, n = dims.c * S;  // n: values per sample
  const std::int64_t per_group = dims.c / groups, c = per_group * S;
  const T inv_c(1.0 / static_cast<double>(c));
  st.zhat.resize(static_cast<std::size_t>(m * n));
  st.inv_d.resize(static_cast<std::size_t>(m * groups));
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t g = 0; g < groups; ++g) {
      const std::int64_t at = i * n + g * c;
      T mu(0.0), var(0.0);
      for (std::int64_t j = 0; j < c; ++j) mu += H[at + j];
      mu *= inv_c;
      for (std::int64_t j = 0; j < c; ++j) {
        const T r = H[at + j] - mu;
        var += r * r;
      }
      var *= inv_c;
      if (eps == 0 && value(var) == 0)
        throw ZeroVarianceError(i, "sample " + std::to_string(i) + ", group " +
                                       std::to_string(g) +
                                       ": the features are constant and eps == 0, so the "
                                       "normalization divides by zero");
      const T inv = T(1.0) / sqrt(var + T(eps));
      st.inv_d[i * groups + g] = inv;
      for (std::int64_t j = 0; j < c; ++j) {
        const std::int64_t ch = g * per_group + j / S;
        const T zhat = (H[at + j] - mu) * inv;
        st.zhat[at + j] = zhat;
        Z[at + j] = gamma[ch] * zhat + beta[ch];
      }
    }
}

// dH from G = dLoss/dZ: with g = G gamma per channel, per (sample, group)
//   dh = (g - mean(g) - zhat mean(g zhat)) / sqrt(var + eps);
// also dgamma = sum G zhat and dbeta = sum G per channel (C,).
template <class T>
void row_backward(const T* G, const Dims& dims, std::int64_t groups, const T* gamma,
                  const RowStats<T>& st, T* dH, T* dgamma, T* dbeta) {
  const std::int64_t m = dims.n, S = dims.s, n = dims.c * S;
  const std::int64_t per_group = dims.c / groups, c = per_group * S;
  const T inv_c(1.0 / static_cast<double>(c));
  for (std::int64_t j = 0; j < dims.c; ++j) dgamma[j] = dbeta[j] = T(0.0);
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t g = 0; g < groups; ++g) {
      const std::int64_t at = i * n + g * c;
      T mean_g(0.0), mean_gz(0.0);
      for (std::int64_t j = 0; j < c; ++j) {
        const std::int64_t ch = g * per_group + j / S;
        const T gz = G[at + j] * gamma[ch];
        dgamma[ch] += G[at + j] * st.zhat[at + j];
        dbeta[ch] += G[at + j];
        mean_g += gz;
        mean_gz += gz * st.zhat[at + j];
      }
      mean_g *= inv_c;
      mean_gz *= inv_c;
      const T inv = st.inv_d[i * groups + g];
      for (std::int64_t j = 0; j < c; ++j) {
        const std::int64_t ch = g * per_group + j / S;
        dH[at + j] = inv * (G[at + j] * gamma[ch] - mean_g - st.zhat[at + j] * mean_gz);
      }
    }
}

}  // namespace bnfast
