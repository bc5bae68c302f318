// The kernels' bodies, compiled once per instruction set (CMakeLists.txt builds this
// file with BNFAST_ISA=baseline and, on x86-64, BNFAST_ISA=avx2 plus -mavx2 -mfma).
// batchnorm.cpp picks the widest the CPU supports at run time. -ffp-contract=off and
// fixed accumulation orders make every variant produce the same bits.
#include <algorithm>
#include <cmath>
#include <string>

#include "batchnorm_isa.hpp"
#include "parallel.hpp"

namespace bnfast::BNFAST_ISA {

namespace {

using i64 = std::int64_t;

// Blocks of about this many elements stay in L1/L2 between the two passes of the
// statistics (sum, then sum of squared deviations from the block mean).
constexpr i64 kBlock = 8192;
// Column tile of the (N, C) statistics: the tile's accumulators stay in L1.
constexpr i64 kTile = 512;

// Count, mean and sum of squared deviations; merged with Chan et al.'s formula, which
// never subtracts two large sums (no E[x^2] - E[x]^2 cancellation).
struct Moments {
  double n = 0, mean = 0, m2 = 0;
  void merge(double nb, double mean_b, double m2_b) {
    if (nb == 0) return;
    const double total = n + nb;
    const double delta = mean_b - mean;
    mean += delta * (nb / total);
    m2 += m2_b + delta * delta * (n * nb / total);
    n = total;
  }
};

// Sum of x - shift, with eight independent accumulators so the compiler can vectorize
// it without reassociating (no -ffast-math); the combination order is fixed, so results
// are too. Callers shift by a value of the block: a constant block then sums to exactly
// 0, so its mean is exact and its variance exactly 0 (eps == 0 must see that), which
// sum(x) / len does not guarantee (7 copies of 0.1 average to 0.09999999999999999).
template <class T>
double shifted_sum(const T* p, i64 len, double shift) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  i64 i = 0;
  for (; i + 8 <= len; i += 8)
    for (int k = 0; k < 8; ++k) acc[k] += static_cast<double>(p[i + k]) - shift;
  double tail = 0;
  for (; i < len; ++i) tail += static_cast<double>(p[i]) - shift;
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) +
         tail;
}

template <class T>
double squared_deviations(const T* p, i64 len, double center) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  i64 i = 0;
  for (; i + 8 <= len; i += 8)
    for (int k = 0; k < 8; ++k) {
      const double dev = static_cast<double>(p[i + k]) - center;
      acc[k] += dev * dev;
    }
  double tail = 0;
  for (; i < len; ++i) {
    const double dev = static_cast<double>(p[i]) - center;
    tail += dev * dev;
  }
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) +
         tail;
}

// sum g and sum g * (x - center) over one contiguous run, center = hi + lo (see Coeffs).
template <class T>
void grad_sums(const T* g, const T* x, i64 len, T hi, T lo, double& sum_g, double& sum_gx) {
  double ag[4] = {0, 0, 0, 0}, ax[4] = {0, 0, 0, 0};
  i64 i = 0;
  for (; i + 4 <= len; i += 4)
    for (int k = 0; k < 4; ++k) {
      const double gk = static_cast<double>(g[i + k]);
      ag[k] += gk;
      ax[k] += gk * static_cast<double>((x[i + k] - hi) - lo);
    }
  double tg = 0, tx = 0;
  for (; i < len; ++i) {
    const double gi = static_cast<double>(g[i]);
    tg += gi;
    tx += gi * static_cast<double>((x[i] - hi) - lo);
  }
  sum_g += ((ag[0] + ag[1]) + (ag[2] + ag[3])) + tg;
  sum_gx += ((ax[0] + ax[1]) + (ax[2] + ax[3])) + tx;
}

