# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The sweep's inner loop for Lemma 4.5: draws instances and checks them without the
GIL, aggregating counts per chunk (no Python object per instance).

Written in Cython against the C++ core's per-instance checker and generator
(csrc/core/search/lemma_4_5_check.hpp), declared in _lemma_4_5_core.pxd: the check is a
closed form on d x d systems (d <= 8), not a BN pass, so bnfast.cython_kernels' array
kernels are not the right primitive; inlining the header makes the loop one compiled
function with no call per instance.
"""

from libc.stdint cimport int64_t, uint64_t
from libc.math cimport isnan

import numpy as np

from bnfast.search._lemma_4_5_core cimport (Check, SplitMix64, check_lemma_4_5, kDegenerate,
                                           kFails, kHolds, kMaxDim, kMaxSamples,
                                           kNoPremise, kUndecided, standard_normals)


def normals(uint64_t seed, int count):
    """``count`` standard normals from SplitMix64(seed), as the instances draw them
    (for tests of the generator's law)."""
    out = np.empty(count)
    cdef double[::1] view = out
    cdef SplitMix64* rng = new SplitMix64(seed)
    try:
        with nogil:
            standard_normals(rng[0], &view[0], count)
    finally:
        del rng
    return out


#: The limits of the native checker.
MAX_DIM = kMaxDim
MAX_SAMPLES = kMaxSamples
#: Verdict codes, in the order of the counts array.
VERDICT_NAMES = ("no_premise", "holds", "fails", "undecided", "degenerate")


cdef inline void _copy(double[:, ::1] X, double[::1] y, double[::1] w0,
                       double[:, ::1] X_to, double[::1] y_to, double[::1] w0_to) noexcept nogil:
    cdef Py_ssize_t i, j
    for i in range(X.shape[0]):
        y_to[i] = y[i]
        for j in range(X.shape[1]):
            X_to[i, j] = X[i, j]
    for j in range(w0.shape[0]):
        w0_to[j] = w0[j]


def check_chunk(uint64_t seed, int64_t count, int dim, int samples, fixed_X=None,
                fixed_y=None, int keep=8):
    """Draws ``count`` instances from SplitMix64(seed) and checks Lemma 4.5 on each.

    Instance law: w0 ~ N(0, I_dim); with fixed_X (samples, dim) and fixed_y (samples,)
    given, those are the data; otherwise X (samples, dim) and y (samples,) have
    independent N(0, 1) entries, drawn before w0 (order: X row-major, y, w0).

    Returns (counts int64 (5,) by VERDICT_NAMES, predicted_sum and predicted_count (the
    sum of the closed form over the instances where it is defined, and their number),
    kept: a dict of int64 indices and the
    instances' X (k, samples, dim), y (k, samples), w0 (k, dim) for the first ``keep``
    failures ("fails") and every undecided instance (up to 4096; "undecided").
    """
    cdef int m = samples, d = dim
    cdef bint random_data = fixed_X is None
    cdef double[:, ::1] X = (np.empty((m, d)) if random_data else
                             np.array(fixed_X, dtype=np.float64, order="C").reshape(m, d))
    cdef double[::1] y = (np.empty(m) if random_data else
                          np.array(fixed_y, dtype=np.float64).reshape(m))
    cdef double[::1] w0 = np.empty(d)
    cdef int64_t[::1] counts = np.zeros(5, dtype=np.int64)
    cdef double predicted_sum = 0.0
    cdef int64_t predicted_count = 0
    cdef int max_undecided = 4096
    fails_X = np.empty((keep, m, d)); fails_y = np.empty((keep, m)); fails_w = np.empty((keep, d))
    fails_i = np.empty(keep, dtype=np.int64)
    und_X = np.empty((max_undecided, m, d)); und_y = np.empty((max_undecided, m))
    und_w = np.empty((max_undecided, d)); und_i = np.empty(max_undecided, dtype=np.int64)
    cdef double[:, :, ::1] fX = fails_X, uX = und_X
    cdef double[:, ::1] fy = fails_y, fw = fails_w, uy = und_y, uw = und_w
    cdef int64_t[::1] fi = fails_i, ui = und_i
    cdef int n_fails = 0, n_undecided = 0
    cdef int64_t i
    cdef Check r
    cdef SplitMix64* rng = new SplitMix64(seed)
    try:
        with nogil:
            for i in range(count):
                if random_data:
                    standard_normals(rng[0], &X[0, 0], m * d)
                    standard_normals(rng[0], &y[0], m)
                standard_normals(rng[0], &w0[0], d)
                r = check_lemma_4_5(&X[0, 0], &y[0], &w0[0], m, d)
                counts[r.verdict] += 1
                if not isnan(r.predicted):
                    predicted_sum += r.predicted
                    predicted_count += 1
                if r.verdict == kFails and n_fails < keep:
                    fi[n_fails] = i
                    _copy(X, y, w0, fX[n_fails], fy[n_fails], fw[n_fails])
                    n_fails += 1
                elif r.verdict == kUndecided and n_undecided < max_undecided:
                    ui[n_undecided] = i
                    _copy(X, y, w0, uX[n_undecided], uy[n_undecided], uw[n_undecided])
                    n_undecided += 1
    finally:
        del rng
    if counts[kUndecided] > max_undecided:
        raise RuntimeError(f"{counts[kUndecided]} undecided instances in one chunk: the "
                           "data are too ill-conditioned for the float64 checker")
    kept = {"fails": (fails_i[:n_fails], fails_X[:n_fails], fails_y[:n_fails],
                      fails_w[:n_fails]),
            "undecided": (und_i[:n_undecided], und_X[:n_undecided], und_y[:n_undecided],
                          und_w[:n_undecided])}
    return np.asarray(counts), predicted_sum, predicted_count, kept
