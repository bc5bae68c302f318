// Fully connected networks as the papers define them (docs/math/networks.md):
// layer l maps A_{l-1} (m, in) to A_l = phi(BN(A_{l-1} W^T + b)) (m, out), BN optional,
// and the loss is sum_i ||y_i - f(x_i)||^2. Plain C++ on raw row-major double arrays;
// the flat parameter order is nn/layer.hpp's.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/batchnorm.hpp"
#include "nn/layer.hpp"

namespace bnfast {

class Network {
 public:
  // Throws std::invalid_argument when the layers do not chain (in == previous out) or
  // a constant gamma/beta does not have out values: the structure every loop relies on.
  explicit Network(std::vector<LayerSpec> layers);

  std::int64_t num_params() const { return num_params_; }
  std::int64_t in_features() const { return layers_.front().in; }
  std::int64_t out_features() const { return layers_.back().out; }
  const std::vector<LayerSpec>& layers() const { return layers_; }
  const std::vector<ParamOffsets>& layer_offsets() const { return offsets_; }
  bool has_batch_norm() const;

  // Outputs f(X) (m, out) with batch statistics over the m rows of X (m, in).
  void forward(const double* params, const double* X, std::int64_t m, double* out);

  // The loss over the m rows; when grad is not null, d loss / d params into grad.
  // Throws ZeroVarianceError (naming layer and neuron) when a BN layer with eps == 0
  // sees a constant pre-activation.
  double loss(const double* params, const double* X, const double* Y, std::int64_t m,
              double* grad);

 private:
  void reserve(std::int64_t m);
  void forward_layers(const double* params, const double* X, std::int64_t m);

  std::vector<LayerSpec> layers_;
  std::vector<ParamOffsets> offsets_;
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
