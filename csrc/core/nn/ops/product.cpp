#include "nn/ops/product.hpp"

#include <cstddef>

#include "linalg/matmul.hpp"
#include "runtime/parallel.hpp"

namespace bnfast {

using i64 = std::int64_t;

void product(Pass<double>&, i64 m, i64 n, i64 k, const double* A, i64 ars, i64 acs,
             const double* B, i64 ldb, double* C, i64 ldc, bool accumulate) {
  matmul_acc_threaded(m, n, k, MatrixView{A, ars, acs}, B, ldb, C, ldc, accumulate);
}

namespace {

// The scratch holds at least n doubles. It only grows: the ops' products take turns with
// it, and a resize up would zero the whole buffer on every turn.
double* at_least(AlignedVector<double>& v, i64 n) {
  if (v.size() < static_cast<std::size_t>(n)) v.resize(static_cast<std::size_t>(n));
  return v.data();
}

// Copies the (rows, cols) operand into row-major values v and tangents d.
void unzip(const Dual* src, i64 rows, i64 cols, i64 rs, i64 cs, double* v, double* d) {
  split_row_ranges(rows, cols, [&](i64 r0, i64 r1) {
    for (i64 i = r0; i < r1; ++i)
      for (i64 j = 0; j < cols; ++j) {
        const Dual& x = src[i * rs + j * cs];
        v[i * cols + j] = x.v;
        d[i * cols + j] = x.d;
      }
  });
}

// Whether any of the (m, k) operand's tangents is non-zero (stops at the first).
bool any_tangent(const Dual* A, i64 m, i64 k, i64 ars, i64 acs) {
  for (i64 i = 0; i < m; ++i)
    for (i64 q = 0; q < k; ++q)
      if (A[i * ars + q * acs].d != 0) return true;
  return false;
}

}  // namespace

void product(Pass<Dual>& p, i64 m, i64 n, i64 k, const Dual* A, i64 ars, i64 acs,
             const Dual* B, i64 ldb, Dual* C, i64 ldc, bool accumulate) {
  static_assert(sizeof(Dual) == 2 * sizeof(double) && offsetof(Dual, d) == sizeof(double));
  auto& s = p.split;
  // A's values and tangents read in place: a Dual is its value and then its tangent, so
  // they are the doubles of A at even and odd places, and the kernel reads A entry by
  // entry through strides (only B and C are read as rows of vectors).
  const double* a = &A->v;
  const MatrixView av{a, 2 * ars, 2 * acs}, ad{a + 1, 2 * ars, 2 * acs};
  const bool a_varies = any_tangent(A, m, k, ars, acs);
  double *bv = at_least(s[0], k * n), *bd = at_least(s[1], k * n);
  double *cv = at_least(s[2], m * n), *cd = at_least(s[3], m * n);
  unzip(B, k, n, ldb, 1, bv, bd);
  // Split by rows of C, as the double products: the same bits as one thread's.
  matmul_acc_threaded(m, n, k, av, bv, n, cv, n, false);
  matmul_acc_threaded(m, n, k, av, bd, n, cd, n, false);
  if (a_varies) matmul_acc_threaded(m, n, k, ad, bv, n, cd, n, true);
  split_row_ranges(m, n, [&](i64 r0, i64 r1) {
    for (i64 i = r0; i < r1; ++i)
      for (i64 j = 0; j < n; ++j) {
        const Dual ab(cv[i * n + j], cd[i * n + j]);
        C[i * ldc + j] = accumulate ? C[i * ldc + j] + ab : ab;
      }
  });
}

}  // namespace bnfast
