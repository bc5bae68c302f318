// bnfast._core: wires the binding areas together, one bind_<area>.cpp per area.
#include <pybind11/pybind11.h>

namespace bnfast::bind {
void bind_runtime(pybind11::module_& m);
void bind_kernels(pybind11::module_& m);
void bind_nn(pybind11::module_& m);
void bind_capi(pybind11::module_& m);
void bind_activation(pybind11::module_& m);
void bind_linalg(pybind11::module_& m);
}  // namespace bnfast::bind

PYBIND11_MODULE(_core, m) {
  m.doc() = "bnfast's compiled core (use the public API in bnfast, not this module).";
  bnfast::bind::bind_runtime(m);
  bnfast::bind::bind_kernels(m);
  bnfast::bind::bind_nn(m);
  bnfast::bind::bind_capi(m);
  bnfast::bind::bind_activation(m);
  bnfast::bind::bind_linalg(m);
}
