#include "nn/ops/residual.hpp"

#include <algorithm>

namespace bnfast {

using i64 = std::int64_t;

template <class T>
void ResidualJoin::forward_on(Pass<T>& p, const T* A, T* S) {
  const T* input = p.values[from];
  const i64 size = p.m * out_width;
  for (i64 i = 0; i < size; ++i) S[i] = A[i] + input[i];
}

template <class T>
T* ResidualJoin::backward_on(Pass<T>& p, const T*, const T*, T* dS, T*, bool) {
  AlignedVector<T>& kept = kept_.get<T>().dS;
  kept.resize(static_cast<std::size_t>(p.m * out_width));
  std::copy(dS, dS + p.m * out_width, kept.data());
  return dS;  // dA = dS
}

template <class T>
void ResidualJoin::add_skip(const Pass<T>& p, T* dXb) {
  const T* skip = kept_.get<T>().dS.data();
  const i64 size = p.m * out_width;
  for (i64 i = 0; i < size; ++i) dXb[i] += skip[i];
}

BNFAST_OP_INSTANTIATE(ResidualJoin);
template void ResidualJoin::add_skip(const Pass<double>&, double*);
template void ResidualJoin::add_skip(const Pass<Dual>&, Dual*);

}  // namespace bnfast
