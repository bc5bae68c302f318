#include "nn/hessian_at.hpp"

namespace bnfast {

using i64 = std::int64_t;

HessianAt::HessianAt(const Network& net, const double* params, const double* X,
                     const double* Y, i64 y_size, i64 m, const double* running)
    : net_(net.layers(), net.loss_kind()),
      params_(params, params + net.num_params()),
      x_(X, X + m * net.input_size()),
      y_(Y, Y + y_size),
      running_(running ? std::vector<double>(running, running + net.num_running())
                       : std::vector<double>()),
      m_(m),
      has_running_(running != nullptr) {
  net_.set_input_shape(net.input_shape());
}

double HessianAt::apply(const double* v, double* hv) {
  const auto reuse = first_ ? Network::HvpReuse::keep : Network::HvpReuse::tangents;
  const double loss = net_.hvp(params_.data(), x_.data(), y_.data(), m_, v, nullptr, hv,
                               has_running_ ? running_.data() : nullptr, reuse);
  first_ = false;  // after a pass that went through: a throw leaves the next one whole
  return loss;
}

}  // namespace bnfast
