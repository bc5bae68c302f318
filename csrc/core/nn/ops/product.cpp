#include "nn/ops/product.hpp"

#include <cstddef>

#include "linalg/matmul.hpp"
#include "linalg/product_rows.hpp"
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
  for (i64 i = 0; i < rows; ++i)
    for (i64 j = 0; j < cols; ++j) {
      const Dual& x = src[i * rs + j * cs];
      vd[i * 2 * cols + j] = x.v;
      vd[i * 2 * cols + cols + j] = x.d;
    }
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
  const bool a_varies = any_tangent(A, m, k, ars, acs);
  const bool tangent_only = p.tangent_only;
  const i64 units = (tangent_only ? 1 : 2) + (a_varies ? 1 : 0);  // double products
  const int chunks = product_chunks(m, units * m * n * k);
  // One parallel region, C's rows split as the double products split them: each chunk
  // copies B into its own [B | B'] (k n entries) when its rows' products outweigh that
  // copy (m / chunks * units rows of k n multiply-adds, at least 16 copies' worth) and
  // the copy is cache-sized (the scratch grows to one copy a thread and is kept);
  // otherwise (few rows of C and a long k, as a convolution's weight gradient, or a
  // large B) B is copied once, by rows over the threads, before the products.
  constexpr i64 kOwnCopyMax = 1 << 14;  // entries of B: 256 KB of values and tangents
  const bool own_copy = chunks > 1 && m / chunks * units >= 16 && k * n <= kOwnCopyMax;
  double* b = at_least(s[0], (own_copy ? chunks : 1) * 2 * k * n);
  double* c = at_least(s[1], 2 * m * n);
  if (!own_copy)
    split_row_ranges(k, 2 * n, [&](i64 r0, i64 r1) {
      unzip(B + r0 * ldb, r1 - r0, n, ldb, 1, b + r0 * 2 * n);
    });
  const MatmulAcc mm = matmul_acc();
  split_product_rows(m, chunks, [&](int chunk, i64 r0, i64 r1) {
    double* bc = b;
    if (own_copy) {
      bc += chunk * 2 * k * n;
      unzip(B, k, n, ldb, 1, bc);
    }
    const MatrixView av{a + r0 * 2 * ars, 2 * ars, 2 * acs};
    const MatrixView ad{a + 1 + r0 * 2 * ars, 2 * ars, 2 * acs};
    double* cr = c + r0 * 2 * n;
    // A [B | B'] = [AB | AB'] in one product (A's strided entries read once for both),
    // then A'B added to the tangents: each entry still sums in the documented order. A
    // tangent pass leaves C's values as they are and skips AB: AB' then has the
    // columns of [AB | AB'] to itself, each entry the same sum in the same order.
    if (tangent_only)
      mm(r1 - r0, n, k, av, bc + n, 2 * n, cr + n, 2 * n, false);
    else
      mm(r1 - r0, 2 * n, k, av, bc, 2 * n, cr, 2 * n, false);
    if (a_varies) mm(r1 - r0, n, k, ad, bc, 2 * n, cr + n, 2 * n, true);
    for (i64 i = r0; i < r1; ++i)
      for (i64 j = 0; j < n; ++j) {
        Dual& out = C[i * ldc + j];
        const double tangent = c[i * 2 * n + n + j];
        if (tangent_only)
          out.d = accumulate ? out.d + tangent : tangent;
        else
          out = accumulate ? out + Dual(c[i * 2 * n + j], tangent) : Dual(c[i * 2 * n + j], tangent);
      }
  });
}

}  // namespace bnfast
