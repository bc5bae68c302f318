// Feed-forward networks as the papers define them (docs/math/networks.md): layer l maps
// A_{l-1} (m, in) to A_l = phi(N(A_{l-1} W^T + b)) (m, out), or a convolution, pooling
// or flatten of (m, C, L) or (m, C, H, W) values; N an optional normalization (BN with
// its variants, LayerNorm, GroupNorm) and optional training noise after it (noisy BN,
// or the same noise without N), residual blocks x + block(x), and a
// loss (squared or cross-entropy). The layers are compiled into a sequence of ops
// (nn/ops/) for the shape of one input sample; plain C++ on raw row-major double
// arrays; the flat parameter order is nn/layer.hpp's.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "nn/dual.hpp"
#include "nn/layer.hpp"
#include "nn/noise.hpp"
#include "nn/ops/loss.hpp"
#include "nn/ops/op.hpp"

namespace bnfast {

class Normalization;
class ResidualJoin;

class Network {
 public:
  // Throws std::invalid_argument when a layer is malformed (a constant gamma/beta without
  // out values, a group count that does not divide the channels, a kernel, stride or
  // padding of the wrong length or size), a residual block is not a block (it must
  // start at an earlier layer and not overlap another), or, for a network whose first
  // layer is dense, the layers do not chain (set_input_shape below).
  explicit Network(std::vector<LayerSpec> layers, LossKind loss = LossKind::sum);
  ~Network();
  Network(const Network&) = delete;
  Network& operator=(const Network&) = delete;

  // Compiles the ops for input samples of this shape ({features}, {C, L} or {C, H, W});
  // nothing to do when it is the current one. Throws std::invalid_argument naming the
  // layer when the shapes do not chain (channels or features, a kernel larger than its
  // padded input, a residual block that changes the shape). Evaluations use the shape
  // compiled last: X holds m samples of it.
  void set_input_shape(const SampleShape& shape);
  const SampleShape& input_shape() const { return input_shape_; }
  const SampleShape& output_shape() const { return output_shape_; }
  std::int64_t input_size() const { return sample_size(input_shape_); }
  std::int64_t output_size() const { return sample_size(output_shape_); }
  // The rank of an input sample the first layer takes: 1 (dense), 2 (1-D), 3 (2-D), or
  // 0 when any rank goes (a flatten first).
  int input_rank() const;

  std::int64_t num_params() const { return num_params_; }
  std::int64_t in_features() const { return layers_.front().in; }
  std::int64_t out_features() const { return output_size(); }
  const std::vector<LayerSpec>& layers() const { return layers_; }
  const std::vector<ParamOffsets>& layer_offsets() const { return offsets_; }
  LossKind loss_kind() const { return loss_kind_; }
  // Whether a layer normalizes over the batch (its statistics then need two rows, or
  // one row of two positions: checked by the bindings on the rows).
  bool has_batch_norm() const;

  // The running statistics live in one flat vector owned by the caller: per BN layer,
  // running_mean (out,) at running_offsets()[l], then running_var (out,). -1 for layers
  // without BN (LayerNorm and GroupNorm have none).
  const std::vector<std::int64_t>& running_offsets() const { return running_offsets_; }
  std::int64_t num_running() const { return num_running_; }

  // Outputs f(X) (m, out) with batch statistics over the m rows of X (m, in).
  void forward(const double* params, const double* X, std::int64_t m, double* out);

  // Inference: BN layers use the running statistics; rows are independent (m >= 1).
  void predict(const double* params, const double* running, const double* X, std::int64_t m,
               double* out);

  // The loss over the m rows; when grad is not null, d loss / d params into grad. Y is
  // (m, out) targets, or (m,) class labels for the cross-entropy losses. noise (one
  // training step's draws, or null) perturbs the noisy layers (nn/ops/noise.hpp). With
  // `running` the loss is the inference-mode one (BN with those population statistics,
  // no noise): the "eval" loss whose curvature PyHessian-style tools measure. Throws ZeroVarianceError
  // (naming layer and neuron) when a normalization with eps == 0 sees a zero scale.
  double loss(const double* params, const double* X, const double* Y, std::int64_t m,
              double* grad, const BatchNoise* noise = nullptr,
              const double* running = nullptr);

