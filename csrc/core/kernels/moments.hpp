// Per-channel batch statistics (count, mean, sum of squared deviations): the one copy
// of the moments code, included by every kernel body (kernels/batchnorm_isa.cpp).
// Compiled once per instruction set: everything here lives in bnfast::BNFAST_ISA, so
// the variants never share an instantiation.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "kernels/batchnorm.hpp"
#include "runtime/parallel.hpp"
#include "runtime/simd.hpp"

#ifndef BNFAST_ISA
#error "kernels/moments.hpp is included by per-instruction-set files only"
#endif

namespace bnfast::BNFAST_ISA {

using i64 = std::int64_t;

// Blocks of about this many elements stay in L1/L2 between the two passes of the
// statistics (sum, then sum of squared deviations from the block mean).
constexpr i64 kBlock = 8192;
// Column tile of the (N, C) statistics: the tile's accumulators stay in L1.
constexpr i64 kTile = 512;

// Chan et al.'s merge of a block (mean_b, m2_b over nb values) into (mean, m2 over na
// values), with w_new = nb / (na + nb) and w_cross = na * nb / (na + nb). It never
// subtracts two large sums (no E[x^2] - E[x]^2 cancellation).
inline void chan_merge(double& mean, double& m2, double mean_b, double m2_b, double w_new,
                       double w_cross) {
  const double delta = mean_b - mean;
  mean += delta * w_new;
  m2 += m2_b + delta * delta * w_cross;
}

// Count, mean and sum of squared deviations of one channel, merged block by block.
struct Moments {
  double n = 0, mean = 0, m2 = 0;
  void merge(double nb, double mean_b, double m2_b) {
    if (nb == 0) return;
    const double total = n + nb;
    chan_merge(mean, m2, mean_b, m2_b, nb / total, n * nb / total);
    n = total;
  }
};

// sum f(p[i]) with eight independent accumulators, so the compiler can vectorize it
// without reassociating (no -ffast-math); the combination order is fixed, so results
// are too.
template <class T, class F>
double sum8(const T* p, i64 len, F f) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  i64 i = 0;
  for (; i + 8 <= len; i += 8)
    for (int k = 0; k < 8; ++k) acc[k] += f(static_cast<double>(p[i + k]));
  double tail = 0;
  for (; i < len; ++i) tail += f(static_cast<double>(p[i]));
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) +
         tail;
}

// Sum of x - shift. Callers shift by a value of the block: a constant block then sums
// to exactly 0, so its mean is exact and its variance exactly 0 (eps == 0 must see
// that), which sum(x) / len does not guarantee (7 copies of 0.1 average to
// 0.09999999999999999).
template <class T>
double shifted_sum(const T* p, i64 len, double shift) {
  return sum8(p, len, [shift](double v) { return v - shift; });
}

template <class T>
double squared_deviations(const T* p, i64 len, double center) {
  return sum8(p, len, [center](double v) {
    const double dev = v - center;
    return dev * dev;
  });
}

// The first pass over a run of len >= 1 values: their mean, shifted by the first one.
template <class T>
double run_mean(const T* p, i64 len) {
  const double shift = static_cast<double>(p[0]);
  return shift + shifted_sum(p, len, shift) / static_cast<double>(len);
}

// The sums of the precise moments' plane blocks, on doubles: sum8's eight accumulators
// and combination order, written with SIMD vectors (kWide / kLanes of them) because GCC
// does not vectorize two sums in one loop. Accumulator k holds the values i with i %
// kWide == k on every instruction set: the same bits on all. (Sixteen accumulators
// measured slower: the passes are bound by the adds' throughput, not their latency.)
constexpr int kWide = 8;

inline double combine_wide(double* a) {  // ((a0 + a1) + (a2 + a3)) + ..., in place
  for (int width = kWide / 2; width >= 1; width /= 2)
    for (int k = 0; k < width; ++k) a[k] = a[2 * k] + a[2 * k + 1];
  return a[0];
}

