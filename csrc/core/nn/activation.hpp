// The activation functions phi and their derivatives, elementwise.
#pragma once

#include <cmath>

#include "nn/layer.hpp"

namespace bnfast {

inline double activate(Activation a, double z) {
  switch (a) {
    case Activation::sigmoid:
      // Both branches avoid exp overflow for large |z|.
      if (z >= 0) return 1.0 / (1.0 + std::exp(-z));
      else {
        const double e = std::exp(z);
        return e / (1.0 + e);
      }
    case Activation::tanh:
      return std::tanh(z);
    case Activation::relu:
      return z > 0 ? z : 0.0;
    case Activation::identity:
      break;
  }
  return z;
}

// phi'(z), from z and a = phi(z).
inline double derivative(Activation act, double z, double a) {
  switch (act) {
    case Activation::sigmoid:
      return a * (1.0 - a);
    case Activation::tanh:
      return 1.0 - a * a;
    case Activation::relu:
      return z > 0 ? 1.0 : 0.0;
    case Activation::identity:
      break;
  }
  return 1.0;
}

}  // namespace bnfast
