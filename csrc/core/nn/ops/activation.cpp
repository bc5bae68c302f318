#include "nn/ops/activation.hpp"

#include <algorithm>
#include <type_traits>

#include "nn/activation.hpp"
#include "nn/activation_array.hpp"
#include "runtime/parallel.hpp"

namespace bnfast {

using i64 = std::int64_t;

namespace {

// dz = dout * phi'(z) elementwise on Dual numbers (chain()), phi chosen outside the loop.
template <Activation K>
void chain_rule(const Dual* dout, const Dual* z, const Dual* a, Dual* dz, i64 n) {
  for (i64 i = 0; i < n; ++i) dz[i] = chain(K, dout[i], z[i], a[i]);
}
void chain_rule(Activation act, const Dual* dout, const Dual* z, const Dual* a, Dual* dz,
                i64 n) {
  switch (act) {
    case Activation::sigmoid: return chain_rule<Activation::sigmoid>(dout, z, a, dz, n);
    case Activation::tanh: return chain_rule<Activation::tanh>(dout, z, a, dz, n);
    case Activation::relu: return chain_rule<Activation::relu>(dout, z, a, dz, n);
    case Activation::identity: return chain_rule<Activation::identity>(dout, z, a, dz, n);
  }
}
void chain_rule(Activation act, const double* dout, const double* z, const double* a,
                double* dz, i64 n) {
  chain_rule_array(act, dout, z, a, dz, n);  // vectorised, bound in its header
}

// a = phi(z) elementwise on Dual numbers, phi chosen outside the loop.
template <Activation K>
void activate_all(const Dual* z, Dual* a, i64 n) {
  for (i64 i = 0; i < n; ++i) a[i] = activate(K, z[i]);
}
// tanh and sigmoid on Dual numbers: the values by the vectorised kernel of the double
// pass (libm's scalar tanh took a fifth of a tanh MLP's hvp), the tangents phi'(z) z'
// with derivative()'s phi' from the value.
template <Activation K>
void activate_smooth(const Dual* z, Dual* a, i64 n) {
  constexpr i64 kBlock = 256;  // on the stack, in L1
  double zv[kBlock], av[kBlock];
  for (i64 b = 0; b < n; b += kBlock) {
    const i64 len = std::min(kBlock, n - b);
    for (i64 i = 0; i < len; ++i) zv[i] = z[b + i].v;
    activate_array(K, zv, av, len);
    for (i64 i = 0; i < len; ++i)
      a[b + i] = Dual(av[i], derivative(K, zv[i], av[i]) * z[b + i].d);
  }
}
void activate_all(Activation act, const Dual* z, Dual* a, i64 n) {
  switch (act) {
    case Activation::sigmoid: return activate_smooth<Activation::sigmoid>(z, a, n);
    case Activation::tanh: return activate_smooth<Activation::tanh>(z, a, n);
    case Activation::relu: return activate_all<Activation::relu>(z, a, n);
    case Activation::identity: return activate_all<Activation::identity>(z, a, n);
  }
}
void activate_all(Activation act, const double* z, double* a, i64 n) {
  activate_array(act, z, a, n);  // vectorised, bound in its header
}

// A tangent pass of tanh or sigmoid: A's values are phi(Z) already, so only the
// tangents phi'(z) z', with the phi' of activate_smooth (the same bits).
template <Activation K>
void tangents_smooth(const Dual* z, Dual* a, i64 n) {
  for (i64 i = 0; i < n; ++i) a[i].d = derivative(K, z[i].v, a[i].v) * z[i].d;
}

}  // namespace

template <class T>
void ActivationOp::forward_on(Pass<T>& p, const T* Z, T* A) {
  if constexpr (std::is_same_v<T, Dual>) {
    if (p.tangent_only && (phi_ == Activation::tanh || phi_ == Activation::sigmoid)) {
      split_rows(p.m, out_width, [&](i64 b, i64 e) {
        if (phi_ == Activation::tanh)
          tangents_smooth<Activation::tanh>(Z + b, A + b, e - b);
        else
          tangents_smooth<Activation::sigmoid>(Z + b, A + b, e - b);
      });
      return;
    }
  }
  split_rows(p.m, out_width, [&](i64 b, i64 e) { activate_all(phi_, Z + b, A + b, e - b); });
}

template <class T>
T* ActivationOp::backward_on(Pass<T>& p, const T* Z, const T* A, T* dA, T* dZ, bool) {
  split_rows(p.m, out_width,
             [&](i64 b, i64 e) { chain_rule(phi_, dA + b, Z + b, A + b, dZ + b, e - b); });
  return dZ;
}

BNFAST_OP_INSTANTIATE(ActivationOp);

}  // namespace bnfast