// The kWide lanes of kWide / kLanes vectors, combined pairwise.
inline double combine_vectors(const vec* acc) {
  double a[kWide];
  for (int v = 0; v < kWide / kLanes; ++v)
    for (int l = 0; l < kLanes; ++l) a[v * kLanes + l] = acc[v][l];
  return combine_wide(a);
}

// sum(x - shift) over len doubles.
inline double wide_shifted_sum(const double* p, i64 len, double shift) {
  constexpr int kVecs = static_cast<int>(kWide / kLanes);
  vec acc[kVecs] = {};
  const vec c = splat(shift);
  i64 i = 0;
  for (; i + kWide <= len; i += kWide)
    for (int v = 0; v < kVecs; ++v) acc[v] += load(p + i + v * kLanes) - c;
  double tail = 0;
  for (; i < len; ++i) tail += p[i] - shift;
  return combine_vectors(acc) + tail;
}

// The sums of d = x - center and of d^2 over len doubles.
inline void wide_deviation_sums(const double* p, i64 len, double center, double& dev_sum,
                                double& sq_sum) {
  constexpr int kVecs = static_cast<int>(kWide / kLanes);
  vec acc[kVecs] = {}, sq[kVecs] = {};
  const vec c = splat(center);
  i64 i = 0;
  for (; i + kWide <= len; i += kWide)
    for (int v = 0; v < kVecs; ++v) {
      const vec d = load(p + i + v * kLanes) - c;
      acc[v] += d;
      sq[v] += d * d;
    }
  double tail = 0, tail_sq = 0;
  for (; i < len; ++i) {
    const double d = p[i] - center;
    tail += d;
    tail_sq += d * d;
  }
  dev_sum = combine_vectors(acc) + tail;
  sq_sum = combine_vectors(sq) + tail_sq;
}

// Asks for len elements at p to be brought into L2, one request per cache line. The
// statistics read each block twice: while the second pass runs on cached data, the
// next block's lines arrive, and its first pass does not wait for memory (the hardware
// prefetcher does not cross from one channel's plane to the next sample's).
constexpr i64 kPrefetchBytes = 4096;
template <class T>
inline void prefetch_l2(const T* p, i64 len) {
  const char* bytes = reinterpret_cast<const char*>(p);
  for (i64 k = 0; k < len * static_cast<i64>(sizeof(T)); k += 64) __builtin_prefetch(bytes + k, 0, 2);
}

// Moments of one channel over samples [n0, n1) of a (n, c, s) array, s > 1.
template <class T>
Moments channel_moments(const T* x, Dims d, i64 ch, i64 n0, i64 n1) {
  Moments acc;
  for (i64 n = n0; n < n1; ++n) {
    const T* plane = x + (n * d.c + ch) * d.s;
    for (i64 s0 = 0; s0 < d.s; s0 += kBlock) {
      const i64 len = std::min(kBlock, d.s - s0);
      // Only the head of the next run: the hardware prefetcher follows a run once it has
      // started, and a whole plane's worth of requests at once (25 KB of float64) stalls
      // this pass more than it saves.
      const i64 head = kPrefetchBytes / static_cast<i64>(sizeof(T));
      if (s0 + kBlock < d.s)
        prefetch_l2(plane + s0 + kBlock, std::min(head, d.s - s0 - kBlock));
      else if (n + 1 < n1)
        prefetch_l2(plane + d.c * d.s, std::min(head, d.s));
      const double block_mean = run_mean(plane + s0, len);
      acc.merge(static_cast<double>(len), block_mean,
                squared_deviations(plane + s0, len, block_mean));
    }
  }
  return acc;
}

