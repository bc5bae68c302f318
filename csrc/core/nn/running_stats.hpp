// The running statistics of a batch normalization during training, written once for the
// general step (nn/ops/normalization.cpp) and the one-neuron step (nn/one_neuron_train.cpp).
// After update number `update` (from 1) on a batch of m rows:
//   r_mean <- (1 - f) r_mean + f mean,   r_var <- (1 - f) r_var + f (var * bessel)
// with f = 1 / update for a cumulative average, else the momentum, and bessel = m/(m-1)
// for BN (the unbiased variance, as PyTorch and Ioffe-Szegedy keep it), 1 for the lp
// norms (their s^2).
#pragma once

#include <cstdint>

#include "nn/layer.hpp"

namespace bnfast {

inline double running_factor(const NormSpec& N, std::int64_t update) {
  return N.cumulative ? 1.0 / static_cast<double>(update) : N.momentum;
}

inline double running_bessel(const NormSpec& N, std::int64_t m) {
  return N.scale == NormScale::std ? static_cast<double>(m) / static_cast<double>(m - 1) : 1.0;
}

inline void running_update(double& r_mean, double& r_var, double mean, double var, double f,
                           double bessel) {
  r_mean = (1.0 - f) * r_mean + f * mean;
  r_var = (1.0 - f) * r_var + f * (var * bessel);
}

}  // namespace bnfast
