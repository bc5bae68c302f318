#include "bindings.hpp"
#include "batchnorm.hpp"
#include "parallel.hpp"

namespace bnfast::bind {

void bind_parallel(py::module_& m) {
  m.def("set_num_threads", &set_num_threads, py::arg("n"),
        "Sets how many threads the kernels may use (n >= 1).");
  m.def("get_num_threads", &num_threads, "How many threads the kernels may use.");
  m.def("simd_level", &simd_level, "The kernel variant in use: 'avx2' or 'baseline'.");
  m.attr("has_openmp") =
#if defined(BNFAST_HAVE_OPENMP)
      true;
#else
      false;
#endif
}

}  // namespace bnfast::bind