// One row block [b0, b0 + nb) of the column tile [c0, c0 + tc) of a row-major (rows,
// cols) array: block_mean (pass 1, shifted by the block's first row: see shifted_sum)
// and block_m2, the sum of squared deviations from it (pass 2, while the block is in
// cache); with Low also block_dev, the sum of the deviations themselves (what the
// precise moments below recover the rounding of block_mean from). Rows up to r1 exist:
// the next block's rows are prefetched.
template <bool Low, class T>
void column_block(const T* x, i64 cols, i64 c0, i64 tc, i64 b0, i64 nb, i64 r1,
                  double* block_mean, double* block_m2, double* block_dev) {
  const T* first = x + b0 * cols + c0;
  const double inv_nb = 1.0 / static_cast<double>(nb);
  if constexpr (Low && std::is_same_v<T, float>) {
    // pass 1 in float for float data (twice the lanes, no conversions): the precise
    // moments correct its mean in pass 2, so it only has to be close (a constant block
    // still sums to exactly 0)
    float sum[kTile];
    std::fill(sum, sum + tc, 0.0f);
    for (i64 r = b0 + 1; r < b0 + nb; ++r) {
      const float* row = x + r * cols + c0;
      for (i64 j = 0; j < tc; ++j) sum[j] += row[j] - first[j];
    }
    for (i64 j = 0; j < tc; ++j)
      block_mean[j] = static_cast<double>(first[j]) + static_cast<double>(sum[j]) * inv_nb;
  } else {
    double shift[kTile];  // the first row, converted once
    for (i64 j = 0; j < tc; ++j) shift[j] = static_cast<double>(first[j]);
    std::fill(block_mean, block_mean + tc, 0.0);
    for (i64 r = b0 + 1; r < b0 + nb; ++r) {
      const T* row = x + r * cols + c0;
      for (i64 j = 0; j < tc; ++j) block_mean[j] += static_cast<double>(row[j]) - shift[j];
    }
    for (i64 j = 0; j < tc; ++j) block_mean[j] = shift[j] + block_mean[j] * inv_nb;
  }
  std::fill(block_m2, block_m2 + tc, 0.0);
  if constexpr (Low) std::fill(block_dev, block_dev + tc, 0.0);
  const i64 next_end = std::min(r1, b0 + 2 * nb);
  for (i64 r = b0; r < b0 + nb; ++r) {
    const T* row = x + r * cols + c0;
    if (r + nb < next_end) prefetch_l2(row + nb * cols, tc);  // the next block's row
    for (i64 j = 0; j < tc; ++j) {
      const double dev = static_cast<double>(row[j]) - block_mean[j];
      block_m2[j] += dev * dev;
      if constexpr (Low) block_dev[j] += dev;
    }
  }
}

// Per-column mean and m2 over rows [r0, r1) of a row-major (rows, cols) array.
// Row blocks of a column tile are summed twice while they sit in cache, then merged.
template <class T>
void column_moments(const T* x, i64 cols, i64 r0, i64 r1, double* mean, double* m2) {
  double block_mean[kTile], block_m2[kTile];
  const i64 tile = std::min(cols, kTile);
  const i64 rows_per_block = std::max<i64>(1, kBlock / tile);
  for (i64 c0 = 0; c0 < cols; c0 += tile) {
    const i64 tc = std::min(tile, cols - c0);
    double* mu = mean + c0;
    double* sq = m2 + c0;
    std::fill(mu, mu + tc, 0.0);
    std::fill(sq, sq + tc, 0.0);
    double seen = 0;
    for (i64 b0 = r0; b0 < r1; b0 += rows_per_block) {
      const i64 nb = std::min(rows_per_block, r1 - b0);
      column_block<false>(x, cols, c0, tc, b0, nb, r1, block_mean, block_m2, nullptr);
      const double total = seen + static_cast<double>(nb);
      if (seen == 0) {  // the first block: nothing to merge (saves divisions on tiny inputs)
        std::copy(block_mean, block_mean + tc, mu);
        std::copy(block_m2, block_m2 + tc, sq);
        seen = total;
        continue;
      }
      const double w_new = static_cast<double>(nb) / total;
      const double w_cross = seen * static_cast<double>(nb) / total;
      for (i64 j = 0; j < tc; ++j) chan_merge(mu[j], sq[j], block_mean[j], block_m2[j], w_new, w_cross);
      seen = total;
    }
  }
}

