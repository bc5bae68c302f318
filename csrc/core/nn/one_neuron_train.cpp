#include <algorithm>
#include <cmath>
#include <memory>
#include <utility>

#include "nn/running_stats.hpp"
#include "nn/one_neuron_step.hpp"
#include "nn/train_loop.hpp"

namespace bnfast {

using i64 = std::int64_t;

namespace {

// Network::loss, out of line: the stepper calling it must not pass `this` (its state
// could then not live in registers).
BNFAST_COLD double network_loss(Network& net, const double* params, const double* X,
                                const double* Y, i64 m, double* grad) {
  return net.loss(params, X, Y, m, grad);
}

// The set of a one-neuron run, and room for the gradient of a step left to Network::loss.
template <int IN, int M>
struct TinyData {
  CentredSet<IN, M, double> set;
  double grad[kOneNeuronMaxInputs + 3];
};

// One BN neuron's full-batch step (nn/train_loop.hpp has the stepper's methods; the
// maths is nn/one_neuron_math.hpp's). The state (params, running statistics, update count)
// lives in members that the compiler keeps in registers; it reaches TrainState's arrays
// at store().
template <int IN, int M>
class TinyStepper {
 public:
  static constexpr bool fused = true;

  TinyStepper(Network& net, const TrainState& state, const double* X, const double* Y,
              TinyData<IN, M>& data)
      : net_(net), state_(state), X_(X), Y_(Y), d_(data) {
    const NormSpec& N = *net.layers()[0].norm;
    const ParamOffsets& o = net.layer_offsets()[0];
    const double* p = state.params;
    for (int k = 0; k < IN; ++k) p_.w[k] = p[o.w + k];
    shape_.bias = o.b >= 0;
    shape_.trainable = N.trainable;
    p_.b = shape_.bias ? p[o.b] : 0.0;
    p_.gamma = shape_.trainable ? p[o.gamma] : N.gamma[0];
    p_.beta = shape_.trainable ? p[o.beta] : N.beta[0];
    shape_.eps = N.eps;
    const double m = static_cast<double>(data.set.m);
    shape_.inv_m = 1.0 / m;
    shape_.scale = net.loss_kind() == LossKind::mean ? shape_.inv_m : 1.0;
    shape_.two_scale = 2.0 * shape_.scale;
    norm_ = &N;
    bessel_ = running_bessel(N, data.set.m);
    has_running_ = state.running != nullptr;
    if (has_running_) {
      running_at_ = net.running_offsets()[0];
      rm_ = state.running[running_at_];
      rv_ = state.running[running_at_ + 1];
      updates_ = *state.updates;
    }
  }

  BNFAST_HOT double full_loss(bool grad) {
    if (!neuron_step<ScalarOps>(d_.set, shape_, p_, grad, g_)) return general_loss(grad);
    general_stats_ = false;
    return g_.loss;
  }

  double batch_loss() { return full_loss(true); }  // not called: the step is fused

  BNFAST_HOT void update_running() {
    if (!has_running_) return;
    ++updates_;
    if (general_stats_) {  // the last evaluation was Network::loss: its statistics
      state_.running[running_at_] = rm_;
      state_.running[running_at_ + 1] = rv_;
      net_.update_running(state_.running, updates_, d_.set.m);
      rm_ = state_.running[running_at_];
      rv_ = state_.running[running_at_ + 1];
      return;
    }
    running_update(rm_, rv_, g_.mean, g_.var, running_factor(*norm_, updates_), bessel_);
  }

  BNFAST_HOT bool apply(double lr) { return neuron_update<ScalarOps>(shape_, g_, lr, p_); }

  void store() {
    store_params();
    if (has_running_) {
      state_.running[running_at_] = rm_;
      state_.running[running_at_ + 1] = rv_;
      *state_.updates = updates_;
    }
  }

 private:
  void store_params() {
    const ParamOffsets& o = net_.layer_offsets()[0];
    double* p = state_.params;
    for (int k = 0; k < IN; ++k) p[o.w + k] = p_.w[k];
    if (shape_.bias) p[o.b] = p_.b;
    if (shape_.trainable) {
      p[o.gamma] = p_.gamma;
      p[o.beta] = p_.beta;
    }
  }

