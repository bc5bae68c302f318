// Fully connected networks as the papers define them (math.md sections 1-2):
// layer l maps A_{l-1} (m, in) to A_l = phi(BN(A_{l-1} W^T + b)) (m, out), BN optional,
// and the loss is sum_i ||y_i - f(x_i)||^2. Plain C++ on raw row-major double arrays.
//
// Flat parameter order (the public one): layer by layer, W (out, in) row-major, then b
// (if bias), then gamma, beta (if the layer has batch norm with trainable gamma/beta).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "batchnorm.hpp"

namespace bnfast {

enum class Activation { identity, sigmoid, tanh, relu };

// Parses "identity", "sigmoid", "tanh", "relu"; throws std::invalid_argument otherwise.
Activation activation_from_name(const std::string& name);

struct LayerSpec {
  std::int64_t in = 0, out = 0;
  Activation activation = Activation::identity;
  bool bias = true;
  bool batch_norm = false;
  bool bn_trainable = false;
  double eps = 0.0;
  std::vector<double> gamma, beta;  // (out,) constants, used when !bn_trainable
};

class Network {
 public:
  explicit Network(std::vector<LayerSpec> layers);  // throws std::invalid_argument

  std::int64_t num_params() const { return num_params_; }
  std::int64_t in_features() const { return layers_.front().in; }
  std::int64_t out_features() const { return layers_.back().out; }
  const std::vector<LayerSpec>& layers() const { return layers_; }
  bool has_batch_norm() const;

  // Outputs f(X) (m, out) with batch statistics over the m rows of X (m, in).
  void forward(const double* params, const double* X, std::int64_t m, double* out);

  // The loss over the m rows; when grad is not null, d loss / d params into grad.
  // Throws ZeroVarianceError (naming layer and neuron) when a BN layer with eps == 0
  // sees a constant pre-activation.
  double loss(const double* params, const double* X, const double* Y, std::int64_t m,
              double* grad);

 private:
  struct Offsets {
    std::int64_t w, b, gamma, beta;  // -1 when absent
  };
  void reserve(std::int64_t m);
  void forward_layers(const double* params, const double* X, std::int64_t m);

  std::vector<LayerSpec> layers_;
  std::vector<Offsets> offsets_;
  std::int64_t num_params_ = 0;
  std::int64_t reserved_m_ = 0;
  // Per layer, (m, out) each: pre-activations H, normalized Z, activations A.
  std::vector<std::vector<double>> H_, Z_, A_;
  std::vector<double> w_t_;       // W^T (in, out) of the current layer
  std::vector<double> grad_h_t_;  // dH^T (out, m) of the current layer
  std::vector<std::vector<double>> mean_, var_, invstd_;  // per BN layer, (out,)
  std::vector<double> grad_a_, grad_z_, grad_h_;          // (m, widest layer)
  std::vector<double> grad_gamma_, grad_beta_;            // (widest layer,)
  Workspace ws_;
};

}  // namespace bnfast