// Statistics when s == 1: row chunks, each with its own column moments, merged in
// chunk order (deterministic for a given chunk count).
template <class T>
void stats_rows(const T* x, Dims d, double* mean, double* var, Workspace& ws) {
  const int chunks = chunk_count(d.size(), d.n);
  if (chunks == 1) {
    column_moments(x, d.c, 0, d.n, mean, var);
  } else {
    double* part = ws.doubles(static_cast<std::size_t>(2 * d.c * chunks));
    parallel_chunks(chunks, [&](int t) {
      column_moments(x, d.c, chunk_begin(d.n, chunks, t), chunk_begin(d.n, chunks, t + 1),
                     part + 2 * d.c * t, part + 2 * d.c * t + d.c);
    });
    for (i64 j = 0; j < d.c; ++j) {
      Moments m;
      for (int t = 0; t < chunks; ++t) {
        const double rows = static_cast<double>(chunk_begin(d.n, chunks, t + 1) -
                                                chunk_begin(d.n, chunks, t));
        m.merge(rows, part[2 * d.c * t + j], part[2 * d.c * t + d.c + j]);
      }
      mean[j] = m.mean;
      var[j] = m.m2;
    }
  }
  const double inv_count = 1.0 / static_cast<double>(d.n);
  for (i64 j = 0; j < d.c; ++j) var[j] *= inv_count;
}

// Statistics when s > 1: channels split across chunks when there are enough of them,
// else each channel's samples split and the partial moments merged in order.
template <class T>
void stats_planes(const T* x, Dims d, double* mean, double* var, Workspace& ws) {
  const double count = static_cast<double>(d.per_channel());
  const int chunks = chunk_count(d.size(), std::max(d.c, d.n));
  if (d.c >= chunks) {
    parallel_chunks(chunks, [&](int t) {
      for (i64 ch = chunk_begin(d.c, chunks, t); ch < chunk_begin(d.c, chunks, t + 1); ++ch) {
        const Moments m = channel_moments(x, d, ch, 0, d.n);
        mean[ch] = m.mean;
        var[ch] = m.m2 / count;
      }
    });
    return;
  }
  double* part = ws.doubles(static_cast<std::size_t>(3 * d.c * chunks));
  parallel_chunks(chunks, [&](int t) {
    const i64 n0 = chunk_begin(d.n, chunks, t), n1 = chunk_begin(d.n, chunks, t + 1);
    for (i64 ch = 0; ch < d.c; ++ch) {
      const Moments m = channel_moments(x, d, ch, n0, n1);
      double* out = part + 3 * (d.c * t + ch);
      out[0] = m.n;
      out[1] = m.mean;
      out[2] = m.m2;
    }
  });
  for (i64 ch = 0; ch < d.c; ++ch) {
    Moments m;
    for (int t = 0; t < chunks; ++t) {
      const double* p = part + 3 * (d.c * t + ch);
      m.merge(p[0], p[1], p[2]);
    }
    mean[ch] = m.mean;
    var[ch] = m.m2 / count;
  }
}

// ---- Precise moments: population statistics (bnfast.batch_moments; the derivation and
// the error bound are in docs/math/population_statistics.md). The blocks above, with two
// changes that keep a few ulps of accuracy whatever the data's offset, and make the
// result independent of the thread count:
//  - a block also sums its deviations d = x - block_mean: its exact mean is block_mean +
//    sum(d)/nb up to the rounding of that sum, and its m2 the corrected two-pass
//    sum(d^2) - sum(d)^2/nb (Chan, Golub and LeVeque 1983);
//  - blocks, units and parts are merged with Chan's formula in double-double: mean and
//    m2 are each an unevaluated sum hi + low of two doubles, so merging parts whose means
//    agree to 12 digits (1e8 + N(0, 1e-4)) keeps the bits a rounded mean would lose.
// The data are cut into fixed units of about kUnit elements (each merged block by block,
// in order); the threads take whole units, merged pairwise in unit order afterwards.

