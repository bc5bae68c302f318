// Many independent instances of one small network (nn/one_neuron_step.hpp: one BN neuron)
// trained at once by full-batch gradient descent: instances in SIMD lanes, groups of
// lanes split across threads (docs/design/performance.md, "Tiny networks"). Each lane
// computes bit for bit what train() computes for its instance (nn/one_neuron_math.hpp), so
// results do not depend on the thread count or on the other instances.
#pragma once

#include <cstdint>

#include "nn/network.hpp"
#include "nn/one_neuron_math.hpp"
#include "nn/train.hpp"

namespace bnfast {

// How an instance's run ended (the result of train() as a code, per instance).
enum class ManyStatus : std::int8_t {
  finished = 0,
  diverged = 1,       // a loss was inf or NaN
  overflowed = 2,     // an update made a parameter inf or NaN (it was not applied)
  zero_variance = 3,  // eps == 0 and a constant pre-activation: train() raises
                      // ZeroVarianceError there
};

// The instances: instance i learns X + i * x_stride (m, in), Y + i * y_stride (m,) with
// learning rate lr[i * lr_stride] (a stride 0 shares one value).
struct ManyProblem {
  std::int64_t k = 0, m = 0;
  const double* X = nullptr;
  std::int64_t x_stride = 0;
  const double* Y = nullptr;
  std::int64_t y_stride = 0;
  const double* lr = nullptr;
  std::int64_t lr_stride = 0;
};

// What the run changes. params (k, num_params): the start, then the params after the last
// update applied (a stopped instance keeps those whose loss or update was not finite);
// losses (k, steps / record_every + 1): the record of train() with this record_every,
// entries left as they were where a stopped instance recorded nothing; steps_done (k,):
// updates applied (the step an instance stopped at); status (k,).
struct ManyState {
  double* params = nullptr;
  double* losses = nullptr;
  std::int64_t* steps_done = nullptr;
  std::int8_t* status = nullptr;
};

// Preconditions (the bindings and the Python layer check them): one_neuron_network(net),
// one_neuron_data for every instance's set, lr finite > 0, 0 <= steps < 2^63 - 1 (the final
// loss is step `steps`, and steps + 1 must fit), record_every >= 1.
// Polls about every 10-50 ms from the calling thread; returns false when the poll asked
// to stop (the state is then partly updated: the caller discards it).
bool train_many(const Network& net, const ManyProblem& problem, const ManyState& state,
                std::int64_t steps, std::int64_t record_every, const PollHook& poll);

// One slice of the run, compiled per instruction set (nn/train_many_isa.cpp): instances
// [i0, i1) advance over steps [s0, s1) (s == steps: the final evaluation only).
struct ManyJob {
  const Network* net;
  ManyProblem problem;
  ManyState state;
  std::int64_t steps, record_every;
};
using ManySlice = void (*)(const ManyJob& job, std::int64_t i0, std::int64_t i1,
                           std::int64_t s0, std::int64_t s1);
namespace baseline { ManySlice many_slice(); }
namespace avx2 { ManySlice many_slice(); }

}  // namespace bnfast
