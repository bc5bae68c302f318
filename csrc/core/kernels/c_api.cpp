// The C API table (kernels/c_api.h): argument checks, then the dispatched kernels;
// exceptions become status codes (nothing may unwind into C or Cython callers).
#include "kernels/c_api.h"

#include <algorithm>
#include <cmath>
#include <new>
#include <vector>

#include "kernels/batchnorm.hpp"

namespace bnfast {
namespace {

bool valid_dims(std::int64_t n, std::int64_t c, std::int64_t inner) {
  return n >= 1 && c >= 1 && inner >= 1;
}

// Runs body() and turns what it throws into a status code.
template <class Body>
int guarded(Body body) noexcept {
  try {
    body();
    return BNFAST_OK;
  } catch (const ZeroVarianceError&) {
    return BNFAST_ZERO_VARIANCE;
  } catch (const std::bad_alloc&) {
    return BNFAST_NO_MEMORY;
  } catch (...) {
    return BNFAST_INTERNAL_ERROR;
  }
}

template <class T>
int forward(const T* x, std::int64_t n, std::int64_t c, std::int64_t inner,
            const double* weight, const double* bias, double eps, T* y, double* mean,
            double* invstd) noexcept {
  if (!valid_dims(n, c, inner) || n * inner < 2 || !x || !y || !mean || !invstd ||
      !(eps >= 0.0 && std::isfinite(eps)))
    return BNFAST_BAD_ARGUMENT;
  return guarded([&] {
    thread_local Workspace ws;   // a caller's loop allocates once per thread
    // the statistics go to scratch first: a zero-variance failure (raised before y is
    // written) must leave the caller's mean and invstd as they were
    thread_local std::vector<double> stats;
    const auto cols = static_cast<std::size_t>(c);
    stats.resize(3 * cols);
    double* m = stats.data();
    double* v = m + cols;
    double* s = v + cols;
    batch_norm_kernels<T>().forward_train(x, Dims{n, c, inner}, weight, bias, eps, y, m, v,
                                          s, ws);
    std::copy(m, m + cols, mean);
    std::copy(s, s + cols, invstd);
  });
}

template <class T>
int backward(const T* grad_y, const T* x, std::int64_t n, std::int64_t c,
             std::int64_t inner, const double* mean, const double* invstd,
             const double* weight, T* grad_x, double* grad_weight,
             double* grad_bias) noexcept {
  if (!valid_dims(n, c, inner) || !grad_y || !x || !mean || !invstd || !grad_x ||
      !grad_weight || !grad_bias)
    return BNFAST_BAD_ARGUMENT;
  return guarded([&] {
    thread_local Workspace ws;
    batch_norm_kernels<T>().backward(grad_y, x, Dims{n, c, inner}, mean, invstd, weight,
                                     grad_x, grad_weight, grad_bias, ws);
  });
}

const bnfast_c_api table = {
    BNFAST_C_API_VERSION, &forward<double>, &forward<float>, &backward<double>,
    &backward<float>};

}  // namespace
}  // namespace bnfast

extern "C" const bnfast_c_api* bnfast_get_c_api(void) { return &bnfast::table; }
