// Channels at the edges of the floating-point range (docs/math/batch_norm.md, "Extreme
// inputs"): finite data whose squared deviations overflow (|x| near 1e308) or underflow
// (spread below ~1e-145 with eps == 0), and float32 channels whose coefficient 1/std
// does not fit in float32 (subnormal data). The fast path's results for such a channel
// are wrong (inf, NaN, a spurious zero variance); here the channel is redone on its
// values scaled by a power of two (exact), one channel at a time. Rare, so scalar.
#pragma once

#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "kernels/affine.hpp"

namespace bnfast::BNFAST_ISA {

// A channel normalized as y = (x 2^-e - mean_s) * inv_s * weight + bias in double.
struct WideChannel {
  i64 ch;
  int e;          // the scale: x 2^-e has magnitudes below 1
  double mean_s;  // the mean of x 2^-e
  double var_s;   // the biased variance of x 2^-e
  double inv_s;   // 1 / sqrt(var_s + eps 2^-2e)
};

// Calls f(value) for each element of channel ch of a (n, c, s) array.
template <class T, class F>
void each_in_channel(const T* x, Dims d, i64 ch, F f) {
  for (i64 n = 0; n < d.n; ++n) {
    const T* p = x + (n * d.c + ch) * d.s;
    for (i64 i = 0; i < d.s; ++i) f(static_cast<double>(p[i]));
  }
}

// The statistics of channel ch recomputed on scaled values; false when the channel holds
// inf or NaN (those propagate, as documented) or is all zeros (nothing to rescue).
template <class T>
bool rescaled_moments(const T* x, Dims d, i64 ch, double eps, WideChannel& w) {
  double largest = 0;
  bool finite = true;
  each_in_channel(x, d, ch, [&](double v) {
    finite &= std::isfinite(v);
    largest = std::max(largest, std::fabs(v));
  });
  if (!finite || largest == 0) return false;
  std::frexp(largest, &w.e);
  const int e = w.e;
  const double count = static_cast<double>(d.per_channel());
  // shifted by the first value, so a constant channel has variance exactly 0
  const double shift = std::ldexp(static_cast<double>(x[ch * d.s]), -e);
  double sum = 0;
  each_in_channel(x, d, ch, [&](double v) { sum += std::ldexp(v, -e) - shift; });
  w.mean_s = shift + sum / count;
  double m2 = 0;
  each_in_channel(x, d, ch, [&](double v) {
    const double dev = std::ldexp(v, -e) - w.mean_s;
    m2 += dev * dev;
  });
  w.var_s = m2 / count;
  w.inv_s = 1.0 / std::sqrt(w.var_s + std::ldexp(eps, -2 * e));
  w.ch = ch;
  return true;
}

// Finds the channels the fast statistics got wrong, fixes mean, var, invstd there (var
// may be inf or 0 when the true variance is outside double's range; invstd and the
// output are right), and lists them.
template <class T>
std::vector<WideChannel> rescue_statistics(const T* x, Dims d, double eps, double* mean,
                                           double* var, double* invstd) {
  std::vector<WideChannel> wide;
  for (i64 ch = 0; ch < d.c; ++ch) {
    const bool broken = !std::isfinite(mean[ch]) || !std::isfinite(var[ch]);
    // below 2^-960 the squared deviations have lost bits to underflow (eps would hide it)
    const bool underflowed = eps == 0 && var[ch] < 0x1p-960;
    WideChannel w{};
    if ((broken || underflowed) && rescaled_moments(x, d, ch, eps, w)) {
      mean[ch] = std::ldexp(w.mean_s, w.e);
      var[ch] = std::ldexp(w.var_s, 2 * w.e);
      invstd[ch] = std::ldexp(w.inv_s, -w.e);
      wide.push_back(w);
    }
  }
  return wide;
}

// The precise moments' channels that came out inf or NaN: NaN everywhere when the channel
// holds inf or NaN; else (finite data whose sums overflowed) the moments of the channel
// scaled by a power of two, scaled back (m2 is inf when it exceeds double's range).
template <class T>
void rescue_moments(const T* x, Dims d, MomentArrays out) {
  const double count = static_cast<double>(d.per_channel());
  for (i64 ch = 0; ch < d.c; ++ch) {
    if (std::isfinite(out.mean[ch]) && std::isfinite(out.mean_low[ch]) &&
        std::isfinite(out.m2[ch]) && std::isfinite(out.m2_low[ch]))
      continue;
    WideChannel w{};
    if (rescaled_moments(x, d, ch, 0.0, w)) {
      out.mean[ch] = std::ldexp(w.mean_s, w.e);
      out.m2[ch] = std::ldexp(w.var_s * count, 2 * w.e);
    } else {
      out.mean[ch] = out.m2[ch] = std::numeric_limits<double>::quiet_NaN();
    }
    out.mean_low[ch] = out.m2_low[ch] = 0.0;
  }
}

// eps == 0 and a zero variance, judged on the rescued variance where there is one.
inline void check_positive_rescued(const double* var, i64 c, double eps,
                                   const std::vector<WideChannel>& wide, const char* name) {
  if (eps != 0) return;
  for (i64 ch = 0; ch < c; ++ch) {
    double v = var[ch];
    for (const WideChannel& w : wide)
      if (w.ch == ch) v = w.var_s;
    if (v == 0) throw ZeroVarianceError(ch, name);
  }
}

// float32 channels whose coefficients do not fit in float32 (1/std of subnormal data):
// normalized in double, unscaled.
template <class T>
void add_unrepresentable(i64 c, const double* mean, const double* invstd, const double* weight,
                         std::vector<WideChannel>& wide) {
  if constexpr (std::is_same_v<T, double>) return;  // double coefficients always fit
  const double top = static_cast<double>(std::numeric_limits<T>::max());
  for (i64 ch = 0; ch < c; ++ch) {
    const double scale = std::fabs(invstd[ch] * (weight ? weight[ch] : 1.0));
    if (!(scale > top) || !std::isfinite(scale)) continue;
    bool listed = false;
    for (const WideChannel& w : wide) listed |= w.ch == ch;
    if (!listed) wide.push_back({ch, 0, mean[ch], 0.0, invstd[ch]});
  }
}

// Rewrites the output of the listed channels in double.
template <class T>
void normalize_wide(const T* x, Dims d, const std::vector<WideChannel>& wide,
                    const double* weight, const double* bias, T* y) {
  for (const WideChannel& w : wide) {
    const double k = w.inv_s * (weight ? weight[w.ch] : 1.0);
    const double b = bias ? bias[w.ch] : 0.0;
    for (i64 n = 0; n < d.n; ++n) {
      const i64 off = (n * d.c + w.ch) * d.s;
      for (i64 i = 0; i < d.s; ++i)
        y[off + i] = static_cast<T>(
            (std::ldexp(static_cast<double>(x[off + i]), -w.e) - w.mean_s) * k + b);
    }
  }
}

// The backward pass writes dx = a g + b (x - mean) + c0 with b = -w invstd^2 gw / m: for
// a channel with a tiny std (float32 ~1e-37, float64 ~1e-200) b overflows T, for a huge
// one (float64 ~1e300) it underflows, though dx is representable. Such channels are rewritten in double in the equivalent form
// dx = w invstd (g - sum_g/m - xhat gw/m), xhat = (x - mean) invstd, whose factors stay
// in range. grad_weight and grad_bias (sums in double) are right already.
template <class T>
void backward_wide(const T* g, const T* x, Dims d, const double* mean, const double* invstd,
                   const double* weight, const double* grad_weight, const double* grad_bias,
                   T* dx) {
  const double top = static_cast<double>(std::numeric_limits<T>::max());
  const double low = static_cast<double>(std::numeric_limits<T>::min());
  const double inv_count = 1.0 / static_cast<double>(d.per_channel());
  // each coefficient must be representable in T: neither beyond its largest value nor
  // (when its factors are not 0) below its smallest normal one
  auto fits = [&](double v, bool factors_nonzero) {
    return std::fabs(v) <= top && (std::fabs(v) >= low || !factors_nonzero);
  };
  for (i64 ch = 0; ch < d.c; ++ch) {
    if (!std::isfinite(mean[ch]) || !std::isfinite(invstd[ch])) continue;  // NaN data
    const double k = (weight ? weight[ch] : 1.0) * invstd[ch];
    const double b = k * invstd[ch] * grad_weight[ch] * inv_count;
    const double c0 = k * grad_bias[ch] * inv_count;
    if (fits(k, k != 0 || weight == nullptr) && fits(b, k != 0 && grad_weight[ch] != 0) &&
        fits(c0, k != 0 && grad_bias[ch] != 0))
      continue;
    const double gw = grad_weight[ch] * inv_count, gb = grad_bias[ch] * inv_count;
    for (i64 n = 0; n < d.n; ++n) {
      const i64 off = (n * d.c + ch) * d.s;
      for (i64 i = 0; i < d.s; ++i) {
        const double xhat = (static_cast<double>(x[off + i]) - mean[ch]) * invstd[ch];
        dx[off + i] = static_cast<T>(k * (static_cast<double>(g[off + i]) - gb - xhat * gw));
      }
    }
  }
}

}  // namespace bnfast::BNFAST_ISA
