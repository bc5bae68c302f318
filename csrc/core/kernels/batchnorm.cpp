#include "kernels/batchnorm.hpp"

#include <cmath>
#include <limits>
#include <string>

#include "runtime/dispatch.hpp"

namespace bnfast {

using i64 = std::int64_t;

ZeroVarianceError::ZeroVarianceError(std::int64_t ch, const char* variance_name)
    : std::invalid_argument("channel " + std::to_string(ch) + " has " + variance_name +
                            " 0 and eps == 0: batch normalization divides by zero there"),
      channel(ch) {}

ZeroVarianceError::ZeroVarianceError(std::int64_t ch, const std::string& message)
    : std::invalid_argument(message), channel(ch) {}

ZeroVarianceError::~ZeroVarianceError() = default;

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

template <class T>
const BatchNormKernels<T>& batch_norm_kernels() {
  static const BatchNormKernels<T> table =
      select_isa(&baseline::kernel_table<T>, &avx2::kernel_table<T>)();
  return table;
}

template <class R>
std::int64_t update_running_stats(R* running_mean, std::int64_t mean_stride, R* running_var,
                                  std::int64_t var_stride, const double* mean,
                                  const double* var, std::int64_t c, std::int64_t count,
                                  double momentum, bool write) {
  const double unbias = static_cast<double>(count) / static_cast<double>(count - 1);
  const double top = static_cast<double>(std::numeric_limits<R>::max());
  std::int64_t skipped = 0;
  for (i64 ch = 0; ch < c; ++ch) {
    R& rm = running_mean[ch * mean_stride];
    R& rv = running_var[ch * var_stride];
    const double new_mean = (1.0 - momentum) * static_cast<double>(rm) + momentum * mean[ch];
    const double new_var =
        (1.0 - momentum) * static_cast<double>(rv) + momentum * var[ch] * unbias;
    // |v| <= top is false for NaN and inf as well
    if (!(std::fabs(new_mean) <= top && std::fabs(new_var) <= top)) {
      ++skipped;
      continue;
    }
    if (write) {
      rm = static_cast<R>(new_mean);
      rv = static_cast<R>(new_var);
    }
  }
  return skipped;
}

#define BNFAST_INSTANTIATE(T)                                                        \
  template const BatchNormKernels<T>& batch_norm_kernels<T>();                       \
  template std::int64_t update_running_stats<T>(T*, std::int64_t, T*, std::int64_t, \
                                                const double*, const double*,        \
                                                std::int64_t, std::int64_t, double, bool);
BNFAST_FOR_EACH_FLOAT(BNFAST_INSTANTIATE)
#undef BNFAST_INSTANTIATE

}  // namespace bnfast
