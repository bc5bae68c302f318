#include "nn/network.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "nn/ops/activation.hpp"
#include "nn/ops/conv.hpp"
#include "nn/ops/dense.hpp"
#include "nn/ops/noise.hpp"
#include "nn/ops/normalization.hpp"
#include "nn/ops/pool.hpp"
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
  // keep: per value k, d loss / d value (m, its width) in a buffer of its own (not two
  // shared in turn), so a tangent pass finds the value parts of the last pass's
  // gradients (HvpReuse); kept: whether the last pass kept them.
  bool keep = false, kept = false;
  std::vector<AlignedVector<T>> dvalue;
  i64 widest = 0;  // the widest value, for the two shared gradient buffers
  std::vector<T> params, x, grad_params;  // Dual copies of the inputs (hvp)
  std::vector<T> x_scaled;                // X 2^-e (Network::input_exponent)
};

namespace {

std::string layer_name(std::size_t l) { return "layers[" + std::to_string(l) + "]"; }

std::string shape_str(const SampleShape& shape) {
  std::string out = "(";
  for (std::size_t k = 0; k < shape.size(); ++k)
    out += (k ? ", " : "") + std::to_string(shape[k]);
  return out + (shape.size() == 1 ? ",)" : ")");
}

// The checks of one layer that need no input shape, in the messages the Python layer
// shows.
void check_layer(const std::vector<LayerSpec>& layers, std::size_t l, i64 offset,
                 i64 block_limit) {
  const LayerSpec& L = layers[l];
  const std::string name = layer_name(l);
  const bool windowed = L.kind == LayerKind::conv || L.kind == LayerKind::max_pool ||
                        L.kind == LayerKind::avg_pool;
  if (windowed) {
    const std::size_t axes = L.kernel.size();
    if (axes < 1 || axes > 2 || L.stride.size() != axes ||
        (L.kind == LayerKind::conv ? L.padding.size() != axes : !L.padding.empty()))
      throw std::invalid_argument(name + ": kernel, stride (and padding, for a convolution) "
                                         "need one entry per spatial axis (1 or 2)");
    for (std::size_t k = 0; k < axes; ++k)
      if (L.kernel[k] < 1 || L.stride[k] < 1 || (!L.padding.empty() && L.padding[k] < 0))
        throw std::invalid_argument(name + ": kernel and stride must be >= 1, padding >= 0");
  }
  if (L.has_weights()) {
    // 2**40 float64 parameters are 8 TiB: a larger count is a mistake, and the
    // products below must not overflow.
    constexpr i64 kMaxParams = i64{1} << 40;
    i64 count = L.in;
    bool too_many = L.in > kMaxParams / L.out;
    count = too_many ? 0 : L.in * L.out;
    for (const i64 k : L.kernel) {
      too_many = too_many || count > kMaxParams / k;
      count = too_many ? 0 : count * k;
    }
    if (too_many || count > kMaxParams - offset)
      throw std::invalid_argument(name + " has " + std::to_string(L.in) + " x " +
                                  std::to_string(L.out) +
                                  " weights: the network would have more than 2**40 "
                                  "parameters");
  }
  if (L.norm && !L.has_weights())
    throw std::invalid_argument(name + ": only dense and convolutional layers normalize");
  if (L.norm && !L.norm->trainable &&
      (static_cast<i64>(L.norm->gamma.size()) != L.out ||
       static_cast<i64>(L.norm->beta.size()) != L.out))
    throw std::invalid_argument(name + ": constant gamma and beta need out_features values");
  if (L.norm && L.norm->kind == NormKind::group &&
      (L.norm->groups < 1 || L.out % L.norm->groups != 0))
    throw std::invalid_argument(name + ": " + std::to_string(L.norm->groups) +
                                " groups do not divide the " + std::to_string(L.out) +
                                " features");
  if (L.noise.on && !L.has_weights())
    throw std::invalid_argument(name + ": only dense and convolutional layers take noise");
  if (L.skip_from >= 0) {
    const i64 start = L.skip_from;
    if (start > static_cast<i64>(l) || start < block_limit)
      throw std::invalid_argument(name + ": a residual block must start at this layer or "
                                         "an earlier one, after the previous block");
  }
}

// The 2-D window of a conv or pooling layer on input samples of `shape` ({C, L} as
// {C, 1, L}); throws naming the layer when the shape does not fit.
Window window_of(const LayerSpec& L, const SampleShape& shape, std::size_t l) {
  const std::string name = layer_name(l);
  const std::size_t axes = L.kernel.size();
  if (shape.size() != axes + 1)
    throw std::invalid_argument(name + " takes samples of " + std::to_string(axes) +
                                " spatial axis(es) (" +
                                (axes == 1 ? "C, L" : "C, H, W") + "), got shape " +
                                shape_str(shape));
  if (L.kind == LayerKind::conv && shape[0] != L.in)
    throw std::invalid_argument(name + " has in_channels " + std::to_string(L.in) +
                                " but its input has " + std::to_string(shape[0]) +
                                " channels");
  const bool two = axes == 2;
  auto pad = [&](std::size_t k) { return L.padding.empty() ? i64{0} : L.padding[k]; };
  Window w{shape[0], two ? shape[1] : 1, shape[axes], two ? L.kernel[0] : 1, L.kernel[axes - 1],
           two ? L.stride[0] : 1, L.stride[axes - 1], two ? pad(0) : 0, pad(axes - 1)};
  if (w.height + 2 * w.ph < w.kh || w.width + 2 * w.pw < w.kw)
    throw std::invalid_argument(name + ": the kernel is larger than its (padded) input of "
                                "shape " + shape_str(shape));
  return w;
}

}  // namespace

