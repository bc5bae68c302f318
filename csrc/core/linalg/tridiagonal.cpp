#include "linalg/tridiagonal.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace bnfast {

using i64 = std::int64_t;

bool tridiagonal_eigen(const double* diag, const double* off, i64 n, std::vector<double>& values,
                       std::vector<double>& last, std::vector<double>* vectors) {
  constexpr double kEps = std::numeric_limits<double>::epsilon();
  std::vector<double> d(diag, diag + n), e(static_cast<std::size_t>(n), 0.0);
  std::copy(off, off + std::max<i64>(n - 1, 0), e.begin());  // e[n - 1] stays 0
  // Z's rows that are kept, from the identity's: the last only, or all n
  const i64 rows = vectors ? n : std::min<i64>(n, 1);
  std::vector<double> z(static_cast<std::size_t>(rows * n), 0.0);
  for (i64 r = 0; r < rows; ++r) z[r * n + (n - rows + r)] = 1.0;
  // ||T|| (the largest row sum): an off-diagonal entry below eps ||T|| is negligible even
  // next to tiny diagonal entries (graded matrices would otherwise not deflate)
  double scale = 0;
  for (i64 i = 0; i < n; ++i)
    scale = std::max(scale, std::fabs(d[i]) + std::fabs(e[i]) + (i ? std::fabs(e[i - 1]) : 0.0));
  bool ok = true;
  for (i64 l = 0; l < n; ++l) {
    for (int iter = 0;; ++iter) {
      // the block that starts at l ends at the first negligible off-diagonal
      i64 m = l;
      while (m < n - 1 && !(std::fabs(e[m]) <= kEps * (std::fabs(d[m]) + std::fabs(d[m + 1])) ||
                            std::fabs(e[m]) <= kEps * scale))
        ++m;
      if (m == l) break;  // d[l] is an eigenvalue
      if (iter == 64 || !std::isfinite(e[m - 1])) {
        ok = false;
        break;
      }
      // the Wilkinson shift of the leading 2 x 2 block, as g = d[m] - shift
      double g = (d[l + 1] - d[l]) / (2 * e[l]);
      double r = std::hypot(g, 1.0);
      g = d[m] - d[l] + e[l] / (g + std::copysign(r, g));
      double s = 1, c = 1, p = 0;
      bool split = false;  // a rotation of zero length: the block splits at i + 1
      for (i64 i = m - 1; i >= l; --i) {
        const double f = s * e[i], b = c * e[i];
        r = std::hypot(f, g);
        e[i + 1] = r;
        if (r == 0) {
          d[i + 1] -= p;
          e[m] = 0;
          split = true;
          break;
        }
        s = f / r;
        c = g / r;
        g = d[i + 1] - p;
        r = (d[i] - g) * s + 2 * c * b;
        p = s * r;
        d[i + 1] = g + p;
        g = c * r - b;
        for (i64 r = 0; r < rows; ++r) {  // the rotation on columns i, i + 1
          double* row = z.data() + r * n;
          const double zi = row[i], zn = row[i + 1];
          row[i + 1] = s * zi + c * zn;
          row[i] = c * zi - s * zn;
        }
      }
      if (split) continue;
      d[l] -= p;
      e[l] = g;
      e[m] = 0;
    }
    if (!ok) break;
  }
  std::vector<i64> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), i64{0});
  std::stable_sort(order.begin(), order.end(), [&](i64 a, i64 b) { return d[a] < d[b]; });
  values.resize(static_cast<std::size_t>(n));
  last.resize(static_cast<std::size_t>(n));
  const double* z_last = z.data() + (rows - 1) * n;
  for (i64 i = 0; i < n; ++i) {
    values[i] = ok ? d[order[i]] : std::numeric_limits<double>::quiet_NaN();
    last[i] = z_last[order[i]];
  }
  if (vectors) {
    vectors->resize(static_cast<std::size_t>(n * n));
    for (i64 r = 0; r < n; ++r)
      for (i64 i = 0; i < n; ++i) (*vectors)[r * n + i] = z[r * n + order[i]];
  }
  return ok;
}

}  // namespace bnfast
