// BN under each normalizing scale (docs/math/networks.md section 7), forward and
// backward, on a row-major (N, C, S) block H: channel c's values are H[(i C + c) S + s]
// over the N samples i and S positions s (S = 1 for a dense layer, one column per
// neuron), on double or Dual (nn/dual.hpp). Loops run over samples outside and channels
// and positions inside, so the inner loops are contiguous. The network uses these for
// the lp norms and for Hessian-vector products; plain BN on double takes the kernels of
// kernels/batchnorm.hpp (the same maths, vectorised and threaded).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "kernels/batchnorm.hpp"
#include "nn/dual.hpp"
#include "nn/dual_pair.hpp"
#include "nn/layer.hpp"
#include "runtime/parallel.hpp"

namespace bnfast {

inline double sign_of(double x) { return x > 0 ? 1.0 : (x < 0 ? -1.0 : 0.0); }

// f(c0, c1) over ranges of the block's channels, split across threads: a pass that
// works channel by channel runs whole (statistics, then the values that use them) on
// its channels in one parallel region.
template <class F>
void split_channels(std::int64_t N, std::int64_t C, std::int64_t S, F&& f) {
  split_row_ranges(C, N * S, f);
}

// f(value index, channel) for every value of the channels [c0, c1), samples outer,
// positions inner: each channel's values come in the one order, whatever the ranges (the
// same bits for every thread count), so f may accumulate per channel.
template <class F>
void for_values_of(std::int64_t N, std::int64_t C, std::int64_t S, std::int64_t c0,
                   std::int64_t c1, F&& f) {
  if (S == 1) {  // a dense layer: the channels contiguous, a loop the compiler vectorises
    for (std::int64_t i = 0; i < N; ++i)
      for (std::int64_t c = c0; c < c1; ++c) f(i * C + c, c);
    return;
  }
  for (std::int64_t i = 0; i < N; ++i)
    for (std::int64_t c = c0; c < c1; ++c)
      for (std::int64_t s = 0; s < S; ++s) f((i * C + c) * S + s, c);
}

// f(lanes, c) for the channels [c0, c1) of a dense block (S == 1) of Dual numbers: two
// channels at a time (lanes TwoDuals, channels c and c + 1), an odd last one alone
// (OneDual). f runs its channels' values itself, in sample order (value i at i C + c),
// with the channels' constants and sums in registers; written once for both accessors,
// it does Dual's operations on each lane: the same bits as for_values_of with one Dual
// at a time.
template <class F>
void for_channel_pairs(std::int64_t c0, std::int64_t c1, F&& f) {
  std::int64_t c = c0;
  for (; c + 2 <= c1; c += 2) f(TwoDuals{}, c);
  if (c < c1) f(OneDual{}, c);
}

// Whether the pass on T over a block with S positions runs two channels at a time: Dual
// numbers of a dense layer (S == 1) under the std scale.
template <class T>
constexpr bool paired(std::int64_t S, NormScale norm) {
  return std::is_same_v<T, Dual> && S == 1 && norm == NormScale::std;
}

// f(value index, channel) for every value of the block, the channels split across
// threads (for_values_of's order within each channel).
template <class F>
void for_each_value(std::int64_t N, std::int64_t C, std::int64_t S, F&& f) {
  split_channels(N, C, S, [&](std::int64_t c0, std::int64_t c1) { for_values_of(N, C, S, c0, c1, f); });
}

// Per channel: the batch mean, the scale s (formed for l1 and linf, whose q needs it),
// its square s2 (the biased variance for std), d = sqrt(s2 + eps), and for linf the
// index of the first value of the largest |h|. With eps == 0 the normalization is scale
// invariant, so a channel whose s2 underflows (below 2^-960, bits lost) or overflows is
// redone on its values times 2^-e (exact; e from its largest |h|) and d, mu, s scaled
// back, as the kernels do for plain BN (kernels/extremes.hpp): hvps on data of any
// magnitude then agree with the loss.
template <class T>
struct BlockScale {
  std::vector<T> mu, s, s2, d;
  std::vector<std::int64_t> k;
  std::vector<int> e;  // the channels' scales 2^e (all 0 unless some channel was redone)
  std::vector<char> zero;  // whether the channel's scale is 0 (with eps == 0: an error)