// Moments of one channel over samples [n0, n1) of a (n, c, s) array, s > 1.
template <class T>
Moments channel_moments(const T* x, Dims d, i64 ch, i64 n0, i64 n1) {
  Moments acc;
  for (i64 n = n0; n < n1; ++n) {
    const T* plane = x + (n * d.c + ch) * d.s;
    for (i64 s0 = 0; s0 < d.s; s0 += kBlock) {
      const i64 len = std::min(kBlock, d.s - s0);
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
      for (i64 r = b0; r < b0 + nb; ++r) {
        const T* row = x + r * cols + c0;
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
      for (i64 j = 0; j < tc; ++j) {
        const double delta = block_mean[j] - mu[j];
        mu[j] += delta * w_new;
        sq[j] += block_m2[j] + delta * delta * w_cross;
      }
      seen = total;
    }
  }
}

// Per-channel affine map y = ((x - hi) - lo) * scale + shift in the data's type.
// hi + lo is the mean split into a T and its T remainder: x - hi is exact when x is
// near the mean (Sterbenz), so a float32 channel centred at 1e4 keeps full precision,
// which x * a + b would lose.
template <class T>
struct Coeffs {
  T* hi;
  T* lo;
  T* scale;
  T* shift;
  static Coeffs make(i64 c, Workspace& ws) {
    T* base = ws.coefficients<T>(static_cast<std::size_t>(4 * c));
    return {base, base + c, base + 2 * c, base + 3 * c};
  }
  void set_center(i64 ch, double center) {
    hi[ch] = static_cast<T>(center);
    lo[ch] = static_cast<T>(center - static_cast<double>(hi[ch]));
  }
};

template <class T>
void set_forward_coeffs(Coeffs<T> k, i64 ch, double mean, double invstd, const double* weight,
                        const double* bias) {
  k.set_center(ch, mean);
  k.scale[ch] = static_cast<T>(invstd * (weight ? weight[ch] : 1.0));
  k.shift[ch] = static_cast<T>(bias ? bias[ch] : 0.0);
}

template <class T>
void affine_run(const T* x, T* y, i64 len, T hi, T lo, T scale, T shift) {
  for (i64 i = 0; i < len; ++i) y[i] = ((x[i] - hi) - lo) * scale + shift;
}

// Applies the per-channel map, threads splitting whole rows: (N, C) rows of c values
// with one coefficient per column, or (n * c, s) planes with one coefficient per plane.
template <class T>
void normalize_all(const T* x, T* y, Dims d, Coeffs<T> k) {
  if (d.s == 1) {
    const int chunks = chunk_count(d.size(), d.n);
    parallel_chunks(chunks, [&](int t) {
      for (i64 r = chunk_begin(d.n, chunks, t); r < chunk_begin(d.n, chunks, t + 1); ++r) {
        const T* xr = x + r * d.c;
        T* yr = y + r * d.c;
        for (i64 j = 0; j < d.c; ++j)
          yr[j] = ((xr[j] - k.hi[j]) - k.lo[j]) * k.scale[j] + k.shift[j];
      }
    });
    return;
  }
  const i64 planes = d.n * d.c;
  const int chunks = chunk_count(d.size(), planes);
  parallel_chunks(chunks, [&](int t) {
    for (i64 p = chunk_begin(planes, chunks, t); p < chunk_begin(planes, chunks, t + 1); ++p) {
      const i64 ch = p % d.c;
      affine_run(x + p * d.s, y + p * d.s, d.s, k.hi[ch], k.lo[ch], k.scale[ch], k.shift[ch]);
    }
  });
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

template <class T>
void check_positive(const double* var, i64 c, double eps, const char* name) {
  if (eps != 0) return;
  for (i64 ch = 0; ch < c; ++ch)
    if (var[ch] == 0) throw ZeroVarianceError(ch, name);
}

// Fused training forward for s > 1 with channels split across threads: each channel's
// planes are normalized right after its statistics, while they are still in cache.
template <class T>
void forward_fused_channels(const T* x, Dims d, const double* weight, const double* bias,
                            double eps, T* y, double* mean, double* var, double* invstd,
                            Coeffs<T> k, int chunks) {
  const double count = static_cast<double>(d.per_channel());
  parallel_chunks(chunks, [&](int t) {
    for (i64 ch = chunk_begin(d.c, chunks, t); ch < chunk_begin(d.c, chunks, t + 1); ++ch) {
      const Moments m = channel_moments(x, d, ch, 0, d.n);
      mean[ch] = m.mean;
      var[ch] = m.m2 / count;
      invstd[ch] = 1.0 / std::sqrt(var[ch] + eps);
      set_forward_coeffs(k, ch, mean[ch], invstd[ch], weight, bias);
      for (i64 n = 0; n < d.n; ++n) {
        const i64 off = (n * d.c + ch) * d.s;
        affine_run(x + off, y + off, d.s, k.hi[ch], k.lo[ch], k.scale[ch], k.shift[ch]);
      }
    }
  });
}

// Backward coefficients: dx = A * g + B * (x - mean) + C0 per channel.
template <class T>
struct BackCoeffs {
  T *hi, *lo, *a, *b, *c0;
  static BackCoeffs make(i64 c, Workspace& ws) {
    T* base = ws.coefficients<T>(static_cast<std::size_t>(5 * c));
    return {base, base + c, base + 2 * c, base + 3 * c, base + 4 * c};
  }
  // sum_gx = sum g * (x - mean); on return grad_weight/bias hold their final values.
  void finish(i64 ch, double count, double invstd, const double* weight, double sum_g,
              double sum_gx, double* grad_weight, double* grad_bias) {
    const double gw = sum_gx * invstd;
    const double k = (weight ? weight[ch] : 1.0) * invstd;
    grad_weight[ch] = gw;
    grad_bias[ch] = sum_g;
    a[ch] = static_cast<T>(k);
    b[ch] = static_cast<T>(-k * invstd * gw / count);
    c0[ch] = static_cast<T>(-k * sum_g / count);
  }
  void set_center(i64 ch, double center) {
    hi[ch] = static_cast<T>(center);
    lo[ch] = static_cast<T>(center - static_cast<double>(hi[ch]));
  }
};

template <class T>
void backward_run(const T* g, const T* x, T* dx, i64 len, T hi, T lo, T a, T b, T c0) {
  for (i64 i = 0; i < len; ++i) dx[i] = a * g[i] + b * ((x[i] - hi) - lo) + c0;
}

template <class T>
void backward_rows(const T* g, const T* x, Dims d, const double* mean, const double* invstd,
                   const double* weight, T* dx, double* grad_weight, double* grad_bias,
                   Workspace& ws) {
  const i64 C = d.c;
  BackCoeffs<T> k = BackCoeffs<T>::make(C, ws);
  for (i64 j = 0; j < C; ++j) k.set_center(j, mean[j]);
  const int chunks = chunk_count(d.size(), d.n);
  // Per-chunk partial sums, reduced row by row with unit stride.
  double* part = ws.doubles(static_cast<std::size_t>(2 * C * chunks));
  parallel_chunks(chunks, [&](int t) {
    double* sg = part + 2 * C * t;
    double* sx = sg + C;
    std::fill(sg, sg + 2 * C, 0.0);
    for (i64 r = chunk_begin(d.n, chunks, t); r < chunk_begin(d.n, chunks, t + 1); ++r) {
      const T* gr = g + r * C;
      const T* xr = x + r * C;
      for (i64 j = 0; j < C; ++j) {
        const double gj = static_cast<double>(gr[j]);
        sg[j] += gj;
        sx[j] += gj * static_cast<double>((xr[j] - k.hi[j]) - k.lo[j]);
      }
    }
  });
  const double count = static_cast<double>(d.n);
  for (i64 j = 0; j < C; ++j) {
    double sum_g = 0, sum_gx = 0;
    for (int t = 0; t < chunks; ++t) {
      sum_g += part[2 * C * t + j];
      sum_gx += part[2 * C * t + C + j];
    }
    k.finish(j, count, invstd[j], weight, sum_g, sum_gx, grad_weight, grad_bias);
  }
  parallel_chunks(chunks, [&](int t) {
    for (i64 r = chunk_begin(d.n, chunks, t); r < chunk_begin(d.n, chunks, t + 1); ++r) {
      const T* gr = g + r * C;
      const T* xr = x + r * C;
      T* dr = dx + r * C;
      for (i64 j = 0; j < C; ++j)
        dr[j] = k.a[j] * gr[j] + k.b[j] * ((xr[j] - k.hi[j]) - k.lo[j]) + k.c0[j];
    }
  });
}

template <class T>
void backward_planes(const T* g, const T* x, Dims d, const double* mean, const double* invstd,
                     const double* weight, T* dx, double* grad_weight, double* grad_bias,
                     Workspace& ws) {
  BackCoeffs<T> k = BackCoeffs<T>::make(d.c, ws);
  for (i64 ch = 0; ch < d.c; ++ch) k.set_center(ch, mean[ch]);
  const double count = static_cast<double>(d.per_channel());
  const int chunks = chunk_count(d.size(), std::max(d.c, d.n));
  auto reduce = [&](i64 ch, i64 n0, i64 n1, double& sg, double& sx) {
    for (i64 n = n0; n < n1; ++n) {
      const i64 off = (n * d.c + ch) * d.s;
      grad_sums(g + off, x + off, d.s, k.hi[ch], k.lo[ch], sg, sx);
    }
  };
  auto apply = [&](i64 ch, i64 n) {
    const i64 off = (n * d.c + ch) * d.s;
    backward_run(g + off, x + off, dx + off, d.s, k.hi[ch], k.lo[ch], k.a[ch], k.b[ch],
                 k.c0[ch]);
  };
  if (d.c >= chunks) {
    // Channels split across threads; a channel's planes are still in cache when applied.
    parallel_chunks(chunks, [&](int t) {
      for (i64 ch = chunk_begin(d.c, chunks, t); ch < chunk_begin(d.c, chunks, t + 1); ++ch) {
        double sg = 0, sx = 0;
        reduce(ch, 0, d.n, sg, sx);
        k.finish(ch, count, invstd[ch], weight, sg, sx, grad_weight, grad_bias);
        for (i64 n = 0; n < d.n; ++n) apply(ch, n);
      }
    });
    return;
  }
  double* part = ws.doubles(static_cast<std::size_t>(2 * d.c * chunks));
  parallel_chunks(chunks, [&](int t) {
    for (i64 ch = 0; ch < d.c; ++ch) {
      double sg = 0, sx = 0;
      reduce(ch, chunk_begin(d.n, chunks, t), chunk_begin(d.n, chunks, t + 1), sg, sx);
      part[2 * (d.c * t + ch)] = sg;
      part[2 * (d.c * t + ch) + 1] = sx;
    }
  });
  for (i64 ch = 0; ch < d.c; ++ch) {
    double sg = 0, sx = 0;
    for (int t = 0; t < chunks; ++t) {
      sg += part[2 * (d.c * t + ch)];
      sx += part[2 * (d.c * t + ch) + 1];
    }
    k.finish(ch, count, invstd[ch], weight, sg, sx, grad_weight, grad_bias);
  }
  parallel_chunks(chunks, [&](int t) {
    for (i64 n = chunk_begin(d.n, chunks, t); n < chunk_begin(d.n, chunks, t + 1); ++n)
      for (i64 ch = 0; ch < d.c; ++ch) apply(ch, n);
  });
}

}  // namespace

template <class T>
void batch_stats(const T* x, Dims d, double* mean, double* var, Workspace& ws) {
  if (d.s == 1)
    stats_rows(x, d, mean, var, ws);
  else
    stats_planes(x, d, mean, var, ws);
}

template <class T>
void normalize(const T* x, Dims d, const double* mean, const double* invstd,
               const double* weight, const double* bias, T* y, Workspace& ws) {
  Coeffs<T> k = Coeffs<T>::make(d.c, ws);
  for (i64 ch = 0; ch < d.c; ++ch) set_forward_coeffs(k, ch, mean[ch], invstd[ch], weight, bias);
  normalize_all(x, y, d, k);
}

template <class T>
void forward_train(const T* x, Dims d, const double* weight, const double* bias,
                   double eps, T* y, double* mean, double* var, double* invstd,
                   Workspace& ws) {
  const int chunks = chunk_count(d.size(), std::max(d.c, d.n));
  // eps == 0 must be able to fail before any output is written, so it never fuses.
  if (d.s > 1 && eps > 0 && d.c >= chunks) {
    forward_fused_channels(x, d, weight, bias, eps, y, mean, var, invstd,
                           Coeffs<T>::make(d.c, ws), chunks);
    return;
  }
  BNFAST_ISA::batch_stats(x, d, mean, var, ws);
  check_positive<T>(var, d.c, eps, "variance");
  for (i64 ch = 0; ch < d.c; ++ch) invstd[ch] = 1.0 / std::sqrt(var[ch] + eps);
  BNFAST_ISA::normalize(x, d, mean, invstd, weight, bias, y, ws);
}

template <class T>
void forward_eval(const T* x, Dims d, const double* running_mean, const double* running_var,
                  const double* weight, const double* bias, double eps, T* y,
                  Workspace& ws) {
  check_positive<T>(running_var, d.c, eps, "running variance");
  Coeffs<T> k = Coeffs<T>::make(d.c, ws);
  for (i64 ch = 0; ch < d.c; ++ch)
    set_forward_coeffs(k, ch, running_mean[ch], 1.0 / std::sqrt(running_var[ch] + eps), weight,
                       bias);
  normalize_all(x, y, d, k);
}

template <class T>
void backward(const T* dy, const T* x, Dims d, const double* mean, const double* invstd,
              const double* weight, T* dx, double* grad_weight, double* grad_bias,
              Workspace& ws) {
  if (d.s == 1)
    backward_rows(dy, x, d, mean, invstd, weight, dx, grad_weight, grad_bias, ws);
  else
    backward_planes(dy, x, d, mean, invstd, weight, dx, grad_weight, grad_bias, ws);
}

BNFAST_INSTANTIATE_KERNELS(float)
BNFAST_INSTANTIATE_KERNELS(double)

}  // namespace bnfast::BNFAST_ISA