// s + e == a + b exactly (Knuth's TwoSum: needs round-to-nearest and no contraction into
// FMA, which CMake's -ffp-contract=off guarantees).
inline void two_sum(double a, double b, double& s, double& e) {
  s = a + b;
  const double bb = s - a;
  e = (a - (s - bb)) + (b - bb);
}

// Values summed one after the other in a block of the precise moments (at most): a block's
// rounding error is below ~kRun ulps of its m2 (a few in practice); everything after that
// is double-double.
constexpr i64 kRun = 64;
// A plane block of the precise moments: eight accumulators of kRun values each.
constexpr i64 kPlaneRun = 8 * kRun;
// Accumulators of a float block's first pass (float lanes: two AVX vectors).
constexpr int kFloatAcc = 16;
// The unit of work of a thread (elements): fixed, so the result does not depend on the
// thread count.
constexpr i64 kUnit = i64{1} << 18;

// Chan's merge in double-double: (mean + mean_low, m2 + m2_low) over n values absorbs
// (mean_b + mean_b_low, m2_b + m2_b_low) over nb, with w_new = nb / (n + nb) and w_cross =
// n nb / (n + nb). delta = mean_b - mean is formed from the exact difference of the high
// parts; the mean moves by delta w_new (callers let the larger part absorb the smaller:
// then |delta w_new| <= ~sqrt(2 m2 / n), so that step's rounding is tiny next to the
// spread); m2 gains the cross term delta^2 w_cross, everything summed in double-double.
// Branch-free, so a loop over channels vectorizes; inf or NaN statistics come out NaN.
inline void chan_merge_dd(double& mean, double& mean_low, double& m2, double& m2_low,
                          double mean_b, double mean_b_low, double m2_b, double m2_b_low,
                          double w_new, double w_cross) {
  double dh, dl, delta, delta_low;
  two_sum(mean_b, -mean, dh, dl);  // the high parts' difference, exactly
  dl += mean_b_low - mean_low;
  two_sum(dh, dl, delta, delta_low);
  double s, e;
  two_sum(mean, delta * w_new, s, e);
  e += mean_low + delta_low * w_new;
  two_sum(s, e, mean, mean_low);
  double s2, e2, s3, e3;
  two_sum(m2, m2_b, s2, e2);
  e2 += m2_low + m2_b_low;
  two_sum(s2, delta * delta * w_cross, s3, e3);
  e2 += e3;
  two_sum(s3, e2, m2, m2_low);
}

// A block's statistics from its second pass about its first-pass mean mean_r: the sums
// of d = x - mean_r and of d^2. The exact mean is mean_r + sum(d) / nb (low, up to the
// rounding of sum(d), whose terms are centred: tiny), and the m2 about it the corrected
// two-pass sum(d^2) - sum(d) low (Chan, Golub and LeVeque 1983), >= 0 but for rounding
// (NaN stays NaN).
inline void block_statistics(double nb_inv, double dev_sum, double sq_sum, double& low,
                             double& m2) {
  low = dev_sum * nb_inv;
  const double m = sq_sum - dev_sum * low;
  m2 = m < 0 ? 0.0 : m;
}

// Count, mean + mean_low and m2 + m2_low of one channel.
struct PreciseMoments {
  double n = 0, mean = 0, mean_low = 0, m2 = 0, m2_low = 0;

