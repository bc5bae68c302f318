// The two loops of a Gram-Schmidt pass, w -= R^T (R w) for a block of orthonormal rows R
// (the Lanczos process's basis, linalg/lanczos.cpp), compiled once per instruction set
// (runtime/dispatch.hpp). Each dot product sums in four interleaved partial sums added
// in a fixed order, each update entry over the rows in order: the same bits on every
// instruction set and thread count.
#pragma once

#include <cstdint>

namespace bnfast {

struct GramSchmidtKernels {
  // h[r] = R_r . w for rows r in [r0, r1) of R (n values each)
  void (*dots)(const double* R, std::int64_t r0, std::int64_t r1, std::int64_t n,
               const double* w, double* h);
  // w[c] -= sum_r h[r] R_r[c] for the columns c in [c0, c1), over rows [0, rows)
  void (*subtract)(const double* R, std::int64_t rows, std::int64_t n, const double* h,
                   double* w, std::int64_t c0, std::int64_t c1);
};

namespace baseline { GramSchmidtKernels gram_schmidt_entry(); }
namespace avx2 { GramSchmidtKernels gram_schmidt_entry(); }

// The variant this CPU runs, chosen once.
const GramSchmidtKernels& gram_schmidt_kernels();

// x . y as the kernels sum it (four interleaved partial sums).
double dot(const double* x, const double* y, std::int64_t n);

}  // namespace bnfast
