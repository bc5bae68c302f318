// A layer as the papers write it (docs/math/networks.md): A_l = phi(E(N(A_{l-1} W^T + b)))
// for a dense layer, phi(E(N(conv(A_{l-1}, W) + b))) for a convolution, N an optional
// normalization (BN, LayerNorm or GroupNorm, with BN's variants), E the optional noise of
// Algorithm 1 (noisy BN after a BN, or the same noise on a layer without normalization),
// the end of a residual block optionally adding the block's input; or a pooling or a
// flatten; and where its parameters sit in the flat parameter vector. The network compiles each layer into ops
// (nn/ops/) for the shape of its input.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace bnfast {

// What a layer does (networks.md section 17 for the convolutional kinds).
enum class LayerKind { dense, conv, max_pool, avg_pool, flatten };

// The activations phi; the bindings expose this list to Python (bnfast.nn.ACTIVATIONS).
enum class Activation { identity, sigmoid, tanh, relu };

// What a normalization's statistics run over (networks.md sections 2 and 14): batch, each
// feature over the rows of the batch (BN); layer, each row over all its features
// (LayerNorm); group, each row over contiguous groups of features (GroupNorm).
enum class NormKind { batch, layer, group };

// The scale the centred values are divided by (networks.md section 7): the standard
// deviation, or the average lp norm of the uncentred values (batch kind only).
enum class NormScale { std, l1, l2, linf };

// Santurkar et al.'s Algorithm 1 (networks.md section 8): per training step, unit
// (feature, or channel of a convolution) and sample, z <- s z + m; `on` false: no noise.
struct NoiseSpec {
  bool on = false;
  double n_mu = 0.5, n_sigma = 1.25, r_mu = 0.1, r_sigma = 0.1;
};

// One normalization: z = gamma (h - mu) / sqrt(s^2 + eps) + beta over the kind's sets.
struct NormSpec {
  NormKind kind = NormKind::batch;
  std::int64_t groups = 1;  // group: how many (they divide the features)
  NormScale scale = NormScale::std;
  bool trainable = true;            // gamma and beta are parameters ...
  std::vector<double> gamma, beta;  // ... or these (out,) constants
  double eps = 0.0;
  // Running statistics (batch kind: the others use the same statistics in inference):
  double momentum = 0.1;    // the weight of the new batch ...
  bool cumulative = false;  // ... or the plain average over all batches (momentum None)

  bool has_running() const { return kind == NormKind::batch; }
};

struct LayerSpec {
  LayerKind kind = LayerKind::dense;
  // dense: features in and out; conv: channels in and out; pooling, flatten: unused
  std::int64_t in = 0, out = 0;
  // conv and pooling: per spatial axis (one for 1-D, two for 2-D)
  std::vector<std::int64_t> kernel, stride, padding;
  Activation activation = Activation::identity;
  bool bias = true;
  std::optional<NormSpec> norm;
  // Algorithm 1's noise on the normalization's output (noisy BN, after a BN) or, without
  // a normalization, on the map's output (the noisy-bn experiment's control: the same
  // noise on the standard network); networks.md section 8. Dense and conv layers only.
  NoiseSpec noise;
  // A residual block ends here: the layer's output is phi(...) + the input of layer
  // skip_from (networks.md section 10); -1: no block ends here.
  std::int64_t skip_from = -1;

  bool batch_norm() const { return norm && norm->kind == NormKind::batch; }
  bool has_weights() const { return kind == LayerKind::dense || kind == LayerKind::conv; }
  // The entries of W: out x in (dense), out x in x prod(kernel) (conv), 0 otherwise.
  std::int64_t weight_count() const;
};

// Where a layer's parameters start in the flat vector (-1 when absent), and where the
// next layer's start. The one definition of the public order: layer by layer, W (out,
// in) or (out, in, *kernel) row-major, then b (if bias), then gamma, beta (if normalized
// with trainable gamma/beta); pooling and flatten have none.
struct ParamOffsets {
  std::int64_t w = -1, b = -1, gamma = -1, beta = -1, end = 0;
};
ParamOffsets param_offsets(const LayerSpec& layer, std::int64_t start);

}  // namespace bnfast
