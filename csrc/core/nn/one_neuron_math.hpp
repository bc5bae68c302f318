// The maths of one step of one BN neuron (the one-neuron class of nn/one_neuron_step.hpp), written
// once for a value type T: double (bnfast.train, nn/one_neuron_train.cpp) or a vector of lanes,
// one instance each (bnfast.train_many, nn/train_many_isa.cpp). Element-wise vector
// arithmetic rounds as the scalar one does, so every lane computes bit for bit what
// bnfast.train computes for its instance.
//
// The neuron: h = X w + b (m rows), BN z = gamma (h - mean)/sqrt(var + eps) + beta, loss
// s sum_i (z_i - y_i)^2 (s = 1, or 1/m for the mean). The step centres X once and works on
// hc = Xc w = h - mean (BN removes b and the mean), with dW = Xc^T dh (sum_i dh_i = 0).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

namespace bnfast {

constexpr int kOneNeuronMaxInputs = 8;   // in_features handled by the one-neuron step
constexpr int kOneNeuronMaxSamples = 64;  // samples handled by the one-neuron step

// The step must inline into its loop, so that its state stays in registers; what it
// calls on rare paths must not (it would crowd the hot loop).
#if defined(__GNUC__)
#define BNFAST_HOT inline __attribute__((always_inline))
#define BNFAST_COLD __attribute__((noinline, cold))
#else
#define BNFAST_HOT inline
#define BNFAST_COLD
#endif

// The operations on T that are not arithmetic operators, comparisons included (a vector
// type brings its own, see nn/train_many_isa.cpp: compilers split wide vector
// comparisons lane by lane). Mask: the type of a comparison, combined with & and |.
struct ScalarOps {
  using Mask = bool;
  static double sqrt(double x) { return std::sqrt(x); }
  static double abs(double x) { return std::fabs(x); }
  static double max(double a, double b) { return std::max(a, b); }
  static bool ge(double a, double b) { return a >= b; }
  static bool finite(double x) { return x - x == 0; }  // false for inf and NaN
  static bool all(bool m) { return m; }
};

// Sum of f(Lo), ..., f(Lo + N - 1) as a balanced tree: a short dependency chain.
template <int Lo, int N>
struct Tree {
  template <class F>
  static BNFAST_HOT auto sum(const F& f) {
    if constexpr (N == 1)
      return f(Lo);
    else
      return Tree<Lo, N / 2>::sum(f) + Tree<Lo + N / 2, N - N / 2>::sum(f);
  }
};

// f(std::integral_constant<int, M>{}) with M the row count compiled in for (IN, m): 2, 3
// or 4 when IN <= 4 (the whole step then lives in registers), else 0 (a run-time count).
// The one rule for train's one-neuron step and train_many: their sums, and so their bits,
// must agree (a tree sum and a chain sum differ in the sign of a zero).
template <int IN, class F>
decltype(auto) with_row_count(std::int64_t m, F&& f) {
  if constexpr (IN <= 4) {
    switch (m) {
      case 2: return f(std::integral_constant<int, 2>{});
      case 3: return f(std::integral_constant<int, 3>{});
      case 4: return f(std::integral_constant<int, 4>{});
      default: break;
    }
  }
  return f(std::integral_constant<int, 0>{});
}

// Sum of f(i) over the rows: a tree for a compile-time count M, else four chains (short
// dependency chains, and pairs the compiler can put in one vector register).
template <int M, class T, class F>
BNFAST_HOT T row_sum(int m, const F& f) {
  if constexpr (M > 0) {
    return Tree<0, M>::sum(f);
  } else {
    T s0{}, s1{}, s2{}, s3{};
    int i = 0;
    for (; i + 4 <= m; i += 4) {
      s0 += f(i);
      s1 += f(i + 1);
      s2 += f(i + 2);
      s3 += f(i + 3);
    }
    for (; i < m; ++i) s0 += f(i);
    return (s0 + s1) + (s2 + s3);
  }
}

// The learning set, centred once; for a vector T, lane l holds instance l's.
template <int IN, int M, class T>  // M = 0: the row count m is known at run time only
struct CentredSet {
  static constexpr int R = M > 0 ? M : kOneNeuronMaxSamples;
  int m = 0;
  T xc[IN][R];  // column by column: the sums over rows read contiguous values
  T y[R];
  T xbar[IN];  // column means
  T xmax[IN];  // max_i |x_ik|: with |w| and |b|, the scale of h's rounding errors

  // Sets lane `lane` (T = double: the value) from X (m, IN) and Y (m,).
  void set(int lane, const double* X, const double* Y) {
    for (int k = 0; k < IN; ++k) {
      // shifted by the first row, so a constant column centres to exactly 0
      double s = 0, big = 0;
      for (int i = 0; i < m; ++i) {
        s += X[i * IN + k] - X[k];
        big = std::max(big, std::fabs(X[i * IN + k]));
      }
      const double mean = X[k] + s / m;
      put(xbar[k], lane, mean);
      put(xmax[k], lane, big);
      for (int i = 0; i < m; ++i) put(xc[k][i], lane, X[i * IN + k] - mean);
    }
    for (int i = 0; i < m; ++i) put(y[i], lane, Y[i]);
  }

