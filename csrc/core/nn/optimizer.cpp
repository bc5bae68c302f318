#include "nn/optimizer.hpp"

#include <algorithm>
#include <cmath>

namespace bnfast {

using i64 = std::int64_t;

namespace {

// ATen's lerp: start + w (end - start) for w < 0.5, else end - (end - start)(1 - w).
inline double lerp(double start, double end, double w) {
  const double diff = end - start;
  return w < 0.5 ? start + w * diff : end - diff * (1.0 - w);
}

void sgd(const OptimizerSpec& s, const OptimizerState& state, double* params, double* grad,
         i64 P, double lr) {
  const bool first = *state.updates == 0;
  double* buf = state.buffers;
  for (i64 k = 0; k < P; ++k) {
    double g = grad[k];
    if (s.weight_decay != 0.0) g = g + s.weight_decay * params[k];
    if (s.momentum != 0.0) {
      buf[k] = first ? g : buf[k] * s.momentum + g;
      g = s.nesterov ? g + s.momentum * buf[k] : buf[k];
    }
    params[k] = params[k] + (-lr) * g;
  }
}

void adam(const OptimizerSpec& s, const OptimizerState& state, double* params, double* grad,
          i64 P, double lr) {
  const double t = static_cast<double>(*state.updates + 1);
  const double correction1 = 1.0 - std::pow(s.beta1, t);
  const double correction2_sqrt = std::pow(1.0 - std::pow(s.beta2, t), 0.5);
  const double step_size = lr / correction1;
  double* m = state.buffers;
  double* v = m + P;
  for (i64 k = 0; k < P; ++k) {
    double g = grad[k];
    if (s.weight_decay != 0.0) g = g + s.weight_decay * params[k];
    m[k] = lerp(m[k], g, 1.0 - s.beta1);
    v[k] = v[k] * s.beta2 + (1.0 - s.beta2) * g * g;  // ATen's addcmul: (value t1) t2
    const double denom = std::sqrt(v[k]) / correction2_sqrt + s.eps;
    params[k] = params[k] + (-step_size) * m[k] / denom;  // ATen's addcdiv: (value t1) / t2
  }
}

}  // namespace

bool optimizer_step(const OptimizerSpec& spec, const OptimizerState& state, double* params,
                    double* grad, i64 P, double lr) {
  if (spec.plain()) {
    // the update apart from the check, so that it vectorizes
    for (i64 k = 0; k < P; ++k) params[k] -= lr * grad[k];
  } else {
    if (spec.kind == OptimizerKind::adam) adam(spec, state, params, grad, P, lr);
    else sgd(spec, state, params, grad, P, lr);
    if (spec.buffers() > 0) ++*state.updates;
  }
  return std::all_of(params, params + P, [](double v) { return std::isfinite(v); });
}

}  // namespace bnfast
