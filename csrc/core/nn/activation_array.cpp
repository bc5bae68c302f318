#include "nn/activation_array.hpp"

#include "runtime/dispatch.hpp"

namespace bnfast {

void activate_array(Activation a, const double* z, double* out, std::int64_t n) {
  static const ActivateArray entry =
      select_isa(baseline::activation_entry(), avx2::activation_entry());
  entry(a, z, out, n);
}

void chain_rule_array(Activation act, const double* dout, const double* z, const double* a,
                      double* dz, std::int64_t n) {
  static const ChainRuleArray entry =
      select_isa(baseline::chain_rule_entry(), avx2::chain_rule_entry());
  entry(act, dout, z, a, dz, n);
}

}  // namespace bnfast
