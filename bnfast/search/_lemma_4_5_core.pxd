# The C++ core's Lemma 4.5 checker and instance generator, declared for Cython
# (csrc/core/search/lemma_4_5_check.hpp, header-only; docs/math/search.md). The sweep's
# inner loop (_lemma_4_5_batch.pyx) cimports these and inlines them.

from libc.stdint cimport uint64_t

cdef extern from "nn/splitmix.hpp" namespace "bnfast":
    cdef cppclass SplitMix64:
        SplitMix64(uint64_t seed) nogil

cdef extern from "search/lemma_4_5_check.hpp" namespace "bnfast::search":
    int kMaxDim
    int kMaxSamples
    int kNoPremise, kHolds, kFails, kUndecided, kDegenerate
    cdef struct Check:
        int verdict
        double predicted
    Check check_lemma_4_5(const double* X, const double* y, const double* w0, int m,
                          int d) nogil
    void standard_normals(SplitMix64& rng, double* out, int count) nogil