Network::Network(std::vector<LayerSpec> layers, LossKind loss)
    : layers_(std::move(layers)), loss_kind_(loss) {
  if (layers_.empty()) throw std::invalid_argument("a network needs at least one layer");
  i64 offset = 0, block_limit = 0;
  for (std::size_t l = 0; l < layers_.size(); ++l) {
    const LayerSpec& L = layers_[l];
    check_layer(layers_, l, offset, block_limit);
    if (L.skip_from >= 0) block_limit = static_cast<i64>(l) + 1;
    const ParamOffsets o = param_offsets(L, offset);
    offsets_.push_back(o);
    offset = o.end;
    running_offsets_.push_back(L.batch_norm() ? num_running_ : -1);
    if (L.batch_norm()) num_running_ += 2 * L.out;
  }
  num_params_ = offset;
  if (layers_.front().kind == LayerKind::dense) set_input_shape({layers_.front().in});
}

int Network::input_rank() const {
  const LayerSpec& first = layers_.front();
  switch (first.kind) {
    case LayerKind::dense: return 1;
    case LayerKind::flatten: return 0;
    default: return static_cast<int>(first.kernel.size()) + 1;
  }
}

void Network::set_input_shape(const SampleShape& shape) {
  if (!ops_.empty() && shape == input_shape_) return;
  std::vector<std::unique_ptr<Op>> ops;
  std::vector<const Normalization*> batch_norms;
  std::vector<i64> norm_op(layers_.size(), -1);
  std::vector<std::pair<i64, ResidualJoin*>> joins;
  std::vector<i64> first_op(layers_.size());      // per layer, its first op's index
  std::vector<SampleShape> inputs(layers_.size());  // per layer, its input's shape
  SampleShape cur = shape;
  for (std::size_t l = 0; l < layers_.size(); ++l) {
    const LayerSpec& L = layers_[l];
    const ParamOffsets& o = offsets_[l];
    first_op[l] = static_cast<i64>(ops.size());
    inputs[l] = cur;
    switch (L.kind) {
      case LayerKind::dense:
        if (cur.size() != 1 || cur[0] != L.in)
          throw std::invalid_argument(
              layer_name(l) + " has in_features " + std::to_string(L.in) +
              (l > 0 && layers_[l - 1].kind == LayerKind::dense
                   ? " but " + layer_name(l - 1) + " has out_features " +
                         std::to_string(layers_[l - 1].out)
                   : " but its input samples have shape " + shape_str(cur)));
        ops.push_back(std::make_unique<Dense>(L.in, L.out, o.w, o.b));
        cur = {L.out};
        break;
      case LayerKind::conv: {
        const Window w = window_of(L, cur, l);
        ops.push_back(std::make_unique<Conv>(w, L.out, o.w, o.b));
        cur = L.kernel.size() == 2 ? SampleShape{L.out, w.out_height(), w.out_width()}
                                   : SampleShape{L.out, w.out_width()};
        break;
      }
      case LayerKind::max_pool:
      case LayerKind::avg_pool: {
        const Window w = window_of(L, cur, l);
        ops.push_back(std::make_unique<Pool>(w, L.kind == LayerKind::max_pool));
        cur = L.kernel.size() == 2 ? SampleShape{cur[0], w.out_height(), w.out_width()}
                                   : SampleShape{cur[0], w.out_width()};
        break;
      }
      case LayerKind::flatten:  // the values are row-major already: only the shape changes
        cur = {sample_size(cur)};
        break;
    }
    if (L.norm) {
      auto norm = std::make_unique<Normalization>(*L.norm, cur[0], positions(cur),
                                                  static_cast<i64>(l), o.gamma, o.beta,
                                                  running_offsets_[l]);
      if (running_offsets_[l] >= 0) batch_norms.push_back(norm.get());
      norm_op[l] = static_cast<i64>(ops.size());
      ops.push_back(std::move(norm));
    }
    if (L.noise.on)
      ops.push_back(std::make_unique<NoiseOp>(cur[0], positions(cur), static_cast<i64>(l)));
    if (L.activation != Activation::identity)
      ops.push_back(std::make_unique<ActivationOp>(sample_size(cur), L.activation));
    if (L.skip_from >= 0) {
      const SampleShape& from = inputs[L.skip_from];
      if (from != cur)
        throw std::invalid_argument(
            layer_name(l) + ": a residual block must map n features to n, got " +
            (cur.size() == 1 && from.size() == 1
                 ? std::to_string(from[0]) + " -> " + std::to_string(cur[0])
                 : shape_str(from) + " -> " + shape_str(cur)));
      // a block that starts with a flatten starts where its first op does
      auto join = std::make_unique<ResidualJoin>(sample_size(cur), first_op[L.skip_from]);
      joins.emplace_back(join->from, join.get());
      ops.push_back(std::move(join));
    }
  }
  ops_ = std::move(ops);
  batch_norms_ = std::move(batch_norms);
  norm_op_ = std::move(norm_op);
  join_at_.assign(ops_.size() + 1, nullptr);
  for (const auto& [from, join] : joins) join_at_[from] = join;
  tangent_pass_ = std::all_of(ops_.begin(), ops_.end(),
                              [](const std::unique_ptr<Op>& op) { return op->tangent_pass(); });
  input_shape_ = shape;
  output_shape_ = cur;
  values_ = std::make_unique<Values<double>>();
  tangents_.reset();
}