  // Sizes the per-channel arrays for `dims` (before the channels are computed).
  void prepare(const Dims& dims) {
    const auto cols = static_cast<std::size_t>(dims.c);
    mu.resize(cols);
    s.resize(cols);
    s2.resize(cols);
    d.resize(cols);
    k.resize(cols);
    e.resize(cols);
    zero.resize(cols);
  }

  // The statistics of the channels [c0, c1) (prepare first); a channel whose scale is 0
  // with eps == 0 is marked for check() (its d is 0).
  void compute_channels(NormScale norm, const T* H, const Dims& dims, double eps,
                        std::int64_t c0, std::int64_t c1) {
    using std::sqrt;
    std::fill(e.begin() + c0, e.begin() + c1, 0);
    statistics<false>(norm, H, dims, c0, c1);
    if (eps == 0 && rescale(H, dims, c0, c1)) statistics<true>(norm, H, dims, c0, c1);
    for (std::int64_t c = c0; c < c1; ++c) {
      zero[c] = eps == 0 && value(s2[c]) == 0;
      d[c] = sqrt(s2[c] + T(eps));
      if (e[c] != 0) {
        using std::ldexp;
        d[c] = ldexp(d[c], e[c]);
        mu[c] = ldexp(mu[c], e[c]);
        s[c] = ldexp(s[c], e[c]);
        s2[c] = ldexp(s2[c], 2 * e[c]);
      }
    }
  }

  // Throws ZeroVarianceError(channel) for the first channel whose scale is 0 when
  // eps == 0.
  void check() const {
    for (std::size_t c = 0; c < zero.size(); ++c)
      if (zero[c])
        throw ZeroVarianceError(static_cast<std::int64_t>(c),
                                "the normalizing scale is 0 and eps == 0");
  }

 private:
  // The statistics of the values H 2^-e[c] (Scaled) or H, channels [c0, c1).
  template <bool Scaled>
  void statistics(NormScale norm, const T* H, const Dims& dims, std::int64_t c0,
                  std::int64_t c1) {
    const std::int64_t N = dims.n, C = dims.c, S = dims.s;
    for (std::int64_t c = c0; c < c1; ++c) {
      mu[c] = s[c] = s2[c] = T(0.0);
      k[c] = -1;
    }
    auto h = [&](std::int64_t at, std::int64_t c) {
      using std::ldexp;
      if constexpr (Scaled) return ldexp(H[at], -e[c]);
      else return H[at];
    };
    auto values = [&](auto&& f) { for_values_of(N, C, S, c0, c1, f); };
    const T inv_m(1.0 / static_cast<double>(N * S));
    if constexpr (!Scaled && std::is_same_v<T, Dual>) {
      if (paired<T>(S, norm)) {  // the std case below, two channels at a time
        for_channel_pairs(c0, c1, [&](auto lanes, std::int64_t c) {
          using L = decltype(lanes);
          auto sum = L::load(&mu[c]);
          for (std::int64_t i = 0; i < N; ++i) sum = sum + L::load(H + i * C + c);
          L::store(&mu[c], sum);
        });
        for (std::int64_t c = c0; c < c1; ++c) mu[c] *= inv_m;
        for_channel_pairs(c0, c1, [&](auto lanes, std::int64_t c) {
          using L = decltype(lanes);
          const auto m = L::load(&mu[c]);
          auto sum = L::load(&s2[c]);
          for (std::int64_t i = 0; i < N; ++i) {
            const auto r = L::load(H + i * C + c) - m;
            sum = sum + r * r;
          }
          L::store(&s2[c], sum);
        });
        for (std::int64_t c = c0; c < c1; ++c) s2[c] *= inv_m;
        return;
      }
    }
    values([&](std::int64_t at, std::int64_t c) { mu[c] += h(at, c); });
    for (std::int64_t c = c0; c < c1; ++c) mu[c] *= inv_m;
    switch (norm) {
      case NormScale::std:
        values([&](std::int64_t at, std::int64_t c) {
          const T r = h(at, c) - mu[c];
          s2[c] += r * r;
        });
        for (std::int64_t c = c0; c < c1; ++c) s2[c] *= inv_m;
        break;
      case NormScale::l1:
        values([&](std::int64_t at, std::int64_t c) {
          s[c] += T(sign_of(value(H[at]))) * h(at, c);
        });
        for (std::int64_t c = c0; c < c1; ++c) {
          s[c] *= inv_m;
          s2[c] = s[c] * s[c];
        }
        break;
      case NormScale::l2:
        values([&](std::int64_t at, std::int64_t c) {
          const T v = h(at, c);
          s2[c] += v * v;
        });
        for (std::int64_t c = c0; c < c1; ++c) s2[c] *= inv_m;
        break;
      case NormScale::linf:
        values([&](std::int64_t at, std::int64_t c) {
          if (k[c] < 0 || std::fabs(value(H[at])) > std::fabs(value(H[k[c]]))) k[c] = at;
        });
        for (std::int64_t c = c0; c < c1; ++c) {
          const T v = h(k[c], c);
          s[c] = T(sign_of(value(v))) * v;
          s2[c] = s[c] * s[c];
        }
        break;
    }
  }

