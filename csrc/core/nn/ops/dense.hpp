// The dense map H = A W^T + b of a layer (docs/math/networks.md section 1), W (out, in)
// and b (out,) read from the flat parameter vector at the layer's offsets.
#pragma once

#include <cstdint>

#include "nn/ops/op.hpp"

namespace bnfast {

class Dense : public OpOn<Dense> {
 public:
  // w_at, b_at: where W and b start in the parameters (b_at -1: no bias).
  Dense(std::int64_t in, std::int64_t out, std::int64_t w_at, std::int64_t b_at)
      : OpOn(in, out), w_at_(w_at), b_at_(b_at) {}

  template <class T>
  void forward_on(Pass<T>& p, const T* A, T* H);
  // dW = dH^T A, db = column sums of dH, dA = dH W.
  template <class T>
  T* backward_on(Pass<T>& p, const T* A, const T* H, T* dH, T* dA, bool need_din);
  // A tangent pass skips the products of primal values and copies only the bias tangents.
  bool tangent_pass() const override { return true; }

 private:
  std::int64_t w_at_, b_at_;
};

}  // namespace bnfast
