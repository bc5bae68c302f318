// The activation functions phi and their derivatives, elementwise, on double or Dual
// (nn/dual.hpp: on Dual, derivative() carries phi'' along, which the hvp needs).
#pragma once

#include <cmath>

#include "nn/dual.hpp"
#include "nn/layer.hpp"

namespace bnfast {

template <class T>
T activate(Activation a, T z) {
  using std::exp;
  using std::tanh;
  switch (a) {
    case Activation::sigmoid:
      // Both branches avoid exp overflow for large |z|.
      if (value(z) >= 0) return T(1.0) / (T(1.0) + exp(-z));
      else {
        const T e = exp(z);
        return e / (T(1.0) + e);
      }
    case Activation::tanh:
      return tanh(z);
    case Activation::relu:  // NaN stays NaN
      return (value(z) > 0 || std::isnan(value(z))) ? z : T(0.0);
    case Activation::identity:
      break;
  }
  return z;
}

// phi'(z), from z and a = phi(z).
template <class T>
T derivative(Activation act, T z, T a) {
  switch (act) {
    case Activation::sigmoid:
      return a * (T(1.0) - a);
    case Activation::tanh:
      return T(1.0) - a * a;
    case Activation::relu:  // 1 or 0 without a branch (z > 0 is a coin flip on real data)
      return T(static_cast<double>(value(z) > 0));
    case Activation::identity:
      break;
  }
  return T(1.0);
}

// dz = dout phi'(z), the backward of phi. ReLU's is PyTorch's threshold_backward: dout
// where z > 0 or z is NaN, exactly 0 (not 0 dout) where z <= 0, so a NaN or inf coming
// from downstream stops at a unit that is off, as in PyTorch. On finite doubles that is
// dout phi'(z) but for the sign of a zero; on Dual numbers the tangent where z > 0 is
// dout's (the product's was dout.d 1 + dout.v 0, NaN for an infinite dout.v), as
// PyTorch's double backward and the reference give.
template <class T>
T chain(Activation act, T dout, T z, T a) {
  if (act == Activation::relu) return value(z) <= 0 ? T(0.0) : dout;
  return dout * derivative(act, z, a);
}

}  // namespace bnfast
