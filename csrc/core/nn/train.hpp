// Gradient-descent loops over a Network, entirely in C++: full-batch gradient descent
// and mini-batch SGD over disjoint batches reshuffled every epoch. Workspaces are
// allocated once; the caller's hooks are the only way out during the loop.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "nn/network.hpp"
#include "nn/optimizer.hpp"
#include "nn/shuffle.hpp"

namespace bnfast {

// Preconditions (the Python layer and the bindings check them): lr finite, steps >= 0,
// record_every >= 1, 0 <= batch_size <= m, and batch_size != 1 with batch normalization;
// lr_per_step, when given, holds steps finite rates.
struct TrainOptions {
  double lr = 0.0;
  const double* lr_per_step = nullptr;  // the rate of each step, or null: lr throughout
  OptimizerSpec optimizer;
  std::int64_t steps = 0;
  std::int64_t batch_size = 0;  // 0: full batch
  std::uint64_t seed = 0;
  std::int64_t record_every = 1;
  // Networks of the one-neuron class (nn/one_neuron_step.hpp) run a specialised step with the same
  // results up to rounding; false forces the general step (for tests comparing them).
  bool allow_one_neuron = true;
  // > 0: the sharpness (nn/sharpness.hpp) before steps 0, K, 2K, ... (K = this), and
  // after the last step when steps is a multiple of K.
  std::int64_t sharpness_every = 0;

  double lr_at(std::int64_t step) const { return lr_per_step ? lr_per_step[step] : lr; }
};

// Called with (step, loss) each time a loss is recorded; returning true stops the run.
using RecordHook = std::function<bool(std::int64_t, double)>;
// Called about every 10-50 ms of work; returning true stops the run (Ctrl-C).
using PollHook = std::function<bool()>;
// Called with the step number where a sharpness record is due (the params of that step).
using StepHook = std::function<void(std::int64_t)>;

enum class StopReason { finished, requested, interrupted, diverged };

struct TrainOutcome {
  StopReason reason = StopReason::finished;
  std::int64_t steps_done = 0;      // updates applied to params
  std::int64_t diverged_step = -1;  // step whose loss was not finite
  double diverged_loss = 0.0;
  bool params_overflowed = false;   // diverged because an update made a param inf/NaN
  bool one_neuron_path = false;           // the specialised step of nn/one_neuron_step.hpp ran
  // The sharpness records (TrainOptions::sharpness_every): their steps and values.
  std::vector<std::int64_t> sharpness_steps;
  std::vector<double> sharpness;
};

// The state a run changes: params, the running statistics of the BN layers
// (Network::running_offsets; null without BN) with the count of updates behind them, and
// the optimizer's state (nn/optimizer.hpp; its buffers null for plain SGD).
struct TrainState {
  double* params = nullptr;
  double* running = nullptr;
  std::int64_t* updates = nullptr;
  OptimizerState optimizer;
};

// Runs up to opts.steps updates of params by opts.optimizer (plain SGD: params <- params
// - lr * grad) on (X (m, in), Y (m, out), or (m,) class labels),
// each also updating the running statistics from the step's batch. losses gets the
// noise-free full-data loss before steps 0, r, 2r, ... (r = record_every), and after the
// last step when steps is a multiple of r. A non-finite loss stops the run (reason
// diverged); the state then holds the values that produced it. The loss after the last
// step is always checked, recorded or not. Noisy BN layers draw their noise per step
// from opts.seed (docs/math/networks.md section 8). When an evaluation throws
// (ZeroVarianceError), the state holds the values of the steps done before.
TrainOutcome train(Network& net, const TrainState& state, const double* X, const double* Y,
                   std::int64_t m, const TrainOptions& opts, std::vector<double>& losses,
                   const RecordHook& on_record, const PollHook& poll);

}  // namespace bnfast
