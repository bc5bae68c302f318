// matmul_acc compiled once per instruction set (runtime/dispatch.hpp has the scheme).
// A register-blocked kernel: a 4 x 8 block of C stays in registers while k runs, so
// each step costs loads of A and B only (no load/store of C per product).
#include <cstdint>
#include <cstring>

#include "linalg/matmul.hpp"

namespace bnfast::BNFAST_ISA {
namespace {

using i64 = std::int64_t;

// One SIMD register of doubles (GCC/Clang vector extension): 4 with AVX, else 2.
#if defined(__AVX__)
constexpr i64 kLanes = 4;
#else
constexpr i64 kLanes = 2;
#endif
typedef double vec __attribute__((vector_size(kLanes * sizeof(double))));

inline vec load(const double* p) {
  vec v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store(double* p, vec v) { std::memcpy(p, &v, sizeof v); }

// Products too small for one register block (the one-neuron networks of the theory):
// plain loops, kept scalar because vectorized loop set-up costs more than the work.
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("no-tree-vectorize")))
#endif
void matmul_tiny(i64 m, i64 n, i64 k, const double* A, i64 lda, const double* B, i64 ldb,
                 double* C, i64 ldc) {
  for (i64 i = 0; i < m; ++i)
    for (i64 p = 0; p < k; ++p) {
      const double a = A[i * lda + p];
      for (i64 c = 0; c < n; ++c) C[i * ldc + c] += a * B[p * ldb + c];
    }
}

void matmul_blocked(i64 m, i64 n, i64 k, const double* A, i64 lda, const double* B, i64 ldb,
                    double* C, i64 ldc) {
  constexpr i64 MR = 4, NR = 2 * kLanes;
  if (m < MR || n < NR) {
    matmul_tiny(m, n, k, A, lda, B, ldb, C, ldc);
    return;
  }
  i64 i0 = 0;
  for (; i0 + MR <= m; i0 += MR) {
    i64 j0 = 0;
    for (; j0 + NR <= n; j0 += NR) {
      // Spelled with vector types: the auto-vectorizer shuffles this block badly.
      vec acc[MR][2];
      for (i64 r = 0; r < MR; ++r) {
        acc[r][0] = load(C + (i0 + r) * ldc + j0);
        acc[r][1] = load(C + (i0 + r) * ldc + j0 + kLanes);
      }
      for (i64 p = 0; p < k; ++p) {
        const vec b0 = load(B + p * ldb + j0), b1 = load(B + p * ldb + j0 + kLanes);
        for (i64 r = 0; r < MR; ++r) {
          const vec a = A[(i0 + r) * lda + p] - vec{};  // broadcast; x - (+0) == x, -0 too
          acc[r][0] += a * b0;
          acc[r][1] += a * b1;
        }
      }
      for (i64 r = 0; r < MR; ++r) {
        store(C + (i0 + r) * ldc + j0, acc[r][0]);
        store(C + (i0 + r) * ldc + j0 + kLanes, acc[r][1]);
      }
    }
    for (i64 r = 0; r < MR; ++r)  // right edge: columns j0..n-1
      for (i64 p = 0; p < k; ++p) {
        const double a = A[(i0 + r) * lda + p];
        for (i64 c = j0; c < n; ++c) C[(i0 + r) * ldc + c] += a * B[p * ldb + c];
      }
  }
  for (i64 i = i0; i < m; ++i)  // bottom edge: rows i0..m-1
    for (i64 p = 0; p < k; ++p) {
      const double a = A[i * lda + p];
      for (i64 c = 0; c < n; ++c) C[i * ldc + c] += a * B[p * ldb + c];
    }
}

}  // namespace

MatmulAcc matmul_entry() { return &matmul_blocked; }

}  // namespace bnfast::BNFAST_ISA
