// Per-instruction-set copies of the kernels (internal). Each namespace holds the same
// templates as the public API of batchnorm.hpp; batchnorm.cpp dispatches to one.
#pragma once

#include "batchnorm.hpp"

#define BNFAST_DECLARE_KERNELS(NS)                                                           \
  namespace bnfast::NS {                                                                     \
  template <class T>                                                                         \
  void batch_stats(const T* x, Dims d, double* mean, double* var, Workspace& ws);            \
  template <class T>                                                                         \
  void normalize(const T* x, Dims d, const double* mean, const double* invstd,               \
                 const double* weight, const double* bias, T* y, Workspace& ws);             \
  template <class T>                                                                         \
  void forward_train(const T* x, Dims d, const double* weight, const double* bias,           \
                     double eps, T* y, double* mean, double* var, double* invstd,            \
                     Workspace& ws);                                                         \
  template <class T>                                                                         \
  void forward_eval(const T* x, Dims d, const double* running_mean,                          \
                    const double* running_var, const double* weight, const double* bias,     \
                    double eps, T* y, Workspace& ws);                                        \
  template <class T>                                                                         \
  void backward(const T* dy, const T* x, Dims d, const double* mean, const double* invstd,   \
                const double* weight, T* dx, double* grad_weight, double* grad_bias,         \
                Workspace& ws);                                                              \
  }

BNFAST_DECLARE_KERNELS(baseline)
BNFAST_DECLARE_KERNELS(avx2)
#undef BNFAST_DECLARE_KERNELS
