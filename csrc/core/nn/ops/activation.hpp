// The activation phi of a layer, elementwise (docs/math/networks.md section 1): on double
// through the vectorised activate_array (nn/activation_array.hpp), on Dual through
// activate() (nn/activation.hpp), which carries phi'' along for the hvp.
#pragma once

#include "nn/layer.hpp"
#include "nn/ops/op.hpp"

namespace bnfast {

class ActivationOp : public OpOn<ActivationOp> {
 public:
  ActivationOp(std::int64_t width, Activation phi) : OpOn(width, width), phi_(phi) {}

  template <class T>
  void forward_on(Pass<T>& p, const T* Z, T* A);
  // dZ = dA * phi'(Z), phi' from Z and A = phi(Z).
  template <class T>
  T* backward_on(Pass<T>& p, const T* Z, const T* A, T* dA, T* dZ, bool need_din);
  // A tangent pass of tanh and sigmoid takes phi' from the kept outputs.
  bool tangent_pass() const override { return true; }

 private:
  Activation phi_;
};

}  // namespace bnfast
