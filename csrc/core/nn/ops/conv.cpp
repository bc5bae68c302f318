#include "nn/ops/conv.hpp"

#include <algorithm>

#include "nn/ops/product.hpp"
#include "runtime/parallel.hpp"

namespace bnfast {

using i64 = std::int64_t;

namespace {

// Where the kernel row of output column ox reads: kernel column e at input column x0 + e,
// inside the input for e in [e0, e1) (the rest read the zero padding).
struct Span {
  i64 x0, e0, e1;
};
Span inside(const Window& w, i64 ox) {
  const i64 x0 = ox * w.sw - w.pw;
  return {x0, std::max<i64>(0, -x0), std::min<i64>(w.kw, w.width - x0)};
}

// f(kernel row of the unfolded sample (kw entries), input row, span) over the output
// positions and (channel, kernel row) pairs of one sample, in the order of the unfolded
// row: (output position, channel, kernel row); input row null for a kernel row in the
// zero padding.
template <class R, class U, class F>
void unfold_rows(const Window& w, U* sample, R* unfolded, F&& f) {
  const i64 Ho = w.out_height(), Wo = w.out_width();
  const i64 K = w.channels * w.kh * w.kw;
  for (i64 oy = 0; oy < Ho; ++oy)
    for (i64 ox = 0; ox < Wo; ++ox) {
      R* row = unfolded + (oy * Wo + ox) * K;
      const Span sp = inside(w, ox);
      for (i64 c = 0; c < w.channels; ++c)
        for (i64 a = 0; a < w.kh; ++a) {
          const i64 y = oy * w.sh - w.ph + a;
          U* in = y >= 0 && y < w.height ? sample + (c * w.height + y) * w.width : nullptr;
          f(row + (c * w.kh + a) * w.kw, in, sp);
        }
    }
}

}  // namespace

template <class T>
void Conv::forward_on(Pass<T>& p, const T* A, T* out) {
  State<T>& st = state_.get<T>();
  const i64 m = p.m, O = out_channels_, K = win_.channels * win_.kh * win_.kw;
  const i64 P = win_.out_positions(), in = win_.in_size();
  st.cols.resize(static_cast<std::size_t>(m * P * K));
  st.rows.resize(static_cast<std::size_t>(m * P * O));
  T* cols = st.cols.data();
  // im2col: rows = (sample, output position), columns = (channel, kernel row, kernel column)
  split_row_ranges(m, P * K, [&](i64 i0, i64 i1) {
    for (i64 i = i0; i < i1; ++i)
      unfold_rows(win_, A + i * in, cols + i * P * K, [&](T* r, const T* x, Span sp) {
        if (!x) sp.e1 = 0;
        for (i64 e = 0; e < win_.kw; ++e) r[e] = e >= sp.e0 && e < sp.e1 ? x[sp.x0 + e] : T(0.0);
      });
  });
  const T* W = p.params + w_at_;  // (O, K)
  p.w_t.resize(static_cast<std::size_t>(K * O));
  for (i64 k = 0; k < K; ++k)
    for (i64 o = 0; o < O; ++o) p.w_t[k * O + o] = W[o * K + k];
  product(p, m * P, O, K, cols, K, 1, p.w_t.data(), O, st.rows.data(), O, false);
  const T* rows = st.rows.data();
  split_row_ranges(m, P * O, [&](i64 i0, i64 i1) {
    for (i64 i = i0; i < i1; ++i)  // (P, O) -> (O, P), plus the bias
      for (i64 o = 0; o < O; ++o) {
        const T bias = b_at_ >= 0 ? p.params[b_at_ + o] : T(0.0);
        const T* r = rows + i * P * O + o;
        T* y = out + (i * O + o) * P;
        for (i64 q = 0; q < P; ++q) y[q] = r[q * O] + bias;
      }
  });
}

template <class T>
T* Conv::backward_on(Pass<T>& p, const T* A, const T*, T* dout, T* dA, bool need_din) {
  State<T>& st = state_.get<T>();
  const i64 m = p.m, O = out_channels_, K = win_.channels * win_.kh * win_.kw;
  const i64 P = win_.out_positions(), in = win_.in_size();
  T* dy = st.rows.data();  // (m P, O): dout in the product's order
  split_row_ranges(m, P * O, [&](i64 i0, i64 i1) {
    for (i64 i = i0; i < i1; ++i)
      for (i64 o = 0; o < O; ++o) {
        const T* d = dout + (i * O + o) * P;
        T* r = dy + i * P * O + o;
        for (i64 q = 0; q < P; ++q) r[q * O] = d[q];
      }
  });
  // dW^T = cols^T dy (each entry the same products in the same order as dy^T cols, so
  // the same bits): B is then dy, not the larger unfolded input, which the product on
  // Dual numbers copies into values and tangents.
  st.dw_t.resize(static_cast<std::size_t>(K * O));
  product(p, K, O, m * P, st.cols.data(), 1, K, dy, O, st.dw_t.data(), O, false);
  for (i64 o = 0; o < O; ++o)
    for (i64 k = 0; k < K; ++k) p.grad[w_at_ + o * K + k] = st.dw_t[k * O + o];
  if (b_at_ >= 0) {
    T* db = p.grad + b_at_;
    std::fill(db, db + O, T(0.0));
    for (i64 i = 0; i < m; ++i)
      for (i64 o = 0; o < O; ++o)
        for (i64 q = 0; q < P; ++q) db[o] += dout[(i * O + o) * P + q];
  }
  if (!need_din) return nullptr;
  // dcols = dy W and col2im by blocks of samples: a block's dcols (~512 KB) is still in
  // cache when col2im reads it back. Each sample's entries are added in the unfolded
  // order (the sums' order, so their bits, depend neither on the blocks nor the split).
  constexpr std::size_t kBlockBytes = std::size_t{1} << 19;
  const i64 block = std::max<i64>(1, static_cast<i64>(kBlockBytes / sizeof(T)) / (P * K));
  st.dcols.resize(static_cast<std::size_t>(std::min(m, block) * P * K));
  const T* W = cache_line_aligned(p.params + w_at_, O * K, p.w);
  const T* dcols = st.dcols.data();
  for (i64 b0 = 0; b0 < m; b0 += block) {
    const i64 b1 = std::min(m, b0 + block);
    product(p, (b1 - b0) * P, K, O, dy + b0 * P * O, O, 1, W, K, st.dcols.data(), K, false);
    split_row_ranges(b1 - b0, P * K, [&](i64 i0, i64 i1) {
      std::fill(dA + (b0 + i0) * in, dA + (b0 + i1) * in, T(0.0));
      for (i64 i = i0; i < i1; ++i)
        unfold_rows(win_, dA + (b0 + i) * in, dcols + i * P * K, [&](const T* r, T* x, Span sp) {
          if (x)
            for (i64 e = sp.e0; e < sp.e1; ++e) x[sp.x0 + e] += r[e];
        });
    });
  }
  return dA;
}

BNFAST_OP_INSTANTIATE(Conv);

}  // namespace bnfast
