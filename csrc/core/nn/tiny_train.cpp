#include <algorithm>
#include <cmath>
#include <memory>
#include <utility>

#include "nn/tiny_step.hpp"
#include "nn/train_loop.hpp"

namespace bnfast {

using i64 = std::int64_t;

namespace {

// The step must inline into the loop, so that its state stays in registers; the
// fallback to Network::loss must not (it would crowd the hot loop).
#if defined(__GNUC__)
#define BNFAST_HOT inline __attribute__((always_inline))
#define BNFAST_COLD __attribute__((noinline, cold))
#else
#define BNFAST_HOT inline
#define BNFAST_COLD
#endif

// Network::loss, out of line: the stepper calling it must not pass `this` (its state
// could then not live in registers).
BNFAST_COLD double network_loss(Network& net, const double* params, const double* X,
                                const double* Y, i64 m, double* grad) {
  return net.loss(params, X, Y, m, grad);
}

// Sum of f(Lo), ..., f(Lo + N - 1) as a balanced tree: a short dependency chain.
template <int Lo, int N>
struct Tree {
  template <class F>
  static BNFAST_HOT double sum(const F& f) {
    if constexpr (N == 1)
      return f(Lo);
    else
      return Tree<Lo, N / 2>::sum(f) + Tree<Lo + N / 2, N - N / 2>::sum(f);
  }
};

// Sum of f(i) over the rows: a tree for a compile-time count M, else four chains (short
// dependency chains, and pairs the compiler can put in one vector register).
template <int M, class F>
BNFAST_HOT double row_sum(int m, const F& f) {
  if constexpr (M > 0) {
    return Tree<0, M>::sum(f);
  } else {
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int i = 0;
    for (; i + 4 <= m; i += 4) {
      s0 += f(i);
      s1 += f(i + 1);
      s2 += f(i + 2);
      s3 += f(i + 3);
    }
    for (; i < m; ++i) s0 += f(i);
    return (s0 + s1) + (s2 + s3);
  }
}

// The learning set, centred once. The step works on hc = Xc w, the centred
// pre-activations (h = X w + b minus its batch mean xbar . w + b, which BN removes),
// and on the gradient in the form dW = Xc^T dh (sum_i dh_i = 0).
template <int IN, int M>  // M = 0: the row count m is known at run time only
struct TinyData {
  static constexpr int R = M > 0 ? M : static_cast<int>(kTinyMaxRows);
  int m = 0;
  double xc[IN][R];  // column by column: the sums over rows read contiguous values
  double y[R];
  double xbar[IN];  // column means
  double xmax[IN];  // max_i |x_ik|: with |w| and |b|, the scale of h's rounding errors
  double grad[kTinyMaxIn + 3];  // the general evaluation's gradient (a fallback step)

  TinyData(const double* X, const double* Y, int rows) : m(rows) {
    for (int k = 0; k < IN; ++k) {
      // shifted by the first row, so a constant column centres to exactly 0
      double s = 0, big = 0;
      for (int i = 0; i < m; ++i) {
        s += X[i * IN + k] - X[k];
        big = std::max(big, std::fabs(X[i * IN + k]));
      }
      xbar[k] = X[k] + s / m;
      xmax[k] = big;
      for (int i = 0; i < m; ++i) xc[k][i] = X[i * IN + k] - xbar[k];
    }
    for (int i = 0; i < m; ++i) y[i] = Y[i];
  }
};

// One BN neuron's full-batch step (see nn/train_loop.hpp for the stepper's methods).
// The state (w, b, gamma, beta, running statistics, update count) lives in members that
// the compiler keeps in registers; it reaches TrainState's arrays at store().
template <int IN, int M>
class TinyStepper {
 public:
  static constexpr bool fused = true;

  TinyStepper(Network& net, const TrainState& state, const double* X, const double* Y,
              TinyData<IN, M>& data)
      : net_(net), state_(state), X_(X), Y_(Y), d_(data) {
    const LayerSpec& L = net.layers()[0];
    const ParamOffsets& o = net.layer_offsets()[0];
    const double* p = state.params;
    for (int k = 0; k < IN; ++k) w_[k] = p[o.w + k];
    has_bias_ = o.b >= 0;
    trainable_ = L.bn_trainable;
    b_ = has_bias_ ? p[o.b] : 0.0;
    gamma_ = trainable_ ? p[o.gamma] : L.gamma[0];
    beta_ = trainable_ ? p[o.beta] : L.beta[0];
    eps_ = L.eps;
    const double m = static_cast<double>(data.m);
    inv_m_ = 1.0 / m;
    scale_ = net.loss_kind() == LossKind::mean ? inv_m_ : 1.0;
    two_scale_ = 2.0 * scale_;
    cumulative_ = L.cumulative;
    momentum_ = L.momentum;
    bessel_ = m / (m - 1.0);
    has_running_ = state.running != nullptr;
    if (has_running_) {
      running_at_ = net.running_offsets()[0];
      rm_ = state.running[running_at_];
      rv_ = state.running[running_at_ + 1];
      updates_ = *state.updates;
    }
  }

