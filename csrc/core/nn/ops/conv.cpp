#include "nn/ops/conv.hpp"

#include <algorithm>

#include "nn/ops/product.hpp"

namespace bnfast {

using i64 = std::int64_t;

namespace {

// f(row, column, input index or -1 for the zero padding) over the unfolded input of m
// samples: row = sample * P + output position, column = (channel, kernel row, kernel
// column), row-major.
template <class F>
void unfold(const Window& w, i64 m, F&& f) {
  const i64 Ho = w.out_height(), Wo = w.out_width(), P = Ho * Wo;
  const i64 K = w.channels * w.kh * w.kw;
  for (i64 i = 0; i < m; ++i)
    for (i64 oy = 0; oy < Ho; ++oy)
      for (i64 ox = 0; ox < Wo; ++ox) {
        const i64 row = i * P + oy * Wo + ox;
        for (i64 c = 0; c < w.channels; ++c)
          for (i64 a = 0; a < w.kh; ++a) {
            const i64 y = oy * w.sh - w.ph + a;
            for (i64 e = 0; e < w.kw; ++e) {
              const i64 x = ox * w.sw - w.pw + e;
              const bool inside = y >= 0 && y < w.height && x >= 0 && x < w.width;
              f(row * K + (c * w.kh + a) * w.kw + e,
                inside ? ((i * w.channels + c) * w.height + y) * w.width + x : -1);
            }
          }
      }
}

}  // namespace

template <class T>
void Conv::forward_on(Pass<T>& p, const T* A, T* out) {
  State<T>& st = state_.get<T>();
  const i64 m = p.m, O = out_channels_, K = win_.channels * win_.kh * win_.kw;
  const i64 P = win_.out_positions();
  st.cols.resize(static_cast<std::size_t>(m * P * K));
  st.rows.resize(static_cast<std::size_t>(m * P * O));
  T* cols = st.cols.data();
  unfold(win_, m, [&](i64 at, i64 src) { cols[at] = src >= 0 ? A[src] : T(0.0); });
  const T* W = p.params + w_at_;  // (O, K)
  p.w_t.resize(static_cast<std::size_t>(K * O));
  for (i64 k = 0; k < K; ++k)
    for (i64 o = 0; o < O; ++o) p.w_t[k * O + o] = W[o * K + k];
  product(p, m * P, O, K, cols, K, 1, p.w_t.data(), O, st.rows.data(), O, false);
  const T* rows = st.rows.data();
  for (i64 i = 0; i < m; ++i)
    for (i64 o = 0; o < O; ++o) {
      const T bias = b_at_ >= 0 ? p.params[b_at_ + o] : T(0.0);
      T* y = out + (i * O + o) * P;
      for (i64 q = 0; q < P; ++q) y[q] = rows[(i * P + q) * O + o] + bias;
    }
}

template <class T>
T* Conv::backward_on(Pass<T>& p, const T* A, const T*, T* dout, T* dA, bool need_din) {
  State<T>& st = state_.get<T>();
  const i64 m = p.m, O = out_channels_, K = win_.channels * win_.kh * win_.kw;
  const i64 P = win_.out_positions();
  T* dy = st.rows.data();  // (m P, O): dout in the product's order
  for (i64 i = 0; i < m; ++i)
    for (i64 o = 0; o < O; ++o)
      for (i64 q = 0; q < P; ++q) dy[(i * P + q) * O + o] = dout[(i * O + o) * P + q];
  product(p, O, K, m * P, dy, 1, O, st.cols.data(), K, p.grad + w_at_, K, false);  // dy^T cols
  if (b_at_ >= 0) {
    T* db = p.grad + b_at_;
    std::fill(db, db + O, T(0.0));
    for (i64 i = 0; i < m; ++i)
      for (i64 o = 0; o < O; ++o)
        for (i64 q = 0; q < P; ++q) db[o] += dout[(i * O + o) * P + q];
  }
  if (!need_din) return nullptr;
  st.dcols.resize(static_cast<std::size_t>(m * P * K));
  product(p, m * P, K, O, dy, O, 1, cache_line_aligned(p.params + w_at_, O * K, p.w), K,
          st.dcols.data(), K, false);  // dy W
  std::fill(dA, dA + m * win_.in_size(), T(0.0));
  const T* dcols = st.dcols.data();
  unfold(win_, m, [&](i64 at, i64 src) {
    if (src >= 0) dA[src] += dcols[at];
  });
  return dA;
}

BNFAST_OP_INSTANTIATE(Conv);

}  // namespace bnfast
