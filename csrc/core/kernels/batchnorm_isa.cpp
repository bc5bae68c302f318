// The BN kernels' entry points, compiled once per instruction set (CMakeLists.txt builds
// this file with BNFAST_ISA=baseline and, on x86-64, BNFAST_ISA=avx2 plus -mavx2 -mfma;
// runtime/dispatch.hpp picks one at run time). -ffp-contract=off and fixed accumulation
// orders make every variant produce the same bits.
#include <algorithm>
#include <cmath>

#include "kernels/backward.hpp"
#include "kernels/extremes.hpp"
#include "runtime/dispatch.hpp"

namespace bnfast::BNFAST_ISA {
namespace {

// A small single channel: its values are one contiguous run, best walked as one plane
// (vectorized sums along the run instead of a loop over one column per row). Large
// ones keep their rows, which the threads split.
Dims canonical(Dims d) {
  return d.c == 1 && d.size() < kSerialThreshold ? Dims{1, 1, d.size()} : d;
}

template <class T>
void batch_stats(const T* x, Dims d, double* mean, double* var, Workspace& ws) {
  d = canonical(d);
  if (d.s == 1)
    stats_rows(x, d, mean, var, ws);
  else
    stats_planes(x, d, mean, var, ws);
}

template <class T>
void normalize(const T* x, Dims d, const double* mean, const double* invstd,
               const double* weight, const double* bias, T* y, Workspace& ws) {
  d = canonical(d);
  Coeffs<T> k = Coeffs<T>::make(d.c, ws);
  for (i64 ch = 0; ch < d.c; ++ch) k.set(ch, mean[ch], invstd[ch], weight, bias);
  normalize_all(x, y, d, k);
}

template <class T>
void forward_train(const T* x, Dims d, const double* weight, const double* bias,
                   double eps, T* y, double* mean, double* var, double* invstd,
                   Workspace& ws) {
  d = canonical(d);
  const int chunks = chunk_count(d.size(), std::max(d.c, d.n));
  // eps == 0 must be able to fail before any output is written, so it never fuses.
  std::vector<WideChannel> wide;
  if (d.s > 1 && eps > 0 && d.c >= chunks) {
    forward_fused_channels(x, d, weight, bias, eps, y, mean, var, invstd,
                           Coeffs<T>::make(d.c, ws), chunks);
    wide = rescue_statistics(x, d, eps, mean, var, invstd);
  } else {
    batch_stats(x, d, mean, var, ws);
    for (i64 ch = 0; ch < d.c; ++ch) invstd[ch] = 1.0 / std::sqrt(var[ch] + eps);
    wide = rescue_statistics(x, d, eps, mean, var, invstd);
    check_positive_rescued(var, d.c, eps, wide, "variance");
    normalize(x, d, mean, invstd, weight, bias, y, ws);
  }
  add_unrepresentable<T>(d.c, mean, invstd, weight, wide);
  normalize_wide(x, d, wide, weight, bias, y);
}

template <class T>
void forward_eval(const T* x, Dims d, const double* running_mean, const double* running_var,
                  const double* weight, const double* bias, double eps, T* y,
                  Workspace& ws) {
  d = canonical(d);
  check_positive<T>(running_var, d.c, eps, "running variance");
  Coeffs<T> k = Coeffs<T>::make(d.c, ws);
  double* invstd = ws.doubles(static_cast<std::size_t>(d.c));
  for (i64 ch = 0; ch < d.c; ++ch) {
    invstd[ch] = 1.0 / std::sqrt(running_var[ch] + eps);
    k.set(ch, running_mean[ch], invstd[ch], weight, bias);
  }
  normalize_all(x, y, d, k);
  std::vector<WideChannel> wide;
  add_unrepresentable<T>(d.c, running_mean, invstd, weight, wide);
  normalize_wide(x, d, wide, weight, bias, y);
}

template <class T>
void backward(const T* dy, const T* x, Dims d, const double* mean, const double* invstd,
              const double* weight, T* dx, double* grad_weight, double* grad_bias,
              Workspace& ws) {
  d = canonical(d);
  if (d.s == 1)
    backward_rows(dy, x, d, mean, invstd, weight, dx, grad_weight, grad_bias, ws);
  else
    backward_planes(dy, x, d, mean, invstd, weight, dx, grad_weight, grad_bias, ws);
  backward_wide(dy, x, d, mean, invstd, weight, grad_weight, grad_bias, dx);
}

template <class T>
void moments(const T* x, Dims d, MomentArrays out) {
  if (d.c == 1) d = Dims{1, 1, d.size()};  // one channel: one contiguous run
  if (d.s == 1)
    precise_rows(x, d, out);
  else
    precise_planes(x, d, out);
  rescue_moments(x, d, out);
}

void merge_moments(i64 parts, i64 c, const double* count, ConstMomentArrays in,
                   MomentArrays out) {
  for (i64 j = 0; j < c; ++j) {
    PairwiseMerge m;
    for (i64 p = 0; p < parts; ++p) {
      const i64 k = p * c + j;
      m.push({count[p], in.mean[k], in.mean_low[k], in.m2[k], in.m2_low[k]});
    }
    m.result().store(out, j);
  }
}

}  // namespace

template <class T>
BatchNormKernels<T> kernel_table() {
  return {&batch_stats<T>, &normalize<T>,  &forward_train<T>, &forward_eval<T>,
          &backward<T>,    &moments<T>,    &merge_moments};
}

#define BNFAST_INSTANTIATE(T) template BatchNormKernels<T> kernel_table<T>();
BNFAST_FOR_EACH_FLOAT(BNFAST_INSTANTIATE)
#undef BNFAST_INSTANTIATE

}  // namespace bnfast::BNFAST_ISA
