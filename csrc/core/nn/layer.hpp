// A dense layer as the papers define it (docs/math/networks.md): A_l = phi(BN(A_{l-1} W^T
// + b)), and where its parameters sit in the network's flat parameter vector.
#pragma once

#include <cstdint>
#include <vector>

namespace bnfast {

// The activations phi; the bindings expose this list to Python (bnfast.nn.ACTIVATIONS).
enum class Activation { identity, sigmoid, tanh, relu };

struct LayerSpec {
  std::int64_t in = 0, out = 0;
  Activation activation = Activation::identity;
  bool bias = true;
  bool batch_norm = false;
  bool bn_trainable = false;
  double eps = 0.0;
  std::vector<double> gamma, beta;  // (out,) constants, used when !bn_trainable
};

// Where a layer's parameters start in the flat vector (-1 when absent), and where the
// next layer's start. The one definition of the public order: layer by layer, W (out,
// in) row-major, then b (if bias), then gamma, beta (if BN with trainable gamma/beta).
struct ParamOffsets {
  std::int64_t w = -1, b = -1, gamma = -1, beta = -1, end = 0;
};
ParamOffsets param_offsets(const LayerSpec& layer, std::int64_t start);

}  // namespace bnfast
