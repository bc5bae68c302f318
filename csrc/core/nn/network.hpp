// Fully connected networks as the papers define them (docs/math/networks.md):
// layer l maps A_{l-1} (m, in) to A_l = phi(BN(A_{l-1} W^T + b)) (m, out), BN optional
// (with its variants and noise), residual blocks x + block(x), and the loss
// sum_i ||y_i - f(x_i)||^2 (or that / m). Plain C++ on raw row-major double arrays;
// the flat parameter order is nn/layer.hpp's.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "nn/dual.hpp"
#include "nn/layer.hpp"
#include "nn/noise.hpp"

namespace bnfast {

enum class LossKind { sum, mean };

class Network {
 public:
  // Throws std::invalid_argument when the layers do not chain (in == previous out), a
  // constant gamma/beta does not have out values, or a residual block is not a block
  // (it must start at an earlier layer, not overlap another, and map n features to n).
  explicit Network(std::vector<LayerSpec> layers, LossKind loss = LossKind::sum);
  ~Network();
  Network(const Network&) = delete;
  Network& operator=(const Network&) = delete;

  std::int64_t num_params() const { return num_params_; }
  std::int64_t in_features() const { return layers_.front().in; }
  std::int64_t out_features() const { return layers_.back().out; }
  const std::vector<LayerSpec>& layers() const { return layers_; }
  const std::vector<ParamOffsets>& layer_offsets() const { return offsets_; }
  LossKind loss_kind() const { return loss_kind_; }
  bool has_batch_norm() const;

  // The running statistics live in one flat vector owned by the caller: per BN layer,
  // running_mean (out,) at running_offsets()[l], then running_var (out,). -1 for layers
  // without BN.
  const std::vector<std::int64_t>& running_offsets() const { return running_offsets_; }
  std::int64_t num_running() const { return num_running_; }

  // Outputs f(X) (m, out) with batch statistics over the m rows of X (m, in).
  void forward(const double* params, const double* X, std::int64_t m, double* out);

  // Inference: BN layers use the running statistics; rows are independent (m >= 1).
  void predict(const double* params, const double* running, const double* X, std::int64_t m,
               double* out);

  // The loss over the m rows; when grad is not null, d loss / d params into grad. noise
  // (one training step's draws, or null) perturbs the BN outputs. Throws
  // ZeroVarianceError (naming layer and neuron) when a BN layer with eps == 0 sees a
  // zero scale.
  double loss(const double* params, const double* X, const double* Y, std::int64_t m,
              double* grad, const BatchNoise* noise = nullptr);

  // hv = (d^2 loss / d params^2) v, forward-over-reverse; also the gradient into grad
  // when not null. Returns the loss.
  double hvp(const double* params, const double* X, const double* Y, std::int64_t m,
             const double* v, double* grad, double* hv);

  // One update of the running statistics from the batch statistics of the last
  // train-mode evaluation (of m rows); `update` counts from 1 (momentum None: 1/update).
  void update_running(double* running, std::int64_t update, std::int64_t m) const;

  template <class T>
  struct Pass;  // the workspaces of one evaluation on double or Dual (network.cpp)

 private:
  template <class T>
  void forward_pass(Pass<T>& p, const T* params, const T* X, std::int64_t m,
                    const BatchNoise* noise, const double* running);
  template <class T>
  T loss_pass(Pass<T>& p, const T* params, const T* X, const double* Y, std::int64_t m,
              T* grad, const BatchNoise* noise);

  std::vector<LayerSpec> layers_;
  std::vector<ParamOffsets> offsets_;
  std::vector<std::int64_t> block_end_;  // per layer: the last layer of the block it starts, or -1
  std::vector<std::int64_t> running_offsets_;
  std::int64_t num_params_ = 0, num_running_ = 0;
  LossKind loss_kind_;
  std::unique_ptr<Pass<double>> values_;
  std::unique_ptr<Pass<Dual>> tangents_;    // created by the first hvp
};

}  // namespace bnfast
