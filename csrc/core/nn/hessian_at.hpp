// Products with the Hessian of a network's loss at one point (parameters, data, mode),
// many of them, as the curvature estimators ask (bnfast.curvature: Lanczos, Hutch++,
// stochastic Lanczos quadrature): the first product runs the whole forward-over-reverse
// pass and keeps it; the next ones recompute only what depends on v (the tangents:
// Network::HvpReuse::tangents), with the same bits as Network::hvp. It holds copies of
// the point and a network of its own, so nothing done to the caller's network (another
// evaluation, another input shape) changes it.
#pragma once

#include <cstdint>
#include <vector>

#include "nn/network.hpp"

namespace bnfast {

class HessianAt {
 public:
  // net compiled for the samples of X (m of them); Y holds y_size doubles ((m, out)
  // targets or (m,) labels, checked by the caller); running null for the train-mode
  // loss, else the population statistics of the eval-mode one.
  HessianAt(const Network& net, const double* params, const double* X, const double* Y,
            std::int64_t y_size, std::int64_t m, const double* running);

  std::int64_t size() const { return net_.num_params(); }
  // hv = H v, both of size(); returns the loss at the point.
  double apply(const double* v, double* hv);
  // Whether products after the first recompute only the tangents (every op allows it).
  bool tangent_passes() const { return net_.tangent_passes(); }

 private:
  Network net_;
  std::vector<double> params_, x_, y_, running_;
  std::int64_t m_;
  bool has_running_, first_ = true;
};

}  // namespace bnfast
