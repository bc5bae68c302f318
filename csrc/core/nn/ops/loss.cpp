#include "nn/ops/loss.hpp"

#include <cmath>

#include "nn/dual.hpp"

namespace bnfast {

using i64 = std::int64_t;

namespace {

template <class T>
T squared(bool mean, const T* F, const double* Y, i64 m, i64 out, T* dF) {
  const double scale = mean ? 1.0 / static_cast<double>(m) : 1.0;
  T total(0.0);
  for (i64 i = 0; i < m * out; ++i) {
    const T r = T(Y[i]) - F[i];
    total += r * r;
  }
  if (mean) total *= T(scale);
  if (dF)  // 2 (f - y), / m for the mean
    for (i64 i = 0; i < m * out; ++i) dF[i] = T(2.0 * scale) * (F[i] - T(Y[i]));
  return total;
}

// Per row, lse = c + log sum_j exp(f_j - c) with c = max_j f_j (a constant: the shift
// cancels, so no derivative flows through it), and softmax_j = exp(f_j - lse); logits
// of any finite size then give finite values.
template <class T>
T cross_entropy(bool mean, const T* F, const double* Y, i64 m, i64 out, T* dF) {
  using std::exp;
  using std::log;
  const double scale = mean ? 1.0 / static_cast<double>(m) : 1.0;
  T total(0.0);
  for (i64 i = 0; i < m; ++i) {
    const T* f = F + i * out;
    double c = value(f[0]);
    for (i64 j = 1; j < out; ++j) c = std::fmax(c, value(f[j]));
    T sum(0.0);
    for (i64 j = 0; j < out; ++j) sum += exp(f[j] - T(c));
    const T lse = T(c) + log(sum);
    const auto label = static_cast<i64>(Y[i]);
    total += lse - f[label];
    if (dF)
      for (i64 j = 0; j < out; ++j)
        dF[i * out + j] = T(scale) * (exp(f[j] - lse) - T(j == label ? 1.0 : 0.0));
  }
  if (mean) total *= T(scale);
  return total;
}

}  // namespace

template <class T>
T loss_and_gradient(LossKind kind, const T* F, const double* Y, i64 m, i64 out, T* dF) {
  switch (kind) {
    case LossKind::sum: return squared(false, F, Y, m, out, dF);
    case LossKind::mean: return squared(true, F, Y, m, out, dF);
    case LossKind::cross_entropy: return cross_entropy(true, F, Y, m, out, dF);
    case LossKind::cross_entropy_sum: return cross_entropy(false, F, Y, m, out, dF);
  }
  return T(0.0);
}

template double loss_and_gradient(LossKind, const double*, const double*, i64, i64, double*);
template Dual loss_and_gradient(LossKind, const Dual*, const double*, i64, i64, Dual*);

}  // namespace bnfast
