// Bindings of the network core: the layer spec crosses as a bound struct (fields by
// name), the parameter layout is read from nn/layer.hpp, the stop reason is an enum.
// The Python layer (bnfast/nn/) converts arguments and checks their values; here the
// arrays are checked against the network, then the GIL released.
#include <atomic>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>

#include <pybind11/stl.h>

#include "bind/arrays.hpp"
#include "bind/hessian_at_binding.hpp"
#include "nn/network.hpp"
#include "nn/one_neuron_step.hpp"
#include "nn/train.hpp"
#include "nn/train_many.hpp"

namespace bnfast::bind {
namespace {

using Vec = py::array_t<double>;

// A Network owns workspaces, so one object serves one call at a time: the mutex makes
// concurrent calls from several Python threads (GIL released) wait instead of race.
struct BoundNetwork {
  BoundNetwork(std::vector<LayerSpec> layers, LossKind loss) : net(std::move(layers), loss) {}
  Network net;
  std::mutex busy;
  std::atomic<std::thread::id> owner{};  // the thread inside a call, if any
};

// Holds a network for one call (take it with the GIL released). A call from the thread
// that already holds it, a train callback calling back into the network it trains,
// would wait for itself forever: reject_reentry refuses it first, with the GIL held.
void reject_reentry(const BoundNetwork& self) {
  if (self.owner.load() == std::this_thread::get_id())
    throw std::runtime_error(
        "this network is being trained by this thread: a train callback cannot call "
        "loss, gradient, forward or train on the network it trains (use the callback's "
        "loss argument, or a copy made before training: copy.deepcopy(net))");
}

class Held {
 public:
  explicit Held(BoundNetwork& n) : n_(n) {
    n_.busy.lock();
    n_.owner.store(std::this_thread::get_id());
  }
  ~Held() {
    n_.owner.store(std::thread::id{});
    n_.busy.unlock();
  }
  Held(const Held&) = delete;
  Held& operator=(const Held&) = delete;

