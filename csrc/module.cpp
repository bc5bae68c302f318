// bnfast._core: wires the binding areas together, one bind_* function per file.
#include "bindings.hpp"

PYBIND11_MODULE(_core, m) {
  m.doc() = "bnfast's compiled core (use the public API in bnfast, not this module).";
  bnfast::bind::bind_parallel(m);
  bnfast::bind::bind_batchnorm(m);
  bnfast::bind::bind_network(m);
  bnfast::bind::bind_memory(m);
}
