#include "matmul.hpp"

#include "isa.hpp"

namespace bnfast {

#define BNFAST_DECLARE_MATMUL(NS)                                                         \
  namespace NS {                                                                          \
  void matmul_acc(std::int64_t m, std::int64_t n, std::int64_t k, const double* A,        \
                  std::int64_t lda, const double* B, std::int64_t ldb, double* C,         \
                  std::int64_t ldc);                                                      \
  }
BNFAST_DECLARE_MATMUL(baseline)
BNFAST_DECLARE_MATMUL(avx2)
#undef BNFAST_DECLARE_MATMUL

void matmul_acc(std::int64_t m, std::int64_t n, std::int64_t k, const double* A,
                std::int64_t lda, const double* B, std::int64_t ldb, double* C,
                std::int64_t ldc) {
  if (use_avx2())
    avx2::matmul_acc(m, n, k, A, lda, B, ldb, C, ldc);
  else
    baseline::matmul_acc(m, n, k, A, lda, B, ldb, C, ldc);
}

}  // namespace bnfast