 private:
  BoundNetwork& n_;
};

std::unique_ptr<BoundNetwork> make_network(const std::vector<LayerSpec>& layers, LossKind loss) {
  return std::make_unique<BoundNetwork>(layers, loss);
}

// Per layer, {"W": (offset, (out, in)), "b": (offset, (out,)), "gamma": ..., "beta": ...}
// with only the parameters the layer has.
py::list param_layout(const Network& net) {
  py::list out;
  for (std::size_t l = 0; l < net.layers().size(); ++l) {
    const LayerSpec& L = net.layers()[l];
    const ParamOffsets& o = net.layer_offsets()[l];
    py::dict entry;
    if (o.w < 0) {  // pooling, flatten
      out.append(entry);
      continue;
    }
    py::list w_shape;
    w_shape.append(L.out);
    w_shape.append(L.in);
    for (const std::int64_t k : L.kernel) w_shape.append(k);
    entry["W"] = py::make_tuple(o.w, py::tuple(w_shape));
    if (o.b >= 0) entry["b"] = py::make_tuple(o.b, py::make_tuple(L.out));
    if (o.gamma >= 0) entry["gamma"] = py::make_tuple(o.gamma, py::make_tuple(L.out));
    if (o.beta >= 0) entry["beta"] = py::make_tuple(o.beta, py::make_tuple(L.out));
    out.append(entry);
  }
  return out;
}

// The data of a float64 C-contiguous array (bnfast/nn converts to that before calling).
const double* float64_data(const py::array& a, const char* name) {
  if (float_kind(a, name) != 'd' || !(a.flags() & py::array::c_style))
    throw py::type_error(std::string(name) + " must be a C-contiguous float64 array here");
  return cdata<double>(a);
}

// A float64 vector of `size` entries (params, a direction v, running statistics).
const double* flat_vector(const py::object& obj, std::int64_t size, const char* name) {
  py::array a = as_array(obj, name);
  if (a.ndim() != 1 || a.shape(0) != size)
    throw py::value_error(std::string(name) + " must have shape (" + std::to_string(size) +
                          ",), got " + shape_str(a));
  return float64_data(a, name);
}

const double* parameters(const py::object& obj, const Network& net) {
  return flat_vector(obj, net.num_params(), "params");
}

// Batch statistics need two rows: the one check of "at least 2 samples" (the rows of a
// learning set, or a mini-batch of batch_size rows).
void require_batch_rows(std::int64_t rows, const Network& net, const std::string& message) {
  if (rows < 2 && net.has_batch_norm()) throw py::value_error(message);
}

// The checked arrays of one evaluation: params, X (m samples of shape `sample`), y (null
// when Y is None) with its shape, checked against the network's output in prepare().
struct Evaluation {
  const double* params;
  std::int64_t m;
  SampleShape sample;
  const double* x;
  const double* y;
  std::vector<std::int64_t> y_shape;
};

// The rules of X that need no compiled network: dtype, rank, rows (and, for a network
// whose first layer is dense, its features).
Evaluation evaluation(const BoundNetwork& self, const py::object& params, const py::object& X,
                      const py::object& Y) {
  reject_reentry(self);
  const Network& net = self.net;
  const double* p = parameters(params, net);
  const py::array x = as_array(X, "X");
  float64_data(x, "X");
  const int rank = net.input_rank();
  if (net.layers().front().kind == LayerKind::dense) {
    const std::string in = std::to_string(net.in_features());
    if (x.ndim() != 2)
      throw py::value_error("X must be 2-D (m, " + in + "), got shape " + shape_str(x));
    if (x.shape(1) != net.in_features())
      throw py::value_error("X has " + std::to_string(x.shape(1)) +
                            " features but the network expects " + in);
  } else if (rank > 0 ? x.ndim() != rank + 1 : x.ndim() < 2) {
    throw py::value_error(std::string("X must have shape ") +
                          (rank == 2 ? "(m, C, L)" : rank == 3 ? "(m, C, H, W)" : "(m, ...)") +
                          " for this network's first layer, got shape " + shape_str(x));
  }
  const std::int64_t m = x.shape(0);
  if (m < 1) throw py::value_error("X must have at least one row");
  Evaluation e{p, m, SampleShape(x.shape() + 1, x.shape() + x.ndim()), cdata<double>(x),
               nullptr, {}};
  if (!Y.is_none()) {
    const py::array y = as_array(Y, "y");
    float64_data(y, "y");
    e.y = cdata<double>(y);
    e.y_shape.assign(y.shape(), y.shape() + y.ndim());
  }
  return e;
}

std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::string out = "(";
  for (std::size_t k = 0; k < shape.size(); ++k) out += (k ? ", " : "") + std::to_string(shape[k]);
  return out + (shape.size() == 1 ? ",)" : ")");
}

// Compiles the network for X's samples and checks y against its output (with the GIL
// released and the network held: compiling changes it). y: (m, out) targets (the
// output's values per sample; (m,) is made (m, 1) by the Python layer), or the (m,)
// class labels of the cross-entropy losses.
void prepare(Network& net, const Evaluation& e, bool batch) {
  net.set_input_shape(e.sample);
  if (e.y) {
    const std::int64_t out = net.output_size();
    const auto& ys = e.y_shape;
    if (takes_labels(net.loss_kind())) {
      if (ys.size() != 1)
        throw py::value_error("y must be the (m,) class labels of the cross-entropy loss, got "
                              "shape " + shape_text(ys));
      if (net.output_shape().size() != 1)
        throw py::value_error("the cross-entropy losses need (m, classes) outputs; this "
                              "network outputs samples of shape " +
                              shape_text(net.output_shape()) + " (end it with a Flatten "
                              "and a Dense layer)");
    } else if (ys.size() != 2 || ys[1] != out) {
      throw py::value_error("y must have shape (m, " + std::to_string(out) + ")" +
                            (out == 1 ? " or (m,)" : "") + ", got " + shape_text(ys));
    }
    if (ys[0] != e.m)
      throw py::value_error("X has " + std::to_string(e.m) + " rows but y has " +
                            std::to_string(ys[0]));
  }
  if (batch) require_batch_rows(e.m, net, "batch normalization needs at least 2 samples, got 1");
}

// The running statistics of an inference-mode ("eval") evaluation, or null for train
// mode.
const double* running_of(const py::object& running, const Network& net) {
  return running.is_none() ? nullptr : flat_vector(running, net.num_running(), "running");
}

double loss_binding(BoundNetwork& self, const py::object& params, const py::object& X,
                    const py::object& Y, const py::object& running) {
  const Evaluation e = evaluation(self, params, X, Y);
  const double* r = running_of(running, self.net);
  py::gil_scoped_release release;
  Held held(self);
  prepare(self.net, e, r == nullptr);
  return self.net.loss(e.params, e.x, e.y, e.m, nullptr, nullptr, r);
}

py::tuple gradient_binding(BoundNetwork& self, const py::object& params, const py::object& X,
                           const py::object& Y, const py::object& running) {
  const Evaluation e = evaluation(self, params, X, Y);
  const double* r = running_of(running, self.net);
  Vec grad(self.net.num_params());
  double* g = grad.mutable_data();
  double loss = 0;
  {
    py::gil_scoped_release release;
    Held held(self);
    prepare(self.net, e, r == nullptr);
    loss = self.net.loss(e.params, e.x, e.y, e.m, g, nullptr, r);
  }
  return py::make_tuple(loss, grad);
}

// Layer `layer`'s normalization input (m, size) in inference mode: what its population
// statistics are statistics of (Network::recalibrate).
Vec normalization_input_binding(BoundNetwork& self, const py::object& params,
                                const py::object& running, const py::object& X,
                                std::int64_t layer) {
  const Evaluation e = evaluation(self, params, X, py::none());
  const double* r = flat_vector(running, self.net.num_running(), "running");
  std::vector<double> values;
  std::int64_t size = 0;
  {
    py::gil_scoped_release release;
    Held held(self);
    prepare(self.net, e, false);
    size = self.net.normalization_input(e.params, r, e.x, e.m, layer, values);
  }
  Vec out({e.m, size});
  std::copy(values.begin(), values.end(), out.mutable_data());
  return out;
}

// f(X) (m, *output shape) with batch statistics, or with the running statistics
// (inference: any m >= 1, rows do not interact) when running is not None.
Vec outputs_binding(BoundNetwork& self, const py::object& params, const py::object& running,
                    const py::object& X) {
  const Evaluation e = evaluation(self, params, X, py::none());
  const double* r = running_of(running, self.net);
  std::vector<double> values;
  SampleShape shape;
  {
    py::gil_scoped_release release;
    Held held(self);
    prepare(self.net, e, r == nullptr);
    values.resize(static_cast<std::size_t>(e.m * self.net.output_size()));
    if (r)
      self.net.predict(e.params, r, e.x, e.m, values.data());
    else
      self.net.forward(e.params, e.x, e.m, values.data());
    shape = self.net.output_shape();
  }
  shape.insert(shape.begin(), e.m);
  Vec out(shape);
  std::copy(values.begin(), values.end(), out.mutable_data());
  return out;
}

Vec forward_binding(BoundNetwork& self, const py::object& params, const py::object& X) {
  return outputs_binding(self, params, py::none(), X);
}

Vec predict_binding(BoundNetwork& self, const py::object& params, const py::object& running,
                    const py::object& X) {
  return outputs_binding(self, params, running, X);
}

// (loss, gradient, H v) of the train-mode loss (or the eval-mode one with `running`),
// forward-over-reverse.
py::tuple hvp_binding(BoundNetwork& self, const py::object& params, const py::object& X,
                      const py::object& Y, const py::object& V, const py::object& running) {
  const Evaluation e = evaluation(self, params, X, Y);
  const double* v = flat_vector(V, self.net.num_params(), "v");
  const double* r = running_of(running, self.net);
  Vec grad(self.net.num_params()), hv(self.net.num_params());
  double* g = grad.mutable_data();
  double* h = hv.mutable_data();
  double loss = 0;
  {
    py::gil_scoped_release release;
    Held held(self);
    prepare(self.net, e, r == nullptr);
    loss = self.net.hvp(e.params, e.x, e.y, e.m, v, g, h, r);
  }
  return py::make_tuple(loss, grad, hv);
}

// Repeated Hessian-vector products at one point (nn/hessian_at.hpp) for the curvature
// estimators; the point is checked as hvp's arguments are, then copied.
std::unique_ptr<BoundHessianAt> make_hessian_at(BoundNetwork& self, const py::object& params,
                                                const py::object& X, const py::object& Y,
                                                const py::object& running) {
  if (Y.is_none()) throw py::value_error("y is required: the Hessian is of the loss");
  const Evaluation e = evaluation(self, params, X, Y);
  const double* r = running_of(running, self.net);
  std::int64_t y_size = 1;
  for (const std::int64_t d : e.y_shape) y_size *= d;
  auto out = std::make_unique<BoundHessianAt>();
  py::gil_scoped_release release;
  Held held(self);
  prepare(self.net, e, r == nullptr);
  out->at = std::make_unique<HessianAt>(self.net, e.params, e.x, e.y, y_size, e.m, r);
  return out;
}

Vec hessian_apply(BoundHessianAt& self, const py::object& V) {
  const double* v = flat_vector(V, self.at->size(), "v");
  Vec hv(self.at->size());
  double* h = hv.mutable_data();
  {
    py::gil_scoped_release release;
    self.apply(v, h);
  }
  return hv;
}

// The poll hook of a training loop run with the GIL released: true when a signal
// handler raised (Ctrl-C), whose exception goes to `pending` for the binding to re-raise.
PollHook signal_poll(std::unique_ptr<py::error_already_set>& pending) {
  return [&pending]() {
    py::gil_scoped_acquire acquire;
    if (PyErr_CheckSignals() != 0) {
      pending = std::make_unique<py::error_already_set>();
      return true;
    }
    return false;
  };
}

// Trains in place on `params` (a float64 array the caller owns). Returns (losses,
// TrainOutcome). A Python exception from the callback, or KeyboardInterrupt, stops the
// loop and is re-raised here. lr, steps, record_every, seed: values checked by Python.
py::tuple train_binding(BoundNetwork& self, py::array params, py::array running,
                        std::int64_t updates, const py::object& X, const py::object& Y,
                        double lr, const py::object& lr_per_step, std::int64_t steps,
                        std::int64_t batch_size, std::uint64_t seed, std::int64_t record_every,
                        const py::object& callback, const OptimizerSpec& optimizer,
                        py::array optimizer_buffers, std::int64_t optimizer_updates,
                        std::int64_t sharpness_every, bool allow_one_neuron) {
  reject_reentry(self);
  parameters(params, self.net);
  if (!params.writeable()) throw py::value_error("params must be writable");
  flat_vector(running, self.net.num_running(), "running");
  if (!running.writeable()) throw py::value_error("running must be writable");
  flat_vector(optimizer_buffers, optimizer.buffers() * self.net.num_params(),
              "optimizer_buffers");
  if (!optimizer_buffers.writeable())
    throw py::value_error("optimizer_buffers must be writable");
  const double* rates = nullptr;
  if (!lr_per_step.is_none()) rates = flat_vector(lr_per_step, steps, "lr_per_step");
  // Guards, not rules (bnfast.train owns these): a zero modulus would kill the process
  // and negative steps would never end.
  if (steps < 0 || record_every < 1 || batch_size < 0 || sharpness_every < 0)
    throw py::value_error("steps >= 0, batch_size >= 0, record_every >= 1 and "
                          "sharpness_every >= 0 are required");
  const Evaluation e = evaluation(self, params, X, Y);
  const std::int64_t m = e.m;
  if (batch_size > m)
    throw py::value_error("batch_size " + std::to_string(batch_size) +
                          " is larger than the " + std::to_string(m) + " samples");
  if (batch_size != 0)
    require_batch_rows(batch_size, self.net,
                       "batch_size must be >= 2 with batch normalization (one sample has no "
                       "batch variance)");
  TrainState state{mdata<double>(params),
                   self.net.num_running() > 0 ? mdata<double>(running) : nullptr, &updates,
                   OptimizerState{mdata<double>(optimizer_buffers), &optimizer_updates}};

  std::unique_ptr<py::error_already_set> pending;  // an exception raised during the loop
  RecordHook on_record;
  if (!callback.is_none()) {
    on_record = [&](std::int64_t step, double loss) {
      py::gil_scoped_acquire acquire;
      try {
        return py::bool_(callback(step, loss)).cast<bool>();
      } catch (py::error_already_set& e) {
        pending = std::make_unique<py::error_already_set>(std::move(e));
        return true;
      }
    };
  }
  const PollHook poll = signal_poll(pending);
  TrainOptions opts{lr, rates, optimizer, steps, batch_size, seed, record_every, allow_one_neuron,
                    sharpness_every};
  std::vector<double> losses;
  TrainOutcome outcome;
  {
    py::gil_scoped_release release;
    Held held(self);
    prepare(self.net, e, true);
    outcome = train(self.net, state, e.x, e.y, m, opts, losses, on_record, poll);
  }
  if (pending) throw std::move(*pending);
  Vec recorded(static_cast<py::ssize_t>(losses.size()));
  std::copy(losses.begin(), losses.end(), recorded.mutable_data());
  return py::make_tuple(recorded, outcome, updates, optimizer_updates);
}

// train_many's arrays (bnfast/nn/train_many.py converts, checks values and makes the
// outputs): the structure checked here against the network, then the GIL released.
// X (m, in) or (k, m, in); y (m, 1) or (k, m, 1); lr (k,); params (k, P) and losses
// (k, R) float64, steps_done (k,) int64, status (k,) int8, all C-contiguous and writable.
// Returns False when Ctrl-C stopped the run (the Python exception is then raised here).
bool train_many_binding(BoundNetwork& self, py::array params, py::array losses,
                        py::array steps_done, py::array status, const py::object& X,
                        const py::object& Y, const py::object& lr, std::int64_t steps,
                        std::int64_t record_every) {
  reject_reentry(self);
  const Network& net = self.net;
  // a guard: bnfast.train_many explains the rule (one_neuron)
  if (!one_neuron_network(net)) throw py::value_error("train_many needs a one_neuron network");
  if (steps < 0 || steps == std::numeric_limits<std::int64_t>::max() || record_every < 1)
    throw py::value_error("0 <= steps < 2**63 - 1 and record_every >= 1 are required");
  const py::array x = as_array(X, "X"), y = as_array(Y, "y"), rate = as_array(lr, "lr");
  float64_data(x, "X");
  float64_data(y, "y");
  float64_data(rate, "lr");
  const std::int64_t in = net.in_features(), P = net.num_params();
  const std::int64_t k = params.ndim() == 2 ? params.shape(0) : -1;
  if (k < 0 || params.shape(1) != P)
    throw py::value_error("params must have shape (k, " + std::to_string(P) + "), got " +
                          shape_str(params));
  const bool shared_x = x.ndim() == 2;
  if (!(shared_x || (x.ndim() == 3 && x.shape(0) == k)) || x.shape(x.ndim() - 1) != in)
    throw py::value_error("X must have shape (m, " + std::to_string(in) + ") or (" +
                          std::to_string(k) + ", m, " + std::to_string(in) + "), got " +
                          shape_str(x));
  const std::int64_t m = x.shape(x.ndim() - 2);
  if (m < 2 || m > kOneNeuronMaxSamples)
    throw py::value_error("X must have 2 to " + std::to_string(kOneNeuronMaxSamples) +
                          " rows (samples), got " + std::to_string(m));
  // One output: shared y is (m,) or (m, 1), per-instance y (k, m) or (k, m, 1); the
  // trailing 1 changes no memory layout. (m >= 2, so a trailing 1 is never m.)
  const bool trailing_one = y.ndim() >= 2 && y.shape(y.ndim() - 1) == 1;
  const py::ssize_t rows = y.ndim() - (trailing_one ? 1 : 0);  // 1: shared, 2: per instance
  const bool shared_y = rows == 1;
  if (!((shared_y && y.shape(0) == m) ||
        (rows == 2 && y.shape(0) == k && y.shape(1) == m)))
    throw py::value_error("y must have shape (" + std::to_string(m) + ",) or (" +
                          std::to_string(k) + ", " + std::to_string(m) + "), got " +
                          shape_str(y));
  const std::int64_t R = steps / record_every + 1;
  auto check_out = [&](py::array& a, char kind, std::size_t item, std::int64_t cols,
                       const char* name) {
    const bool shape_ok = cols < 0 ? (a.ndim() == 1 && a.shape(0) == k)
                                   : (a.ndim() == 2 && a.shape(0) == k && a.shape(1) == cols);
    if (!shape_ok || a.dtype().kind() != kind || a.itemsize() != static_cast<py::ssize_t>(item) ||
        !(a.flags() & py::array::c_style) || !a.writeable())
      throw py::value_error(std::string(name) + " must be a writable C-contiguous output "
                                                "array of the right shape and dtype");
  };
  check_out(params, 'f', sizeof(double), P, "params");
  check_out(losses, 'f', sizeof(double), R, "losses");
  check_out(steps_done, 'i', sizeof(std::int64_t), -1, "steps_done");
  check_out(status, 'i', sizeof(std::int8_t), -1, "status");
  if (rate.ndim() != 1 || rate.shape(0) != k)
    throw py::value_error("lr must have shape (" + std::to_string(k) + ",) here");
  ManyProblem problem{k, m, cdata<double>(x), shared_x ? 0 : m * in, cdata<double>(y),
                      shared_y ? 0 : m, cdata<double>(rate), 1};
  ManyState state{mdata<double>(params), mdata<double>(losses),
                  mdata<std::int64_t>(steps_done), mdata<std::int8_t>(status)};
  std::unique_ptr<py::error_already_set> pending;
  const PollHook poll = signal_poll(pending);
  bool done = false;
  {
    py::gil_scoped_release release;
    Held held(self);
    done = train_many(net, problem, state, steps, record_every, poll);
  }
  if (pending) throw std::move(*pending);
  return done;
}

std::vector<std::int64_t> epoch_permutations(std::int64_t m, std::uint64_t seed, int epochs) {
  EpochShuffler s(m, seed);
  std::vector<std::int64_t> all;
  for (int e = 0; e < epochs; ++e) {
    const auto& p = s.next_epoch();
    all.insert(all.end(), p.begin(), p.end());
  }
  return all;
}

}  // namespace

