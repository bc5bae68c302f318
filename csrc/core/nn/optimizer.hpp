// The update rules of training (docs/math/networks.md section 16), PyTorch's: SGD with
// momentum (dampening 0), Nesterov and L2 weight decay (torch.optim.SGD), and Adam with
// bias correction and L2 weight decay (torch.optim.Adam, amsgrad off), each written in
// torch's operation order. Plain SGD is params -= lr * grad.
#pragma once

#include <cstdint>

namespace bnfast {

enum class OptimizerKind { sgd, adam };

struct OptimizerSpec {
  OptimizerKind kind = OptimizerKind::sgd;
  double momentum = 0.0;  // sgd
  bool nesterov = false;  // sgd; needs momentum > 0
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // adam
  double weight_decay = 0.0;

  bool plain() const {
    return kind == OptimizerKind::sgd && momentum == 0.0 && weight_decay == 0.0;
  }
  // How many doubles of state per parameter: the momentum buffer, or Adam's m and v.
  int buffers() const {
    if (kind == OptimizerKind::adam) return 2;
    return momentum != 0.0 ? 1 : 0;
  }
};

// The optimizer's state, owned by the caller so a run can be continued: buffers()
// arrays of P doubles one after the other, and the count of updates made with them (0
// for a rule without buffers; SGD's momentum buffer starts as the first gradient; Adam's
// bias correction counts).
struct OptimizerState {
  double* buffers = nullptr;
  std::int64_t* updates = nullptr;
};

// One update of params (P) from grad (P) with step size lr; grad may be overwritten.
// Returns whether every parameter is finite afterwards.
bool optimizer_step(const OptimizerSpec& spec, const OptimizerState& state, double* params,
                    double* grad, std::int64_t P, double lr);

}  // namespace bnfast
