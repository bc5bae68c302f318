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
      // Bitwise selects, not branches (the compiler turns a ?: back into jumps): which
      // entry wins is a coin flip on real data. Starting from the first entry is starting
      // from -inf (a -inf or NaN first entry wins either way).
      double best = value(A[first]);
      i64 at = first;
      for (i64 a = 0; a < win_.kh; ++a)
        for (i64 e = 0; e < win_.kw; ++e) {
          const i64 k = first + a * win_.width + e;
          const double v = value(A[k]);
          const std::uint64_t take = 0 - static_cast<std::uint64_t>((v > best) | (v != v));
          at = static_cast<i64>((static_cast<std::uint64_t>(k) & take) |
                                (static_cast<std::uint64_t>(at) & ~take));
          best = from_bits((bits(v) & take) | (bits(best) & ~take));
        }
      argmax[o] = at;
      out[o] = A[at];
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
