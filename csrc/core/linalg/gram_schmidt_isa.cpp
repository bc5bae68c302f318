// The Gram-Schmidt loops of linalg/gram_schmidt.hpp compiled once per instruction set:
// plain loops the compiler vectorises (no FMA: -ffp-contract=off), so every variant
// does the same IEEE operations in the same order.
#include <cstdint>

#include "linalg/gram_schmidt.hpp"

namespace bnfast::BNFAST_ISA {
namespace {

using i64 = std::int64_t;

double dot4(const double* x, const double* y, i64 n) {
  double s[4] = {0, 0, 0, 0};
  i64 i = 0;
  for (; i + 4 <= n; i += 4)
    for (int l = 0; l < 4; ++l) s[l] += x[i + l] * y[i + l];
  for (; i < n; ++i) s[0] += x[i] * y[i];
  return (s[0] + s[1]) + (s[2] + s[3]);
}

void dots(const double* R, i64 r0, i64 r1, i64 n, const double* w, double* h) {
  for (i64 r = r0; r < r1; ++r) h[r] = dot4(R + r * n, w, n);
}

void subtract(const double* R, i64 rows, i64 n, const double* h, double* w, i64 c0, i64 c1) {
  for (i64 r = 0; r < rows; ++r) {
    const double hr = h[r];
    const double* row = R + r * n;
    for (i64 c = c0; c < c1; ++c) w[c] -= hr * row[c];
  }
}

}  // namespace

GramSchmidtKernels gram_schmidt_entry() { return {&dots, &subtract}; }

}  // namespace bnfast::BNFAST_ISA