Network::~Network() = default;

bool Network::has_batch_norm() const {
  return std::any_of(layers_.begin(), layers_.end(),
                     [](const LayerSpec& L) { return L.batch_norm(); });
}

template <class T>
void Network::forward_pass(Values<T>& v, const T* params, const T* X, i64 m, Mode mode,
                           const BatchNoise* noise, const double* running, std::size_t until) {
  if (m > v.reserved_m) {
    v.out.resize(ops_.size());
    i64 widest = 0;
    for (std::size_t k = 0; k < ops_.size(); ++k) {
      v.out[k].resize(static_cast<std::size_t>(m * ops_[k]->out_width));
      widest = std::max({widest, ops_[k]->in_width, ops_[k]->out_width});
    }
    v.widest = widest;
    for (auto& g : v.grad) g.clear();
    v.dvalue.clear();
    v.reserved_m = m;
  }
  // the gradient buffers of the backward: two shared in turn, or with keep one per value
  // (none for X: the first op computes no d X)
  if (v.keep && v.dvalue.empty()) {
    v.dvalue.resize(ops_.size() + 1);
    for (std::size_t k = 1; k <= ops_.size(); ++k)
      v.dvalue[k].resize(static_cast<std::size_t>(v.reserved_m * ops_[k - 1]->out_width));
  } else if (!v.keep && v.grad[0].empty()) {
    for (auto& g : v.grad) g.resize(static_cast<std::size_t>(v.reserved_m * v.widest));
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
  for (std::size_t k = 0; k < std::min(until, ops_.size()); ++k) {
    ops_[k]->forward(p, p.values[k], v.out[k].data());
    p.values[k + 1] = v.out[k].data();
  }
}

bool Network::scale_free_input() const {
  const LayerSpec& L = layers_.front();
  if (!L.has_weights() || !L.norm || L.norm->eps != 0) return false;
  for (const LayerSpec& K : layers_)
    if (K.skip_from == 0) return false;
  const bool centred_per_channel =
      L.norm->kind == NormKind::batch && L.norm->scale == NormScale::std;
  return centred_per_channel || !L.bias;
}

template <class T>
int Network::input_exponent(const T* X, i64 m) const {
  if (!scale_free_input()) return 0;
  double largest = 0;
  for (i64 i = 0; i < m * input_size(); ++i) largest = std::max(largest, std::fabs(value(X[i])));
  if (!(largest > 0 && std::isfinite(largest)) || (largest >= 0x1p-512 && largest <= 0x1p512))
    return 0;
  int e = 0;
  std::frexp(largest, &e);
  return e;
}

template <class T>
T Network::loss_pass(Values<T>& v, const T* params, const T* X, const double* Y, i64 m,
                     T* grad, const BatchNoise* noise, const double* running) {
  const int e = running ? 0 : input_exponent(X, m);
  if (e != 0) {  // exact: a power of two
    using std::ldexp;
    v.x_scaled.resize(static_cast<std::size_t>(m * input_size()));
    for (i64 i = 0; i < m * input_size(); ++i) v.x_scaled[i] = ldexp(X[i], -e);
    X = v.x_scaled.data();
  }
  const T total = evaluate(v, params, X, Y, m, grad, noise, running);
  if constexpr (std::is_same_v<T, double>) {
    if (e != 0)  // the running statistics need the batch's own
      static_cast<Normalization*>(ops_[static_cast<std::size_t>(norm_op_[0])].get())
          ->scale_statistics(e);
  }
  return total;
}

template <class T>
T Network::evaluate(Values<T>& v, const T* params, const T* X, const double* Y, i64 m,
                    T* grad, const BatchNoise* noise, const double* running) {
  forward_pass(v, params, X, m, running ? Mode::inference : Mode::train,
               running ? nullptr : noise, running);
  Pass<T>& p = v.pass;
  T* dout = !grad ? nullptr : v.keep ? v.dvalue.back().data() : v.grad[0].data();
  const T total = loss_and_gradient(loss_kind_, p.values.back(), Y, m, out_features(), dout);
  if (!grad) return total;
  p.grad = grad;
  for (std::size_t k = ops_.size(); k-- > 0;) {
    T* spare = v.keep                      ? v.dvalue[k].data()
               : dout == v.grad[0].data() ? v.grad[1].data()
                                          : v.grad[0].data();
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
                     double* grad, const BatchNoise* noise, const double* running) {
  const FineGrain grain(kStepGrain);
  return loss_pass(*values_, params, X, Y, m, grad, noise, running);
}

i64 Network::normalization_input(const double* params, const double* running, const double* X,
                                 i64 m, i64 layer, std::vector<double>& out) {
  if (layer < 0 || layer >= static_cast<i64>(layers_.size()) || norm_op_[layer] < 0)
    throw std::invalid_argument(layer_name(static_cast<std::size_t>(layer)) +
                                " has no normalization");
  const FineGrain grain(kStepGrain);
  const auto k = static_cast<std::size_t>(norm_op_[layer]);
  forward_pass(*values_, params, X, m, Mode::inference, nullptr, running, k);
  const i64 size = ops_[k]->in_width;
  out.assign(values_->pass.values[k], values_->pass.values[k] + m * size);
  return size;
}

double Network::hvp(const double* params, const double* X, const double* Y, i64 m,
                    const double* v, double* grad, double* hv, const double* running,
                    HvpReuse reuse) {
  const FineGrain grain(kStepGrain);  // as the gradient's pass: its products are as small
  if (!tangents_) tangents_ = std::make_unique<Values<Dual>>();
  Values<Dual>& t = *tangents_;
  const i64 P = num_params_;
  // (a different m or mode cannot be the same point: a whole pass then)
  const bool tangents = reuse == HvpReuse::tangents && tangent_pass_ && t.kept &&
                        t.pass.m == m && t.pass.running == running;
  t.keep = reuse != HvpReuse::none && tangent_pass_;  // no use keeping what cannot be reused
  t.kept = false;  // until this pass is through
  t.pass.tangent_only = tangents;
  if (tangents) {  // the values are the last pass's
    for (i64 k = 0; k < P; ++k) t.params[k].d = v[k];
  } else {
    t.params.resize(P);
    for (i64 k = 0; k < P; ++k) t.params[k] = Dual(params[k], v[k]);
    t.x.assign(X, X + m * input_size());  // constants: zero tangent
  }
  t.grad_params.resize(P);
  const Dual total =
      loss_pass(t, t.params.data(), t.x.data(), Y, m, t.grad_params.data(), nullptr, running);
  for (i64 k = 0; k < P; ++k) {
    hv[k] = t.grad_params[k].d;
    if (grad) grad[k] = t.grad_params[k].v;
  }
  t.kept = t.keep;
  return total.v;
}

void Network::release_hvp_state() { tangents_.reset(); }

void Network::update_running(double* running, i64 update, i64 m) const {
  for (const Normalization* norm : batch_norms_) norm->update_running(running, update, m);
}

}  // namespace bnfast
