// Test-only bindings of the array activations (nn/activation_array.hpp): the private
// _activate_array and, for comparison and timing, _activate_scalar, which applies the
// scalar activate() of nn/activation.hpp. tests/nn/test_activation_array.py and
// docs/math/activations.md use them; the public API does not.
#include <string>

#include "bind/arrays.hpp"
#include "nn/activation.hpp"
#include "nn/activation_array.hpp"

namespace bnfast::bind {
namespace {

Activation activation_named(const std::string& name) {
  if (name == "identity") return Activation::identity;
  if (name == "sigmoid") return Activation::sigmoid;
  if (name == "tanh") return Activation::tanh;
  if (name == "relu") return Activation::relu;
  throw py::value_error("unknown activation '" + name + "'");
}

// z: a float64, 1-D, C-contiguous ndarray (no conversion: the tests want these bits).
const double* input_vector(const py::handle& obj, const char* name) {
  py::array a = as_array(obj, name);
  if (float_kind(a, name) != 'd') throw py::type_error(std::string(name) + " must be float64");
  if (a.ndim() != 1 || !(a.flags() & py::array::c_style))
    throw py::value_error(std::string(name) + " must be 1-D and C-contiguous");
  return cdata<double>(a);
}

// out None: a new array; else a writable float64 array of z's length (z itself allowed).
py::array output_for(const py::array& z, const py::object& out) {
  if (out.is_none()) return empty({z.shape(0)}, py::dtype::of<double>());
  py::array o = as_array(out, "out");
  input_vector(o, "out");
  if (o.shape(0) != z.shape(0)) throw py::value_error("out must have the length of z");
  if (!o.writeable()) throw py::value_error("out must be writable");
  return o;
}

template <class Apply>
py::array run(const std::string& name, const py::object& zobj, const py::object& out,
              Apply&& apply) {
  const Activation act = activation_named(name);
  const double* z = input_vector(zobj, "z");
  py::array za = py::reinterpret_borrow<py::array>(zobj);
  py::array o = output_for(za, out);
  apply(act, z, mdata<double>(o), static_cast<std::int64_t>(za.shape(0)));
  return o;
}

}  // namespace

void bind_activation(py::module_& m) {
  m.def(
      "_activate_array",
      [](const std::string& name, const py::object& z, const py::object& out) {
        return run(name, z, out, &activate_array);
      },
      py::arg("name"), py::arg("z"), py::arg("out") = py::none(),
      "Test only: phi(z) by the vectorised activate_array (out may be z).");
  m.def(
      "_activate_scalar",
      [](const std::string& name, const py::object& z, const py::object& out) {
        return run(name, z, out,
                   [](Activation a, const double* zp, double* op, std::int64_t n) {
                     for (std::int64_t i = 0; i < n; ++i) op[i] = activate(a, zp[i]);
                   });
      },
      py::arg("name"), py::arg("z"), py::arg("out") = py::none(),
      "Test only: phi(z) by the scalar activate() (std::tanh, std::exp).");
}

}  // namespace bnfast::bind