  BNFAST_HOT double full_loss(bool grad) {
    const int m = M > 0 ? M : d_.m;
    double hc[TinyData<IN, M>::R];
    for (int i = 0; i < m; ++i)
      hc[i] = Tree<0, IN>::sum([&](int k) { return d_.xc[k][i] * w_[k]; });
    const double var = row_sum<M>(m, [&](int i) { return hc[i] * hc[i]; }) * inv_m_;
    const double v = var + eps_;
    // h's rounding errors are ~2^-52 (|b| + sum_k max|x_k| |w_k|): a variance within
    // 2^-33 of that scale (or below 2^-960 with eps == 0, where the kernels rescale) is
    // left to the general kernels, which also raise the zero-variance error.
    double tol = std::fabs(b_);
    for (int k = 0; k < IN; ++k) tol += d_.xmax[k] * std::fabs(w_[k]);
    tol *= 0x1p-33;
    const double floor = std::max(tol * tol, eps_ == 0 ? 0x1p-960 : 0.0);
    if (!(var >= floor && v >= 0x1p-500 && v <= 0x1p500)) return general_loss(grad);
    general_stats_ = false;
    mean_ = Tree<0, IN>::sum([&](int k) { return d_.xbar[k] * w_[k]; }) + b_;
    var_ = var;
    // Ordered for a short dependency chain from w to the next w: 1/v runs beside
    // sqrt(v), and everything that needs only hc and v is ready before the residuals.
    const double inv_v = 1.0 / v;
    const double sd = std::sqrt(v);
    const double invstd = sd * inv_v;  // 1/sqrt(v)
    const double a = sd * (gamma_ * inv_v);  // gamma/sqrt(v)
    double r[TinyData<IN, M>::R];  // z - y, z = a hc + beta
    for (int i = 0; i < m; ++i) r[i] = hc[i] * a + (beta_ - d_.y[i]);
    const double loss = row_sum<M>(m, [&](int i) { return r[i] * r[i]; }) * scale_;
    if (!grad) return loss;
    // With g = 2s r and zhat = hc/sqrt(v), the BN backward pass is
    // dh_i = 2s a (r_i - mean(r) - hc_i t), t = sum_j r_j hc_j / (m v), and dW = Xc^T dh
    // (sum_i dh_i = 0), which is 2s a sum_i r_i (xc_ik - hc_i q_k), q_k = sum_j hc_j
    // xc_jk / (m v): dW = coef u.
    const double inv_mv = inv_v * inv_m_;
    for (int k = 0; k < IN; ++k) {
      const double q = row_sum<M>(m, [&](int i) { return hc[i] * d_.xc[k][i]; }) * inv_mv;
      u_[k] = row_sum<M>(m, [&](int i) { return r[i] * (d_.xc[k][i] - hc[i] * q); });
    }
    coef_ = two_scale_ * a;
    if (trainable_ || has_bias_) {
      const double rh = row_sum<M>(m, [&](int i) { return r[i] * hc[i]; });
      const double rsum = row_sum<M>(m, [&](int i) { return r[i]; });
      dgamma_ = two_scale_ * invstd * rh;  // sum_i g_i zhat_i
      dbeta_ = two_scale_ * rsum;          // sum_i g_i
      if (has_bias_) {  // 0 in exact arithmetic: its rounding, as the general step has
        const double rbar = rsum * inv_m_, t = rh * inv_mv;
        db_ = row_sum<M>(m, [&](int i) { return coef_ * ((r[i] - rbar) - hc[i] * t); });
      }
    }
    return loss;
  }

  double batch_loss() { return full_loss(true); }  // not called: the step is fused

  BNFAST_HOT void update_running() {
    if (!has_running_) return;
    ++updates_;
    if (general_stats_) {  // the last evaluation was Network::loss: its statistics
      state_.running[running_at_] = rm_;
      state_.running[running_at_ + 1] = rv_;
      net_.update_running(state_.running, updates_, d_.m);
      rm_ = state_.running[running_at_];
      rv_ = state_.running[running_at_ + 1];
      return;
    }
    const double f = cumulative_ ? 1.0 / static_cast<double>(updates_) : momentum_;
    rm_ = (1.0 - f) * rm_ + f * mean_;
    rv_ = (1.0 - f) * rv_ + f * (var_ * bessel_);
  }

