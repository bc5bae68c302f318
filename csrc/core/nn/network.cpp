#include "nn/network.hpp"

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "nn/ops/activation.hpp"
#include "nn/ops/dense.hpp"
#include "nn/ops/normalization.hpp"
#include "nn/ops/residual.hpp"
#include "runtime/parallel.hpp"

namespace bnfast {

using i64 = std::int64_t;

// The values and gradients of one evaluation; double for loss and gradient, Dual for the
// hvp. The (m, width) arrays are cache-line aligned: products read them as rows of vectors.
template <class T>
struct Network::Values {
  Pass<T> pass;
  std::vector<AlignedVector<T>> out;  // per op, its output (m, out_width)
  AlignedVector<T> grad[2];           // gradients of two consecutive values (m, widest)
  i64 reserved_m = 0;
  std::vector<T> params, x, grad_params;  // Dual copies of the inputs (hvp)
};

namespace {

// The checks of the layers as a chain, in the messages the Python layer shows.
void check_layer(const std::vector<LayerSpec>& layers, std::size_t l, i64 offset,
                 i64 block_limit) {
  const LayerSpec& L = layers[l];
  const std::string name = "layers[" + std::to_string(l) + "]";
  // 2**40 float64 parameters are 8 TiB: a larger count is a mistake, and the
  // products below must not overflow.
  constexpr i64 kMaxParams = i64{1} << 40;
  if (L.in > kMaxParams / L.out || L.in * L.out > kMaxParams - offset)
    throw std::invalid_argument(name + " has " + std::to_string(L.in) + " x " +
                                std::to_string(L.out) +
                                " weights: the network would have more than 2**40 "
                                "parameters");
  if (l > 0 && L.in != layers[l - 1].out)
    throw std::invalid_argument(name + " has in_features " + std::to_string(L.in) +
                                " but layers[" + std::to_string(l - 1) +
                                "] has out_features " + std::to_string(layers[l - 1].out));
  if (L.norm && !L.norm->trainable &&
      (static_cast<i64>(L.norm->gamma.size()) != L.out ||
       static_cast<i64>(L.norm->beta.size()) != L.out))
    throw std::invalid_argument(name + ": constant gamma and beta need out_features values");
  if (L.norm && L.norm->kind == NormKind::group &&
      (L.norm->groups < 1 || L.out % L.norm->groups != 0))
    throw std::invalid_argument(name + ": " + std::to_string(L.norm->groups) +
                                " groups do not divide the " + std::to_string(L.out) +
                                " features");
  if (L.skip_from >= 0) {
    const i64 start = L.skip_from;
    if (start > static_cast<i64>(l) || start < block_limit)
      throw std::invalid_argument(name + ": a residual block must start at this layer or "
                                         "an earlier one, after the previous block");
    if (layers[start].in != L.out)
      throw std::invalid_argument(name + ": a residual block must map n features to n, "
                                         "got " + std::to_string(layers[start].in) +
                                  " -> " + std::to_string(L.out));
  }
}

}  // namespace

Network::Network(std::vector<LayerSpec> layers, LossKind loss)
    : layers_(std::move(layers)), loss_kind_(loss) {
  if (layers_.empty()) throw std::invalid_argument("a network needs at least one layer");
  i64 offset = 0, block_limit = 0;
  std::vector<i64> first_op(layers_.size());  // per layer, its dense op's index
  std::vector<std::pair<i64, ResidualJoin*>> joins;
  for (std::size_t l = 0; l < layers_.size(); ++l) {
    const LayerSpec& L = layers_[l];
    check_layer(layers_, l, offset, block_limit);
    if (L.skip_from >= 0) block_limit = static_cast<i64>(l) + 1;
    const ParamOffsets o = param_offsets(L, offset);
    offsets_.push_back(o);
    offset = o.end;
    const i64 running_at = L.batch_norm() ? num_running_ : -1;
    running_offsets_.push_back(running_at);
    if (L.batch_norm()) num_running_ += 2 * L.out;

    first_op[l] = static_cast<i64>(ops_.size());
    ops_.push_back(std::make_unique<Dense>(L.in, L.out, o.w, o.b));
    if (L.norm) {
      auto norm = std::make_unique<Normalization>(*L.norm, L.out, static_cast<i64>(l),
                                                  o.gamma, o.beta, running_at);
      if (running_at >= 0) batch_norms_.push_back(norm.get());
      ops_.push_back(std::move(norm));
    }
    if (L.activation != Activation::identity)
      ops_.push_back(std::make_unique<ActivationOp>(L.out, L.activation));
    if (L.skip_from >= 0) {
      auto join = std::make_unique<ResidualJoin>(L.out, first_op[L.skip_from]);
      joins.emplace_back(join->from, join.get());
      ops_.push_back(std::move(join));
    }
  }
  num_params_ = offset;
  join_at_.assign(ops_.size() + 1, nullptr);
  for (const auto& [from, join] : joins) join_at_[from] = join;
  values_ = std::make_unique<Values<double>>();
}

Network::~Network() = default;

bool Network::has_batch_norm() const {
  return std::any_of(layers_.begin(), layers_.end(),
                     [](const LayerSpec& L) { return L.batch_norm(); });
}

template <class T>
void Network::forward_pass(Values<T>& v, const T* params, const T* X, i64 m, Mode mode,
                           const BatchNoise* noise, const double* running) {
  if (m > v.reserved_m) {
    v.out.resize(ops_.size());
    i64 widest = 0;
    for (std::size_t k = 0; k < ops_.size(); ++k) {
      v.out[k].resize(static_cast<std::size_t>(m * ops_[k]->out_width));
      widest = std::max({widest, ops_[k]->in_width, ops_[k]->out_width});
    }
    for (auto& g : v.grad) g.resize(static_cast<std::size_t>(m * widest));
    v.reserved_m = m;
  }
  Pass<T>& p = v.pass;
  p.m = m;
  p.mode = mode;
  p.params = params;
  p.grad = nullptr;
  p.running = running;
  p.noise = noise;
  p.values.resize(ops_.size() + 1);
  p.values[0] = X;
  for (std::size_t k = 0; k < ops_.size(); ++k) {
    ops_[k]->forward(p, p.values[k], v.out[k].data());
    p.values[k + 1] = v.out[k].data();
  }
}

template <class T>
T Network::loss_pass(Values<T>& v, const T* params, const T* X, const double* Y, i64 m,
                     T* grad, const BatchNoise* noise) {
  forward_pass(v, params, X, m, Mode::train, noise, nullptr);
  Pass<T>& p = v.pass;
  T* dout = grad ? v.grad[0].data() : nullptr;
  const T total = loss_and_gradient(loss_kind_, p.values.back(), Y, m, out_features(), dout);
  if (!grad) return total;
  p.grad = grad;
  for (std::size_t k = ops_.size(); k-- > 0;) {
    T* spare = dout == v.grad[0].data() ? v.grad[1].data() : v.grad[0].data();
    T* din = ops_[k]->backward(p, p.values[k], p.values[k + 1], dout, spare, k > 0);
    if (din && join_at_[k]) join_at_[k]->add_skip(p, din);  // the skip connection's share
    dout = din;
  }
  return total;
}

void Network::forward(const double* params, const double* X, i64 m, double* out) {
  const FineGrain grain(kStepGrain);
  forward_pass(*values_, params, X, m, Mode::train, nullptr, nullptr);
  const double* F = values_->pass.values.back();
  std::copy(F, F + m * out_features(), out);
}

void Network::predict(const double* params, const double* running, const double* X, i64 m,
                      double* out) {
  const FineGrain grain(kStepGrain);
  forward_pass(*values_, params, X, m, Mode::inference, nullptr, running);
  const double* F = values_->pass.values.back();
  std::copy(F, F + m * out_features(), out);
}

double Network::loss(const double* params, const double* X, const double* Y, i64 m,
                     double* grad, const BatchNoise* noise) {
  const FineGrain grain(kStepGrain);
  return loss_pass(*values_, params, X, Y, m, grad, noise);
}

double Network::hvp(const double* params, const double* X, const double* Y, i64 m,
                    const double* v, double* grad, double* hv) {
  if (!tangents_) tangents_ = std::make_unique<Values<Dual>>();
  Values<Dual>& t = *tangents_;
  const i64 P = num_params_;
  t.params.resize(P);
  for (i64 k = 0; k < P; ++k) t.params[k] = Dual(params[k], v[k]);
  t.x.assign(X, X + m * in_features());  // constants: zero tangent
  t.grad_params.resize(P);
  const Dual total = loss_pass(t, t.params.data(), t.x.data(), Y, m, t.grad_params.data(), nullptr);
  for (i64 k = 0; k < P; ++k) {
    hv[k] = t.grad_params[k].d;
    if (grad) grad[k] = t.grad_params[k].v;
  }
  return total.v;
}

void Network::update_running(double* running, i64 update, i64 m) const {
  for (const Normalization* norm : batch_norms_) norm->update_running(running, update, m);
}

}  // namespace bnfast
