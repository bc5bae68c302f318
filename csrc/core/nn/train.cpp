#include "nn/train.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>

namespace bnfast {

using i64 = std::int64_t;

namespace {

// Calls the poll hook every `stride` steps, adapting the stride so that polls come
// every 10-50 ms whatever a step costs (a clock read per step would slow tiny steps).
class Poller {
 public:
  explicit Poller(const PollHook& hook) : hook_(hook), last_(Clock::now()) {}
  bool stop_requested() {
    if (!hook_ || --countdown_ > 0) return false;
    const auto now = Clock::now();
    const double ms = std::chrono::duration<double, std::milli>(now - last_).count();
    if (ms < 10 && stride_ < (i64{1} << 24)) stride_ *= 2;
    else if (ms > 50 && stride_ > 1) stride_ /= 2;
    countdown_ = stride_;
    last_ = now;
    return hook_();
  }

 private:
  using Clock = std::chrono::steady_clock;
  const PollHook& hook_;
  i64 stride_ = 1, countdown_ = 1;
  Clock::time_point last_;
};

}  // namespace

TrainOutcome train(Network& net, const TrainState& state, const double* X, const double* Y,
                   i64 m, const TrainOptions& opts, std::vector<double>& losses,
                   const RecordHook& on_record, const PollHook& poll) {
  double* params = state.params;
  const i64 P = net.num_params();
  const i64 in = net.in_features(), out = net.out_features();
  const bool full = opts.batch_size == 0 || opts.batch_size == m;
  const i64 B = full ? m : opts.batch_size;
  const bool noisy = NoiseSource::any(net.layers());
  std::vector<double> grad(P);
  std::vector<double> xb, yb;
  EpochShuffler shuffler(full ? 0 : m, opts.seed);
  NoiseSource noise_source(opts.seed);
  BatchNoise noise;
  const std::vector<i64>* perm = nullptr;
  i64 pos = m;  // forces a shuffle before the first mini-batch
  if (!full) {
    xb.resize(B * in);
    yb.resize(B * out);
  }
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

  for (i64 step = 0;; ++step) {
    const bool record = step % opts.record_every == 0;
    const bool last = step == opts.steps;
    // Full batch without noise: the recorded loss comes with the step's gradient.
    const bool fused = full && !noisy && !last;
    double loss = 0, step_loss = 0;  // the recorded one, the one of the step's gradient
    if (fused) {
      loss = step_loss = net.loss(params, X, Y, m, grad.data());
    } else if (record || last) {  // the final parameters are checked even unrecorded
      loss = net.loss(params, X, Y, m, nullptr);
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
    if (last) break;
    if (!fused) {
      const double* xs = X;
      const double* ys = Y;
      if (!full) {
        if (pos + B > m) {  // the m mod B left-over samples wait for a later epoch
          perm = &shuffler.next_epoch();
          pos = 0;
        }
        for (i64 r = 0; r < B; ++r) {
          const i64 src = (*perm)[pos + r];
          std::copy(X + src * in, X + (src + 1) * in, xb.data() + r * in);
          std::copy(Y + src * out, Y + (src + 1) * out, yb.data() + r * out);
        }
        pos += B;
        xs = xb.data();
        ys = yb.data();
      }
      if (noisy) noise_source.draw(net.layers(), B, noise);
      step_loss = net.loss(params, xs, ys, B, grad.data(), noisy ? &noise : nullptr);
      if (!std::isfinite(step_loss)) {
        diverged(step, step_loss);
        break;
      }
    }
    // the statistics of the evaluation that gave grad: this step's batch
    if (state.running) net.update_running(state.running, ++*state.updates, B);
    // A finite loss does not mean finite params (a ReLU unit pushed to -inf outputs 0):
    // an update that overflows is divergence too, reported before it is kept.
    bool finite = true;
    for (i64 k = 0; k < P; ++k) {
      params[k] -= opts.lr * grad[k];
      finite &= std::isfinite(params[k]);
    }
    if (!finite) {
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
  return outcome;
}

}  // namespace bnfast
