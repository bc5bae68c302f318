// A dense layer as the papers define them (docs/math/networks.md): A_l = phi(BN(A_{l-1}
// W^T + b)), its BN variant, and where its parameters sit in the flat parameter vector.
#pragma once

#include <cstdint>
#include <vector>

namespace bnfast {

// The activations phi; the bindings expose this list to Python (bnfast.nn.ACTIVATIONS).
enum class Activation { identity, sigmoid, tanh, relu };

// The scale a BN layer divides by (docs/math/networks.md section 7): the batch standard
// deviation (BN), or the average lp norm of the uncentred column.
enum class Norm { std, l1, l2, linf };

// Santurkar et al.'s Algorithm 1 (networks.md section 8); `on` false: no noise.
struct NoiseSpec {
  bool on = false;
  double n_mu = 0.5, n_sigma = 1.25, r_mu = 0.1, r_sigma = 0.1;
};

struct LayerSpec {
  std::int64_t in = 0, out = 0;
  Activation activation = Activation::identity;
  bool bias = true;
  bool batch_norm = false;
  bool bn_trainable = false;
  double eps = 0.0;
  std::vector<double> gamma, beta;  // (out,) constants, used when !bn_trainable
  Norm norm = Norm::std;
  double momentum = 0.1;    // running statistics: weight of the new batch ...
  bool cumulative = false;  // ... or the plain average over all batches (momentum None)
  NoiseSpec noise;
  // A residual block ends here: the layer's output is phi(...) + the input of layer
  // skip_from (networks.md section 10); -1: no block ends here.
  std::int64_t skip_from = -1;
};

// Where a layer's parameters start in the flat vector (-1 when absent), and where the
// next layer's start. The one definition of the public order: layer by layer, W (out,
// in) row-major, then b (if bias), then gamma, beta (if BN with trainable gamma/beta).
struct ParamOffsets {
  std::int64_t w = -1, b = -1, gamma = -1, beta = -1, end = 0;
};
ParamOffsets param_offsets(const LayerSpec& layer, std::int64_t start);

}  // namespace bnfast
