#include "nn/activation_array.hpp"

#include "runtime/dispatch.hpp"

namespace bnfast {

void activate_array(Activation a, const double* z, double* out, std::int64_t n) {
  static const ActivateArray entry =
      select_isa(baseline::activation_entry(), avx2::activation_entry());
  entry(a, z, out, n);
}

}  // namespace bnfast
