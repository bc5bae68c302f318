// The small dense products of the network layers (row-major, double).
#pragma once

#include <cstdint>

namespace bnfast {

// C (m, n) += A (m, k) B (k, n); lda, ldb, ldc are the row strides in elements.
// Each entry accumulates its k products in order p = 0, 1, ..., k-1 on top of the
// value already in C, whatever the instruction set.
using MatmulAcc = void (*)(std::int64_t m, std::int64_t n, std::int64_t k, const double* A,
                           std::int64_t lda, const double* B, std::int64_t ldb, double* C,
                           std::int64_t ldc);

// Each instruction-set variant's entry (linalg/matmul_isa.cpp).
namespace baseline { MatmulAcc matmul_entry(); }
namespace avx2 { MatmulAcc matmul_entry(); }

// The entry of the variant this CPU runs (runtime/dispatch.hpp), chosen once.
MatmulAcc matmul_acc();

}  // namespace bnfast
