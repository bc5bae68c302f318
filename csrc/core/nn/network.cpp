#include "nn/network.hpp"

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "kernels/batchnorm.hpp"
#include "linalg/matmul.hpp"
#include "nn/activation.hpp"
#include "nn/activation_array.hpp"
#include "nn/normalize.hpp"
#include "nn/running_stats.hpp"
#include "runtime/aligned_vector.hpp"
#include "runtime/parallel.hpp"

namespace bnfast {

using i64 = std::int64_t;

// The workspaces of one evaluation; double for loss and gradient, Dual for the hvp.
template <class T>
struct Network::Pass {
  i64 reserved_m = 0;
  // Per layer, (m, out) each: pre-activations H, BN outputs Z (after the noise),
  // activations A; S = A + the block's input at the end of a residual block.
  // The (m, width) arrays are cache-line aligned: products read them as rows of vectors.
  std::vector<AlignedVector<T>> H, Z, A, S;
  std::vector<AlignedVector<T>> skip_grad;             // per block end: d loss / d S
  std::vector<std::vector<double>> mean, var, invstd;  // per BN layer (out,); var = s^2
  AlignedVector<T> w_t;                                // W^T (in, out) of the current layer
  AlignedVector<T> w;  // W (out, in), when the caller's parameters are not aligned
  AlignedVector<T> grad_a, grad_z, grad_h;             // (m, widest layer)
  std::vector<T> grad_gamma, grad_beta;                // (widest layer,)
  std::vector<T> gamma, beta;                          // constant gamma, beta as T
  BlockScale<T> scale;                                 // BN statistics (normalize.hpp)
  std::vector<T> work;
  std::vector<T> params, x, grad;                      // Dual copies of the inputs (hvp)
  std::vector<double> split[6];                        // Dual products as double products
  Workspace ws;
};

namespace {

// C (m, n) = A (m, k) B (k, n), or C += A B when accumulate; A's entry (i, p) at
// A[i * ars + p * acs] (a transpose is read in place), B and C row-major.
void product(Network::Pass<double>&, i64 m, i64 n, i64 k, const double* A, i64 ars, i64 acs,
             const double* B, i64 ldb, double* C, i64 ldc, bool accumulate) {
  matmul_acc_threaded(m, n, k, MatrixView{A, ars, acs}, B, ldb, C, ldc, accumulate);
}

// On Dual numbers (A + A'e)(B + B'e) = AB + (A'B + AB')e: three double products (two
// when A is a constant, as the data X is).
void product(Network::Pass<Dual>& p, i64 m, i64 n, i64 k, const Dual* A, i64 ars, i64 acs,
             const Dual* B, i64 ldb, Dual* C, i64 ldc, bool accumulate) {
  // Copies the (rows, cols) operand into row-major values v and tangents d; returns
  // whether any tangent is non-zero.
  auto unzip = [](const Dual* src, i64 rows, i64 cols, i64 rs, i64 cs, std::vector<double>& v,
                  std::vector<double>& d) {
    v.resize(static_cast<std::size_t>(rows * cols));
    d.resize(v.size());
    bool tangent = false;
    for (i64 i = 0; i < rows; ++i)
      for (i64 j = 0; j < cols; ++j) {
        const Dual& x = src[i * rs + j * cs];
        v[i * cols + j] = x.v;
        d[i * cols + j] = x.d;
        tangent |= x.d != 0;
      }
    return tangent;
  };
  auto& s = p.split;
  const bool a_varies = unzip(A, m, k, ars, acs, s[0], s[1]);
  unzip(B, k, n, ldb, 1, s[2], s[3]);
  s[4].resize(static_cast<std::size_t>(m * n));
  s[5].resize(s[4].size());
  const MatmulAcc mm = matmul_acc();
  mm(m, n, k, MatrixView{s[0].data(), k, 1}, s[2].data(), n, s[4].data(), n, false);
  mm(m, n, k, MatrixView{s[0].data(), k, 1}, s[3].data(), n, s[5].data(), n, false);
  if (a_varies) mm(m, n, k, MatrixView{s[1].data(), k, 1}, s[2].data(), n, s[5].data(), n, true);
  for (i64 i = 0; i < m; ++i)
    for (i64 j = 0; j < n; ++j) {
      const Dual ab(s[4][i * n + j], s[5][i * n + j]);
      C[i * ldc + j] = accumulate ? C[i * ldc + j] + ab : ab;
    }
}

// dz = dout * phi'(z) elementwise, phi chosen outside the loop (a constant K lets the
// compiler drop the switch and vectorize).
template <Activation K, class T>
void chain_rule(const T* dout, const T* z, const T* a, T* dz, i64 n) {
  for (i64 i = 0; i < n; ++i) dz[i] = dout[i] * derivative(K, z[i], a[i]);
}
template <class T>
void chain_rule(Activation act, const T* dout, const T* z, const T* a, T* dz, i64 n) {
  switch (act) {
    case Activation::sigmoid: return chain_rule<Activation::sigmoid>(dout, z, a, dz, n);
    case Activation::tanh: return chain_rule<Activation::tanh>(dout, z, a, dz, n);
    case Activation::relu: return chain_rule<Activation::relu>(dout, z, a, dz, n);
    case Activation::identity: return chain_rule<Activation::identity>(dout, z, a, dz, n);
  }
}

// a = phi(z) elementwise, phi chosen outside the loop.
template <Activation K, class T>
void activate_all(const T* z, T* a, i64 n) {
  for (i64 i = 0; i < n; ++i) a[i] = activate(K, z[i]);
}
template <class T>
void activate_all(Activation act, const T* z, T* a, i64 n) {
  switch (act) {
    case Activation::sigmoid: return activate_all<Activation::sigmoid>(z, a, n);
    case Activation::tanh: return activate_all<Activation::tanh>(z, a, n);
    case Activation::relu: return activate_all<Activation::relu>(z, a, n);
    case Activation::identity: return activate_all<Activation::identity>(z, a, n);
  }
}

// f(begin, end) over the elements of an (m, width) block, rows split across threads
// (elementwise passes: the split changes no result).
template <class F>
void split_rows(i64 m, i64 width, F&& f) {
  const int chunks = chunk_count(m * width, m);
  parallel_chunks(chunks, [&](int c) {
    f(chunk_begin(m, chunks, c) * width, chunk_begin(m, chunks, c + 1) * width);
  });
}

ZeroVarianceError layer_error(std::size_t l, const ZeroVarianceError& e, bool inference) {
  const std::string where =
      "layer " + std::to_string(l) + ", neuron " + std::to_string(e.channel) + ": ";
  return ZeroVarianceError(
      e.channel, where + (inference ? "the running variance is 0 and eps == 0, so inference "
                                      "divides by zero"
                                    : "the normalizing scale of the batch is 0 (a constant "
                                      "pre-activation) and eps == 0, so batch normalization "
                                      "divides by zero"));
}

}  // namespace

Network::Network(std::vector<LayerSpec> layers, LossKind loss)
    : layers_(std::move(layers)), loss_kind_(loss) {
  if (layers_.empty()) throw std::invalid_argument("a network needs at least one layer");
  i64 offset = 0, block_limit = 0;
  block_end_.assign(layers_.size(), -1);
  for (std::size_t l = 0; l < layers_.size(); ++l) {
    const LayerSpec& L = layers_[l];
    const std::string name = "layers[" + std::to_string(l) + "]";
    // 2**40 float64 parameters are 8 TiB: a larger count is a mistake, and the
    // products below must not overflow.
    constexpr i64 kMaxParams = i64{1} << 40;
    if (L.in > kMaxParams / L.out || L.in * L.out > kMaxParams - offset)
      throw std::invalid_argument(name + " has " + std::to_string(L.in) + " x " +
                                  std::to_string(L.out) +
                                  " weights: the network would have more than 2**40 "
                                  "parameters");
    if (l > 0 && L.in != layers_[l - 1].out)
      throw std::invalid_argument(name + " has in_features " + std::to_string(L.in) +
                                  " but layers[" + std::to_string(l - 1) +
                                  "] has out_features " + std::to_string(layers_[l - 1].out));
    if (L.batch_norm && !L.bn_trainable &&
        (static_cast<i64>(L.gamma.size()) != L.out || static_cast<i64>(L.beta.size()) != L.out))
      throw std::invalid_argument(name + ": constant gamma and beta need out_features values");
    if (L.skip_from >= 0) {
      const i64 start = L.skip_from;
      if (start > static_cast<i64>(l) || start < block_limit)
        throw std::invalid_argument(name + ": a residual block must start at this layer or "
                                           "an earlier one, after the previous block");
      if (layers_[start].in != L.out)
        throw std::invalid_argument(name + ": a residual block must map n features to n, "
                                           "got " + std::to_string(layers_[start].in) +
                                    " -> " + std::to_string(L.out));
      block_end_[start] = static_cast<i64>(l);
      block_limit = static_cast<i64>(l) + 1;
    }
    offsets_.push_back(param_offsets(L, offset));
    offset = offsets_.back().end;
    running_offsets_.push_back(L.batch_norm ? num_running_ : -1);
    if (L.batch_norm) num_running_ += 2 * L.out;
  }
  num_params_ = offset;
  values_ = std::make_unique<Pass<double>>();
}

Network::~Network() = default;

bool Network::has_batch_norm() const {
  return std::any_of(layers_.begin(), layers_.end(), [](const LayerSpec& L) { return L.batch_norm; });
}

namespace {

template <class T>
void reserve(Network::Pass<T>& p, const std::vector<LayerSpec>& layers, i64 m) {
  if (m <= p.reserved_m) return;
  const std::size_t n = layers.size();
  for (auto* v : {&p.H, &p.Z, &p.A, &p.S, &p.skip_grad}) v->resize(n);
  for (auto* v : {&p.mean, &p.var, &p.invstd}) v->resize(n);
  i64 widest = 0;
  for (std::size_t l = 0; l < n; ++l) {
    const LayerSpec& L = layers[l];
    const auto size = static_cast<std::size_t>(m * L.out);
    p.H[l].resize(size);
    p.Z[l].resize(L.batch_norm ? size : 0);
    p.A[l].resize(L.activation != Activation::identity ? size : 0);
    p.S[l].resize(L.skip_from >= 0 ? size : 0);
    p.skip_grad[l].resize(L.skip_from >= 0 ? size : 0);
    for (auto* v : {&p.mean, &p.var, &p.invstd}) (*v)[l].resize(L.batch_norm ? L.out : 0);
    widest = std::max({widest, L.in, L.out});
  }
  for (auto* v : {&p.grad_a, &p.grad_z, &p.grad_h})
    v->resize(static_cast<std::size_t>(m * widest));
  p.grad_gamma.resize(widest);
  p.grad_beta.resize(widest);
  p.reserved_m = m;
}

// The activations of layer l; an identity layer's are its BN outputs (or H), not copied.
template <class T>
const T* activations(const Network::Pass<T>& p, const std::vector<LayerSpec>& layers,
                     std::size_t l) {
  const LayerSpec& L = layers[l];
  if (L.activation != Activation::identity) return p.A[l].data();
  return L.batch_norm ? p.Z[l].data() : p.H[l].data();
}

// The output of layer l: its activations, or their sum with the block input.
template <class T>
const T* layer_output(const Network::Pass<T>& p, const std::vector<LayerSpec>& layers,
                      std::size_t l) {
  return layers[l].skip_from >= 0 ? p.S[l].data() : activations(p, layers, l);
}

// gamma (or beta) of a BN layer as T values: its params, or its constants.
template <class T>
const T* affine_of(const LayerSpec& L, std::int64_t offset, const std::vector<double>& constant,
                   const T* params, std::vector<T>& buffer) {
  if (L.bn_trainable) return params + offset;
  buffer.assign(constant.begin(), constant.end());
  return buffer.data();
}

}  // namespace

template <class T>
void Network::forward_pass(Pass<T>& p, const T* params, const T* X, i64 m,
                           const BatchNoise* noise, const double* running) {
  reserve(p, layers_, m);
  const T* prev = X;
  for (std::size_t l = 0; l < layers_.size(); ++l) {
    const LayerSpec& L = layers_[l];
    const ParamOffsets& o = offsets_[l];
    // H = A W^T + b: bias rows, then the product accumulated on top of them.
    const T* W = params + o.w;
    p.w_t.resize(static_cast<std::size_t>(L.in * L.out));
    for (i64 k = 0; k < L.in; ++k)  // writes in order, reads strided (cheaper than the reverse)
      for (i64 j = 0; j < L.out; ++j) p.w_t[k * L.out + j] = W[j * L.in + k];
    T* H = p.H[l].data();
    if (o.b >= 0)
      for (i64 i = 0; i < m; ++i) std::copy(params + o.b, params + o.b + L.out, H + i * L.out);
    product(p, m, L.out, L.in, prev, L.in, 1, p.w_t.data(), L.out, H, L.out, o.b >= 0);
    const T* Z = H;
    if (L.batch_norm) {
      T* Zl = p.Z[l].data();
      try {
        if constexpr (std::is_same_v<T, double>) {
          const double* gamma = L.bn_trainable ? params + o.gamma : L.gamma.data();
          const double* beta = L.bn_trainable ? params + o.beta : L.beta.data();
          const Dims dims{m, L.out, 1};
          if (running) {  // inference: the same formula for every norm (section 9)
            const double* rm = running + running_offsets_[l];
            batch_norm_kernels<double>().forward_eval(H, dims, rm, rm + L.out, gamma, beta,
                                                      L.eps, Zl, p.ws);
          } else if (L.norm == Norm::std) {
            batch_norm_kernels<double>().forward_train(H, dims, gamma, beta, L.eps, Zl,
                                                       p.mean[l].data(), p.var[l].data(),
                                                       p.invstd[l].data(), p.ws);
          }
        }
        if (!running && (L.norm != Norm::std || !std::is_same_v<T, double>)) {
          const T* gamma = affine_of(L, o.gamma, L.gamma, params, p.gamma);
          const T* beta = affine_of(L, o.beta, L.beta, params, p.beta);
          block_forward(L.norm, H, m, L.out, gamma, beta, L.eps, Zl, p.scale, p.work);
          for (i64 j = 0; j < L.out; ++j) {
            p.mean[l][j] = value(p.scale.mu[j]);
            p.var[l][j] = value(p.scale.s2[j]);
          }
        }
      } catch (const ZeroVarianceError& e) {
        throw layer_error(l, e, running != nullptr);
      }
      if (noise && !noise->scale[l].empty()) {
        const double* s = noise->scale[l].data();
        const double* mm = noise->shift[l].data();
        for (i64 i = 0; i < m * L.out; ++i) Zl[i] = T(s[i]) * Zl[i] + T(mm[i]);
      }
      Z = Zl;
    }
    const i64 size = m * L.out;
    if (L.activation != Activation::identity) {
      T* A = p.A[l].data();
      split_rows(m, L.out, [&](i64 b, i64 e) {
        if constexpr (std::is_same_v<T, double>)
          activate_array(L.activation, Z + b, A + b, e - b);  // vectorised, bound in its header
        else
          activate_all(L.activation, Z + b, A + b, e - b);  // Dual: phi'' rides along
      });
    }
    const T* A = activations(p, layers_, l);
    prev = A;
    if (L.skip_from >= 0) {
      const T* input = L.skip_from == 0 ? X : layer_output(p, layers_, L.skip_from - 1);
      T* S = p.S[l].data();
      for (i64 i = 0; i < size; ++i) S[i] = A[i] + input[i];
      prev = S;
    }
  }
}

template <class T>
T Network::loss_pass(Pass<T>& p, const T* params, const T* X, const double* Y, i64 m, T* grad,
                     const BatchNoise* noise) {
  forward_pass(p, params, X, m, noise, nullptr);
  const i64 out = out_features();
  const T* F = layer_output(p, layers_, layers_.size() - 1);
  const double scale = loss_kind_ == LossKind::mean ? 1.0 / static_cast<double>(m) : 1.0;
  T total(0.0);
  for (i64 i = 0; i < m * out; ++i) {
    const T r = T(Y[i]) - F[i];
    total += r * r;
  }
  if (loss_kind_ == LossKind::mean) total *= T(scale);
  if (!grad) return total;

  // d loss / d (output of the last layer) = 2 (f - y) (/ m for the mean)
  T* dOut = p.grad_a.data();
  for (i64 i = 0; i < m * out; ++i) dOut[i] = T(2.0 * scale) * (F[i] - T(Y[i]));
  for (std::size_t l = layers_.size(); l-- > 0;) {
    const LayerSpec& L = layers_[l];
    const ParamOffsets& o = offsets_[l];
    const i64 size = m * L.out;
    // the block's output S = A + input: dA = dS, and dS also reaches the input (below)
    if (L.skip_from >= 0) std::copy(dOut, dOut + size, p.skip_grad[l].data());
    const T* H = p.H[l].data();
    const T* Zl = L.batch_norm ? p.Z[l].data() : H;
    const T* A = activations(p, layers_, l);
    // through phi; BN reads dZ into grad_h, so there an identity needs no copy
    T* dZ = p.grad_z.data();
    if (L.activation == Activation::identity && L.batch_norm)
      dZ = dOut;
    else if (L.activation == Activation::identity)
      std::copy(dOut, dOut + size, dZ);
    else
      split_rows(m, L.out, [&](i64 b, i64 e) {
        chain_rule(L.activation, dOut + b, Zl + b, A + b, dZ + b, e - b);
      });
    // through the noise (a constant) and BN
    const T* dH = dZ;
    if (L.batch_norm) {
      if (noise && !noise->scale[l].empty()) {
        const double* s = noise->scale[l].data();
        for (i64 i = 0; i < size; ++i) dZ[i] *= T(s[i]);
      }
      bool done = false;
      if constexpr (std::is_same_v<T, double>) {
        if (L.norm == Norm::std) {
          const double* gamma = L.bn_trainable ? params + o.gamma : L.gamma.data();
          batch_norm_kernels<double>().backward(dZ, H, Dims{m, L.out, 1}, p.mean[l].data(),
                                                p.invstd[l].data(), gamma, p.grad_h.data(),
                                                p.grad_gamma.data(), p.grad_beta.data(), p.ws);
          done = true;
        }
      }
      if (!done)
        block_backward(L.norm, H, dZ, m, L.out, affine_of(L, o.gamma, L.gamma, params, p.gamma),
                       L.eps, p.grad_h.data(), p.grad_gamma.data(), p.grad_beta.data(), p.scale,
                       p.work);
      if (L.bn_trainable) {
        std::copy(p.grad_gamma.begin(), p.grad_gamma.begin() + L.out, grad + o.gamma);
        std::copy(p.grad_beta.begin(), p.grad_beta.begin() + L.out, grad + o.beta);
      }
      dH = p.grad_h.data();
    }
    // through the dense map: dW = dH^T A_prev, db = column sums of dH, dA_prev = dH W
    const T* prev = l == 0 ? X : layer_output(p, layers_, l - 1);
    product(p, L.out, L.in, m, dH, 1, L.out, prev, L.in, grad + o.w, L.in, false);  // dH^T A
    if (o.b >= 0) {
      T* db = grad + o.b;
      std::fill(db, db + L.out, T(0.0));
      for (i64 i = 0; i < m; ++i)
        for (i64 j = 0; j < L.out; ++j) db[j] += dH[i * L.out + j];
    }
    if (l > 0) {
      T* dPrev = p.grad_a.data();  // dOut is consumed: grad_z/grad_h hold what is still needed
      product(p, m, L.in, L.out, dH, L.out, 1, cache_line_aligned(params + o.w, L.in * L.out, p.w), L.in,
              dPrev, L.in, false);
      if (block_end_[l] >= 0) {  // the skip connection's share
        const T* skip = p.skip_grad[block_end_[l]].data();
        for (i64 i = 0; i < m * L.in; ++i) dPrev[i] += skip[i];
      }
      dOut = dPrev;
    }
  }
  return total;
}

void Network::forward(const double* params, const double* X, i64 m, double* out) {
  const FineGrain grain(kStepGrain);
  forward_pass(*values_, params, X, m, nullptr, nullptr);
  const double* F = layer_output(*values_, layers_, layers_.size() - 1);
  std::copy(F, F + m * out_features(), out);
}

void Network::predict(const double* params, const double* running, const double* X, i64 m,
                      double* out) {
  const FineGrain grain(kStepGrain);
  // a network without BN has no running statistics: any non-null pointer selects inference
  static const double none = 0.0;
  forward_pass(*values_, params, X, m, nullptr, running ? running : &none);
  const double* F = layer_output(*values_, layers_, layers_.size() - 1);
  std::copy(F, F + m * out_features(), out);
}

double Network::loss(const double* params, const double* X, const double* Y, i64 m,
                     double* grad, const BatchNoise* noise) {
  const FineGrain grain(kStepGrain);
  return loss_pass(*values_, params, X, Y, m, grad, noise);
}

double Network::hvp(const double* params, const double* X, const double* Y, i64 m,
                    const double* v, double* grad, double* hv) {
  if (!tangents_) tangents_ = std::make_unique<Pass<Dual>>();
  Pass<Dual>& p = *tangents_;
  const i64 P = num_params_;
  p.params.resize(P);
  for (i64 k = 0; k < P; ++k) p.params[k] = Dual(params[k], v[k]);
  p.x.assign(X, X + m * in_features());  // constants: zero tangent
  p.grad.resize(P);
  const Dual total = loss_pass(p, p.params.data(), p.x.data(), Y, m, p.grad.data(), nullptr);
  for (i64 k = 0; k < P; ++k) {
    hv[k] = p.grad[k].d;
    if (grad) grad[k] = p.grad[k].v;
  }
  return total.v;
}

void Network::update_running(double* running, i64 update, i64 m) const {
  for (std::size_t l = 0; l < layers_.size(); ++l) {
    const LayerSpec& L = layers_[l];
    if (!L.batch_norm) continue;
    const double f = running_factor(L, update), bessel = running_bessel(L, m);
    double* rm = running + running_offsets_[l];
    double* rv = rm + L.out;
    const double* mean = values_->mean[l].data();
    const double* var = values_->var[l].data();
    for (i64 j = 0; j < L.out; ++j) running_update(rm[j], rv[j], mean[j], var[j], f, bessel);
  }
}

}  // namespace bnfast
