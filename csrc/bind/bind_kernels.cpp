// Bindings of the BN kernels (bnfast/kernels.py calls them). Array checks first (GIL
// held), then the kernel with the GIL released. Outputs are allocated by the caller (the
// Python layer) or here.
#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "bind/arrays.hpp"
#include "runtime/buffer_pool.hpp"

namespace bnfast::bind {
namespace {

using Vec = py::array_t<double>;

// A running-statistics buffer updated in place: 1-D, float32 or float64, writable,
// any stride (a strided view of a larger buffer works).
struct RunningBuffer {
  py::array array;
  char kind = 0;
  std::int64_t stride = 1;  // in elements
};

RunningBuffer running_buffer(const py::object& obj, std::int64_t c, const char* name) {
  RunningBuffer rb;
  rb.array = as_array(obj, name);
  rb.kind = float_kind(rb.array, name);
  if (rb.array.ndim() != 1 || rb.array.shape(0) != c)
    throw py::value_error(std::string(name) + " must have shape (" + std::to_string(c) +
                          ",) to match the " + std::to_string(c) + " channels, got shape " +
                          shape_str(rb.array));
  if (!rb.array.writeable())
    throw py::value_error(std::string(name) +
                          " is read-only, but training updates it in place");
  const auto itemsize = static_cast<py::ssize_t>(rb.array.itemsize());
  if (rb.array.strides(0) % itemsize != 0)
    throw py::value_error(std::string(name) + " has a stride that is not a whole element");
  rb.stride = rb.array.strides(0) / itemsize;
  if (rb.stride == 0 && c > 1)
    throw py::value_error(std::string(name) + " has stride 0: its " + std::to_string(c) +
                          " channels would all be written to one element");
  return rb;
}

// The bytes [first, last) a running buffer of c channels spans.
std::pair<const char*, const char*> span(const RunningBuffer& rb, std::int64_t c) {
  const char* base = static_cast<const char*>(rb.array.data());
  const std::int64_t reach = (c - 1) * rb.stride * static_cast<std::int64_t>(rb.array.itemsize());
  const char* first = reach < 0 ? base + reach : base;
  return {first, first + (reach < 0 ? -reach : reach) + rb.array.itemsize()};
}

bool overlap(const RunningBuffer& a, const RunningBuffer& b, std::int64_t c) {
  const auto [a0, a1] = span(a, c);
  const auto [b0, b1] = span(b, c);
  if (!(a0 < b1 && b0 < a1)) return false;  // the common case: apart
  // Interleaved views (x[::2], x[1::2]) share a span but no element: compare elements.
  const auto starts = [c](const RunningBuffer& rb) {
    std::vector<const char*> out(static_cast<std::size_t>(c));
    const char* base = static_cast<const char*>(rb.array.data());
    for (std::int64_t ch = 0; ch < c; ++ch)
      out[static_cast<std::size_t>(ch)] = base + ch * rb.stride * rb.array.itemsize();
    std::sort(out.begin(), out.end());
    return out;
  };
  const std::vector<const char*> pa = starts(a), pb = starts(b);
  const py::ssize_t size = a.array.itemsize();
  for (std::size_t i = 0, j = 0; i < pa.size() && j < pb.size();) {
    if (pa[i] + size <= pb[j]) ++i;
    else if (pb[j] + size <= pa[i]) ++j;
    else return true;
  }
  return false;
}

py::tuple forward_train_binding(const py::object& x_obj, const py::object& weight,
                                const py::object& bias, double eps, const py::object& out_obj,
                                const py::object& running_mean, const py::object& running_var,
                                double momentum, std::int64_t axis) {
  py::array x = as_array(x_obj, "x");
  const char kind = float_kind(x, "x");
  const Dims d = input_dims(x, "x", axis);
  if (d.per_channel() < 2)
    throw py::value_error(
        "Expected more than 1 value per channel when training, got input of shape " +
        shape_str(x));
  const double* w = channel_vector(weight, d.c, "weight");
  const double* b = channel_vector(bias, d.c, "bias");
  py::array out = as_array(out_obj, "out");
  require_output_like(out, x, "out");
  const bool track = !running_mean.is_none() || !running_var.is_none();
  RunningBuffer rm, rv;
  if (track) {
    if (running_mean.is_none() || running_var.is_none())
      throw py::value_error("running_mean and running_var must be given together");
    rm = running_buffer(running_mean, d.c, "running_mean");
    rv = running_buffer(running_var, d.c, "running_var");
    if (rm.kind != rv.kind)
      throw py::type_error("running_mean and running_var must have the same dtype");
    if (overlap(rm, rv, d.c))
      throw py::value_error("running_mean and running_var overlap in memory: each needs "
                            "its own array (one would overwrite the other)");
  }

  Vec mean(d.c), var(d.c), invstd(d.c);
  double* pm = mean.mutable_data();
  double* pv = var.mutable_data();
  double* pi = invstd.mutable_data();
  std::int64_t skipped = 0;
  {
    py::gil_scoped_release release;
    Workspace ws;
    visit_float(kind, [&](auto t) {
      using T = decltype(t);
      batch_norm_kernels<T>().forward_train(cdata<T>(x), d, w, b, eps, mdata<T>(out), pm, pv,
                                            pi, ws);
    });
  }
  if (track) {
    // Warn before anything changes: with warnings turned into errors the call then
    // raises with every running statistic as it was.
    auto update = [&](bool write) {
      return visit_float(rm.kind, [&](auto t) {
        using R = decltype(t);
        return update_running_stats<R>(mdata<R>(rm.array), rm.stride, mdata<R>(rv.array),
                                       rv.stride, pm, pv, d.c, d.per_channel(), momentum,
                                       write);
      });
    };
    skipped = update(false);
    if (skipped > 0) {
      const std::string message =
          "batch statistics of " + std::to_string(skipped) +
          " channel(s) are not finite (NaN or inf in x) or overflow the running "
          "statistics' dtype; their running statistics were left unchanged";
      if (PyErr_WarnEx(PyExc_RuntimeWarning, message.c_str(), 2) < 0)
        throw py::error_already_set();
    }
    update(true);
  }
  return py::make_tuple(mean, invstd, skipped);
}

void forward_eval_binding(const py::object& x_obj, const py::object& running_mean,
                          const py::object& running_var, const py::object& weight,
                          const py::object& bias, double eps, const py::object& out_obj,
                          std::int64_t axis) {
  py::array x = as_array(x_obj, "x");
  const char kind = float_kind(x, "x");
  const Dims d = input_dims(x, "x", axis);
  const double* rm = channel_vector(running_mean, d.c, "running_mean");
  const double* rv = channel_vector(running_var, d.c, "running_var");
  if (!rm || !rv)
    throw py::value_error("running_mean and running_var are required when training=False");
  const double* w = channel_vector(weight, d.c, "weight");
  const double* b = channel_vector(bias, d.c, "bias");
  py::array out = as_array(out_obj, "out");
  require_output_like(out, x, "out");
  py::gil_scoped_release release;
  Workspace ws;
  visit_float(kind, [&](auto t) {
    using T = decltype(t);
    batch_norm_kernels<T>().forward_eval(cdata<T>(x), d, rm, rv, w, b, eps, mdata<T>(out), ws);
  });
}

py::tuple backward_binding(const py::object& dy_obj, const py::object& x_obj,
                           const py::object& mean_obj, const py::object& invstd_obj,
                           const py::object& weight, const py::object& out_obj,
                           std::int64_t axis) {
  py::array x = as_array(x_obj, "x");
  const char kind = float_kind(x, "x");
  const Dims d = input_dims(x, "x", axis);
  py::array dy = as_array(dy_obj, "grad_y");
  require_input_like(dy, x, "grad_y");
  const double* mean = channel_vector(mean_obj, d.c, "mean");
  const double* invstd = channel_vector(invstd_obj, d.c, "invstd");
  if (!mean) throw py::value_error("mean is required");
  if (!invstd) throw py::value_error("invstd is required");
  const double* w = channel_vector(weight, d.c, "weight");
  py::array out = as_array(out_obj, "out");
  require_output_like(out, x, "out");
  Vec grad_weight(d.c), grad_bias(d.c);
  double* gw = grad_weight.mutable_data();
  double* gb = grad_bias.mutable_data();
  {
    py::gil_scoped_release release;
    Workspace ws;
    visit_float(kind, [&](auto t) {
      using T = decltype(t);
      batch_norm_kernels<T>().backward(cdata<T>(dy), cdata<T>(x), d, mean, invstd, w,
                                       mdata<T>(out), gw, gb, ws);
    });
  }
  return py::make_tuple(grad_weight, grad_bias);
}

// The exact ndarray, float32/float64 in native byte order, C-contiguous: the layout
// the kernels read without a copy. Anything else takes the general path.
int type_num(py::handle array) {
  const auto* proxy = py::detail::array_proxy(array.ptr());
  return py::detail::array_descriptor_proxy(proxy->descr)->type_num;
}

bool plain_float_array(py::handle obj) {
  using api = py::detail::npy_api;
  if (Py_TYPE(obj.ptr()) != reinterpret_cast<PyTypeObject*>(api::get().PyArray_Type_))
    return false;
  const auto* proxy = py::detail::array_proxy(obj.ptr());
  const auto* descr = py::detail::array_descriptor_proxy(proxy->descr);
#if PY_LITTLE_ENDIAN
  constexpr char kForeignOrder = '>';
#else
  constexpr char kForeignOrder = '<';
#endif
  return (descr->type_num == api::NPY_DOUBLE_ || descr->type_num == api::NPY_FLOAT_) &&
         descr->byteorder != kForeignOrder &&
         (proxy->flags & api::NPY_ARRAY_C_CONTIGUOUS_) && (proxy->flags & api::NPY_ARRAY_ALIGNED_);
}

// A new C-contiguous array straight from NumPy's C API (no shape vectors on the heap:
// a tiny call's allocations are most of its cost).
py::array new_array(int type_num, int nd, const Py_intptr_t* dims) {
  const auto& api = py::detail::npy_api::get();
  PyObject* array = api.PyArray_NewFromDescr_(
      reinterpret_cast<PyTypeObject*>(api.PyArray_Type_), api.PyArray_DescrFromType_(type_num),
      nd, dims, nullptr, nullptr, 0, nullptr);
  if (array == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::array>(array);
}

// weight or bias for the fast path: None (nullptr, ok) or a plain float64 (c,) array.
bool plain_channel_vector(py::handle obj, std::int64_t c, const double*& data) {
  data = nullptr;
  if (obj.is_none()) return true;
  if (!plain_float_array(obj) || type_num(obj) != py::detail::npy_api::NPY_DOUBLE_)
    return false;
  const auto* proxy = py::detail::array_proxy(obj.ptr());
  if (proxy->nd != 1 || proxy->dimensions[0] != c) return false;
  data = reinterpret_cast<const double*>(proxy->data);
  return true;
}

// out= of a fast path: a new array like x for None; else out itself when it is a plain
// writable array of x's dtype and shape that is each source exactly (in place) or apart
// from it. False when not: the general path then decides (and words the error).
bool fast_output(py::handle out_obj, const py::array& x,
                 std::initializer_list<const py::array*> sources, py::array& out) {
  if (out_obj.is_none()) {
    const auto* proxy = py::detail::array_proxy(x.ptr());
    out = x.nbytes() < static_cast<py::ssize_t>(BufferPool::kMinBytes)
              ? new_array(type_num(x), proxy->nd, proxy->dimensions)
              : empty(std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()), x.dtype());
    return true;
  }
  if (!plain_float_array(out_obj)) return false;
  out = py::reinterpret_borrow<py::array>(out_obj);
  if (type_num(out) != type_num(x) || out.ndim() != x.ndim() || !out.writeable() ||
      !std::equal(x.shape(), x.shape() + x.ndim(), out.shape()))
    return false;
  const char* ob = static_cast<const char*>(out.data());
  const auto bytes = static_cast<std::ptrdiff_t>(x.nbytes());
  for (const py::array* source : sources) {
    const char* sb = static_cast<const char*>(source->data());
    if (sb != ob && sb < ob + bytes && ob < sb + bytes) return false;  // partial overlap
  }
  return true;
}

// Releasing the GIL costs more than a tiny call's work.
constexpr std::int64_t kReleaseGilFrom = 1 << 14;

template <class F>
void run_releasing_gil_if_large(std::int64_t size, F&& f) {
  if (size >= kReleaseGilFrom) {
    py::gil_scoped_release release;
    f();
  } else {
    f();
  }
}

// batch_norm_forward's common call in one step: x a plain float array (above) of
// ndim >= 2 with >= 2 values per channel, channels on axis 1, weight and bias None or
// plain float64 (C,), eps finite and >= 0, out None or a plain writable array of x's
// dtype and shape that is x itself or apart from it. Returns (y, mean, invstd), or None
// when any of that does not hold: the Python layer then takes the general path, which
// owns the error messages.
py::object forward_train_fast(py::handle x_obj, py::handle weight_obj, py::handle bias_obj,
                              double eps, py::handle out_obj) {
  if (!plain_float_array(x_obj) || !(eps >= 0.0 && std::isfinite(eps))) return py::none();
  py::array x = py::reinterpret_borrow<py::array>(x_obj);
  if (x.ndim() < 2 || x.size() == 0) return py::none();
  const Dims d = input_dims(x, "x", 1);
  const double *weight, *bias;
  if (d.per_channel() < 2 || !plain_channel_vector(weight_obj, d.c, weight) ||
      !plain_channel_vector(bias_obj, d.c, bias))
    return py::none();
  py::array out;
  if (!fast_output(out_obj, x, {&x}, out)) return py::none();
  const Py_intptr_t channels[1] = {static_cast<Py_intptr_t>(d.c)};
  py::array mean = new_array(py::detail::npy_api::NPY_DOUBLE_, 1, channels);
  py::array invstd = new_array(py::detail::npy_api::NPY_DOUBLE_, 1, channels);
  thread_local Workspace ws;          // tiny calls allocate nothing after the first
  thread_local std::vector<double> var;
  var.resize(static_cast<std::size_t>(d.c));
  const char kind = x.dtype().char_();
  run_releasing_gil_if_large(d.size(), [&] {
    visit_float(kind, [&](auto t) {
      using T = decltype(t);
      batch_norm_kernels<T>().forward_train(cdata<T>(x), d, weight, bias, eps,
                                            mdata<T>(out), mdata<double>(mean), var.data(),
                                            mdata<double>(invstd), ws);
    });
  });
  return py::make_tuple(out, mean, invstd);
}

// batch_norm_backward's common call in one step: grad_y and x plain float arrays (above)
// of one dtype and shape, ndim >= 2, channels on axis 1; mean and invstd plain float64
// (C,), weight None or plain float64 (C,); out None or plain (fast_output). Returns
// (grad_x, grad_weight, grad_bias), or None for the general path.
py::object backward_fast(py::handle dy_obj, py::handle x_obj, py::handle mean_obj,
                         py::handle invstd_obj, py::handle weight_obj, py::handle out_obj) {
  if (!plain_float_array(x_obj) || !plain_float_array(dy_obj)) return py::none();
  py::array x = py::reinterpret_borrow<py::array>(x_obj);
  py::array dy = py::reinterpret_borrow<py::array>(dy_obj);
  if (x.ndim() < 2 || x.size() == 0 || type_num(dy) != type_num(x) || dy.ndim() != x.ndim() ||
      !std::equal(x.shape(), x.shape() + x.ndim(), dy.shape()))
    return py::none();
  const Dims d = input_dims(x, "x", 1);
  const double *mean, *invstd, *weight;
  if (mean_obj.is_none() || invstd_obj.is_none() ||
      !plain_channel_vector(mean_obj, d.c, mean) ||
      !plain_channel_vector(invstd_obj, d.c, invstd) ||
      !plain_channel_vector(weight_obj, d.c, weight))
    return py::none();
  py::array out;
  if (!fast_output(out_obj, x, {&x, &dy}, out)) return py::none();
  const Py_intptr_t channels[1] = {static_cast<Py_intptr_t>(d.c)};
  py::array grad_weight = new_array(py::detail::npy_api::NPY_DOUBLE_, 1, channels);
  py::array grad_bias = new_array(py::detail::npy_api::NPY_DOUBLE_, 1, channels);
  thread_local Workspace ws;
  const char kind = x.dtype().char_();
  run_releasing_gil_if_large(d.size(), [&] {
    visit_float(kind, [&](auto t) {
      using T = decltype(t);
      batch_norm_kernels<T>().backward(cdata<T>(dy), cdata<T>(x), d, mean, invstd, weight,
                                       mdata<T>(out), mdata<double>(grad_weight),
                                       mdata<double>(grad_bias), ws);
    });
  });
  return py::make_tuple(out, grad_weight, grad_bias);
}

// bnfast.batch_moments: (count, mean, mean_low, m2, m2_low) of x's channels (the precise
// moments kernel; float64 (C,) arrays).
py::tuple moments_binding(const py::object& x_obj, std::int64_t axis) {
  py::array x = as_array(x_obj, "x");
  const char kind = float_kind(x, "x");
  const Dims d = input_dims(x, "x", axis);
  Vec mean(d.c), mean_low(d.c), m2(d.c), m2_low(d.c);
  const MomentArrays out{mean.mutable_data(), mean_low.mutable_data(), m2.mutable_data(),
                         m2_low.mutable_data()};
  run_releasing_gil_if_large(d.size(), [&] {
    visit_float(kind, [&](auto t) {
      using T = decltype(t);
      batch_norm_kernels<T>().moments(cdata<T>(x), d, out);
    });
  });
  return py::make_tuple(d.per_channel(), mean, mean_low, m2, m2_low);
}

// A (parts, c) C-contiguous float64 table of merge_moments.
const double* moment_table(const py::object& obj, std::int64_t parts, std::int64_t c,
                           const char* name) {
  py::array a = as_array(obj, name);
  if (float_kind(a, name) != 'd' || !(a.flags() & py::array::c_style))
    throw py::type_error(std::string(name) + " must be a C-contiguous float64 array");
  if (a.ndim() != 2 || a.shape(0) != parts || a.shape(1) != c)
    throw py::value_error(std::string(name) + " must have shape (" + std::to_string(parts) +
                          ", " + std::to_string(c) + "), got " + shape_str(a));
  return cdata<double>(a);
}

// bnfast.merge_moments: the parts' moments (rows of (parts, c) tables, count[p] values
// each) merged in order; returns (mean, mean_low, m2, m2_low), float64 (c,) each.
py::tuple merge_moments_binding(const py::object& count_obj, const py::object& mean_obj,
                                const py::object& mean_low_obj, const py::object& m2_obj,
                                const py::object& m2_low_obj) {
  py::array count = as_array(count_obj, "count");
  if (float_kind(count, "count") != 'd' || count.ndim() != 1 ||
      !(count.flags() & py::array::c_style))
    throw py::type_error("count must be a 1-D C-contiguous float64 array");
  const std::int64_t parts = count.shape(0);
  const py::array mean_array = as_array(mean_obj, "mean");
  if (mean_array.ndim() != 2) throw py::value_error("mean must be (parts, channels)");
  const std::int64_t c = mean_array.shape(1);
  const ConstMomentArrays in{moment_table(mean_obj, parts, c, "mean"),
                             moment_table(mean_low_obj, parts, c, "mean_low"),
                             moment_table(m2_obj, parts, c, "m2"),
                             moment_table(m2_low_obj, parts, c, "m2_low")};
  Vec mean(c), mean_low(c), m2(c), m2_low(c);
  const MomentArrays out{mean.mutable_data(), mean_low.mutable_data(), m2.mutable_data(),
                         m2_low.mutable_data()};
  const double* counts = cdata<double>(count);
  run_releasing_gil_if_large(parts * c, [&] {
    batch_norm_kernels<double>().merge_moments(parts, c, counts, in, out);
  });
  return py::make_tuple(mean, mean_low, m2, m2_low);
}

}  // namespace

void bind_kernels(py::module_& m) {
  py::register_exception<ZeroVarianceError>(m, "ZeroVarianceError", PyExc_ValueError);

  m.def("forward_train", &forward_train_binding, py::arg("x"), py::arg("weight"),
        py::arg("bias"), py::arg("eps"), py::arg("out"), py::arg("running_mean"),
        py::arg("running_var"), py::arg("momentum"), py::arg("axis") = 1,
        "Training-mode BN of a C-contiguous float32/float64 x (channels on axis) into out (same "
        "dtype/shape). weight, bias: float64 (C,) or None. Updates running_mean/var "
        "(float32/float64 (C,), writable) in place when given. Returns (mean, invstd, "
        "skipped): float64 (C,) each, and the number of channels whose running stats were "
        "left unchanged because the batch statistics were not finite.");
  m.def("forward_train_fast", &forward_train_fast, py::arg("x"), py::arg("weight"),
        py::arg("bias"), py::arg("eps"), py::arg("out"),
        "batch_norm_forward's common call (plain float x, channels on axis 1, weight/bias "
        "None or plain float64 (C,), out None or plain): (y, mean, invstd), or None to "
        "take the general path.");
  m.def("backward_fast", &backward_fast, py::arg("grad_y"), py::arg("x"), py::arg("mean"),
        py::arg("invstd"), py::arg("weight"), py::arg("out"),
        "batch_norm_backward's common call (plain float grad_y and x alike, channels on "
        "axis 1, plain float64 (C,) mean/invstd, weight None or plain float64 (C,), out None "
        "or plain): (grad_x, grad_weight, grad_bias), or None to take the general path.");
  m.def("forward_eval", &forward_eval_binding, py::arg("x"), py::arg("running_mean"),
        py::arg("running_var"), py::arg("weight"), py::arg("bias"), py::arg("eps"),
        py::arg("out"), py::arg("axis") = 1,
        "Inference-mode BN of x (channels on axis) with float64 (C,) running statistics into out.");
  m.def("backward", &backward_binding, py::arg("grad_y"), py::arg("x"), py::arg("mean"),
        py::arg("invstd"), py::arg("weight"), py::arg("out"), py::arg("axis") = 1,
        "Backward of training-mode BN: writes grad_x into out (like x), returns "
        "(grad_weight, grad_bias), float64 (C,) each.");
  m.def("moments", &moments_binding, py::arg("x"), py::arg("axis") = 1,
        "Per-channel moments of a C-contiguous float32/float64 x (channels on axis): "
        "(count, mean, mean_low, m2, m2_low), the float64 (C,) arrays double-double "
        "(mean + mean_low, m2 + m2_low); NaN for channels holding NaN or inf.");
  m.def("merge_moments", &merge_moments_binding, py::arg("count"), py::arg("mean"),
        py::arg("mean_low"), py::arg("m2"), py::arg("m2_low"),
        "Chan's merge in double-double of the rows of (parts, C) float64 tables, count "
        "(parts,) float64: (mean, mean_low, m2, m2_low), float64 (C,) each.");
}

}  // namespace bnfast::bind
