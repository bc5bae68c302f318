// Bindings of the runtime: thread count, the kernel variant in use, and output arrays
// backed by the BufferPool (a capsule returns the buffer to the pool when NumPy frees
// the array).
#include "bind/arrays.hpp"
#include "runtime/buffer_pool.hpp"
#include "runtime/dispatch.hpp"
#include "runtime/parallel.hpp"

namespace bnfast::bind {
namespace {

struct PooledBuffer {
  void* data;
  std::size_t bytes;
};

}  // namespace

py::array empty(const std::vector<py::ssize_t>& shape, const py::dtype& dtype) {
  std::size_t count = 1;
  for (py::ssize_t n : shape) {
    if (n < 0) throw py::value_error("shape must not have negative lengths");
    count *= static_cast<std::size_t>(n);
  }
  const std::size_t bytes = count * static_cast<std::size_t>(dtype.itemsize());
  if (bytes < BufferPool::kMinBytes) return py::array(dtype, shape);
  auto* owner = new PooledBuffer{BufferPool::instance().acquire(bytes), bytes};
  py::capsule base(owner, [](void* ptr) {
    auto* b = static_cast<PooledBuffer*>(ptr);
    BufferPool::instance().release(b->data, b->bytes);
    delete b;
  });
  return py::array(dtype, shape, {}, owner->data, base);
}

void bind_runtime(py::module_& m) {
  m.def("set_num_threads", &set_num_threads, py::arg("n"),
        "Sets how many threads the kernels may use (n >= 1).");
  m.def("get_num_threads", &num_threads, "How many threads the kernels may use.");
  m.def("simd_level", &simd_level, "The kernel variant in use: 'avx2' or 'baseline'.");
  m.def("empty", &empty, py::arg("shape"), py::arg("dtype"),
        "An uninitialized C-contiguous array; large ones reuse freed output buffers.");
  m.def("clear_buffer_cache", [] { BufferPool::instance().clear(); },
        "Frees the cached output buffers.");
  m.def("cached_buffer_bytes", [] { return BufferPool::instance().cached_bytes(); },
        "Bytes held by the output-buffer cache.");
}

}  // namespace bnfast::bind
