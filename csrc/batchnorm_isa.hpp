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

// Explicit instantiations of the five kernels for data type T, in the current namespace
// (the public one in batchnorm.cpp, each variant's in batchnorm_isa.cpp).
#define BNFAST_INSTANTIATE_KERNELS(T)                                                        \
  template void batch_stats<T>(const T*, Dims, double*, double*, Workspace&);                \
  template void normalize<T>(const T*, Dims, const double*, const double*, const double*,    \
                             const double*, T*, Workspace&);                                 \
  template void forward_train<T>(const T*, Dims, const double*, const double*, double, T*,   \
                                 double*, double*, double*, Workspace&);                     \
  template void forward_eval<T>(const T*, Dims, const double*, const double*, const double*, \
                                const double*, double, T*, Workspace&);                      \
  template void backward<T>(const T*, const T*, Dims, const double*, const double*,          \
                            const double*, T*, double*, double*, Workspace&);

BNFAST_DECLARE_KERNELS(baseline)
BNFAST_DECLARE_KERNELS(avx2)
#undef BNFAST_DECLARE_KERNELS
