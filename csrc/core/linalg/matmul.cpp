#include "linalg/matmul.hpp"

#include <algorithm>

#include "runtime/dispatch.hpp"
#include "runtime/parallel.hpp"

namespace bnfast {

MatmulAcc matmul_acc() {
  static const MatmulAcc entry = select_isa(baseline::matmul_entry(), avx2::matmul_entry());
  return entry;
}

void matmul_acc_threaded(std::int64_t m, std::int64_t n, std::int64_t k, MatrixView A,
                         const double* B, std::int64_t ldb, double* C, std::int64_t ldc,
                         bool accumulate) {
  const MatmulAcc mm = matmul_acc();
  if (m * n * k < kStepGrain) {  // below every grain: skip the split's set-up
    mm(m, n, k, A, B, ldb, C, ldc, accumulate);
    return;
  }
  // Split C's rows into groups of 4 (the kernel's row block), so every chunk but the
  // last runs whole register blocks. Each entry still sums its products in order p, so
  // the split changes no bit.
  constexpr std::int64_t kRowBlock = 4;
  const std::int64_t blocks = (m + kRowBlock - 1) / kRowBlock;
  const int chunks = chunk_count(m * n * k, blocks);
  parallel_chunks(chunks, [&](int c) {
    const std::int64_t r0 = std::min(m, chunk_begin(blocks, chunks, c) * kRowBlock);
    const std::int64_t r1 = std::min(m, chunk_begin(blocks, chunks, c + 1) * kRowBlock);
    const MatrixView rows{A.data + r0 * A.row_stride, A.row_stride, A.col_stride};
    if (r1 > r0) mm(r1 - r0, n, k, rows, B, ldb, C + r0 * ldc, ldc, accumulate);
  });
}

}  // namespace bnfast