  // Merges (nb, mean_b + mean_b_low, m2_b + m2_b_low) in: the larger part absorbs the
  // smaller. Statistics that are not finite (data with NaN or inf, or an overflowing
  // m2) merge without low parts, so an m2 of inf stays inf.
  void merge(double nb, double mean_b, double mean_b_low, double m2_b, double m2_b_low) {
    if (nb == 0) return;
    if (n == 0) {
      n = nb;
      mean = mean_b;
      mean_low = 0;
      m2 = m2_b;
      m2_low = 0;
      chan_merge_dd(mean, mean_low, m2, m2_low, mean_b, mean_b_low, 0.0, m2_b_low, 1.0, 0.0);
      if (!finite()) set_plain(mean_b, m2_b);
      return;
    }
    const double total = n + nb;
    PreciseMoments big = *this;
    double sm = mean_b, sm_low = mean_b_low, s2 = m2_b, s2_low = m2_b_low, small_n = nb;
    if (nb > n) {  // b absorbs this
      big = {nb, mean_b, mean_b_low, m2_b, m2_b_low};
      sm = mean, sm_low = mean_low, s2 = m2, s2_low = m2_low, small_n = n;
    }
    const double plain_mean = big.mean + (sm - big.mean) * (small_n / total);
    const double plain_m2 = big.m2 + s2 + (sm - big.mean) * (sm - big.mean) * (n * nb / total);
    chan_merge_dd(big.mean, big.mean_low, big.m2, big.m2_low, sm, sm_low, s2, s2_low,
                  small_n / total, n * nb / total);
    *this = big;
    n = total;
    if (!finite()) set_plain(plain_mean, plain_m2);
  }
  void merge(const PreciseMoments& b) { merge(b.n, b.mean, b.mean_low, b.m2, b.m2_low); }

  bool finite() const {
    return std::isfinite(mean) && std::isfinite(mean_low) && std::isfinite(m2) &&
           std::isfinite(m2_low);
  }

  // Non-finite statistics: the plain values (an inf m2 stays inf), no low parts.
  void set_plain(double plain_mean, double plain_m2) {
    mean = plain_mean;
    m2 = plain_m2;
    mean_low = m2_low = 0;
  }

  void store(MomentArrays out, i64 j) const {
    out.mean[j] = mean;
    out.mean_low[j] = mean_low;
    out.m2[j] = m2;
    out.m2_low[j] = m2_low;
  }
};

// A plane block of len <= kPlaneRun doubles and its first-pass mean: the deviation sums
// (block_statistics), merged into m.
inline void add_plane_block_centred(const double* p, i64 len, double block_mean,
                                    PreciseMoments& m) {
  const double nb = static_cast<double>(len);
  double dev_sum, sq_sum, low, m2;
  wide_deviation_sums(p, len, block_mean, dev_sum, sq_sum);
  block_statistics(1.0 / nb, dev_sum, sq_sum, low, m2);
  if (m.n == 0) {
    m.n = nb;
    m.mean = block_mean, m.mean_low = 0, m.m2 = m2, m.m2_low = 0;
    chan_merge_dd(m.mean, m.mean_low, m.m2, m.m2_low, block_mean, low, 0.0, 0.0, 1.0, 0.0);
    return;
  }
  const double total = m.n + nb;  // m.n >= nb: the blocks before
  chan_merge_dd(m.mean, m.mean_low, m.m2, m.m2_low, block_mean, low, m2, 0.0, nb / total,
                m.n * nb / total);
  m.n = total;
}

// A plane block of len <= kPlaneRun values merged into m: the first pass, shifted by the
// first value (as channel_moments), then add_plane_block_centred. Float data: the first
// pass in float (twice the lanes, no conversions; the precise moments correct its mean
// in the second pass, so it only has to be close, and a constant block still sums to
// exactly 0), the second on the values converted to double once.
template <class T>
void add_plane_block(const T* p, i64 len, PreciseMoments& m) {
  const double nb = static_cast<double>(len);
  if constexpr (std::is_same_v<T, double>) {
    add_plane_block_centred(p, len, p[0] + wide_shifted_sum(p, len, p[0]) / nb, m);
  } else {
    float acc[kFloatAcc] = {};
    i64 i = 0;
    for (; i + kFloatAcc <= len; i += kFloatAcc)
      for (int k = 0; k < kFloatAcc; ++k) acc[k] += p[i + k] - p[0];
    float tail = 0;
    for (; i < len; ++i) tail += p[i] - p[0];
    for (int width = kFloatAcc / 2; width >= 1; width /= 2)
      for (int k = 0; k < width; ++k) acc[k] = acc[2 * k] + acc[2 * k + 1];
    const double block_mean = p[0] + static_cast<double>(acc[0] + tail) / nb;
    double values[kPlaneRun];
    for (i64 j = 0; j < len; ++j) values[j] = static_cast<double>(p[j]);
    add_plane_block_centred(values, len, block_mean, m);
  }
}

