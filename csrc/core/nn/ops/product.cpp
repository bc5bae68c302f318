#include "nn/ops/product.hpp"

#include <vector>

#include "linalg/matmul.hpp"

namespace bnfast {

using i64 = std::int64_t;

void product(Pass<double>&, i64 m, i64 n, i64 k, const double* A, i64 ars, i64 acs,
             const double* B, i64 ldb, double* C, i64 ldc, bool accumulate) {
  matmul_acc_threaded(m, n, k, MatrixView{A, ars, acs}, B, ldb, C, ldc, accumulate);
}

namespace {

// Copies the (rows, cols) operand into row-major values v and tangents d; returns
// whether any tangent is non-zero.
bool unzip(const Dual* src, i64 rows, i64 cols, i64 rs, i64 cs, std::vector<double>& v,
           std::vector<double>& d) {
  v.resize(static_cast<std::size_t>(rows * cols));
  d.resize(v.size());
  bool tangent = false;
  for (i64 i = 0; i < rows; ++i)
    for (i64 j = 0; j < cols; ++j) {
      const Dual& x = src[i * rs + j * cs];
      v[i * cols + j] = x.v;
      d[i * cols + j] = x.d;
      tangent |= x.d != 0;
    }
  return tangent;
}

}  // namespace

void product(Pass<Dual>& p, i64 m, i64 n, i64 k, const Dual* A, i64 ars, i64 acs,
             const Dual* B, i64 ldb, Dual* C, i64 ldc, bool accumulate) {
  auto& s = p.split;
  const bool a_varies = unzip(A, m, k, ars, acs, s[0], s[1]);
  unzip(B, k, n, ldb, 1, s[2], s[3]);
  s[4].resize(static_cast<std::size_t>(m * n));
  s[5].resize(s[4].size());
  const MatmulAcc mm = matmul_acc();
  mm(m, n, k, MatrixView{s[0].data(), k, 1}, s[2].data(), n, s[4].data(), n, false);
  mm(m, n, k, MatrixView{s[0].data(), k, 1}, s[3].data(), n, s[5].data(), n, false);
  if (a_varies) mm(m, n, k, MatrixView{s[1].data(), k, 1}, s[2].data(), n, s[5].data(), n, true);
  for (i64 i = 0; i < m; ++i)
    for (i64 j = 0; j < n; ++j) {
      const Dual ab(s[4][i * n + j], s[5][i * n + j]);
      C[i * ldc + j] = accumulate ? C[i * ldc + j] + ab : ab;
    }
}

}  // namespace bnfast
