// The bound HessianAt (nn/hessian_at.hpp), made in bind_nn.cpp from a network and used
// as the operator of a Lanczos process in bind_linalg.cpp.
#pragma once

#include <memory>
#include <mutex>

#include "nn/hessian_at.hpp"

namespace bnfast::bind {

struct BoundHessianAt {
  std::unique_ptr<HessianAt> at;
  std::mutex busy;  // one product at a time (each runs with the GIL released)

  void apply(const double* v, double* hv) {
    const std::lock_guard<std::mutex> lock(busy);
    at->apply(v, hv);
  }
};

}  // namespace bnfast::bind
