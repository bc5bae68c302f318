// matmul_acc compiled once per instruction set (runtime/dispatch.hpp has the scheme).
// A register-blocked kernel: a 4 x 8 block of C stays in registers while k runs, so
// each step costs loads of A and B only (no load/store of C per product).
#include <algorithm>
#include <cstdint>

#include "linalg/matmul.hpp"
#include "runtime/simd.hpp"

namespace bnfast::BNFAST_ISA {
namespace {

using i64 = std::int64_t;

// Kept scalar: for these few entries vectorized loop set-up costs more than the work.
#if defined(__GNUC__) && !defined(__clang__)
#define BNFAST_SCALAR_LOOPS __attribute__((optimize("no-tree-vectorize")))
#else
#define BNFAST_SCALAR_LOOPS
#endif

// C rows [i0, i1), the last R < kLanes columns from j (a width that is no whole number of
// vectors), products p0 <= p < p1: four rows' sums at once, held in registers (a sum
// kept in C would wait on its own store at every product).
template <int R>
BNFAST_SCALAR_LOOPS void matmul_tail(i64 i0, i64 i1, i64 j, i64 p0, i64 p1, MatrixView A,
                                     const double* B, i64 ldb, double* C, i64 ldc,
                                     bool accumulate) {
  constexpr i64 kRows = 4;
  for (; i0 + kRows <= i1; i0 += kRows) {
    double acc[kRows][R];
    for (i64 r = 0; r < kRows; ++r)
      for (int q = 0; q < R; ++q) acc[r][q] = accumulate ? C[(i0 + r) * ldc + j + q] : 0.0;
    for (i64 p = p0; p < p1; ++p) {
      const double* b = B + p * ldb + j;
      for (i64 r = 0; r < kRows; ++r) {
        const double a = A.data[(i0 + r) * A.row_stride + p * A.col_stride];
        for (int q = 0; q < R; ++q) acc[r][q] += a * b[q];
      }
    }
    for (i64 r = 0; r < kRows; ++r)
      for (int q = 0; q < R; ++q) C[(i0 + r) * ldc + j + q] = acc[r][q];
  }
  for (; i0 < i1; ++i0) {
    double acc[R];
    for (int q = 0; q < R; ++q) acc[q] = accumulate ? C[i0 * ldc + j + q] : 0.0;
    for (i64 p = p0; p < p1; ++p) {
      const double a = A.data[i0 * A.row_stride + p * A.col_stride];
      for (int q = 0; q < R; ++q) acc[q] += a * B[p * ldb + j + q];
    }
    for (int q = 0; q < R; ++q) C[i0 * ldc + j + q] = acc[q];
  }
}

// C rows [i0, i1), columns [j0, n), products p0 <= p < p1 (the blocks' edges, and
// products too small for one register block, as in the one-neuron networks of the
// theory): whole vectors of columns, then the rest by matmul_tail.
BNFAST_SCALAR_LOOPS
void matmul_edge(i64 i0, i64 i1, i64 j0, i64 n, i64 p0, i64 p1, MatrixView A, const double* B,
                 i64 ldb, double* C, i64 ldc, bool accumulate) {
  const i64 jt = j0 + (n - j0) / kLanes * kLanes;  // the columns from jt on: no whole vector
  for (i64 i = i0; i < i1 && jt > j0; ++i) {
    double* c = C + i * ldc;
    const double* a_row = A.data + i * A.row_stride;
    i64 j = j0;
    // Rows of C too few for a register block (a layer with one output: dW = dH^T A is a
    // single row): runs of 4 and then 1 vectors, each entry still summed in order p.
    constexpr i64 kRun = 4;
    for (; j + kRun * kLanes <= jt; j += kRun * kLanes) {
      vec acc[kRun];
      for (i64 q = 0; q < kRun; ++q) acc[q] = accumulate ? load(c + j + q * kLanes) : vec{};
      for (i64 p = p0; p < p1; ++p) {
        const vec a = splat(a_row[p * A.col_stride]);
        for (i64 q = 0; q < kRun; ++q) acc[q] += a * load(B + p * ldb + j + q * kLanes);
      }
      for (i64 q = 0; q < kRun; ++q) store(c + j + q * kLanes, acc[q]);
    }
    for (; j < jt; j += kLanes) {
      vec acc = accumulate ? load(c + j) : vec{};
      for (i64 p = p0; p < p1; ++p) acc += splat(a_row[p * A.col_stride]) * load(B + p * ldb + j);
      store(c + j, acc);
    }
  }
  static_assert(kLanes <= 4, "matmul_tail is instantiated for widths up to 3");
  switch (n - jt) {
    case 1: return matmul_tail<1>(i0, i1, jt, p0, p1, A, B, ldb, C, ldc, accumulate);
    case 2: return matmul_tail<2>(i0, i1, jt, p0, p1, A, B, ldb, C, ldc, accumulate);
    case 3: return matmul_tail<3>(i0, i1, jt, p0, p1, A, B, ldb, C, ldc, accumulate);
    default: return;
  }
}

// Products p0 <= p < p1 into the MR x NR blocks of C: a block of C stays in registers
// while p runs, so each step costs loads of A and B only.
constexpr i64 MR = 4, NR = 2 * kLanes;
void matmul_panel(i64 m, i64 n, i64 p0, i64 p1, MatrixView A, const double* B, i64 ldb,
                  double* C, i64 ldc, bool accumulate) {
  const i64 ars = A.row_stride, acs = A.col_stride;
  i64 i0 = 0;
  for (; i0 + MR <= m; i0 += MR) {
    i64 j0 = 0;
    for (; j0 + NR <= n; j0 += NR) {
      // Spelled with vector types: the auto-vectorizer shuffles this block badly.
      vec acc[MR][2];
      for (i64 r = 0; r < MR; ++r) {
        acc[r][0] = accumulate ? load(C + (i0 + r) * ldc + j0) : vec{};
        acc[r][1] = accumulate ? load(C + (i0 + r) * ldc + j0 + kLanes) : vec{};
      }
      const double* a_col = A.data + i0 * ars + p0 * acs;
      for (i64 p = p0; p < p1; ++p, a_col += acs) {
        const vec b0 = load(B + p * ldb + j0), b1 = load(B + p * ldb + j0 + kLanes);
        for (i64 r = 0; r < MR; ++r) {
          const vec a = splat(a_col[r * ars]);
          acc[r][0] += a * b0;
          acc[r][1] += a * b1;
        }
      }
      for (i64 r = 0; r < MR; ++r) {
        store(C + (i0 + r) * ldc + j0, acc[r][0]);
        store(C + (i0 + r) * ldc + j0 + kLanes, acc[r][1]);
      }
    }
    matmul_edge(i0, i0 + MR, j0, n, p0, p1, A, B, ldb, C, ldc, accumulate);
  }
  matmul_edge(i0, m, 0, n, p0, p1, A, B, ldb, C, ldc, accumulate);
}

void matmul_blocked(i64 m, i64 n, i64 k, MatrixView A, const double* B, i64 ldb, double* C,
                    i64 ldc, bool accumulate) {
  if (m < MR || n < NR) {
    matmul_edge(0, m, 0, n, 0, k, A, B, ldb, C, ldc, accumulate);
    return;
  }
  // Long sums (dW = dH^T A over the batch) in panels of kPanel products, so that the
  // panels of A and B in use stay in L1 while every block of C passes over them; each
  // entry still adds its products in order p.
  constexpr i64 kPanel = 64;
  for (i64 p0 = 0; p0 < k; p0 += kPanel)
    matmul_panel(m, n, p0, std::min(k, p0 + kPanel), A, B, ldb, C, ldc, accumulate || p0 > 0);
  if (k == 0) matmul_panel(m, n, 0, 0, A, B, ldb, C, ldc, accumulate);
}

}  // namespace

MatmulAcc matmul_entry() { return &matmul_blocked; }

}  // namespace bnfast::BNFAST_ISA
