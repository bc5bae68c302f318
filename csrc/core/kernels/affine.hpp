// The per-channel affine maps of the forward pass, y = ((x - hi) - lo) * scale + shift
// in the data's type. hi + lo is the mean split into a T and its T remainder (see
// split_center). Per instruction set, like kernels/moments.hpp.
#pragma once

#include <cstdint>

#include "kernels/moments.hpp"
#include "runtime/simd.hpp"

namespace bnfast::BNFAST_ISA {

// center = hi + lo with hi the nearest T and lo the T remainder: x - hi is exact when x
// is near the mean (Sterbenz), so a float32 channel centred at 1e4 keeps full
// precision, which x * a + b with a folded shift would lose.
template <class T>
inline void split_center(double center, T& hi, T& lo) {
  hi = static_cast<T>(center);
  lo = static_cast<T>(center - static_cast<double>(hi));
}

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
  void set(i64 ch, double mean, double invstd, const double* weight, const double* bias) {
    split_center(mean, hi[ch], lo[ch]);
    scale[ch] = static_cast<T>(invstd * (weight ? weight[ch] : 1.0));
    shift[ch] = static_cast<T>(bias ? bias[ch] : 0.0);
  }
};

// The normalizing map, written once for scalars and vectors alike.
template <class V>
inline V affine(V x, V hi, V lo, V scale, V shift) {
  return ((x - hi) - lo) * scale + shift;
}

template <class T>
void affine_run(const T* x, T* y, i64 len, T hi, T lo, T scale, T shift) {
  for (i64 i = 0; i < len; ++i) y[i] = affine(x[i], hi, lo, scale, shift);
}

// Outputs of at least this many bytes are written with non-temporal stores (the (N, C)
// path): far beyond the caches, y would otherwise be read once more before it is
// written (write-allocate), a fourth stream of traffic on top of the 3S bound.
constexpr i64 kStreamOutputBytes = i64{16} << 20;

// Whether the (N, C) map streams y: a large output whose rows are whole 16-byte
// vectors from a 16-byte aligned start, so every store of the run is a streaming one
// (a line written partly by normal stores would be read back, slower than no
// streaming at all).
template <class T>
bool streams(const T* y, Dims d) {
  return d.size() * static_cast<i64>(sizeof(T)) >= kStreamOutputBytes &&
         reinterpret_cast<std::uintptr_t>(y) % kStreamBytes == 0 &&
         (d.c * static_cast<i64>(sizeof(T))) % static_cast<i64>(kStreamBytes) == 0;
}

// One row of the (N, C) map with non-temporal stores (rows as streams() requires): the
// same operations on every element, so the same bits as the ordinary loop.
template <class T>
void affine_row_stream(const T* x, T* y, i64 c, const T* hi, const T* lo, const T* scale,
                       const T* shift) {
  constexpr i64 W = static_cast<i64>(kStreamBytes / sizeof(T));
  for (i64 j = 0; j < c; j += W)
    stream_store(y + j, affine(load_stream_vec(x + j), load_stream_vec(hi + j),
                               load_stream_vec(lo + j), load_stream_vec(scale + j),
                               load_stream_vec(shift + j)));
}

// Applies the per-channel map, threads splitting whole rows: (N, C) rows of c values
// with one coefficient per column, or (n * c, s) planes with one coefficient per plane.
template <class T>
void normalize_all(const T* x, T* y, Dims d, Coeffs<T> k) {
  if (d.s == 1) {
    const int chunks = chunk_count(d.size(), d.n);
    const bool stream = streams(y, d);
    parallel_chunks(chunks, [&](int t) {
      // restrict: the coefficients never alias the data, so no per-row overlap checks
      const T* __restrict hi = k.hi;
      const T* __restrict lo = k.lo;
      const T* __restrict scale = k.scale;
      const T* __restrict shift = k.shift;
      const i64 r0 = chunk_begin(d.n, chunks, t), r1 = chunk_begin(d.n, chunks, t + 1);
      if (stream) {
        for (i64 r = r0; r < r1; ++r)
          affine_row_stream(x + r * d.c, y + r * d.c, d.c, hi, lo, scale, shift);
        stream_fence();
        return;
      }
      for (i64 r = r0; r < r1; ++r) {  // y may be x (in place): no restrict on the rows
        const T* xr = x + r * d.c;
        T* yr = y + r * d.c;
        for (i64 j = 0; j < d.c; ++j) yr[j] = affine(xr[j], hi[j], lo[j], scale[j], shift[j]);
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
      k.set(ch, mean[ch], invstd[ch], weight, bias);
      for (i64 n = 0; n < d.n; ++n) {
        const i64 off = (n * d.c + ch) * d.s;
        affine_run(x + off, y + off, d.s, k.hi[ch], k.lo[ch], k.scale[ch], k.shift[ch]);
      }
    }
  });
}

}  // namespace bnfast::BNFAST_ISA
