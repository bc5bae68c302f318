# cython: language_level=3, boundscheck=False, wraparound=False
"""bnfast's kernels as a Cython C API (cimport the functions from
bnfast/cython_kernels.pxd, which documents them). The functions call the C++ core of
bnfast._core through the table it publishes (csrc/core/kernels/c_api.h), so they share
its CPU dispatch, threads and settings. From Python, ``STATUS`` maps each return code to
its meaning."""

from cpython.pycapsule cimport PyCapsule_GetPointer
from libc.stdint cimport int64_t

from bnfast import _core

cdef extern from "kernels/c_api.h":
    ctypedef struct bnfast_c_api:
        int version
        int (*batch_norm_forward_f64)(const double*, int64_t, int64_t, int64_t,
                                      const double*, const double*, double, double*,
                                      double*, double*) noexcept nogil
        int (*batch_norm_forward_f32)(const float*, int64_t, int64_t, int64_t,
                                      const double*, const double*, double, float*,
                                      double*, double*) noexcept nogil
        int (*batch_norm_backward_f64)(const double*, const double*, int64_t, int64_t,
                                       int64_t, const double*, const double*,
                                       const double*, double*, double*,
                                       double*) noexcept nogil
        int (*batch_norm_backward_f32)(const float*, const float*, int64_t, int64_t,
                                       int64_t, const double*, const double*,
                                       const double*, float*, double*,
                                       double*) noexcept nogil
    int BNFAST_C_API_VERSION
    const char* BNFAST_C_API_CAPSULE

#: Return code -> meaning (cython_kernels.pxd).
STATUS = {OK: "ok", ZERO_VARIANCE: "zero variance with eps == 0",
          BAD_ARGUMENT: "bad argument", NO_MEMORY: "out of memory",
          INTERNAL_ERROR: "internal error"}

cdef const bnfast_c_api* _api = <const bnfast_c_api*> PyCapsule_GetPointer(
    _core._c_api, BNFAST_C_API_CAPSULE)
if _api.version != BNFAST_C_API_VERSION:
    raise ImportError(f"bnfast.cython_kernels was built for C API version "
                      f"{BNFAST_C_API_VERSION}, bnfast._core has {_api.version}: "
                      "reinstall bnfast")


cdef int batch_norm_forward_f64(const double* x, int64_t n, int64_t c, int64_t inner,
                                const double* weight, const double* bias, double eps,
                                double* y, double* mean, double* invstd) noexcept nogil:
    return _api.batch_norm_forward_f64(x, n, c, inner, weight, bias, eps, y, mean, invstd)


cdef int batch_norm_forward_f32(const float* x, int64_t n, int64_t c, int64_t inner,
                                const double* weight, const double* bias, double eps,
                                float* y, double* mean, double* invstd) noexcept nogil:
    return _api.batch_norm_forward_f32(x, n, c, inner, weight, bias, eps, y, mean, invstd)


cdef int batch_norm_backward_f64(const double* grad_y, const double* x, int64_t n,
                                 int64_t c, int64_t inner, const double* mean,
                                 const double* invstd, const double* weight,
                                 double* grad_x, double* grad_weight,
                                 double* grad_bias) noexcept nogil:
    return _api.batch_norm_backward_f64(grad_y, x, n, c, inner, mean, invstd, weight,
                                        grad_x, grad_weight, grad_bias)


cdef int batch_norm_backward_f32(const float* grad_y, const float* x, int64_t n,
                                 int64_t c, int64_t inner, const double* mean,
                                 const double* invstd, const double* weight,
                                 float* grad_x, double* grad_weight,
                                 double* grad_bias) noexcept nogil:
    return _api.batch_norm_backward_f32(grad_y, x, n, c, inner, mean, invstd, weight,
                                        grad_x, grad_weight, grad_bias)
