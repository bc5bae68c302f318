// The join that ends a residual block (docs/math/networks.md section 10): S = A + X_b,
// X_b the value the block started from. Backward, dS reaches A unchanged and is kept
// for X_b, whose gradient the network completes with add_skip once the op that read
// X_b has given its share.
#pragma once

#include <cstdint>

#include "nn/ops/op.hpp"

namespace bnfast {

class ResidualJoin : public OpOn<ResidualJoin> {
 public:
  // from: the index of the value the block started from (Pass::values).
  ResidualJoin(std::int64_t width, std::int64_t from) : OpOn(width, width), from(from) {}

  template <class T>
  void forward_on(Pass<T>& p, const T* A, T* S);
  template <class T>
  T* backward_on(Pass<T>& p, const T* A, const T* S, T* dS, T* spare, bool need_din);
  // dX_b += the kept dS (m, width).
  template <class T>
  void add_skip(const Pass<T>& p, T* dXb);
  // add_skip adds into the gradient another op wrote, whose value part a tangent pass
  // may have kept (it would be added twice).
  bool tangent_pass() const override { return false; }

  const std::int64_t from;

 private:
  template <class T>
  struct Kept {
    AlignedVector<T> dS;
  };
  PerType<Kept> kept_;
};

}  // namespace bnfast
