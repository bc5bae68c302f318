// Max and average pooling over windows of each channel (docs/math/networks.md section
// 17), PyTorch's max_pool/avg_pool without padding: the output size is
// (H - k_h) / s_h + 1 per axis (floor). Max pooling keeps, per output, the first maximal
// value of its window in row-major order (a NaN is maximal; a later NaN replaces an
// earlier one, as PyTorch's CPU kernel does), and its backward sends the gradient there.
// Average pooling divides the window's sum by k_h k_w. 1-D pooling is height 1.
#pragma once

#include <cstdint>
#include <vector>

#include "nn/ops/conv.hpp"
#include "nn/ops/op.hpp"

namespace bnfast {

class Pool : public OpOn<Pool> {
 public:
  Pool(const Window& w, bool max) : OpOn(w.in_size(), w.channels * w.out_positions()),
                                    win_(w), max_(max) {}

  template <class T>
  void forward_on(Pass<T>& p, const T* A, T* out);
  template <class T>
  T* backward_on(Pass<T>& p, const T* A, const T* out, T* dout, T* dA, bool need_din);
  // Rewrites its outputs (and argmax) whole from inputs whose values are kept.
  bool tangent_pass() const override { return true; }

 private:
  template <class T>
  struct State {
    std::vector<std::int64_t> argmax;  // max pooling: per output, its input index
  };
  Window win_;
  bool max_;
  PerType<State> state_;
};

}  // namespace bnfast
