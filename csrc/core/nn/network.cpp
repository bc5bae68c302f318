#include "nn/network.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "linalg/matmul.hpp"
#include "nn/activation.hpp"

namespace bnfast {

using i64 = std::int64_t;

Network::Network(std::vector<LayerSpec> layers) : layers_(std::move(layers)) {
  if (layers_.empty()) throw std::invalid_argument("a network needs at least one layer");
  i64 offset = 0;
  for (std::size_t l = 0; l < layers_.size(); ++l) {
    const LayerSpec& L = layers_[l];
    // 2**40 float64 parameters are 8 TiB: a larger count is a mistake, and the
    // products below must not overflow.
    constexpr i64 kMaxParams = i64{1} << 40;
    if (L.in > kMaxParams / L.out || L.in * L.out > kMaxParams - offset)
      throw std::invalid_argument("layers[" + std::to_string(l) + "] has " +
                                  std::to_string(L.in) + " x " + std::to_string(L.out) +
                                  " weights: the network would have more than 2**40 "
                                  "parameters");
    if (l > 0 && L.in != layers_[l - 1].out)
      throw std::invalid_argument("layers[" + std::to_string(l) + "] has in_features " +
                                  std::to_string(L.in) + " but layers[" + std::to_string(l - 1) +
                                  "] has out_features " + std::to_string(layers_[l - 1].out));
    if (L.batch_norm && !L.bn_trainable &&
        (static_cast<i64>(L.gamma.size()) != L.out || static_cast<i64>(L.beta.size()) != L.out))
      throw std::invalid_argument("layers[" + std::to_string(l) +
                                  "]: constant gamma and beta need out_features values");
    offsets_.push_back(param_offsets(L, offset));
    offset = offsets_.back().end;
  }
  num_params_ = offset;
  const std::size_t n = layers_.size();
  H_.resize(n);
  Z_.resize(n);
  A_.resize(n);
  mean_.resize(n);
  var_.resize(n);
  invstd_.resize(n);
  i64 widest = 0;
  for (std::size_t l = 0; l < n; ++l) {
    widest = std::max({widest, layers_[l].in, layers_[l].out});
    if (layers_[l].batch_norm) {
      mean_[l].resize(layers_[l].out);
      var_[l].resize(layers_[l].out);
      invstd_[l].resize(layers_[l].out);
    }
  }
  grad_gamma_.resize(widest);
  grad_beta_.resize(widest);
}

bool Network::has_batch_norm() const {
  return std::any_of(layers_.begin(), layers_.end(), [](const LayerSpec& L) { return L.batch_norm; });
}

void Network::reserve(i64 m) {
  if (m <= reserved_m_) return;
  i64 widest = 0;
  for (std::size_t l = 0; l < layers_.size(); ++l) {
    const auto size = static_cast<std::size_t>(m * layers_[l].out);
    H_[l].resize(size);
    Z_[l].resize(size);
    A_[l].resize(size);
    widest = std::max({widest, layers_[l].in, layers_[l].out});
  }
  grad_a_.resize(static_cast<std::size_t>(m * widest));
  grad_z_.resize(static_cast<std::size_t>(m * widest));
  grad_h_.resize(static_cast<std::size_t>(m * widest));
  reserved_m_ = m;
}

void Network::forward_layers(const double* params, const double* X, i64 m) {
  reserve(m);
  const double* prev = X;
  for (std::size_t l = 0; l < layers_.size(); ++l) {
    const LayerSpec& L = layers_[l];
    const ParamOffsets& o = offsets_[l];
    // H = A W^T + b: bias rows, then the product accumulated on top of them.
    const double* W = params + o.w;
    w_t_.resize(static_cast<std::size_t>(L.in * L.out));
    for (i64 j = 0; j < L.out; ++j)
      for (i64 k = 0; k < L.in; ++k) w_t_[k * L.out + j] = W[j * L.in + k];
    double* H = H_[l].data();
    for (i64 i = 0; i < m; ++i) {
      double* h = H + i * L.out;
      if (o.b >= 0)
        std::copy(params + o.b, params + o.b + L.out, h);
      else
        std::fill(h, h + L.out, 0.0);
    }
    matmul_acc()(m, L.out, L.in, prev, L.in, w_t_.data(), L.out, H, L.out);
    const double* Z = H;
    if (L.batch_norm) {
      const double* gamma = L.bn_trainable ? params + o.gamma : L.gamma.data();
      const double* beta = L.bn_trainable ? params + o.beta : L.beta.data();
      try {
        batch_norm_kernels<double>().forward_train(H, Dims{m, L.out, 1}, gamma, beta, L.eps,
                                                   Z_[l].data(), mean_[l].data(),
                                                   var_[l].data(), invstd_[l].data(), ws_);
      } catch (const ZeroVarianceError& e) {
        throw ZeroVarianceError(e.channel, "layer " + std::to_string(l) + ", neuron " +
                                               std::to_string(e.channel) +
                                               ": the pre-activation is constant over the batch "
                                               "and eps == 0, so batch normalization divides by zero");
      }
      Z = Z_[l].data();
    }
    double* A = A_[l].data();
    const i64 size = m * L.out;
    if (L.activation == Activation::identity)
      std::copy(Z, Z + size, A);
    else
      for (i64 i = 0; i < size; ++i) A[i] = activate(L.activation, Z[i]);
    prev = A;
  }
}

void Network::forward(const double* params, const double* X, i64 m, double* out) {
  forward_layers(params, X, m);
  const std::vector<double>& A = A_.back();
  std::copy(A.begin(), A.begin() + m * out_features(), out);
}

double Network::loss(const double* params, const double* X, const double* Y, i64 m,
                     double* grad) {
  forward_layers(params, X, m);
  const i64 out = out_features();
  const double* F = A_.back().data();
  double total = 0;
  for (i64 i = 0; i < m * out; ++i) {
    const double r = Y[i] - F[i];
    total += r * r;
  }
  if (!grad) return total;

  // d loss / d A_L = 2 (f - y)
  double* dA = grad_a_.data();
  for (i64 i = 0; i < m * out; ++i) dA[i] = 2.0 * (F[i] - Y[i]);
  for (std::size_t l = layers_.size(); l-- > 0;) {
    const LayerSpec& L = layers_[l];
    const ParamOffsets& o = offsets_[l];
    const i64 size = m * L.out;
    const double* H = H_[l].data();
    const double* Zl = L.batch_norm ? Z_[l].data() : H;
    const double* A = A_[l].data();
    // through phi
    double* dZ = grad_z_.data();
    if (L.activation == Activation::identity)
      std::copy(dA, dA + size, dZ);
    else
      for (i64 i = 0; i < size; ++i) dZ[i] = dA[i] * derivative(L.activation, Zl[i], A[i]);
    // through BN (the kernel of the foundation)
    const double* dH = dZ;
    if (L.batch_norm) {
      const double* gamma = L.bn_trainable ? params + o.gamma : L.gamma.data();
      batch_norm_kernels<double>().backward(dZ, H, Dims{m, L.out, 1}, mean_[l].data(),
                                            invstd_[l].data(), gamma, grad_h_.data(),
                                            grad_gamma_.data(), grad_beta_.data(), ws_);
      if (L.bn_trainable) {
        std::copy(grad_gamma_.begin(), grad_gamma_.begin() + L.out, grad + o.gamma);
        std::copy(grad_beta_.begin(), grad_beta_.begin() + L.out, grad + o.beta);
      }
      dH = grad_h_.data();
    }
    // through the dense map: dW = dH^T A_prev, db = column sums of dH, dA_prev = dH W
    const double* prev = l == 0 ? X : A_[l - 1].data();
    grad_h_t_.resize(static_cast<std::size_t>(L.out * m));
    for (i64 i = 0; i < m; ++i)
      for (i64 j = 0; j < L.out; ++j) grad_h_t_[j * m + i] = dH[i * L.out + j];
    double* dW = grad + o.w;
    std::fill(dW, dW + L.out * L.in, 0.0);
    matmul_acc()(L.out, L.in, m, grad_h_t_.data(), m, prev, L.in, dW, L.in);
    if (o.b >= 0) {
      double* db = grad + o.b;
      std::fill(db, db + L.out, 0.0);
      for (i64 i = 0; i < m; ++i)
        for (i64 j = 0; j < L.out; ++j) db[j] += dH[i * L.out + j];
    }
    if (l > 0) {
      double* dPrev = grad_a_.data();  // dA is consumed: dZ/dH hold what is still needed
      std::fill(dPrev, dPrev + m * L.in, 0.0);
      matmul_acc()(m, L.in, L.out, dH, L.out, params + o.w, L.in, dPrev, L.in);
      dA = dPrev;
    }
  }
  return total;
}

}  // namespace bnfast
