// Per-channel batch statistics (count, mean, sum of squared deviations): the one copy
// of the moments code, included by every kernel body (kernels/batchnorm_isa.cpp).
// Compiled once per instruction set: everything here lives in bnfast::BNFAST_ISA, so
// the variants never share an instantiation.
#pragma once

#include <algorithm>
#include <cstdint>

#include "kernels/batchnorm.hpp"
#include "runtime/parallel.hpp"

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
      const double shift = static_cast<double>(plane[s0]);
      const double block_mean =
          shift + shifted_sum(plane + s0, len, shift) / static_cast<double>(len);
      acc.merge(static_cast<double>(len), block_mean,
                squared_deviations(plane + s0, len, block_mean));
    }
  }
  return acc;
}

// Per-column mean and m2 over rows [r0, r1) of a row-major (rows, cols) array.
// Row blocks of a column tile are summed twice while they sit in cache, then merged;
// the first pass is shifted by the block's first row (see shifted_sum).
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
      const T* first = x + b0 * cols + c0;
      std::fill(block_mean, block_mean + tc, 0.0);
      for (i64 r = b0 + 1; r < b0 + nb; ++r) {
        const T* row = x + r * cols + c0;
        for (i64 j = 0; j < tc; ++j)
          block_mean[j] += static_cast<double>(row[j]) - static_cast<double>(first[j]);
      }
      const double inv_nb = 1.0 / static_cast<double>(nb);
      for (i64 j = 0; j < tc; ++j)
        block_mean[j] = static_cast<double>(first[j]) + block_mean[j] * inv_nb;
      std::fill(block_m2, block_m2 + tc, 0.0);
      const i64 next_end = std::min(r1, b0 + 2 * nb);
      for (i64 r = b0; r < b0 + nb; ++r) {
        const T* row = x + r * cols + c0;
        if (r + nb < next_end) prefetch_l2(row + nb * cols, tc);  // the next block's row
        for (i64 j = 0; j < tc; ++j) {
          const double dev = static_cast<double>(row[j]) - block_mean[j];
          block_m2[j] += dev * dev;
        }
      }
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

}  // namespace bnfast::BNFAST_ISA
