// Tiny networks trained with their state in registers (docs/design/performance.md,
// "Tiny networks"): one BN neuron, the setting of Lemma 4.5 and Example 3.2. A general
// step of such a network is dominated by setting up a BN kernel and a matrix product for
// a handful of numbers; the specialised step does the same maths on local variables.
#pragma once

#include <cstdint>
#include <vector>

#include "nn/network.hpp"
#include "nn/one_neuron_math.hpp"
#include "nn/train.hpp"

namespace bnfast {

// The one-neuron class: one Dense layer with one output and the identity activation, plain BN
// (NormScale::std, no noise, not a residual block; any eps >= 0, gamma/beta frozen or
// trainable), with or without bias, loss sum or mean (squared); full batch; 2 <= m <=
// kOneNeuronMaxSamples, in <= kOneNeuronMaxInputs (nn/one_neuron_math.hpp); and a learning set of
// moderate magnitude (finite, |values| <= 2^200), so that no intermediate of the step can
// overflow where the general kernels would not.
bool one_neuron_network(const Network& net);
bool one_neuron_data(const double* X, const double* Y, std::int64_t m, std::int64_t in);
bool one_neuron_class(const Network& net, const double* X, const double* Y, std::int64_t m,
                std::int64_t batch_size);

// train() for the one-neuron class (nn/one_neuron_train.cpp), through the same loop
// (nn/train_loop.hpp): the same records, callback, divergence, running statistics and
// exceptions as the general step, and the same values up to rounding (sums in another
// order). A step whose batch variance is near the rounding level of the pre-activations,
// or whose scale is extreme, is evaluated by Network::loss instead, so a zero variance
// with eps == 0 raises Network::loss's ZeroVarianceError.
TrainOutcome train_one_neuron(Network& net, const TrainState& state, const double* X,
                        const double* Y, std::int64_t m, const TrainOptions& opts,
                        std::vector<double>& losses, const RecordHook& on_record,
                        const PollHook& poll);

}  // namespace bnfast
