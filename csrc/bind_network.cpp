// Bindings of Network and the training loops. The Python layer (bnfast/network.py,
// bnfast/train.py) converts arguments; here they are checked, then the GIL released.
#include <memory>
#include <mutex>

#include "bindings.hpp"
#include "network.hpp"
#include "train.hpp"

namespace bnfast::bind {
namespace {

using Vec = py::array_t<double>;

// A Network owns workspaces, so one object serves one call at a time: the mutex makes
// concurrent calls from several Python threads (GIL released) wait instead of race.
struct BoundNetwork {
  explicit BoundNetwork(std::vector<LayerSpec> layers) : net(std::move(layers)) {}
  Network net;
  std::mutex busy;
};

LayerSpec layer_from_tuple(const py::tuple& t) {
  if (t.size() != 9)
    throw py::value_error("a layer spec is (in, out, activation, bias, batch_norm, "
                          "trainable, eps, gamma, beta)");
  LayerSpec L;
  L.in = t[0].cast<std::int64_t>();
  L.out = t[1].cast<std::int64_t>();
  L.activation = activation_from_name(t[2].cast<std::string>());
  L.bias = t[3].cast<bool>();
  L.batch_norm = t[4].cast<bool>();
  L.bn_trainable = t[5].cast<bool>();
  L.eps = t[6].cast<double>();
  if (L.batch_norm && !L.bn_trainable) {
    L.gamma = t[7].cast<std::vector<double>>();
    L.beta = t[8].cast<std::vector<double>>();
  }
  return L;
}

std::unique_ptr<BoundNetwork> make_network(const py::list& specs) {
  std::vector<LayerSpec> layers;
  for (const auto& s : specs) layers.push_back(layer_from_tuple(py::reinterpret_borrow<py::tuple>(s)));
  return std::make_unique<BoundNetwork>(std::move(layers));
}

// A C-contiguous float64 matrix of shape (rows, cols); rows < 0 means any.
const double* matrix(const py::object& obj, std::int64_t rows, std::int64_t cols, const char* name,
                     std::int64_t* rows_out = nullptr) {
  py::array a = as_array(obj, name);
  if (float_kind(a, name) != 'd') throw py::type_error(std::string(name) + " must be float64 here");
  if (a.ndim() != 2 || a.shape(1) != cols || (rows >= 0 && a.shape(0) != rows))
    throw py::value_error(std::string(name) + " must have shape (" +
                          (rows >= 0 ? std::to_string(rows) : std::string("m")) + ", " +
                          std::to_string(cols) + "), got " + shape_str(a));
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(std::string(name) + " must be C-contiguous");
  if (rows_out) *rows_out = a.shape(0);
  return cdata<double>(a);
}

const double* parameters(const py::object& obj, const Network& net) {
  py::array a = as_array(obj, "params");
  if (float_kind(a, "params") != 'd' || a.ndim() != 1 || a.shape(0) != net.num_params() ||
      !(a.flags() & py::array::c_style))
    throw py::value_error("params must be a contiguous float64 array of shape (" +
                          std::to_string(net.num_params()) + ",), got " + shape_str(a));
  return cdata<double>(a);
}

std::int64_t batch_rows(const py::object& X, const py::object& Y, const Network& net) {
  std::int64_t m = 0;
  matrix(X, -1, net.in_features(), "X", &m);
  matrix(Y, m, net.out_features(), "y");
  if (m < 1) throw py::value_error("X must have at least one row");
  if (m < 2 && net.has_batch_norm())
    throw py::value_error("batch normalization needs at least 2 samples in a batch, got 1");
  return m;
}

double loss_binding(BoundNetwork& self, const py::object& params, const py::object& X,
                    const py::object& Y) {
  const double* p = parameters(params, self.net);
  const std::int64_t m = batch_rows(X, Y, self.net);
  const double* x = cdata<double>(as_array(X, "X"));
  const double* y = cdata<double>(as_array(Y, "y"));
  py::gil_scoped_release release;
  std::lock_guard<std::mutex> lock(self.busy);
  return self.net.loss(p, x, y, m, nullptr);
}

py::tuple gradient_binding(BoundNetwork& self, const py::object& params, const py::object& X,
                           const py::object& Y) {
  const double* p = parameters(params, self.net);
  const std::int64_t m = batch_rows(X, Y, self.net);
  const double* x = cdata<double>(as_array(X, "X"));
  const double* y = cdata<double>(as_array(Y, "y"));
  Vec grad(self.net.num_params());
  double* g = grad.mutable_data();
  double loss = 0;
  {
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(self.busy);
    loss = self.net.loss(p, x, y, m, g);
  }
  return py::make_tuple(loss, grad);
}

Vec forward_binding(BoundNetwork& self, const py::object& params, const py::object& X) {
  const double* p = parameters(params, self.net);
  std::int64_t m = 0;
  const double* x = matrix(X, -1, self.net.in_features(), "X", &m);
  if (m < 2 && self.net.has_batch_norm())
    throw py::value_error("batch normalization needs at least 2 samples in a batch, got 1");
  Vec out({m, self.net.out_features()});
  double* o = out.mutable_data();
  py::gil_scoped_release release;
  std::lock_guard<std::mutex> lock(self.busy);
  self.net.forward(p, x, m, o);
  return out;
}

const char* reason_name(StopReason r) {
  switch (r) {
    case StopReason::requested: return "callback";
    case StopReason::interrupted: return "interrupted";
    case StopReason::diverged: return "diverged";
    case StopReason::finished: break;
  }
  return "finished";
}

// Trains in place on `params` (a float64 array the caller owns). Returns
// (losses, steps_done, reason, diverged_step, diverged_loss). A Python exception from
// the callback, or KeyboardInterrupt, stops the loop and is re-raised here.
py::tuple train_binding(BoundNetwork& self, py::array params, const py::object& X,
                        const py::object& Y, double lr, std::int64_t steps,
                        std::int64_t batch_size, std::uint64_t seed, std::int64_t record_every,
                        const py::object& callback) {
  parameters(params, self.net);
  if (!params.writeable()) throw py::value_error("params must be writable");
  const std::int64_t m = batch_rows(X, Y, self.net);
  if (batch_size < 0 || batch_size > m)
    throw py::value_error("batch_size must be in [1, " + std::to_string(m) + "]");
  if (record_every < 1) throw py::value_error("record_every must be >= 1");
  if (steps < 0) throw py::value_error("steps must be >= 0");
  const double* x = cdata<double>(as_array(X, "X"));
  const double* y = cdata<double>(as_array(Y, "y"));
  double* p = mdata<double>(params);

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
  PollHook poll = [&]() {
    py::gil_scoped_acquire acquire;
    if (PyErr_CheckSignals() != 0) {
      pending = std::make_unique<py::error_already_set>();
      return true;
    }
    return false;
  };
  TrainOptions opts{lr, steps, batch_size, seed, record_every};
  std::vector<double> losses;
  TrainOutcome outcome;
  {
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(self.busy);
    outcome = train(self.net, p, x, y, m, opts, losses, on_record, poll);
  }
  if (pending) throw std::move(*pending);
  Vec recorded(static_cast<py::ssize_t>(losses.size()));
  std::copy(losses.begin(), losses.end(), recorded.mutable_data());
  return py::make_tuple(recorded, outcome.steps_done, reason_name(outcome.reason),
                        outcome.diverged_step, outcome.diverged_loss);
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

void bind_network(py::module_& m) {
  py::class_<BoundNetwork>(m, "Network")
      .def(py::init(&make_network), py::arg("layers"),
           "Network from layer specs (in, out, activation, bias, batch_norm, trainable, "
           "eps, gamma, beta).")
      .def_property_readonly("num_params", [](const BoundNetwork& s) { return s.net.num_params(); })
      .def_property_readonly("in_features", [](const BoundNetwork& s) { return s.net.in_features(); })
      .def_property_readonly("out_features", [](const BoundNetwork& s) { return s.net.out_features(); })
      .def("loss", &loss_binding, py::arg("params"), py::arg("X"), py::arg("y"))
      .def("gradient", &gradient_binding, py::arg("params"), py::arg("X"), py::arg("y"),
           "Returns (loss, gradient).")
      .def("forward", &forward_binding, py::arg("params"), py::arg("X"))
      .def("train", &train_binding, py::arg("params"), py::arg("X"), py::arg("y"),
           py::arg("lr"), py::arg("steps"), py::arg("batch_size"), py::arg("seed"),
           py::arg("record_every"), py::arg("callback"));
  m.def("epoch_permutations", &epoch_permutations, py::arg("m"), py::arg("seed"),
        py::arg("epochs"), "The mini-batch SGD shuffles, concatenated (for tests).");
}

}  // namespace bnfast::bind
