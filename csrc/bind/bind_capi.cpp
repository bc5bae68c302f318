// bnfast._core._c_api: the kernels' C table (kernels/c_api.h) in a capsule, read by
// bnfast.cython_kernels at import.
#include <pybind11/pybind11.h>

#include "kernels/c_api.h"

namespace py = pybind11;

namespace bnfast::bind {

void bind_capi(py::module_& m) {
  m.attr("_c_api") = py::capsule(static_cast<const void*>(bnfast_get_c_api()),
                                 BNFAST_C_API_CAPSULE);
}

}  // namespace bnfast::bind
