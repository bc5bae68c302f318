#include "bind/arrays.hpp"

namespace bnfast::bind {

std::string shape_str(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) {
    if (i) s += ", ";
    s += std::to_string(a.shape(i));
  }
  if (a.ndim() == 1) s += ",";
  return s + ")";
}

py::array as_array(const py::handle& obj, const char* name) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(std::string(name) + " must be a numpy.ndarray, got " +
                         std::string(py::str(py::type::of(obj).attr("__name__"))));
  return py::reinterpret_borrow<py::array>(obj);
}

char float_kind(const py::array& a, const char* name) {
  if (a.dtype().is(py::dtype::of<float>())) return 'f';
  if (a.dtype().is(py::dtype::of<double>())) return 'd';
  // dtype equality beyond identity (e.g. non-native byte order shows up here as an error)
  if (a.dtype().equal(py::dtype::of<float>()) && a.dtype().byteorder() != '>') return 'f';
  if (a.dtype().equal(py::dtype::of<double>()) && a.dtype().byteorder() != '>') return 'd';
  throw py::type_error(std::string(name) + " must have dtype float32 or float64, got " +
                       std::string(py::str(a.dtype())));
}

Dims input_dims(const py::array& x, const char* name, std::int64_t axis) {
  if (x.ndim() < 2)
    throw py::value_error(std::string(name) + " must have at least 2 dimensions (N, C, *), got shape " +
                          shape_str(x));
  if (!(x.flags() & py::array::c_style))
    throw py::value_error(std::string(name) + " must be C-contiguous");
  const std::int64_t ndim = x.ndim();
  if (axis < -ndim || axis >= ndim)
    throw py::value_error("axis " + std::to_string(axis) + " is out of range for " + name +
                          " with " + std::to_string(ndim) + " dimensions");
  if (axis < 0) axis += ndim;
  // (outer, C, inner): the channel axis with everything before it and everything after
  // it flattened; channels-last (N, *, C) is (N * prod(*), C, 1), no copy needed.
  Dims d{1, x.shape(axis), 1};
  for (std::int64_t i = 0; i < axis; ++i) d.n *= x.shape(i);
  for (std::int64_t i = axis + 1; i < ndim; ++i) d.s *= x.shape(i);
  if (d.size() == 0)
    throw py::value_error(std::string(name) + " must not be empty, got shape " + shape_str(x));
  return d;
}

void require_input_like(const py::array& a, const py::array& like, const char* name) {
  if (!a.dtype().is(like.dtype()) && !a.dtype().equal(like.dtype()))
    throw py::type_error(std::string(name) + " must have dtype " + std::string(py::str(like.dtype())) +
                         ", got " + std::string(py::str(a.dtype())));
  bool same = a.ndim() == like.ndim();
  for (py::ssize_t i = 0; same && i < a.ndim(); ++i) same = a.shape(i) == like.shape(i);
  if (!same)
    throw py::value_error(std::string(name) + " must have the shape of x " + shape_str(like) +
                          ", got " + shape_str(a));
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(std::string(name) + " must be C-contiguous");
}

void require_output_like(const py::array& a, const py::array& like, const char* name) {
  require_input_like(a, like, name);
  if (!a.writeable()) throw py::value_error(std::string(name) + " is read-only");
}

const double* channel_vector(const py::object& obj, std::int64_t c, const char* name) {
  if (obj.is_none()) return nullptr;
  py::array a = as_array(obj, name);
  if (float_kind(a, name) != 'd')
    throw py::type_error(std::string(name) + " must have dtype float64 at this level");
  if (a.ndim() != 1 || a.shape(0) != c)
    throw py::value_error(std::string(name) + " must have shape (" + std::to_string(c) +
                          ",) to match the " + std::to_string(c) + " channels, got shape " +
                          shape_str(a));
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(std::string(name) + " must be contiguous");
  return cdata<double>(a);
}

}  // namespace bnfast::bind