  BNFAST_HOT bool apply(double lr) {
    bool finite = true;
    const double step = lr * coef_;
    for (int k = 0; k < IN; ++k) {
      w_[k] -= step * u_[k];
      finite &= std::isfinite(w_[k]);
    }
    if (has_bias_) {
      b_ -= lr * db_;
      finite &= std::isfinite(b_);
    }
    if (trainable_) {
      gamma_ -= lr * dgamma_;
      beta_ -= lr * dbeta_;
      finite &= std::isfinite(gamma_) && std::isfinite(beta_);
    }
    return finite;
  }

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
    for (int k = 0; k < IN; ++k) p[o.w + k] = w_[k];
    if (has_bias_) p[o.b] = b_;
    if (trainable_) {
      p[o.gamma] = gamma_;
      p[o.beta] = beta_;
    }
  }

  // The step evaluated by Network::loss (its kernels, its errors).
  BNFAST_HOT double general_loss(bool grad) {
    store_params();
    const double loss =
        network_loss(net_, state_.params, X_, Y_, d_.m, grad ? d_.grad : nullptr);
    if (grad) {
      const ParamOffsets& o = net_.layer_offsets()[0];
      for (int k = 0; k < IN; ++k) u_[k] = d_.grad[o.w + k];
      coef_ = 1.0;
      if (has_bias_) db_ = d_.grad[o.b];
      if (trainable_) {
        dgamma_ = d_.grad[o.gamma];
        dbeta_ = d_.grad[o.beta];
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
  double w_[IN], u_[IN] = {}, coef_ = 0;  // the gradient of w is coef_ * u_
  double b_ = 0, db_ = 0, gamma_ = 1, dgamma_ = 0, beta_ = 0, dbeta_ = 0;
  double eps_ = 0, inv_m_ = 1, scale_ = 1, two_scale_ = 2;
  double mean_ = 0, var_ = 0;  // the batch statistics of the last evaluation
  double rm_ = 0, rv_ = 1, momentum_ = 0.1, bessel_ = 1;
  i64 updates_ = 0, running_at_ = 0;
  bool has_bias_ = false, trainable_ = false, cumulative_ = false, has_running_ = false;
  bool general_stats_ = false;
};

template <int IN, int M>
TrainOutcome run_tiny(Network& net, const TrainState& state, const double* X, const double* Y,
                      i64 m, const TrainOptions& opts, std::vector<double>& losses,
                      const RecordHook& on_record, const PollHook& poll) {
  auto data = std::make_unique<TinyData<IN, M>>(X, Y, static_cast<int>(m));
  return run_train_loop<TinyStepper<IN, M>>(opts, losses, on_record, poll, net, state, X, Y,
                                            *data);
}

// The instantiation for (in, m): the row count compiled in for the smallest sets (the
// whole step then lives in registers), a run-time count otherwise.
template <int IN>
TrainOutcome dispatch_rows(Network& net, const TrainState& state, const double* X,
                           const double* Y, i64 m, const TrainOptions& opts,
                           std::vector<double>& losses, const RecordHook& on_record,
                           const PollHook& poll) {
  if (IN <= 4) {
    switch (m) {
      case 2: return run_tiny<IN, 2>(net, state, X, Y, m, opts, losses, on_record, poll);
      case 3: return run_tiny<IN, 3>(net, state, X, Y, m, opts, losses, on_record, poll);
      case 4: return run_tiny<IN, 4>(net, state, X, Y, m, opts, losses, on_record, poll);
      default: break;
    }
  }
  return run_tiny<IN, 0>(net, state, X, Y, m, opts, losses, on_record, poll);
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

bool tiny_class(const Network& net, const double* X, const double* Y, i64 m, i64 batch_size) {
  if (net.layers().size() != 1) return false;
  const LayerSpec& L = net.layers()[0];
  if (!(L.out == 1 && L.in >= 1 && L.in <= kTinyMaxIn && L.activation == Activation::identity &&
        L.batch_norm && L.norm == Norm::std && !L.noise.on && L.skip_from < 0))
    return false;
  if (!(batch_size == 0 || batch_size == m) || m < 2 || m > kTinyMaxRows) return false;
  auto moderate = [](double v) { return std::fabs(v) <= 0x1p200; };  // NaN fails too
  return std::all_of(X, X + m * L.in, moderate) && std::all_of(Y, Y + m, moderate);
}

TrainOutcome train_tiny(Network& net, const TrainState& state, const double* X,
                        const double* Y, i64 m, const TrainOptions& opts,
                        std::vector<double>& losses, const RecordHook& on_record,
                        const PollHook& poll) {
  return dispatch_in(std::make_integer_sequence<int, static_cast<int>(kTinyMaxIn)>{}, net,
                     state, X, Y, m, opts, losses, on_record, poll);
}

}  // namespace bnfast
