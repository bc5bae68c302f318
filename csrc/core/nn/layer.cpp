#include "nn/layer.hpp"

namespace bnfast {

using i64 = std::int64_t;

i64 LayerSpec::weight_count() const {
  if (!has_weights()) return 0;
  i64 count = in * out;
  for (const i64 k : kernel) count *= k;
  return count;
}

ParamOffsets param_offsets(const LayerSpec& L, i64 start) {
  ParamOffsets o;
  if (!L.has_weights()) {
    o.end = start;
    return o;
  }
  o.w = start;
  i64 next = start + L.weight_count();
  if (L.bias) {
    o.b = next;
    next += L.out;
  }
  if (L.norm && L.norm->trainable) {
    o.gamma = next;
    o.beta = next + L.out;
    next += 2 * L.out;
  }
  o.end = next;
  return o;
}

}  // namespace bnfast
