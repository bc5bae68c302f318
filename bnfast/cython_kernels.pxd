# bnfast's kernels for other Cython extensions, callable without the GIL
# (scipy.linalg.cython_blas style):
#
#     from bnfast.cython_kernels cimport batch_norm_forward_f64
#
# x, y, grad_y, grad_x: (n, c, inner) C-contiguous, samples n, channels c, inner the
# product of the trailing axes (1 for (n, c) data). weight and bias may be NULL (1, 0).
# mean, invstd, grad_weight, grad_bias: double (c,) for both data types.
# The functions never raise; they return 0 (OK) or one of the codes below (nothing is
# written when a call fails on its arguments):
#   1  ZERO_VARIANCE   eps == 0 and a channel has zero variance (BN divides by zero)
#   2  BAD_ARGUMENT    n, c or inner < 1; n * inner < 2 (forward); a required NULL
#                      pointer; eps < 0 or not finite
#   3  NO_MEMORY       scratch memory could not be allocated
#   4  INTERNAL_ERROR  anything else (a bug)
# The maths: y = (x - mean) * invstd * weight + bias with the biased batch variance,
# invstd = 1 / sqrt(var + eps); the backward pass is that of the training transform
# (docs/math/batch_norm.md). Results equal bnfast.batch_norm_forward/backward's.

from libc.stdint cimport int64_t

cdef enum:
    OK = 0
    ZERO_VARIANCE = 1
    BAD_ARGUMENT = 2
    NO_MEMORY = 3
    INTERNAL_ERROR = 4

cdef int batch_norm_forward_f64(const double* x, int64_t n, int64_t c, int64_t inner,
                                const double* weight, const double* bias, double eps,
                                double* y, double* mean, double* invstd) noexcept nogil
cdef int batch_norm_forward_f32(const float* x, int64_t n, int64_t c, int64_t inner,
                                const double* weight, const double* bias, double eps,
                                float* y, double* mean, double* invstd) noexcept nogil
cdef int batch_norm_backward_f64(const double* grad_y, const double* x, int64_t n,
                                 int64_t c, int64_t inner, const double* mean,
                                 const double* invstd, const double* weight,
                                 double* grad_x, double* grad_weight,
                                 double* grad_bias) noexcept nogil
cdef int batch_norm_backward_f32(const float* grad_y, const float* x, int64_t n,
                                 int64_t c, int64_t inner, const double* mean,
                                 const double* invstd, const double* weight,
                                 float* grad_x, double* grad_weight,
                                 double* grad_bias) noexcept nogil
