// The backward pass of training-mode BN (docs/math/batch_norm.md): per-channel sums of g
// and g * (x - mean), then dx = a * g + b * (x - mean) + c0. Per instruction set, like
// kernels/moments.hpp.
#pragma once

#include "kernels/affine.hpp"

namespace bnfast::BNFAST_ISA {

// sum g and sum g * (x - center) over one contiguous run, center = hi + lo (split_center).
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
  for (i64 j = 0; j < C; ++j) split_center(mean[j], k.hi[j], k.lo[j]);
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
  for (i64 ch = 0; ch < d.c; ++ch) split_center(mean[ch], k.hi[ch], k.lo[ch]);
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

}  // namespace bnfast::BNFAST_ISA
