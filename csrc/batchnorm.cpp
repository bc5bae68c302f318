#include "batchnorm.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include <cstdlib>

#include "batchnorm_isa.hpp"
#include "isa.hpp"
#include "parallel.hpp"

namespace bnfast {

using i64 = std::int64_t;

ZeroVarianceError::ZeroVarianceError(std::int64_t ch, const char* variance_name)
    : std::invalid_argument("channel " + std::to_string(ch) + " has " + variance_name +
                            " 0 and eps == 0: batch normalization divides by zero there"),
      channel(ch) {}

ZeroVarianceError::ZeroVarianceError(std::int64_t ch, const std::string& message)
    : std::invalid_argument(message), channel(ch) {}

double* Workspace::doubles(std::size_t count) {
  if (doubles_.size() < count) doubles_.resize(count);
  return doubles_.data();
}

template <>
float* Workspace::coefficients<float>(std::size_t count) {
  if (coeff_float_.size() < count) coeff_float_.resize(count);
  return coeff_float_.data();
}

template <>
double* Workspace::coefficients<double>(std::size_t count) {
  if (coeff_double_.size() < count) coeff_double_.resize(count);
  return coeff_double_.data();
}


namespace {
// A small single channel: its values are one contiguous run, best walked as one plane
// (vectorized sums along the run instead of a loop over one column per row). Large
// ones keep their rows, which the threads split.
Dims canonical(Dims d) {
  return d.c == 1 && d.size() < kSerialThreshold ? Dims{1, 1, d.size()} : d;
}
}  // namespace

#define BNFAST_DISPATCH(call) (use_avx2() ? avx2::call : baseline::call)

template <class T>
void batch_stats(const T* x, Dims d, double* mean, double* var, Workspace& ws) {
  d = canonical(d);
  BNFAST_DISPATCH(batch_stats<T>(x, d, mean, var, ws));
}

template <class T>
void normalize(const T* x, Dims d, const double* mean, const double* invstd,
               const double* weight, const double* bias, T* y, Workspace& ws) {
  d = canonical(d);
  BNFAST_DISPATCH(normalize<T>(x, d, mean, invstd, weight, bias, y, ws));
}

template <class T>
void forward_train(const T* x, Dims d, const double* weight, const double* bias,
                   double eps, T* y, double* mean, double* var, double* invstd,
                   Workspace& ws) {
  d = canonical(d);
  BNFAST_DISPATCH(forward_train<T>(x, d, weight, bias, eps, y, mean, var, invstd, ws));
}

template <class T>
void forward_eval(const T* x, Dims d, const double* running_mean, const double* running_var,
                  const double* weight, const double* bias, double eps, T* y,
                  Workspace& ws) {
  d = canonical(d);
  BNFAST_DISPATCH(forward_eval<T>(x, d, running_mean, running_var, weight, bias, eps, y, ws));
}

template <class T>
void backward(const T* dy, const T* x, Dims d, const double* mean, const double* invstd,
              const double* weight, T* dx, double* grad_weight, double* grad_bias,
              Workspace& ws) {
  d = canonical(d);
  BNFAST_DISPATCH(backward<T>(dy, x, d, mean, invstd, weight, dx, grad_weight, grad_bias, ws));
}
#undef BNFAST_DISPATCH

template <class R>
std::int64_t update_running_stats(R* running_mean, std::int64_t mean_stride, R* running_var,
                                  std::int64_t var_stride, const double* mean,
                                  const double* var, std::int64_t c, std::int64_t count,
                                  double momentum) {
  if (count < 2) throw std::invalid_argument("the running variance needs count >= 2");
  const double unbias = static_cast<double>(count) / static_cast<double>(count - 1);
  std::int64_t skipped = 0;
  for (i64 ch = 0; ch < c; ++ch) {
    if (!std::isfinite(mean[ch]) || !std::isfinite(var[ch])) {
      ++skipped;
      continue;
    }
    R& rm = running_mean[ch * mean_stride];
    R& rv = running_var[ch * var_stride];
    rm = static_cast<R>((1.0 - momentum) * static_cast<double>(rm) + momentum * mean[ch]);
    rv = static_cast<R>((1.0 - momentum) * static_cast<double>(rv) + momentum * var[ch] * unbias);
  }
  return skipped;
}

#define BNFAST_INSTANTIATE(T)                                                         \
  BNFAST_INSTANTIATE_KERNELS(T)                                                       \
  template std::int64_t update_running_stats<T>(T*, std::int64_t, T*, std::int64_t,  \
                                                const double*, const double*,         \
                                                std::int64_t, std::int64_t, double);

BNFAST_INSTANTIATE(float)
BNFAST_INSTANTIATE(double)
#undef BNFAST_INSTANTIATE

}  // namespace bnfast
