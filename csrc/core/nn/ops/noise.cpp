#include "nn/ops/noise.hpp"

#include <algorithm>

namespace bnfast {

using i64 = std::int64_t;

template <class T>
void NoiseOp::forward_on(Pass<T>& p, const T* Z, T* out) {
  if (!drawn(p)) {
    std::copy(Z, Z + p.m * out_width, out);
    return;
  }
  const double* s = p.noise->scale[layer_].data();
  const double* sh = p.noise->shift[layer_].data();
  for (i64 u = 0; u < p.m * channels_; ++u) {  // u: (sample, unit), row-major
    const T scale(s[u]), shift(sh[u]);
    for (i64 k = u * positions_; k < (u + 1) * positions_; ++k) out[k] = scale * Z[k] + shift;
  }
}

template <class T>
T* NoiseOp::backward_on(Pass<T>& p, const T*, const T*, T* dout, T*, bool need_din) {
  if (!need_din) return nullptr;  // no parameters: nothing else to do
  if (!drawn(p)) return dout;
  const double* s = p.noise->scale[layer_].data();
  for (i64 u = 0; u < p.m * channels_; ++u) {
    const T scale(s[u]);
    for (i64 k = u * positions_; k < (u + 1) * positions_; ++k) dout[k] *= scale;
  }
  return dout;
}

BNFAST_OP_INSTANTIATE(NoiseOp);

}  // namespace bnfast
