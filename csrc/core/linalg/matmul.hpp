// The small dense products of the network layers (row-major, double).
#pragma once

#include <cstdint>

namespace bnfast {

// A matrix operand read in place: entry (i, p) is at data[i * row_stride + p * col_stride],
// so a row-major matrix is {data, ld, 1} and its transpose {data, 1, ld} (no copy).
struct MatrixView {
  const double* data;
  std::int64_t row_stride, col_stride;
};

// C (m, n) = A (m, k) B (k, n) (accumulate false) or C += A B (accumulate true); B and C
// are row-major with row strides ldb, ldc. Each entry sums its k products in order
// p = 0, 1, ..., k-1, starting from 0 or from the value already in C, whatever the
// instruction set.
using MatmulAcc = void (*)(std::int64_t m, std::int64_t n, std::int64_t k, MatrixView A,
                           const double* B, std::int64_t ldb, double* C, std::int64_t ldc,
                           bool accumulate);

// Each instruction-set variant's entry (linalg/matmul_isa.cpp).
namespace baseline { MatmulAcc matmul_entry(); }
namespace avx2 { MatmulAcc matmul_entry(); }

// The entry of the variant this CPU runs (runtime/dispatch.hpp), chosen once.
MatmulAcc matmul_acc();

// The same product with C's rows split over the kernels' threads (runtime/parallel.hpp)
// when it is large enough to gain; the results are bit for bit those of matmul_acc().
void matmul_acc_threaded(std::int64_t m, std::int64_t n, std::int64_t k, MatrixView A,
                         const double* B, std::int64_t ldb, double* C, std::int64_t ldc,
                         bool accumulate);

}  // namespace bnfast
