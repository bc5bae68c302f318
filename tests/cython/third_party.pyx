# cython: language_level=3, boundscheck=False, wraparound=False
# A third-party extension, as a user would write one: it cimports bnfast's C API and
# calls it without the GIL. Built by test_cython_api.py against the installed package.
from bnfast.cython_kernels cimport (batch_norm_backward_f32, batch_norm_backward_f64,
                                   batch_norm_forward_f32, batch_norm_forward_f64)

import numpy as np


def forward(x, weight, bias, double eps):
    """(code, y, mean, invstd) for x (n, c, inner) C-contiguous float64 or float32;
    weight/bias None or float64 (c,)."""
    cdef Py_ssize_t n = x.shape[0], c = x.shape[1], inner = x.shape[2]
    y = np.full_like(x, -7.0)
    mean = np.full(c, -7.0)
    invstd = np.full(c, -7.0)
    cdef double[::1] m = mean, s = invstd
    cdef const double* w = NULL
    cdef const double* b = NULL
    cdef const double[::1] wv, bv
    if weight is not None:
        wv = weight
        w = &wv[0]
    if bias is not None:
        bv = bias
        b = &bv[0]
    cdef const double[:, :, ::1] x64
    cdef double[:, :, ::1] y64
    cdef const float[:, :, ::1] x32
    cdef float[:, :, ::1] y32
    cdef int code
    if x.dtype == np.float64:
        x64, y64 = x, y
        with nogil:
            code = batch_norm_forward_f64(&x64[0, 0, 0], n, c, inner, w, b, eps,
                                          &y64[0, 0, 0], &m[0], &s[0])
    else:
        x32, y32 = x, y
        with nogil:
            code = batch_norm_forward_f32(&x32[0, 0, 0], n, c, inner, w, b, eps,
                                          &y32[0, 0, 0], &m[0], &s[0])
    return code, y, mean, invstd


def backward(grad_y, x, mean, invstd, weight):
    """(code, grad_x, grad_weight, grad_bias)."""
    cdef Py_ssize_t n = x.shape[0], c = x.shape[1], inner = x.shape[2]
    grad_x = np.full_like(x, -7.0)
    grad_weight = np.full(c, -7.0)
    grad_bias = np.full(c, -7.0)
    cdef const double[::1] mv = mean, sv = invstd
    cdef double[::1] gw = grad_weight, gb = grad_bias
    cdef const double* w = NULL
    cdef const double[::1] wv
    if weight is not None:
        wv = weight
        w = &wv[0]
    cdef const double[:, :, ::1] g64, x64
    cdef double[:, :, ::1] d64
    cdef const float[:, :, ::1] g32, x32
    cdef float[:, :, ::1] d32
    cdef int code
    if x.dtype == np.float64:
        g64, x64, d64 = grad_y, x, grad_x
        with nogil:
            code = batch_norm_backward_f64(&g64[0, 0, 0], &x64[0, 0, 0], n, c, inner,
                                           &mv[0], &sv[0], w, &d64[0, 0, 0], &gw[0],
                                           &gb[0])
    else:
        g32, x32, d32 = grad_y, x, grad_x
        with nogil:
            code = batch_norm_backward_f32(&g32[0, 0, 0], &x32[0, 0, 0], n, c, inner,
                                           &mv[0], &sv[0], w, &d32[0, 0, 0], &gw[0],
                                           &gb[0])
    return code, grad_x, grad_weight, grad_bias


def forward_null_output(double[:, :, ::1] x):
    """The forward pass with y = NULL: must return BAD_ARGUMENT (2)."""
    cdef double m[64]
    cdef double s[64]
    cdef int code
    with nogil:
        code = batch_norm_forward_f64(&x[0, 0, 0], x.shape[0], x.shape[1], x.shape[2],
                                      NULL, NULL, 1e-5, NULL, m, s)
    return code