  // Whether every op allows tangent passes (HvpReuse::tangents recomputes only tangents).
  bool tangent_passes() const { return tangent_pass_; }

  // How an hvp() uses the pass before it (HessianAt: many products at one point).
  enum class HvpReuse {
    none,      // a pass of its own
    keep,      // the same, keeping every value and gradient of the pass for the next
    tangents,  // at the point of the call before, which was keep or tangents (the
               // caller guarantees the same params, X, Y, m and running): when every op
               // allows it (Op::tangent_pass) only what depends on v is recomputed, the
               // same bits; otherwise as keep
  };

  // hv = (d^2 loss / d params^2) v, forward-over-reverse; also the gradient into grad
  // when not null. Returns the loss. `running` as for loss().
  double hvp(const double* params, const double* X, const double* Y, std::int64_t m,
             const double* v, double* grad, double* hv, const double* running = nullptr,
             HvpReuse reuse = HvpReuse::none);

  // Frees the buffers hvp() keeps between calls (its values and gradients on Dual
  // numbers); the next hvp() makes them again.
  void release_hvp_state();

  // The input of layer `layer`'s normalization (its pre-activations, (m, size)) in
  // inference mode with `running`: what its population statistics are statistics of.
  // Returns the size of a sample's pre-activations; throws std::invalid_argument when
  // the layer has no normalization.
  std::int64_t normalization_input(const double* params, const double* running,
                                   const double* X, std::int64_t m, std::int64_t layer,
                                   std::vector<double>& out);

  // One update of the running statistics from the batch statistics of the last
  // train-mode evaluation (of m rows); `update` counts from 1 (momentum None: 1/update).
  void update_running(double* running, std::int64_t update, std::int64_t m) const;

  template <class T>
  struct Values;  // the values and gradients of one evaluation on double or Dual

 private:
  // Runs ops [0, until) (every op by default).
  template <class T>
  void forward_pass(Values<T>& v, const T* params, const T* X, std::int64_t m, Mode mode,
                    const BatchNoise* noise, const double* running,
                    std::size_t until = static_cast<std::size_t>(-1));
  template <class T>
  T loss_pass(Values<T>& v, const T* params, const T* X, const double* Y, std::int64_t m,
              T* grad, const BatchNoise* noise, const double* running);
  // loss_pass on the data as given
  template <class T>
  T evaluate(Values<T>& v, const T* params, const T* X, const double* Y, std::int64_t m,
             T* grad, const BatchNoise* noise, const double* running);
  // e such that the train-mode loss is best taken on X 2^-e: nonzero only when the
  // loss is invariant to X -> 2^k X (scale_free_input) and X's largest magnitude is
  // outside [2^-512, 2^512], where d loss / d H can overflow (a BN scale of 1e-310 has
  // a derivative of 1e310).
  template <class T>
  int input_exponent(const T* X, std::int64_t m) const;
  // With eps == 0, a first dense or conv layer normalized right after, by BN, or by any
  // normalization when the layer has no bias (the centring then removes nothing that
  // does not scale), and no residual block from the input: the train-mode loss is the
  // same function of the parameters for X and 2^k X (docs/math/networks.md section 7).
  bool scale_free_input() const;

  std::vector<LayerSpec> layers_;
  SampleShape input_shape_, output_shape_;
  std::vector<ParamOffsets> offsets_;
  std::vector<std::int64_t> running_offsets_;
  std::int64_t num_params_ = 0, num_running_ = 0;
  LossKind loss_kind_;
  std::vector<std::unique_ptr<Op>> ops_;
  std::vector<const Normalization*> batch_norms_;  // the ops with running statistics
  std::vector<std::int64_t> norm_op_;              // per layer: its normalization op, or -1
  std::vector<ResidualJoin*> join_at_;             // per value: the join that reads it, or null
  bool tangent_pass_ = false;                      // whether every op allows tangent passes
  std::unique_ptr<Values<double>> values_;
  std::unique_ptr<Values<Dual>> tangents_;  // created by the first hvp
};

}  // namespace bnfast
