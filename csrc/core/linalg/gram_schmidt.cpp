#include "linalg/gram_schmidt.hpp"

#include "runtime/dispatch.hpp"

namespace bnfast {

const GramSchmidtKernels& gram_schmidt_kernels() {
  static const GramSchmidtKernels entry =
      select_isa(baseline::gram_schmidt_entry(), avx2::gram_schmidt_entry());
  return entry;
}

double dot(const double* x, const double* y, std::int64_t n) {
  double h = 0;
  gram_schmidt_kernels().dots(x, 0, 1, n, y, &h);
  return h;
}

}  // namespace bnfast
