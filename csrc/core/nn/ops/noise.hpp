// The noise of Santurkar et al.'s Algorithm 1 (docs/math/networks.md section 8) as an op:
// in a training evaluation with draws (Pass::noise), z <- s z + m with one (s, m) per
// sample and unit, a unit being a feature of a dense value or a channel of a
// convolutional one (its draw shared by all the channel's positions); in every other
// evaluation (no draws: loss, gradient, hvp, forward; inference) the identity. It follows
// a layer's normalization (noisy BN) or, without one, its dense or conv map (the paper's
// control). The draws are constants: backward, dz = s dz.
#pragma once

#include <cstdint>

#include "nn/ops/op.hpp"

namespace bnfast {

class NoiseOp : public OpOn<NoiseOp> {
 public:
  // Values of `channels` units of `positions` positions each (dense: one position);
  // layer: the layer's index, whose entry of BatchNoise holds the (m, channels) draws.
  NoiseOp(std::int64_t channels, std::int64_t positions, std::int64_t layer)
      : OpOn(channels * positions, channels * positions),
        channels_(channels),
        positions_(positions),
        layer_(layer) {}

  template <class T>
  void forward_on(Pass<T>& p, const T* Z, T* out);
  // dZ = s dout in place (without draws the identity's: dout unchanged); returns dout.
  template <class T>
  T* backward_on(Pass<T>& p, const T* Z, const T* out, T* dout, T* spare, bool need_din);
  // The identity in an hvp (no draws): its output rewritten whole.
  bool tangent_pass() const override { return true; }

 private:
  // Whether this evaluation has draws for the layer (train mode with BatchNoise).
  template <class T>
  bool drawn(const Pass<T>& p) const {
    return p.mode == Mode::train && p.noise && !p.noise->scale[layer_].empty();
  }

  std::int64_t channels_, positions_, layer_;
};

}  // namespace bnfast
