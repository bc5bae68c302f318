#include "nn/ops/normalization.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>

#include "kernels/batchnorm.hpp"
#include "nn/running_stats.hpp"

namespace bnfast {

using i64 = std::int64_t;

namespace {

ZeroVarianceError layer_error(i64 l, const ZeroVarianceError& e, bool inference) {
  const std::string where =
      "layer " + std::to_string(l) + ", neuron " + std::to_string(e.channel) + ": ";
  return ZeroVarianceError(
      e.channel, where + (inference ? "the running variance is 0 and eps == 0, so inference "
                                      "divides by zero"
                                    : "the normalizing scale of the batch is 0 (a constant "
                                      "pre-activation) and eps == 0, so batch normalization "
                                      "divides by zero"));
}

// Inference with population statistics on any T: z = gamma (h - r_mean) / sqrt(r_var +
// eps) + beta per channel (the same formula for every scale, networks.md section 9).
template <class T>
void infer(const T* H, const Dims& dims, const double* r_mean, const double* r_var,
           const T* gamma, const T* beta, double eps, T* Z) {
  using std::sqrt;
  for (i64 j = 0; j < dims.c; ++j)
    if (eps == 0 && r_var[j] == 0) throw ZeroVarianceError(j, "running variance is 0");
  for_each_value(dims.n, dims.c, dims.s, [&](i64 at, i64 j) {
    Z[at] = gamma[j] * ((H[at] - T(r_mean[j])) / sqrt(T(r_var[j] + eps))) + beta[j];
  });
}

}  // namespace

template <class T>
const T* Normalization::gamma(Pass<T>& p) const {
  if (gamma_at_ >= 0) return p.params + gamma_at_;
  p.gamma.assign(spec.gamma.begin(), spec.gamma.end());
  return p.gamma.data();
}

template <class T>
const T* Normalization::beta(Pass<T>& p) const {
  if (beta_at_ >= 0) return p.params + beta_at_;
  p.beta.assign(spec.beta.begin(), spec.beta.end());
  return p.beta.data();
}

template <class T>
void Normalization::batch_forward(Pass<T>& p, const T* H, T* Z, State<T>& st) {
  const i64 n = channels_;
  const Dims d = dims(p.m);
  const bool inference = p.mode == Mode::inference;
  try {
    if (inference) {
      const double* rm = p.running + running_at_;
      if constexpr (std::is_same_v<T, double>)
        batch_norm_kernels<double>().forward_eval(H, d, rm, rm + n, gamma(p), beta(p),
                                                  spec.eps, Z, p.ws);
      else
        infer(H, d, rm, rm + n, gamma(p), beta(p), spec.eps, Z);
      return;
    }
    st.mean.resize(static_cast<std::size_t>(n));
    st.var.resize(static_cast<std::size_t>(n));
    st.invstd.resize(static_cast<std::size_t>(n));
    if constexpr (std::is_same_v<T, double>) {
      if (spec.scale == NormScale::std) {  // the fast kernels
        batch_norm_kernels<double>().forward_train(H, d, gamma(p), beta(p), spec.eps, Z,
                                                   st.mean.data(), st.var.data(),
                                                   st.invstd.data(), p.ws);
        return;
      }
    }
    block_forward(spec.scale, H, d, gamma(p), beta(p), spec.eps, Z, st.scale, p.work);
    for (i64 j = 0; j < n; ++j) {
      st.mean[j] = value(st.scale.mu[j]);
      st.var[j] = value(st.scale.s2[j]);
    }
  } catch (const ZeroVarianceError& e) {
    throw layer_error(layer_, e, inference);
  }
}

template <class T>
void Normalization::forward_on(Pass<T>& p, const T* H, T* Z) {
  State<T>& st = state_.get<T>();
  if (spec.kind == NormKind::batch) {
    batch_forward(p, H, Z, st);
  } else {
    try {
      row_forward(H, dims(p.m), spec.kind == NormKind::layer ? 1 : spec.groups, gamma(p),
                  beta(p), spec.eps, Z, st.rows);
    } catch (const ZeroVarianceError& e) {
      throw ZeroVarianceError(e.channel, "layer " + std::to_string(layer_) + ", " + e.what());
    }
  }
}

template <class T>
void Normalization::batch_backward(Pass<T>& p, const T* H, T* dZ, T* dH, State<T>& st) {
  const Dims d = dims(p.m);
  if (p.mode == Mode::inference) {  // z = gamma (h - r_mean) / sqrt(r_var + eps) + beta
    using std::sqrt;
    const double* rm = p.running + running_at_;
    const double* rv = rm + channels_;
    const T* g = gamma(p);
    p.work.resize(static_cast<std::size_t>(d.c));
    for (i64 j = 0; j < d.c; ++j) {
      st.dgamma[j] = st.dbeta[j] = T(0.0);
      p.work[j] = T(1.0) / sqrt(T(rv[j] + spec.eps));
    }
    for_each_value(d.n, d.c, d.s, [&](i64 at, i64 j) {
      st.dgamma[j] += dZ[at] * ((H[at] - T(rm[j])) * p.work[j]);
      st.dbeta[j] += dZ[at];
      dH[at] = dZ[at] * g[j] * p.work[j];
    });
    return;
  }
  if constexpr (std::is_same_v<T, double>) {
    if (spec.scale == NormScale::std) {  // the fast kernels
      batch_norm_kernels<double>().backward(dZ, H, d, st.mean.data(), st.invstd.data(),
                                            gamma(p), dH, st.dgamma.data(), st.dbeta.data(),
                                            p.ws);
      return;
    }
  }
  block_backward(spec.scale, H, dZ, d, gamma(p), dH, st.dgamma.data(), st.dbeta.data(),
                 st.scale, p.work);  // st.scale: this H's, from the train-mode forward
}

template <class T>
T* Normalization::backward_on(Pass<T>& p, const T* H, const T*, T* dZ, T* dH, bool) {
  State<T>& st = state_.get<T>();
  const i64 n = channels_;
  st.dgamma.resize(static_cast<std::size_t>(n));
  st.dbeta.resize(static_cast<std::size_t>(n));
  if (spec.kind == NormKind::batch)
    batch_backward(p, H, dZ, dH, st);
  else
    row_backward(dZ, dims(p.m), spec.kind == NormKind::layer ? 1 : spec.groups, gamma(p),
                 st.rows, dH, st.dgamma.data(), st.dbeta.data());
  if (gamma_at_ >= 0) {
    std::copy(st.dgamma.begin(), st.dgamma.end(), p.grad + gamma_at_);
    std::copy(st.dbeta.begin(), st.dbeta.end(), p.grad + beta_at_);
  }
  return dH;
}

void Normalization::update_running(double* running, i64 update, i64 m) const {
  if (running_at_ < 0) return;
  const i64 n = channels_;
  const double f = running_factor(spec, update), bessel = running_bessel(spec, m * positions_);
  double* rm = running + running_at_;
  double* rv = rm + n;
  const State<double>& st = state_.on_double;
  for (i64 j = 0; j < n; ++j) running_update(rm[j], rv[j], st.mean[j], st.var[j], f, bessel);
}

void Normalization::scale_statistics(int e) {
  State<double>& st = state_.on_double;
  for (std::size_t j = 0; j < st.mean.size(); ++j) {
    st.mean[j] = std::ldexp(st.mean[j], e);
    st.var[j] = std::ldexp(st.var[j], 2 * e);
  }
}

BNFAST_OP_INSTANTIATE(Normalization);

}  // namespace bnfast
