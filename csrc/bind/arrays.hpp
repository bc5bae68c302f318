// Conversions and checks of the arrays every binding receives. The bindings own the
// rules about array STRUCTURE (dtype, ndim, shapes against each other, contiguity,
// writability, rows per batch): they protect the raw pointers handed to csrc/core.
// Value rules (eps, momentum, lr, ...) belong to the Python layer (docs/design/
// argument_rules.md). Checks run with the GIL held, before any work; a failed check
// raises TypeError (wrong kind of object or dtype) or ValueError (wrong shape) naming
// the argument, and nothing has been written.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>

#include "kernels/batchnorm.hpp"

namespace bnfast::bind {

namespace py = pybind11;

std::string shape_str(const py::array& a);

// a must be an ndarray (TypeError otherwise).
py::array as_array(const py::handle& obj, const char* name);

// float32 -> 'f', float64 -> 'd'; anything else is a TypeError naming the argument.
char float_kind(const py::array& a, const char* name);

// C-contiguous, ndim >= 2, non-empty: the (n, c, s) view of x.
Dims input_dims(const py::array& x, const char* name, std::int64_t axis = 1);

// `a` has exactly the dtype and shape of `like` and is C-contiguous (an input read
// alongside x, such as grad_y); require_output_like also wants it writable.
void require_input_like(const py::array& a, const py::array& like, const char* name);
void require_output_like(const py::array& a, const py::array& like, const char* name);

// An uninitialized C-contiguous array; outputs of 1 MiB or more reuse buffers that
// earlier outputs gave back (runtime/buffer_pool.hpp). Defined in bind_runtime.cpp.
py::array empty(const std::vector<py::ssize_t>& shape, const py::dtype& dtype);

// None -> nullptr; else a C-contiguous float64 array of shape (c,).
const double* channel_vector(const py::object& obj, std::int64_t c, const char* name);

// Calls f(float{}) or f(double{}) for the kind float_kind returned: one template body
// serves both data types.
template <class F>
decltype(auto) visit_float(char kind, F&& f) {
  return kind == 'f' ? f(float{}) : f(double{});
}

template <class T>
const T* cdata(const py::array& a) {
  return static_cast<const T*>(a.data());
}
template <class T>
T* mdata(py::array& a) {
  return static_cast<T*>(a.mutable_data());
}

}  // namespace bnfast::bind
