/* The kernels as a plain C table of function pointers: the C API that
 * bnfast.cython_kernels (and through it other Cython extensions) calls without the GIL.
 * bnfast._core publishes the table in a capsule, so every caller runs the one copy of
 * the core (its CPU dispatch, threads and settings) that the Python API runs.
 *
 * x, y, grad_y, grad_x are (n, c, inner) C-contiguous; weight/bias may be NULL (1, 0);
 * mean, invstd, grad_weight, grad_bias are double (c,) whatever the data type, as in the
 * Python API. The functions never throw; they return one of the codes below, and write
 * nothing but scratch-free outputs when they fail on an argument. */
#ifndef BNFAST_C_API_H
#define BNFAST_C_API_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum bnfast_status {
  BNFAST_OK = 0,
  /* eps == 0 and a channel's variance is 0: BN divides by zero (nothing written). */
  BNFAST_ZERO_VARIANCE = 1,
  /* n, c or inner < 1, fewer than 2 values per channel for the forward pass, a NULL
   * array that is required, or eps negative or not finite (nothing written). */
  BNFAST_BAD_ARGUMENT = 2,
  /* scratch memory could not be allocated (nothing written). */
  BNFAST_NO_MEMORY = 3,
  /* anything else (a bug: please report it). */
  BNFAST_INTERNAL_ERROR = 4
};

/* The table's layout changes only with BNFAST_C_API_VERSION. */
#define BNFAST_C_API_VERSION 1
#define BNFAST_C_API_CAPSULE "bnfast._core._c_api"

typedef struct bnfast_c_api {
  int version;
  int (*batch_norm_forward_f64)(const double* x, int64_t n, int64_t c, int64_t inner,
                                const double* weight, const double* bias, double eps,
                                double* y, double* mean, double* invstd);
  int (*batch_norm_forward_f32)(const float* x, int64_t n, int64_t c, int64_t inner,
                                const double* weight, const double* bias, double eps,
                                float* y, double* mean, double* invstd);
  int (*batch_norm_backward_f64)(const double* grad_y, const double* x, int64_t n,
                                 int64_t c, int64_t inner, const double* mean,
                                 const double* invstd, const double* weight,
                                 double* grad_x, double* grad_weight, double* grad_bias);
  int (*batch_norm_backward_f32)(const float* grad_y, const float* x, int64_t n,
                                 int64_t c, int64_t inner, const double* mean,
                                 const double* invstd, const double* weight,
                                 float* grad_x, double* grad_weight, double* grad_bias);
} bnfast_c_api;

/* The table (defined in kernels/c_api.cpp). */
const bnfast_c_api* bnfast_get_c_api(void);

#ifdef __cplusplus
}
#endif

#endif /* BNFAST_C_API_H */
