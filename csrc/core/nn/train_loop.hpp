// The control flow of bnfast.train, written once: records, the callback, divergence,
// running statistics, Ctrl-C polling and the step counts. What a step computes is the
// stepper's (nn/train.cpp: any Network; nn/one_neuron_step.hpp: one BN neuron with its state
// in registers), so the paths cannot drift apart in what they report.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "nn/train.hpp"

namespace bnfast {

// Calls the poll hook every `stride` steps, adapting the stride so that polls come
// every 10-50 ms whatever a step costs (a clock read per step would slow one-neuron steps).
class Poller {
 public:
  explicit Poller(const PollHook& hook) : hook_(hook), last_(Clock::now()) {}
  bool stop_requested() {
    if (!hook_ || --countdown_ > 0) return false;
    const auto now = Clock::now();
    const double ms = std::chrono::duration<double, std::milli>(now - last_).count();
    if (ms < 10 && stride_ < (std::int64_t{1} << 24)) stride_ *= 2;
    else if (ms > 50 && stride_ > 1) stride_ /= 2;
    countdown_ = stride_;
    last_ = now;
    return hook_();
  }

 private:
  using Clock = std::chrono::steady_clock;
  const PollHook& hook_;
  std::int64_t stride_ = 1, countdown_ = 1;
  Clock::time_point last_;
};

// A stepper S provides:
//   static/const bool fused           the step's gradient comes from the recorded
//                                     (noise-free, full-data) evaluation
//   double full_loss(bool grad)       the full-data loss at the current params, and
//                                     when grad is true the gradient of the step
//   double batch_loss()               (not fused) the step's batch and noise: the loss
//                                     of that evaluation and its gradient
//   void update_running()             running statistics from the last gradient
//                                     evaluation, and the update count
//   bool apply(double lr)             the update with step size lr (the optimizer's, or
//                                     params -= lr * grad); false when a param is not finite
//   void store()                      the state back into TrainState's arrays
// A stepper may keep the state in local variables between store() calls; store() runs
// once at the end, also when an evaluation throws. The loop constructs the stepper from
// `args`, so a stepper whose methods inline can live in registers (its address never
// escapes).
template <class S, class... Args>
TrainOutcome run_train_loop(const TrainOptions& opts, std::vector<double>& losses,
                            const RecordHook& on_record, const PollHook& poll,
                            const StepHook& on_sharpness, Args&&... args) {
  using i64 = std::int64_t;
  S s(std::forward<Args>(args)...);
  // A huge run stopped early by its callback must not ask for all its records up front.
  losses.reserve(static_cast<std::size_t>(
      std::min<i64>(opts.steps / opts.record_every + 1, i64{1} << 20)));
  Poller poller(poll);
  TrainOutcome outcome;
  auto diverged = [&](i64 step, double loss) {
    outcome.reason = StopReason::diverged;
    outcome.diverged_step = step;
    outcome.diverged_loss = loss;
  };
  i64 until_record = 0;  // steps to the next record (a countdown: no division per step)
  try {
    for (i64 step = 0;; ++step) {
      const bool record = until_record == 0;
      until_record = record ? opts.record_every - 1 : until_record - 1;
      const bool last = step == opts.steps;
      const bool fused = s.fused && !last;
      double loss = 0, step_loss = 0;  // the recorded one, the one of the step's gradient
      if (fused) {
        loss = step_loss = s.full_loss(true);
      } else if (record || last) {  // the final parameters are checked even unrecorded
        loss = s.full_loss(false);
      }
      if ((fused || record || last) && !std::isfinite(loss)) {
        diverged(step, loss);
        break;
      }
      if (record) {
        losses.push_back(loss);
        if (on_record && on_record(step, loss)) {
          if (!last) outcome.reason = StopReason::requested;
          break;
        }
      }
      if (on_sharpness && step % opts.sharpness_every == 0) {
        s.store();  // the hook reads TrainState's params
        on_sharpness(step);
      }
      if (last) break;
      if (!fused) {
        step_loss = s.batch_loss();
        if (!std::isfinite(step_loss)) {
          diverged(step, step_loss);
          break;
        }
      }
      // the statistics of the evaluation that gave the gradient: this step's batch
      s.update_running();
      // A finite loss does not mean finite params (a ReLU unit pushed to -inf outputs
      // 0): an update that overflows is divergence too (the caller discards the state).
      if (!s.apply(opts.lr_at(step))) {
        diverged(step, step_loss);
        outcome.params_overflowed = true;
        break;
      }
      outcome.steps_done = step + 1;
      if (poller.stop_requested()) {
        outcome.reason = StopReason::interrupted;
        break;
      }
    }
  } catch (...) {
    s.store();
    throw;
  }
  s.store();
  return outcome;
}

}  // namespace bnfast
