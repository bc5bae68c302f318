// The losses (docs/math/networks.md sections 6 and 15) of the network's output F (m, out):
// sum: sum_i ||y_i - f_i||^2; mean: that / m; cross_entropy: the mean over rows of
// logsumexp(f_i) - f_i[y_i] (PyTorch's F.cross_entropy), y_i a class label in [0, out)
// stored as a double; cross_entropy_sum: its sum. On double or Dual.
#pragma once

#include <cstdint>

namespace bnfast {

enum class LossKind { sum, mean, cross_entropy, cross_entropy_sum };

inline bool takes_labels(LossKind k) {
  return k == LossKind::cross_entropy || k == LossKind::cross_entropy_sum;
}

// The loss; when dF is not null, also d loss / d F (m, out) into dF. Labels are the
// caller's to check (integral, in range).
template <class T>
T loss_and_gradient(LossKind kind, const T* F, const double* Y, std::int64_t m,
                     std::int64_t out, T* dF);

}  // namespace bnfast