// Parts merged pairwise, given one at a time in order: a binary counter whose stack holds
// merged runs of 1, 2, 4, ... parts (two equal runs merge, the older one first), and at
// the end the stack merged from the newest run down. Merging aligned groups of 2^k parts
// this way first, then their results likewise, gives the same tree, hence the same bits
// (the Dask reduction relies on it); a value passes through at most log2(parts) + 1
// merges.
class PairwiseMerge {
 public:
  void push(const PreciseMoments& part) {
    PreciseMoments m;
    m.merge(part);  // normalized, as every later merge leaves its result
    stack_[top_] = m;
    runs_[top_++] = 1;
    while (top_ >= 2 && runs_[top_ - 1] == runs_[top_ - 2]) {
      stack_[top_ - 2].merge(stack_[top_ - 1]);
      runs_[top_ - 2] *= 2;
      --top_;
    }
  }
  PreciseMoments result() const {
    if (top_ == 0) return {};
    PreciseMoments acc = stack_[top_ - 1];
    for (int k = top_ - 2; k >= 0; --k) {
      PreciseMoments below = stack_[k];
      below.merge(acc);
      acc = below;
    }
    return acc;
  }

 private:
  PreciseMoments stack_[64];
  std::int64_t runs_[64] = {};
  int top_ = 0;
};

// The precise moments of the column tile [c0, c0 + tc) over rows [r0, r1): blocks of
// rows_per_block rows merged in order, channel-parallel (the loops over j vectorize),
// then written to acc[0, tc).
template <class T>
void precise_column_unit(const T* x, i64 cols, i64 c0, i64 tc, i64 r0, i64 r1,
                         i64 rows_per_block, PreciseMoments* acc) {
  double block_mean[kTile], block_m2[kTile], block_dev[kTile];
  double mean[kTile], mean_low[kTile], m2[kTile], m2_low[kTile];
  double n = 0;
  for (i64 b0 = r0; b0 < r1; b0 += rows_per_block) {
    const i64 rows = std::min(rows_per_block, r1 - b0);
    column_block<true>(x, cols, c0, tc, b0, rows, r1, block_mean, block_m2, block_dev);
    const double nb = static_cast<double>(rows), nb_inv = 1.0 / nb, total = n + nb;
    const double w_new = n == 0 ? 1.0 : nb / total, w_cross = n * nb / total;
    if (n == 0) {
      for (i64 j = 0; j < tc; ++j) mean[j] = block_mean[j], mean_low[j] = m2[j] = m2_low[j] = 0;
    }
    for (i64 j = 0; j < tc; ++j) {  // the block's (low, m2), then Chan's merge (n >= nb)
      double low, m;
      block_statistics(nb_inv, block_dev[j], block_m2[j], low, m);
      chan_merge_dd(mean[j], mean_low[j], m2[j], m2_low[j], block_mean[j], low, m, 0.0, w_new,
                    w_cross);
    }
    n = total;
  }
  for (i64 j = 0; j < tc; ++j) acc[j] = {n, mean[j], mean_low[j], m2[j], m2_low[j]};
}

