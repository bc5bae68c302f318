// Normalization, one unit for every kind (docs/math/networks.md sections 2, 7, 9, 14):
// BN over the batch with its scales (std, l1, l2, linf) and running statistics;
// LayerNorm and GroupNorm over each row's features (noisy BN's noise is the op after it,
// nn/ops/noise.hpp). forward_on and backward_on are its
// one pair of entry points: they pick the fast kernels (kernels/batchnorm.hpp: BN with
// the std scale on double) or the general block code (nn/normalize.hpp for BN's scales
// and Dual numbers, nn/row_normalize.hpp for LayerNorm and GroupNorm).
#pragma once

#include <cstdint>
#include <vector>

#include "nn/layer.hpp"
#include "nn/normalize.hpp"
#include "nn/ops/op.hpp"
#include "nn/row_normalize.hpp"

namespace bnfast {

class Normalization : public OpOn<Normalization> {
 public:
  // Values of `channels` channels of `positions` positions each (a dense layer: a
  // channel per feature, one position). layer: the layer's index (error messages);
  // gamma_at, beta_at: where gamma and beta (one per channel) start in the parameters
  // (-1: the spec's constants); running_at: where the running mean starts in the
  // running statistics (-1: none), the variance after it.
  Normalization(const NormSpec& spec, std::int64_t channels, std::int64_t positions,
                std::int64_t layer, std::int64_t gamma_at, std::int64_t beta_at,
                std::int64_t running_at)
      : OpOn(channels * positions, channels * positions),
        spec(spec),
        channels_(channels),
        positions_(positions),
        layer_(layer),
        gamma_at_(gamma_at),
        beta_at_(beta_at),
        running_at_(running_at) {}

  // Throws ZeroVarianceError, naming the layer, when eps == 0 and a scale is 0.
  template <class T>
  void forward_on(Pass<T>& p, const T* H, T* Z);
  template <class T>
  T* backward_on(Pass<T>& p, const T* H, const T* Z, T* dZ, T* dH, bool need_din);
  // Recomputes its whole Dual pass from inputs whose values are kept (its state is its own).
  bool tangent_pass() const override { return true; }

  // One update of the running statistics from the batch statistics of the last
  // train-mode forward on double (of m rows: m times positions values a channel);
  // `update` counts from 1.
  void update_running(double* running, std::int64_t update, std::int64_t m) const;
  // The batch statistics of the last train-mode forward on double times 2^e (mean) and
  // 2^2e (variance): that forward saw its input times 2^-e (Network::input_exponent).
  void scale_statistics(int e);

  const NormSpec spec;

 private:
  template <class T>
  struct State {
    std::vector<double> mean, var, invstd;  // batch kind, per channel
    BlockScale<T> scale;                    // batch kind, the general code
    RowStats<T> rows;                       // layer and group kinds
    std::vector<T> dgamma, dbeta;
  };
  template <class T>
  const T* gamma(Pass<T>& p) const;
  template <class T>
  const T* beta(Pass<T>& p) const;
  template <class T>
  void batch_forward(Pass<T>& p, const T* H, T* Z, State<T>& st);
  template <class T>
  void batch_backward(Pass<T>& p, const T* H, T* dZ, T* dH, State<T>& st);

  Dims dims(std::int64_t m) const { return Dims{m, channels_, positions_}; }

  std::int64_t channels_, positions_, layer_, gamma_at_, beta_at_, running_at_;
  PerType<State> state_;
};

}  // namespace bnfast