  // The step evaluated by Network::loss (its kernels, its errors).
  BNFAST_HOT double general_loss(bool grad) {
    store_params();
    const double loss =
        network_loss(net_, state_.params, X_, Y_, d_.set.m, grad ? d_.grad : nullptr);
    if (grad) {
      const ParamOffsets& o = net_.layer_offsets()[0];
      for (int k = 0; k < IN; ++k) g_.u[k] = d_.grad[o.w + k];
      g_.coef = 1.0;
      if (shape_.bias) g_.db = d_.grad[o.b];
      if (shape_.trainable) {
        g_.dgamma = d_.grad[o.gamma];
        g_.dbeta = d_.grad[o.beta];
      }
      general_stats_ = true;
    }
    return loss;
  }

  Network& net_;
  TrainState state_;
  const double* X_;
  const double* Y_;
  TinyData<IN, M>& d_;
  NeuronShape shape_;
  NeuronParams<IN, double> p_{};
  NeuronStep<IN, double> g_{};
  const NormSpec* norm_ = nullptr;
  double rm_ = 0, rv_ = 1, bessel_ = 1;
  i64 updates_ = 0, running_at_ = 0;
  bool has_running_ = false, general_stats_ = false;
};

template <int IN, int M>
TrainOutcome run_one_neuron(Network& net, const TrainState& state, const double* X, const double* Y,
                      i64 m, const TrainOptions& opts, std::vector<double>& losses,
                      const RecordHook& on_record, const PollHook& poll) {
  auto data = std::make_unique<TinyData<IN, M>>();
  data->set.m = static_cast<int>(m);
  data->set.set(0, X, Y);
  return run_train_loop<TinyStepper<IN, M>>(opts, losses, on_record, poll, StepHook(), net,
                                            state, X, Y, *data);
}

// The instantiation for (in, m): the row count compiled in for the smallest sets (the
// whole step then lives in registers), a run-time count otherwise.
template <int IN>
TrainOutcome dispatch_rows(Network& net, const TrainState& state, const double* X,
                           const double* Y, i64 m, const TrainOptions& opts,
                           std::vector<double>& losses, const RecordHook& on_record,
                           const PollHook& poll) {
  return with_row_count<IN>(m, [&](auto rows) {
    return run_one_neuron<IN, decltype(rows)::value>(net, state, X, Y, m, opts, losses, on_record,
                                                poll);
  });
}

template <int... IN>
TrainOutcome dispatch_in(std::integer_sequence<int, IN...>, Network& net,
                         const TrainState& state, const double* X, const double* Y, i64 m,
                         const TrainOptions& opts, std::vector<double>& losses,
                         const RecordHook& on_record, const PollHook& poll) {
  TrainOutcome outcome;
  const i64 in = net.in_features();
  ((in == IN + 1 ? (outcome = dispatch_rows<IN + 1>(net, state, X, Y, m, opts, losses,
                                                     on_record, poll),
                    true)
                 : false) ||
   ...);
  return outcome;
}

}  // namespace

bool one_neuron_network(const Network& net) {
  if (net.layers().size() != 1 || takes_labels(net.loss_kind())) return false;
  const LayerSpec& L = net.layers()[0];
  return L.kind == LayerKind::dense && L.out == 1 && L.in >= 1 && L.in <= kOneNeuronMaxInputs &&
         L.activation == Activation::identity && L.batch_norm() &&
         L.norm->scale == NormScale::std && !L.noise.on && L.skip_from < 0;
}

bool one_neuron_data(const double* X, const double* Y, i64 m, i64 in) {
  if (m < 2 || m > kOneNeuronMaxSamples) return false;
  auto moderate = [](double v) { return std::fabs(v) <= 0x1p200; };  // NaN fails too
  return std::all_of(X, X + m * in, moderate) && std::all_of(Y, Y + m, moderate);
}

bool one_neuron_class(const Network& net, const double* X, const double* Y, i64 m, i64 batch_size) {
  return one_neuron_network(net) && (batch_size == 0 || batch_size == m) &&
         one_neuron_data(X, Y, m, net.in_features());
}

TrainOutcome train_one_neuron(Network& net, const TrainState& state, const double* X,
                        const double* Y, i64 m, const TrainOptions& opts,
                        std::vector<double>& losses, const RecordHook& on_record,
                        const PollHook& poll) {
  return dispatch_in(std::make_integer_sequence<int, kOneNeuronMaxInputs>{}, net, state, X, Y, m,
                     opts, losses, on_record, poll);
}

}  // namespace bnfast