 private:
  static void put(T& to, int lane, double v) {
    if constexpr (sizeof(T) == sizeof(double))
      to = v;
    else
      to[lane] = v;
  }
};

// What does not vary between instances or steps.
struct NeuronShape {
  bool bias = false, trainable = false;
  double eps = 0, inv_m = 1, scale = 1, two_scale = 2;  // s and 2 s of the loss
};

template <int IN, class T>
struct NeuronParams {
  T w[IN];
  T b, gamma, beta;  // b: 0 without bias; gamma, beta: the constants when frozen
};

// One evaluation: the loss and the batch statistics; with the gradient, d loss / d w =
// coef * u, and those of b, gamma, beta.
template <int IN, class T>
struct NeuronStep {
  T loss, mean, var;
  T coef, u[IN], db, dgamma, dbeta;
};

// Evaluates the neuron at p. Returns, per lane, whether the step is ordinary: false when
// the batch variance lies within the rounding level of h (~2^-52 (|b| + sum_k max|x_k|
// |w_k|), enlarged to 2^-33 of it), below 2^-960 with eps == 0 (where the BN kernels
// rescale), or var + eps outside [2^-500, 2^500]. Such a lane's step belongs to the
// general kernels (Network::loss), which also raise the zero-variance error; its
// results here are meaningless.
template <class Ops, int IN, int M, class T>
BNFAST_HOT typename Ops::Mask neuron_step(const CentredSet<IN, M, T>& d, const NeuronShape& s,
                                          const NeuronParams<IN, T>& p, bool grad,
                                          NeuronStep<IN, T>& out) {
  const int m = M > 0 ? M : d.m;
  constexpr int R = CentredSet<IN, M, T>::R;
  T hc[R];
  for (int i = 0; i < m; ++i) hc[i] = Tree<0, IN>::sum([&](int k) { return d.xc[k][i] * p.w[k]; });
  const T var = row_sum<M, T>(m, [&](int i) { return hc[i] * hc[i]; }) * s.inv_m;
  const T v = var + s.eps;
  T tol = Ops::abs(p.b);
  for (int k = 0; k < IN; ++k) tol += d.xmax[k] * Ops::abs(p.w[k]);
  tol *= 0x1p-33;
  const T floor = Ops::max(tol * tol, T{} + (s.eps == 0 ? 0x1p-960 : 0.0));
  const typename Ops::Mask ok =
      Ops::ge(var, floor) & Ops::ge(v, T{} + 0x1p-500) & Ops::ge(T{} + 0x1p500, v);
  out.mean = Tree<0, IN>::sum([&](int k) { return d.xbar[k] * p.w[k]; }) + p.b;
  out.var = var;
  // Ordered for a short dependency chain from w to the next w: 1/v runs beside
  // sqrt(v), and everything that needs only hc and v is ready before the residuals.
  const T inv_v = 1.0 / v;
  const T sd = Ops::sqrt(v);
  const T invstd = sd * inv_v;         // 1/sqrt(v)
  const T a = sd * (p.gamma * inv_v);  // gamma/sqrt(v)
  T r[R];                              // z - y, z = a hc + beta
  for (int i = 0; i < m; ++i) r[i] = hc[i] * a + (p.beta - d.y[i]);
  out.loss = row_sum<M, T>(m, [&](int i) { return r[i] * r[i]; }) * s.scale;
  if (!grad) return ok;
  // With g = 2s r and zhat = hc/sqrt(v), the BN backward pass is
  // dh_i = 2s a (r_i - mean(r) - hc_i t), t = sum_j r_j hc_j / (m v), and dW = Xc^T dh,
  // which is 2s a sum_i r_i (xc_ik - hc_i q_k), q_k = sum_j hc_j xc_jk / (m v).
  const T inv_mv = inv_v * s.inv_m;
  for (int k = 0; k < IN; ++k) {
    const T q = row_sum<M, T>(m, [&](int i) { return hc[i] * d.xc[k][i]; }) * inv_mv;
    out.u[k] = row_sum<M, T>(m, [&](int i) { return r[i] * (d.xc[k][i] - hc[i] * q); });
  }
  out.coef = s.two_scale * a;
  if (s.trainable || s.bias) {
    const T rh = row_sum<M, T>(m, [&](int i) { return r[i] * hc[i]; });
    const T rsum = row_sum<M, T>(m, [&](int i) { return r[i]; });
    out.dgamma = s.two_scale * invstd * rh;  // sum_i g_i zhat_i
    out.dbeta = s.two_scale * rsum;          // sum_i g_i
    if (s.bias) {  // 0 in exact arithmetic: its rounding, as the general step has
      const T rbar = rsum * s.inv_m, t = rh * inv_mv;
      out.db = row_sum<M, T>(m, [&](int i) { return out.coef * ((r[i] - rbar) - hc[i] * t); });
    }
  }
  return ok;
}

// p -= lr * gradient (lr: a scalar or per lane). Returns, per lane, whether the new
// values are finite (their x - x sum to 0 exactly when all are finite).
template <class Ops, int IN, class T, class L>
BNFAST_HOT typename Ops::Mask neuron_update(const NeuronShape& s, const NeuronStep<IN, T>& g,
                                            L lr, NeuronParams<IN, T>& p) {
  const T step = lr * g.coef;
  T check{};
  for (int k = 0; k < IN; ++k) {
    p.w[k] -= step * g.u[k];
    check += p.w[k] - p.w[k];
  }
  if (s.bias) {
    p.b -= lr * g.db;
    check += p.b - p.b;
  }
  if (s.trainable) {
    p.gamma -= lr * g.dgamma;
    p.beta -= lr * g.dbeta;
    check += (p.gamma - p.gamma) + (p.beta - p.beta);
  }
  return Ops::finite(check);
}

}  // namespace bnfast