  // Sets e[c] for the channels of [c0, c1) whose s2 lost bits to underflow or
  // overflowed (finite values, not all zero); false when there are none.
  bool rescale(const T* H, const Dims& dims, std::int64_t c0, std::int64_t c1) {
    bool any = false;
    for (std::int64_t c = c0; c < c1; ++c) {
      const double v = value(s2[c]);
      if (v >= 0x1p-960 && std::isfinite(v)) continue;
      double largest = 0;
      bool finite = true;
      for (std::int64_t i = 0; i < dims.n; ++i)
        for (std::int64_t p = 0; p < dims.s; ++p) {
          const double h = value(H[(i * dims.c + c) * dims.s + p]);
          finite &= std::isfinite(h);
          largest = std::max(largest, std::fabs(h));
        }
      if (!finite || largest == 0) continue;  // NaN propagates; an all-zero channel stays 0
      std::frexp(largest, &e[c]);
      any = true;
    }
    return any;
  }
};

// Z = gamma (H - mu)/d + beta per channel; `scale` keeps the statistics. One parallel
// region: each thread's channels get their statistics and then their values.
template <class T>
void block_forward(NormScale norm, const T* H, const Dims& dims, const T* gamma,
                   const T* beta, double eps, T* Z, BlockScale<T>& scale, std::vector<T>& g) {
  const std::int64_t N = dims.n, C = dims.c, S = dims.s;
  scale.prepare(dims);
  g.resize(static_cast<std::size_t>(C));
  split_channels(N, C, S, [&](std::int64_t c0, std::int64_t c1) {
    scale.compute_channels(norm, H, dims, eps, c0, c1);
    for (std::int64_t c = c0; c < c1; ++c) g[c] = gamma[c] / scale.d[c];
    if constexpr (std::is_same_v<T, Dual>) {
      if (paired<T>(S, norm)) {
        for_channel_pairs(c0, c1, [&](auto lanes, std::int64_t c) {
          using L = decltype(lanes);
          const auto gc = L::load(&g[c]), m = L::load(&scale.mu[c]), b = L::load(beta + c);
          for (std::int64_t i = 0; i < N; ++i)
            L::store(Z + i * C + c, gc * (L::load(H + i * C + c) - m) + b);
        });
        return;
      }
    }
    for_values_of(N, C, S, c0, c1, [&](std::int64_t at, std::int64_t c) {
      Z[at] = g[c] * (H[at] - scale.mu[c]) + beta[c];
    });
  });
  scale.check();  // Z is the caller's scratch: a failed call leaves nothing else
}

// dH from G = dLoss/dZ: dh = gamma/d (G - dbeta/m - dgamma q), m = N S values per
// channel, q of networks.md section 7; also dgamma = sum G zhat and dbeta = sum G per
// channel. c: the statistics block_forward computed from this H. One parallel region:
// each thread's channels get their sums and then their dH.
template <class T>
void block_backward(NormScale norm, const T* H, const T* G, const Dims& dims, const T* gamma,
                    T* dH, T* dgamma, T* dbeta, const BlockScale<T>& c, std::vector<T>& work) {
  const std::int64_t N = dims.n, C = dims.c, S = dims.s;
  work.resize(4 * static_cast<std::size_t>(C));
  T* inv_d = work.data();
  T* scale = inv_d + C;     // gamma / d
  T* centre = scale + C;    // dbeta / m
  T* factor = centre + C;   // dgamma times the channel's constant part of q
  const T inv_m(1.0 / static_cast<double>(N * S));
  split_channels(N, C, S, [&](std::int64_t j0, std::int64_t j1) {
    for (std::int64_t j = j0; j < j1; ++j) {
      inv_d[j] = T(1.0) / c.d[j];
      dgamma[j] = T(0.0);
      dbeta[j] = T(0.0);
    }
    if constexpr (std::is_same_v<T, Dual>) {
      if (paired<T>(S, norm))
        for_channel_pairs(j0, j1, [&](auto lanes, std::int64_t j) {
          using L = decltype(lanes);
          const auto m = L::load(&c.mu[j]), id = L::load(inv_d + j);
          auto db = L::load(dbeta + j), dg = L::load(dgamma + j);
          for (std::int64_t i = 0; i < N; ++i) {
            const auto g = L::load(G + i * C + j);
            db = db + g;
            dg = dg + g * ((L::load(H + i * C + j) - m) * id);
          }
          L::store(dbeta + j, db);
          L::store(dgamma + j, dg);
        });
    }
    if (!paired<T>(S, norm))
      for_values_of(N, C, S, j0, j1, [&](std::int64_t at, std::int64_t j) {
        const T g = G[at];
        dbeta[j] += g;
        dgamma[j] += g * ((H[at] - c.mu[j]) * inv_d[j]);
      });
    for (std::int64_t j = j0; j < j1; ++j) {
      scale[j] = gamma[j] * inv_d[j];
      centre[j] = dbeta[j] * inv_m;
      switch (norm) {
        case NormScale::std:  // q = (h - mu)/(d m)
        case NormScale::l2:   // q = h/(d m)
          factor[j] = dgamma[j] * inv_d[j] * inv_m;
          break;
        case NormScale::l1:   // q = (s/d) sign(h)/m
          factor[j] = dgamma[j] * c.s[j] * inv_d[j] * inv_m;
          break;
        case NormScale::linf:  // q = (s/d) sign(h_k) at the value k only
          factor[j] = dgamma[j] * c.s[j] * inv_d[j];
          break;
      }
    }
    if constexpr (std::is_same_v<T, Dual>) {
      if (paired<T>(S, norm)) {  // std: q = factor (h - mu)
        for_channel_pairs(j0, j1, [&](auto lanes, std::int64_t j) {
          using L = decltype(lanes);
          const auto f = L::load(factor + j), m = L::load(&c.mu[j]);
          const auto sc = L::load(scale + j), ce = L::load(centre + j);
          for (std::int64_t i = 0; i < N; ++i) {
            const auto q = f * (L::load(H + i * C + j) - m);
            L::store(dH + i * C + j, sc * (L::load(G + i * C + j) - ce - q));
          }
        });
        return;
      }
    }
    for_values_of(N, C, S, j0, j1, [&](std::int64_t at, std::int64_t j) {
      const T h = H[at];
      T q(0.0);
      switch (norm) {
        case NormScale::std: q = factor[j] * (h - c.mu[j]); break;
        case NormScale::l2: q = factor[j] * h; break;
        case NormScale::l1: q = factor[j] * T(sign_of(value(h))); break;
        case NormScale::linf:
          if (at == c.k[j]) q = factor[j] * T(sign_of(value(h)));
          break;
      }
      dH[at] = scale[j] * (G[at] - centre[j] - q);
    });
  });
}

}  // namespace bnfast
