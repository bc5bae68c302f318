#include "nn/train.hpp"

#include <cstdint>

#include <memory>

#include "nn/sharpness.hpp"
#include "nn/one_neuron_step.hpp"
#include "nn/train_loop.hpp"
#include "runtime/aligned_vector.hpp"

namespace bnfast {

using i64 = std::int64_t;

namespace {

// The step of any Network (nn/network.hpp): full batch or mini-batches of the epoch
// shuffle, with BN noise drawn per step; the state lives in TrainState's arrays.
class NetworkStepper {
 public:
  NetworkStepper(Network& net, const TrainState& state, const double* X, const double* Y,
                 i64 m, const TrainOptions& opts)
      : fused(false),
        net_(net),
        state_(state),
        X_(X),
        Y_(Y),
        m_(m),
        in_(net.input_size()),
        out_(takes_labels(net.loss_kind()) ? 1 : net.out_features()),  // Y's columns
        full_(opts.batch_size == 0 || opts.batch_size == m),
        B_(full_ ? m : opts.batch_size),
        noisy_(NoiseSource::any(net.layers())),
        grad_(static_cast<std::size_t>(net.num_params())),
        shuffler_(full_ ? 0 : m, opts.seed),
        noise_source_(opts.seed),
        optimizer_(opts.optimizer) {
    fused = full_ && !noisy_;  // full batch without noise: the record gives the gradient
    pos_ = m;                  // forces a shuffle before the first mini-batch
    if (!full_) {
      xb_.resize(static_cast<std::size_t>(B_ * in_));
      yb_.resize(static_cast<std::size_t>(B_ * out_));
    } else {
      X_ = cache_line_aligned(X, m * in_, x_copy_);  // B of every step's dW = dH^T X
    }
  }

  bool fused;

  double full_loss(bool grad) {
    return net_.loss(state_.params, X_, Y_, m_, grad ? grad_.data() : nullptr);
  }

  double batch_loss() {
    const double* xs = X_;
    const double* ys = Y_;
    if (!full_) {
      if (pos_ + B_ > m_) {  // the m mod B left-over samples wait for a later epoch
        perm_ = &shuffler_.next_epoch();
        pos_ = 0;
      }
      for (i64 r = 0; r < B_; ++r) {
        const i64 src = (*perm_)[pos_ + r];
        std::copy(X_ + src * in_, X_ + (src + 1) * in_, xb_.data() + r * in_);
        std::copy(Y_ + src * out_, Y_ + (src + 1) * out_, yb_.data() + r * out_);
      }
      pos_ += B_;
      xs = xb_.data();
      ys = yb_.data();
    }
    if (noisy_) noise_source_.draw(net_.layers(), B_, noise_);
    return net_.loss(state_.params, xs, ys, B_, grad_.data(), noisy_ ? &noise_ : nullptr);
  }

  void update_running() {
    if (state_.running) net_.update_running(state_.running, ++*state_.updates, B_);
  }

  bool apply(double lr) {
    return optimizer_step(optimizer_, state_.optimizer, state_.params, grad_.data(),
                          static_cast<i64>(grad_.size()), lr);
  }

  void store() {}  // the state is updated in place

 private:
  Network& net_;
  const TrainState& state_;
  const double* X_;
  const double* Y_;
  const i64 m_, in_, out_;
  const bool full_;
  const i64 B_;
  const bool noisy_;
  AlignedVector<double> grad_;
  AlignedVector<double> xb_, yb_, x_copy_;
  EpochShuffler shuffler_;
  NoiseSource noise_source_;
  const OptimizerSpec optimizer_;
  BatchNoise noise_;
  const std::vector<i64>* perm_ = nullptr;
  i64 pos_ = 0;
};

}  // namespace

TrainOutcome train(Network& net, const TrainState& state, const double* X, const double* Y,
                   i64 m, const TrainOptions& opts, std::vector<double>& losses,
                   const RecordHook& on_record, const PollHook& poll) {
  if (opts.allow_one_neuron && opts.optimizer.plain() && opts.sharpness_every == 0 &&
      one_neuron_class(net, X, Y, m, opts.batch_size)) {
    TrainOutcome outcome = train_one_neuron(net, state, X, Y, m, opts, losses, on_record, poll);
    outcome.one_neuron_path = true;
    return outcome;
  }
  StepHook on_sharpness;
  std::unique_ptr<SharpnessTracker> tracker;
  std::vector<std::int64_t> steps;
  std::vector<double> values;
  if (opts.sharpness_every > 0) {
    tracker = std::make_unique<SharpnessTracker>(net.num_params(), opts.seed);
    on_sharpness = [&](i64 step) {
      // one point per record: its first product keeps its pass, the next reuse it
      auto reuse = Network::HvpReuse::keep;
      values.push_back(tracker->estimate([&](const double* v, double* hv) {
        net.hvp(state.params, X, Y, m, v, nullptr, hv, nullptr, reuse);
        reuse = Network::HvpReuse::tangents;
      }));
      steps.push_back(step);
    };
  }
  TrainOutcome outcome = run_train_loop<NetworkStepper>(opts, losses, on_record, poll,
                                                        on_sharpness, net, state, X, Y, m,
                                                        opts);
  if (tracker) net.release_hvp_state();  // its full-data Dual buffers are not the user's
  outcome.sharpness_steps = std::move(steps);
  outcome.sharpness = std::move(values);
  return outcome;
}

}  // namespace bnfast
