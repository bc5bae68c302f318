// Batch normalization kernels on raw pointers (docs/math/batch_norm.md). No Python here.
//
// Every array argument is C-contiguous. x is viewed as (n, c, s): n samples, c channels,
// s = product of the trailing axes (1 for an (N, C) input). Statistics of channel j run
// over the n * s values x[:, j, :]. Per-channel quantities (mean, var, invstd, weight,
// bias, gradients) are double: they are tiny, and keeping them in double lets float32
// data far from zero (mean 1e4, std 1) normalize to full float32 accuracy.
//
// Preconditions (checked by the bindings, not here): pointers cover the sizes d gives,
// eps is finite and >= 0, momentum is in [0, 1].
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace bnfast {

struct Dims {
  std::int64_t n;  // samples (axis 0)
  std::int64_t c;  // channels (axis 1)
  std::int64_t s;  // product of the trailing axes
  std::int64_t per_channel() const { return n * s; }
  std::int64_t size() const { return n * c * s; }
};

// eps == 0 and a channel with zero variance: the transform divides by zero there.
class ZeroVarianceError : public std::invalid_argument {
 public:
  ZeroVarianceError(std::int64_t channel, const char* variance_name);
  ZeroVarianceError(std::int64_t channel, const std::string& message);
  ~ZeroVarianceError() override;  // defined in batchnorm.cpp: one vtable, outside the ISA files
  std::int64_t channel;
};

// Scratch memory reused across calls: per-channel coefficients and per-thread partial
// sums. A long-lived owner (a training loop) keeps one, so its steady state allocates
// nothing; a one-off call uses a fresh one.
class Workspace {
 public:
  double* doubles(std::size_t count);  // valid until the next call on this workspace
  template <class T>
  T* coefficients(std::size_t count);  // same, typed as the data

 private:
  std::vector<double> doubles_;
  std::vector<float> coeff_float_;
  std::vector<double> coeff_double_;
};

// Per-channel moments as the precise moments kernel keeps them (population statistics,
// docs/math/population_statistics.md): the mean is mean + mean_low and the sum of
// squared deviations from it m2 + m2_low, each an unevaluated sum of two doubles (the
// low part below half an ulp of the high one), so that merging never rounds them.
struct MomentArrays {
  double* mean;
  double* mean_low;
  double* m2;
  double* m2_low;
};
struct ConstMomentArrays {
  const double* mean;
  const double* mean_low;
  const double* m2;
  const double* m2_low;
};

// The kernels of one instruction-set variant, for data of type T. Each signature is
// written here once; kernels/batchnorm_isa.cpp defines the bodies per variant.
template <class T>
struct BatchNormKernels {
  // mean[c] and biased variance var[c] (divide by n * s) of each channel.
  void (*batch_stats)(const T* x, Dims d, double* mean, double* var, Workspace& ws);

  // y = (x - mean) * invstd * weight + bias per channel; weight/bias may be null (1, 0).
  void (*normalize)(const T* x, Dims d, const double* mean, const double* invstd,
                    const double* weight, const double* bias, T* y, Workspace& ws);

  // Training forward: batch statistics, invstd = 1/sqrt(var + eps), then normalize.
  // Throws ZeroVarianceError before writing y when eps == 0 and a variance is 0.
  void (*forward_train)(const T* x, Dims d, const double* weight, const double* bias,
                        double eps, T* y, double* mean, double* var, double* invstd,
                        Workspace& ws);

  // Inference with population statistics. Throws ZeroVarianceError when eps == 0 and a
  // running variance is 0, before writing y.
  void (*forward_eval)(const T* x, Dims d, const double* running_mean,
                       const double* running_var, const double* weight, const double* bias,
                       double eps, T* y, Workspace& ws);

  // Backward of the training transform, with g = dy and xhat = (x - mean) * invstd:
  //   grad_bias[c]   = sum g
  //   grad_weight[c] = sum g * xhat
  //   dx = weight * invstd / m * (m * g - grad_bias - xhat * grad_weight),  m = n * s.
  void (*backward)(const T* dy, const T* x, Dims d, const double* mean, const double* invstd,
                   const double* weight, T* dx, double* grad_weight, double* grad_bias,
                   Workspace& ws);

  // Population statistics of one chunk: each channel's moments over its n * s values
  // (count n * s for every channel) into c-long arrays. Not the batch_stats algorithm:
  // blocks of at most 64 sequential additions whose second pass also recovers what the
  // first pass's mean rounded away, merged in double-double, in fixed units of work, so
  // the result is within a few ulps of the exact moments and does not depend on the
  // thread count (nor on the instruction set). A channel holding NaN or inf gets NaN everywhere (no other
  // channel is affected); finite data whose m2 exceeds double's range get m2 = inf.
  void (*moments)(const T* x, Dims d, MomentArrays out);

  // Chan's merge, in double-double, of `parts` moments of c channels (row p of each
  // (parts, c) array; count[p] values per channel) into c-long arrays, pairwise in order
  // (kernels/moments.hpp PairwiseMerge: the tree depends on the number of parts only).
  // Parts with count 0 change nothing. The same code for both T.
  void (*merge_moments)(std::int64_t parts, std::int64_t c, const double* count,
                        ConstMomentArrays in, MomentArrays out);
};

// Each variant's table (kernels/batchnorm_isa.cpp, compiled once per instruction set).
namespace baseline { template <class T> BatchNormKernels<T> kernel_table(); }
namespace avx2 { template <class T> BatchNormKernels<T> kernel_table(); }

// The kernels of the variant this CPU runs (runtime/dispatch.hpp), chosen once.
template <class T>
const BatchNormKernels<T>& batch_norm_kernels();

// running <- (1 - momentum) * running + momentum * batch, with the batch variance made
// unbiased (times count / (count - 1)), as PyTorch does. Running arrays may be strided
// (stride in elements). Channels whose batch statistics are not finite (NaN or inf in
// x), or whose updated values do not fit R (float32 data with a variance beyond 3.4e38),
// are left unchanged; the return value is how many were. write = false only counts them
// (so a caller can warn before anything changes). count must be >= 2.
template <class R>
std::int64_t update_running_stats(R* running_mean, std::int64_t mean_stride,
                                  R* running_var, std::int64_t var_stride,
                                  const double* mean, const double* var, std::int64_t c,
                                  std::int64_t count, double momentum, bool write = true);

}  // namespace bnfast
