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

// Copies the (rows, cols) operand into the row-major (rows, 2 cols) matrix [V | D]: each
// row its values, then its tangents.
void unzip(const Dual* src, i64 rows, i64 cols, i64 rs, i64 cs, double* vd) {
  split_row_ranges(rows, 2 * cols, [&](i64 r0, i64 r1) {
    for (i64 i = r0; i < r1; ++i)
      for (i64 j = 0; j < cols; ++j) {
        const Dual& x = src[i * rs + j * cs];
        vd[i * 2 * cols + j] = x.v;
        vd[i * 2 * cols + cols + j] = x.d;
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
  // A [B | B'] = [AB | AB'] in one product (A's strided entries read once for both),
  // then A'B added to the tangents: each entry still sums in the documented order.
  double* b = at_least(s[0], 2 * k * n);
  double* c = at_least(s[1], 2 * m * n);
  unzip(B, k, n, ldb, 1, b);
  // Split by rows of C, as the double products: the same bits as one thread's. A
  // tangent pass leaves C's values as they are and skips AB: AB' then has the
  // columns of [AB | AB'] to itself, each entry the same sum in the same order.
  if (p.tangent_only)
    matmul_acc_threaded(m, n, k, av, b + n, 2 * n, c + n, 2 * n, false);
  else
    matmul_acc_threaded(m, 2 * n, k, av, b, 2 * n, c, 2 * n, false);
  if (a_varies) matmul_acc_threaded(m, n, k, ad, b, 2 * n, c + n, 2 * n, true);
  split_row_ranges(m, n, [&](i64 r0, i64 r1) {
    for (i64 i = r0; i < r1; ++i)
      for (i64 j = 0; j < n; ++j) {
        Dual& out = C[i * ldc + j];
        const double tangent = c[i * 2 * n + n + j];
        if (p.tangent_only)
          out.d = accumulate ? out.d + tangent : tangent;
        else
          out = accumulate ? out + Dual(c[i * 2 * n + j], tangent) : Dual(c[i * 2 * n + j], tangent);
      }
  });
}

}  // namespace bnfast
