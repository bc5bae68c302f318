#include "nn/layer.hpp"

namespace bnfast {

using i64 = std::int64_t;

ParamOffsets param_offsets(const LayerSpec& L, i64 start) {
  ParamOffsets o;
  o.w = start;
  i64 next = start + L.in * L.out;
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
