// The dense products of the ops, on double (the register-blocked kernel of
// linalg/matmul.hpp) and on Dual numbers (as double products).
#pragma once

#include <cstdint>

#include "nn/dual.hpp"
#include "nn/ops/op.hpp"

namespace bnfast {

// C (m, n) = A (m, k) B (k, n), or C += A B when accumulate; A's entry (i, p) at
// A[i * ars + p * acs] (a transpose is read in place), B and C row-major.
void product(Pass<double>& p, std::int64_t m, std::int64_t n, std::int64_t k, const double* A,
             std::int64_t ars, std::int64_t acs, const double* B, std::int64_t ldb, double* C,
             std::int64_t ldc, bool accumulate);

// On Dual numbers (A + A'e)(B + B'e) = AB + (A'B + AB')e: three double products (two
// when A is a constant, as the data X is); A is read in place, B copied into values and
// tangents.
void product(Pass<Dual>& p, std::int64_t m, std::int64_t n, std::int64_t k, const Dual* A,
             std::int64_t ars, std::int64_t acs, const Dual* B, std::int64_t ldb, Dual* C,
             std::int64_t ldc, bool accumulate);

}  // namespace bnfast
