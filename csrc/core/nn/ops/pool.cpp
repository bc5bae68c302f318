#include "nn/ops/pool.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "runtime/parallel.hpp"

namespace bnfast {

using i64 = std::int64_t;

namespace {

std::uint64_t bits(double x) {
  std::uint64_t b;
  std::memcpy(&b, &x, sizeof b);
  return b;
}
double from_bits(std::uint64_t b) {
  double x;
  std::memcpy(&x, &b, sizeof x);
  return x;
}

// A max pooling candidate: its value and input index.
struct Best {
  double v;
  i64 at;
  template <class T>
  static Best of(const T* A, i64 k) {
    return {value(A[k]), k};
  }
};
// The winner of an earlier candidate x and a later one y: y when y > x or y is NaN. By
// bitwise selects, not branches (the compiler turns a ?: back into jumps): which entry
// wins is a coin flip on real data.
inline Best later(Best x, Best y) {
  const std::uint64_t take = 0 - static_cast<std::uint64_t>((y.v > x.v) | (y.v != y.v));
  return {from_bits((bits(y.v) & take) | (bits(x.v) & ~take)),
          static_cast<i64>((static_cast<std::uint64_t>(y.at) & take) |
                           (static_cast<std::uint64_t>(x.at) & ~take))};
}

// f(output index, first input index of the window) over every window of the samples
// [i0, i1).
template <class F>
void windows(const Window& w, i64 i0, i64 i1, F&& f) {
  const i64 Ho = w.out_height(), Wo = w.out_width();
  for (i64 i = i0; i < i1; ++i)
    for (i64 c = 0; c < w.channels; ++c)
      for (i64 oy = 0; oy < Ho; ++oy)
        for (i64 ox = 0; ox < Wo; ++ox)
          f(((i * w.channels + c) * Ho + oy) * Wo + ox,
            ((i * w.channels + c) * w.height + oy * w.sh) * w.width + ox * w.sw);
}

}  // namespace

template <class T>
void Pool::forward_on(Pass<T>& p, const T* A, T* out) {
  if (!max_) {
    const T count(static_cast<double>(win_.kh * win_.kw));
    split_row_ranges(p.m, in_width, [&](i64 i0, i64 i1) {
      windows(win_, i0, i1, [&](i64 o, i64 first) {
        T sum(0.0);
        for (i64 a = 0; a < win_.kh; ++a)
          for (i64 e = 0; e < win_.kw; ++e) sum += A[first + a * win_.width + e];
        out[o] = sum / count;
      });
    });
    return;
  }
  std::vector<i64>& argmax = state_.get<T>().argmax;
  argmax.resize(static_cast<std::size_t>(p.m * out_width));
  split_row_ranges(p.m, in_width, [&](i64 i0, i64 i1) {
    windows(win_, i0, i1, [&](i64 o, i64 first) {
      // The window's entries in row-major order, folded pairwise into the first maximal
      // one (a NaN wins, a later NaN over an earlier one): the fold of any two adjacent
      // runs is the fold of their concatenation, so a 2 x 2 window folds as a tree.
      Best b;
      if (win_.kh == 2 && win_.kw == 2) {
        const i64 k2 = first + win_.width;
        b = later(later(Best::of(A, first), Best::of(A, first + 1)),
                  later(Best::of(A, k2), Best::of(A, k2 + 1)));
      } else {
        b = Best::of(A, first);
        for (i64 a = 0; a < win_.kh; ++a)
          for (i64 e = a == 0 ? 1 : 0; e < win_.kw; ++e)
            b = later(b, Best::of(A, first + a * win_.width + e));
      }
      argmax[o] = b.at;
      out[o] = A[b.at];
    });
  });
}

template <class T>
T* Pool::backward_on(Pass<T>& p, const T*, const T*, T* dout, T* dA, bool need_din) {
  if (!need_din) return nullptr;
  const double count = static_cast<double>(win_.kh * win_.kw);
  const std::vector<i64>& argmax = state_.get<T>().argmax;
  split_row_ranges(p.m, in_width, [&](i64 i0, i64 i1) {
    std::fill(dA + i0 * in_width, dA + i1 * in_width, T(0.0));
    windows(win_, i0, i1, [&](i64 o, i64 first) {
      if (max_) {
        dA[argmax[o]] += dout[o];
      } else {
        const T share = dout[o] / T(count);
        for (i64 a = 0; a < win_.kh; ++a)
          for (i64 e = 0; e < win_.kw; ++e) dA[first + a * win_.width + e] += share;
      }
    });
  });
  return dA;
}

BNFAST_OP_INSTANTIATE(Pool);

}  // namespace bnfast
