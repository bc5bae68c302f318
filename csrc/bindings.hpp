// The one pybind11 include of the binding layer, and the argument checks every
// binding shares. Checks run with the GIL held, before any work; a failed check
// raises TypeError (wrong kind of object or dtype) or ValueError (wrong shape/value)
// naming the argument.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>

#include "batchnorm.hpp"

namespace bnfast::bind {

namespace py = pybind11;

void bind_batchnorm(py::module_& m);
void bind_parallel(py::module_& m);
void bind_network(py::module_& m);
void bind_memory(py::module_& m);

std::string shape_str(const py::array& a);

// a must be an ndarray (TypeError otherwise).
py::array as_array(const py::handle& obj, const char* name);

// float32 -> 'f', float64 -> 'd'; anything else is a TypeError naming the argument.
char float_kind(const py::array& a, const char* name);

// C-contiguous, ndim >= 2, non-empty: the (n, c, s) view of x.
Dims input_dims(const py::array& x, const char* name);

// `a` has exactly the dtype and shape of `like`, is C-contiguous and writable.
void require_output_like(const py::array& a, const py::array& like, const char* name);

// None -> nullptr; else a C-contiguous float64 array of shape (c,).
const double* channel_vector(const py::object& obj, std::int64_t c, const char* name);

// A finite eps >= 0.
double check_eps(double eps);

template <class T>
const T* cdata(const py::array& a) {
  return static_cast<const T*>(a.data());
}
template <class T>
T* mdata(py::array& a) {
  return static_cast<T*>(a.mutable_data());
}

}  // namespace bnfast::bind
