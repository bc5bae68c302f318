#include "linalg/matmul.hpp"

#include "linalg/product_rows.hpp"

#include "runtime/dispatch.hpp"

namespace bnfast {

MatmulAcc matmul_acc() {
  static const MatmulAcc entry = select_isa(baseline::matmul_entry(), avx2::matmul_entry());
  return entry;
}

void matmul_acc_threaded(std::int64_t m, std::int64_t n, std::int64_t k, MatrixView A,
                         const double* B, std::int64_t ldb, double* C, std::int64_t ldc,
                         bool accumulate) {
  const MatmulAcc mm = matmul_acc();
  split_product_rows(m, product_chunks(m, m * n * k), [&](int, std::int64_t r0, std::int64_t r1) {
    const MatrixView rows{A.data + r0 * A.row_stride, A.row_stride, A.col_stride};
    mm(r1 - r0, n, k, rows, B, ldb, C + r0 * ldc, ldc, accumulate);
  });
}

}  // namespace bnfast