void bind_nn(py::module_& m) {
  py::enum_<Activation>(m, "Activation", "The activation functions phi of a layer.")
      .value("identity", Activation::identity)
      .value("sigmoid", Activation::sigmoid)
      .value("tanh", Activation::tanh)
      .value("relu", Activation::relu);

  py::enum_<NormKind>(m, "NormKind",
                      "What a normalization's statistics run over: batch (BN), layer "
                      "(LayerNorm), group (GroupNorm).")
      .value("batch", NormKind::batch)
      .value("layer", NormKind::layer)
      .value("group", NormKind::group);

  py::enum_<NormScale>(m, "NormScale",
                       "The scale a BN layer divides by (docs/math/networks.md section 7).")
      .value("std", NormScale::std)
      .value("l1", NormScale::l1)
      .value("l2", NormScale::l2)
      .value("linf", NormScale::linf);

  py::enum_<LossKind>(m, "LossKind",
                      "sum: sum_i ||y_i - f(x_i)||^2; mean: that / m; cross_entropy: the "
                      "mean over rows of logsumexp(f_i) - f_i[y_i]; cross_entropy_sum: its "
                      "sum.")
      .value("sum", LossKind::sum)
      .value("mean", LossKind::mean)
      .value("cross_entropy", LossKind::cross_entropy)
      .value("cross_entropy_sum", LossKind::cross_entropy_sum);

  py::class_<NoiseSpec>(m, "NoiseSpec",
                        "The noise of noisy BN (Santurkar et al., Algorithm 1), on a layer's "
                        "normalization output or, without one, on its map's output.")
      .def(py::init([](double n_mu, double n_sigma, double r_mu, double r_sigma) {
             return NoiseSpec{true, n_mu, n_sigma, r_mu, r_sigma};
           }),
           py::kw_only(), py::arg("n_mu"), py::arg("n_sigma"), py::arg("r_mu"),
           py::arg("r_sigma"))
      .def_readonly("n_mu", &NoiseSpec::n_mu)
      .def_readonly("n_sigma", &NoiseSpec::n_sigma)
      .def_readonly("r_mu", &NoiseSpec::r_mu)
      .def_readonly("r_sigma", &NoiseSpec::r_sigma);

  py::class_<NormSpec>(m, "NormSpec", "One normalization of a layer's pre-activations, by field name.")
      .def(py::init([](NormKind kind, std::int64_t groups, NormScale scale, bool trainable,
                       std::vector<double> gamma, std::vector<double> beta, double eps,
                       double momentum, bool cumulative) {
             return NormSpec{kind, groups, scale, trainable, std::move(gamma), std::move(beta),
                             eps, momentum, cumulative};
           }),
           py::kw_only(), py::arg("kind"), py::arg("groups") = 1,
           py::arg("scale") = NormScale::std, py::arg("trainable"), py::arg("gamma"),
           py::arg("beta"), py::arg("eps"), py::arg("momentum") = 0.1,
           py::arg("cumulative") = false)
      .def_readonly("kind", &NormSpec::kind)
      .def_readonly("groups", &NormSpec::groups)
      .def_readonly("scale", &NormSpec::scale)
      .def_readonly("trainable", &NormSpec::trainable)
      .def_readonly("eps", &NormSpec::eps)
      .def_readonly("momentum", &NormSpec::momentum)
      .def_readonly("cumulative", &NormSpec::cumulative);

  py::enum_<LayerKind>(m, "LayerKind", "What a layer does.")
      .value("dense", LayerKind::dense)
      .value("conv", LayerKind::conv)
      .value("max_pool", LayerKind::max_pool)
      .value("avg_pool", LayerKind::avg_pool)
      .value("flatten", LayerKind::flatten);

  py::class_<LayerSpec>(m, "LayerSpec",
                        "One layer, by field name: dense phi(N(A W^T + b)), a convolution "
                        "phi(N(conv(A, W) + b)), a pooling or a flatten.")
      .def(py::init([](LayerKind kind, std::int64_t in_features, std::int64_t out_features,
                       std::vector<std::int64_t> kernel, std::vector<std::int64_t> stride,
                       std::vector<std::int64_t> padding, Activation activation, bool bias,
                       std::optional<NormSpec> norm, std::optional<NoiseSpec> noise,
                       std::int64_t skip_from) {
             return LayerSpec{kind, in_features, out_features, std::move(kernel),
                              std::move(stride), std::move(padding), activation, bias,
                              std::move(norm), noise.value_or(NoiseSpec{}), skip_from};
           }),
           py::kw_only(), py::arg("kind") = LayerKind::dense, py::arg("in_features") = 0,
           py::arg("out_features") = 0, py::arg("kernel") = std::vector<std::int64_t>{},
           py::arg("stride") = std::vector<std::int64_t>{},
           py::arg("padding") = std::vector<std::int64_t>{},
           py::arg("activation") = Activation::identity, py::arg("bias") = false,
           py::arg("norm") = py::none(), py::arg("noise") = py::none(),
           py::arg("skip_from") = -1)
      .def_readonly("kind", &LayerSpec::kind)
      .def_readonly("kernel", &LayerSpec::kernel)
      .def_readonly("stride", &LayerSpec::stride)
      .def_readonly("padding", &LayerSpec::padding)
      .def_readonly("in_features", &LayerSpec::in)
      .def_readonly("out_features", &LayerSpec::out)
      .def_readonly("activation", &LayerSpec::activation)
      .def_readonly("bias", &LayerSpec::bias)
      .def_readonly("norm", &LayerSpec::norm)
      .def_property_readonly("noise", [](const LayerSpec& L) {
        return L.noise.on ? std::optional<NoiseSpec>(L.noise) : std::nullopt;
      })
      .def_readonly("skip_from", &LayerSpec::skip_from)
      .def_property_readonly("num_params",
                             [](const LayerSpec& L) { return param_offsets(L, 0).end; },
                             "How many entries of the flat parameter vector the layer has.");

  py::enum_<OptimizerKind>(m, "OptimizerKind", "The update rule of training.")
      .value("sgd", OptimizerKind::sgd)
      .value("adam", OptimizerKind::adam);

  py::class_<OptimizerSpec>(m, "OptimizerSpec",
                            "An update rule and its constants (csrc/core/nn/optimizer.hpp).")
      .def(py::init([](OptimizerKind kind, double momentum, bool nesterov, double beta1,
                       double beta2, double eps, double weight_decay) {
             return OptimizerSpec{kind, momentum, nesterov, beta1, beta2, eps, weight_decay};
           }),
           py::kw_only(), py::arg("kind"), py::arg("momentum") = 0.0,
           py::arg("nesterov") = false, py::arg("beta1") = 0.9, py::arg("beta2") = 0.999,
           py::arg("eps") = 1e-8, py::arg("weight_decay") = 0.0)
      .def_readonly("kind", &OptimizerSpec::kind)
      .def_readonly("momentum", &OptimizerSpec::momentum)
      .def_readonly("nesterov", &OptimizerSpec::nesterov)
      .def_readonly("beta1", &OptimizerSpec::beta1)
      .def_readonly("beta2", &OptimizerSpec::beta2)
      .def_readonly("eps", &OptimizerSpec::eps)
      .def_readonly("weight_decay", &OptimizerSpec::weight_decay)
      .def_property_readonly("buffers", &OptimizerSpec::buffers,
                             "How many arrays of num_params doubles its state has.");

  py::enum_<ManyStatus>(m, "ManyStatus",
                        "How an instance of train_many ended (its int8 code in the status "
                        "array).")
      .value("finished", ManyStatus::finished)
      .value("diverged", ManyStatus::diverged, "a loss was inf or NaN")
      .value("overflowed", ManyStatus::overflowed,
             "an update made a parameter inf or NaN (it was not applied)")
      .value("zero_variance", ManyStatus::zero_variance,
             "eps == 0 and a constant pre-activation");

  py::enum_<StopReason>(m, "StopReason", "Why a training run ended.")
      .value("finished", StopReason::finished)
      .value("requested", StopReason::requested, "the callback returned True")
      .value("interrupted", StopReason::interrupted, "Ctrl-C (a signal handler raised)")
      .value("diverged", StopReason::diverged, "the loss became inf or NaN");

  py::class_<TrainOutcome>(m, "TrainOutcome", "How a training run ended.")
      .def_readonly("reason", &TrainOutcome::reason)
      .def_readonly("steps_done", &TrainOutcome::steps_done)
      .def_readonly("diverged_step", &TrainOutcome::diverged_step)
      .def_readonly("diverged_loss", &TrainOutcome::diverged_loss)
      .def_readonly("params_overflowed", &TrainOutcome::params_overflowed)
      .def_readonly("one_neuron_path", &TrainOutcome::one_neuron_path,
                    "whether the specialised step of one BN neuron ran")
      .def_readonly("sharpness_steps", &TrainOutcome::sharpness_steps)
      .def_readonly("sharpness", &TrainOutcome::sharpness,
                    "the largest Hessian eigenvalue of the loss at those steps");

  py::class_<BoundNetwork>(m, "Network")
      .def(py::init(&make_network), py::arg("layers"), py::arg("loss") = LossKind::sum,
           "Network from a list of LayerSpec.")
      .def_property_readonly("num_params", [](const BoundNetwork& s) { return s.net.num_params(); })
      .def_property_readonly("in_features", [](const BoundNetwork& s) { return s.net.in_features(); })
      .def_property_readonly("out_features", [](const BoundNetwork& s) { return s.net.out_features(); },
                             "Values of an output sample (of the shape compiled last).")
      .def_property_readonly("param_layout", [](const BoundNetwork& s) { return param_layout(s.net); },
                             "Per layer, {name: (offset, shape)} for W, b, gamma, beta.")
      .def_property_readonly("num_running", [](const BoundNetwork& s) { return s.net.num_running(); },
                             "Length of the flat running-statistics vector.")
      .def_property_readonly("one_neuron",
                             [](const BoundNetwork& s) { return one_neuron_network(s.net); },
                             "Whether train_many trains it: one Dense layer, out_features 1, "
                             "identity, plain BN (nn/one_neuron_step.hpp).")
      .def_property_readonly("running_offsets", [](const BoundNetwork& s) { return s.net.running_offsets(); },
                             "Per layer, where its running_mean starts (running_var follows), or -1.")
      .def("loss", &loss_binding, py::arg("params"), py::arg("X"), py::arg("y"),
           py::arg("running") = py::none(),
           "The loss; with running statistics, the inference-mode (eval) loss.")
      .def("normalization_input", &normalization_input_binding, py::arg("params"),
           py::arg("running"), py::arg("X"), py::arg("layer"),
           "Layer `layer`'s normalization input (m, size) in inference mode.")
      .def("gradient", &gradient_binding, py::arg("params"), py::arg("X"), py::arg("y"),
           py::arg("running") = py::none(),
           "Returns (loss, gradient).")
      .def("forward", &forward_binding, py::arg("params"), py::arg("X"))
      .def("predict", &predict_binding, py::arg("params"), py::arg("running"), py::arg("X"))
      .def("hvp", &hvp_binding, py::arg("params"), py::arg("X"), py::arg("y"), py::arg("v"),
           py::arg("running") = py::none(),
           "Returns (loss, gradient, Hessian-vector product).")
      .def("train", &train_binding, py::arg("params"), py::arg("running"), py::arg("updates"),
           py::arg("X"), py::arg("y"), py::arg("lr"), py::arg("lr_per_step"), py::arg("steps"),
           py::arg("batch_size"), py::arg("seed"), py::arg("record_every"),
           py::arg("callback"), py::arg("optimizer"), py::arg("optimizer_buffers"),
           py::arg("optimizer_updates"), py::arg("sharpness_every") = 0,
           py::arg("allow_one_neuron") = true,
           "Trains params, running and the optimizer's buffers in place; returns (losses, "
           "TrainOutcome, updates, optimizer_updates). allow_one_neuron=False forces the general "
           "step (tests compare the two).")
      .def("train_many", &train_many_binding, py::arg("params"), py::arg("losses"),
           py::arg("steps_done"), py::arg("status"), py::arg("X"), py::arg("y"), py::arg("lr"),
           py::arg("steps"), py::arg("record_every"),
           "Trains k instances of this one-neuron network in place (bnfast.train_many).");
  py::class_<BoundHessianAt>(m, "HessianAt",
                             "Hessian-vector products of a network's loss at one point, "
                             "many of them: products after the first recompute only the "
                             "tangents (the same bits as Network.hvp).")
      .def(py::init(&make_hessian_at), py::arg("net"), py::arg("params"), py::arg("X"),
           py::arg("y"), py::arg("running") = py::none(),
           "Copies the point; running None: the train-mode loss, else the eval-mode one.")
      .def_property_readonly("size", [](const BoundHessianAt& s) { return s.at->size(); })
      .def_property_readonly("tangent_passes",
                             [](const BoundHessianAt& s) { return s.at->tangent_passes(); },
                             "Whether products after the first recompute only the tangents "
                             "(not with convolutions or residual blocks yet).")
      .def("apply", &hessian_apply, py::arg("v"), "H v (float64, (size,)).");
  m.def("epoch_permutations", &epoch_permutations, py::arg("m"), py::arg("seed"),
        py::arg("epochs"), "The mini-batch SGD shuffles, concatenated (for tests).");
}

}  // namespace bnfast::bind
