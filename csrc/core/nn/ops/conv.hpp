// A convolution (docs/math/networks.md section 17): out[i, o, y, x] = b[o] + sum over c,
// a, e of W[o, c, a, e] A[i, c, y s_h - p_h + a, x s_w - p_w + e] (PyTorch's conv1d and
// conv2d: a cross-correlation with zero padding), as one product of the unfolded input
// (im2col: rows = (sample, output position), columns = (channel, kernel offset)) with
// W^T. A 1-D convolution is the 2-D one with height 1.
#pragma once

#include <cstdint>

#include "nn/ops/op.hpp"

namespace bnfast {

// The geometry of a 2-D window op on (C, H, W) inputs: kernel, stride, padding per axis
// and the output size (H_out = (H + 2 p_h - k_h) / s_h + 1, the same for W).
struct Window {
  std::int64_t channels, height, width;
  std::int64_t kh, kw, sh, sw, ph, pw;
  std::int64_t out_height() const { return (height + 2 * ph - kh) / sh + 1; }
  std::int64_t out_width() const { return (width + 2 * pw - kw) / sw + 1; }
  std::int64_t out_positions() const { return out_height() * out_width(); }
  std::int64_t in_size() const { return channels * height * width; }
};

class Conv : public OpOn<Conv> {
 public:
  Conv(const Window& w, std::int64_t out_channels, std::int64_t w_at, std::int64_t b_at)
      : OpOn(w.in_size(), out_channels * w.out_positions()),
        win_(w),
        out_channels_(out_channels),
        w_at_(w_at),
        b_at_(b_at) {}

  template <class T>
  void forward_on(Pass<T>& p, const T* A, T* out);
  // dW = (cols^T dY)^T, db = sums of dY, dA = col2im(dY W).
  template <class T>
  T* backward_on(Pass<T>& p, const T* A, const T* out, T* dout, T* dA, bool need_din);
  // Its backward reuses the forward's product rows and a block of dcols: a tangent-only
  // product would leave their values stale.
  bool tangent_pass() const override { return false; }

 private:
  template <class T>
  struct State {
    AlignedVector<T> cols;  // (m P, K): the unfolded input
    AlignedVector<T> rows;  // (m P, O): the product, or the output gradient in that order
    AlignedVector<T> dcols; // (m P, K)
    AlignedVector<T> dw_t;  // (K, O): dW^T
  };
  Window win_;
  std::int64_t out_channels_, w_at_, b_at_;
  PerType<State> state_;
};

}  // namespace bnfast
