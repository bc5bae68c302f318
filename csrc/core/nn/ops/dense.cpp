#include "nn/ops/dense.hpp"

#include <algorithm>
#include <type_traits>

#include "nn/ops/product.hpp"

namespace bnfast {

using i64 = std::int64_t;

template <class T>
void Dense::forward_on(Pass<T>& p, const T* A, T* H) {
  const i64 m = p.m, in = in_width, out = out_width;
  const T* W = p.params + w_at_;
  p.w_t.resize(static_cast<std::size_t>(in * out));
  for (i64 k = 0; k < in; ++k)  // writes in order, reads strided (cheaper than the reverse)
    for (i64 j = 0; j < out; ++j) p.w_t[k * out + j] = W[j * in + k];
  // bias rows, then the product accumulated on top of them (a tangent pass: the bias
  // tangents, the values being H's already)
  if (b_at_ >= 0) {
    const T* b = p.params + b_at_;
    for (i64 i = 0; i < m; ++i) {
      if constexpr (std::is_same_v<T, Dual>) {
        if (p.tangent_only) {
          for (i64 j = 0; j < out; ++j) H[i * out + j].d = b[j].d;
          continue;
        }
      }
      std::copy(b, b + out, H + i * out);
    }
  }
  product(p, m, out, in, A, in, 1, p.w_t.data(), out, H, out, b_at_ >= 0);
}

template <class T>
T* Dense::backward_on(Pass<T>& p, const T* A, const T*, T* dH, T* dA, bool need_din) {
  const i64 m = p.m, in = in_width, out = out_width;
  product(p, out, in, m, dH, 1, out, A, in, p.grad + w_at_, in, false);  // dH^T A
  if (b_at_ >= 0) {
    T* db = p.grad + b_at_;
    std::fill(db, db + out, T(0.0));
    for (i64 i = 0; i < m; ++i)
      for (i64 j = 0; j < out; ++j) db[j] += dH[i * out + j];
  }
  if (!need_din) return nullptr;
  product(p, m, in, out, dH, out, 1, cache_line_aligned(p.params + w_at_, in * out, p.w), in, dA,
          in, false);
  return dA;
}

BNFAST_OP_INSTANTIATE(Dense);

}  // namespace bnfast
