// phi over a whole array of doubles: the vectorised counterpart of activate()
// (nn/activation.hpp) for the forward pass of the network, and of derivative() for the
// backward pass (chain_rule_array). tanh and sigmoid come from
// our own SIMD exp/tanh (nn/activation_isa.cpp) and are not bit-identical to libm; the
// proof and measurements of their error bound are in docs/math/activations.md. identity
// and relu give exactly activate()'s values.
#pragma once

#include <cstdint>

#include "nn/layer.hpp"

namespace bnfast {

// out[i] = phi(z[i]) for 0 <= i < n. out may equal z (in place); no other overlap. The
// value of an element depends on z[i] only: not on n, on i, on the alignment or on the
// instruction set (each variant runs the same operations, without FMA contraction).
using ActivateArray = void (*)(Activation a, const double* z, double* out, std::int64_t n);

// Each instruction-set variant's entry (nn/activation_isa.cpp).
namespace baseline { ActivateArray activation_entry(); }
namespace avx2 { ActivateArray activation_entry(); }

// Runs the variant this CPU uses (runtime/dispatch.hpp), chosen once.
void activate_array(Activation a, const double* z, double* out, std::int64_t n);

// dz[i] = chain(act, dout[i], z[i], a[i]) for 0 <= i < n (dout phi'(z), ReLU's a select),
// the very operations of chain() (so the same bits), without a branch per element: ReLU's
// z > 0 is a coin flip on real data, and a mispredicted branch costs more than the
// arithmetic. dz may equal dout; no other overlap.
using ChainRuleArray = void (*)(Activation act, const double* dout, const double* z,
                                const double* a, double* dz, std::int64_t n);
namespace baseline { ChainRuleArray chain_rule_entry(); }
namespace avx2 { ChainRuleArray chain_rule_entry(); }
void chain_rule_array(Activation act, const double* dout, const double* z, const double* a,
                      double* dz, std::int64_t n);

}  // namespace bnfast