// s == 1: units of `group` rows by one column tile.
template <class T>
void precise_rows(const T* x, Dims d, MomentArrays out) {
  const i64 tile = std::min(d.c, kTile);
  const i64 rows_per_block = std::max<i64>(1, std::min(kBlock / tile, kRun));
  const i64 group_blocks = (std::max(kUnit / tile, rows_per_block) + rows_per_block - 1) /
                           rows_per_block;
  const i64 group = group_blocks * rows_per_block;  // rows of a unit: whole blocks
  const i64 groups = (d.n + group - 1) / group, tiles = (d.c + tile - 1) / tile;
  std::vector<PreciseMoments> part(static_cast<std::size_t>(groups * d.c));
  const i64 units = groups * tiles;
  const int chunks = chunk_count(d.size(), units);
  parallel_chunks(chunks, [&](int t) {
    for (i64 u = chunk_begin(units, chunks, t); u < chunk_begin(units, chunks, t + 1); ++u) {
      const i64 g = u / tiles, c0 = (u % tiles) * tile;
      precise_column_unit(x, d.c, c0, std::min(tile, d.c - c0), g * group,
                          std::min(d.n, (g + 1) * group), rows_per_block,
                          part.data() + g * d.c + c0);
    }
  });
  for (i64 j = 0; j < d.c; ++j) {
    PairwiseMerge m;
    for (i64 g = 0; g < groups; ++g) m.push(part[static_cast<std::size_t>(g * d.c + j)]);
    m.result().store(out, j);
  }
}

// s > 1: units in memory order, so each thread streams through whole samples: groups of
// samples (about kUnit elements of them, every channel) when a sample is at most kUnit
// elements, else (sample, channels) pieces of about kUnit elements, or (sample, channel,
// segment) pieces when a plane alone is longer than kUnit. part[(n, ch, segment)] holds
// the moments of channel ch over the unit's samples starting at n (the first of its group).
template <class T>
void precise_planes(const T* x, Dims d, MomentArrays out) {
  const i64 sample = d.c * d.s;
  const i64 group = sample <= kUnit ? kUnit / sample : 1;        // samples per unit
  const i64 ch_per_unit = sample <= kUnit ? d.c : std::max<i64>(1, kUnit / d.s);
  const i64 segments = d.s <= kUnit ? 1 : (d.s + kUnit - 1) / kUnit;
  const i64 seg_len = segments == 1 ? d.s : kUnit;
  const i64 groups = (d.n + group - 1) / group;
  const i64 ch_units = (d.c + ch_per_unit - 1) / ch_per_unit;
  const i64 units = groups * ch_units * segments;
  std::vector<PreciseMoments> part(static_cast<std::size_t>(groups * d.c * segments));
  const int chunks = chunk_count(d.size(), units);
  parallel_chunks(chunks, [&](int t) {
    for (i64 u = chunk_begin(units, chunks, t); u < chunk_begin(units, chunks, t + 1); ++u) {
      const i64 g = u / (ch_units * segments), rest = u % (ch_units * segments);
      const i64 c0 = rest / segments * ch_per_unit, c1 = std::min(d.c, c0 + ch_per_unit);
      const i64 seg = rest % segments, p0 = seg * seg_len, p1 = std::min(d.s, p0 + seg_len);
      PreciseMoments* acc = part.data() + (g * d.c * segments + seg);
      for (i64 n = g * group; n < std::min(d.n, (g + 1) * group); ++n)
        for (i64 ch = c0; ch < c1; ++ch) {
          const T* plane = x + (n * d.c + ch) * d.s;
          for (i64 s0 = p0; s0 < p1; s0 += kPlaneRun)
            add_plane_block(plane + s0, std::min(kPlaneRun, p1 - s0), acc[ch * segments]);
        }
    }
  });
  for (i64 ch = 0; ch < d.c; ++ch) {
    PairwiseMerge m;
    for (i64 g = 0; g < groups; ++g)
      for (i64 seg = 0; seg < segments; ++seg)
        m.push(part[static_cast<std::size_t>((g * d.c + ch) * segments + seg)]);
    m.result().store(out, ch);
  }
}

}  // namespace bnfast::BNFAST_ISA
