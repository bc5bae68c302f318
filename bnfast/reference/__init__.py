"""Pure-NumPy twins of bnfast's kernels and network maths: short, readable,
float64-accurate. The test oracle and the asv baseline.

An independent oracle: it imports nothing from bnfast outside this package (its own
argument checks, its own parameter unpacking), so a bug in shared code cannot pass the
parity tests. Networks are plain data: a list of entries, each a layer dict (the format
of bnfast.Dense.to_dict(): its normalization under the key "normalization", a dict
with "kind" "batch", "layer" or "group", or under the legacy key "batch_norm", which
means kind "batch", with the optional keys momentum, norm and noise) or a residual
block {"residual": [layer dicts]}, and a flat float64 parameter vector
(docs/math/networks.md; the dict format is spelt out in reference/network.py).

Convolutional networks (networks.md section 17) take X (m, C, L) or (m, C, H, W) and
add the layer dicts {"type": "conv", "in_channels", "out_channels", "kernel_size",
"stride", "padding" (lists, one int per spatial dimension), "activation", "bias",
"normalization" (or "batch_norm")} (F.conv1d / F.conv2d, weights (out, in, *kernel);
normalizations per channel: BN over the batch and the positions, kind "layer" as
GroupNorm(1, out), kind "group" as nn.GroupNorm), {"type": "maxpool" | "avgpool",
"kernel_size", "stride"} (no padding, floor sizes; ties: the first maximum) and
{"type": "flatten"}; a Dense dict may also say "type": "dense". Shapes are checked
when X is seen. The kernels are in reference.conv. Dense and conv dicts may carry their
own "noise" (without normalization: Algorithm 1's noise on the pre-activations, the
noisy-bn experiment's control); on conv layers noise is drawn per sample and channel.

Kernels (docs/math/batch_norm.md): batch_norm, batch_norm_forward, batch_norm_backward
Networks: network_forward, network_predict, network_accuracy, network_loss,
    network_gradient, network_hvp, param_count  (loss "sum" or "mean" (squared error),
    "cross_entropy" or "cross_entropy_sum" (y class labels); BN norms "std", "l1",
    "l2", "linf"; LayerNorm and GroupNorm; conv, pool and flatten layers)
Training: train -> TrainResult (with running statistics and the optimizer state);
    optimizer None (plain gradient descent), {"name": "sgd", ...} (momentum, Nesterov,
    weight decay) or {"name": "adam", ...} as torch.optim; lr a float or per-step rates;
    TrainingDiverged
Noise of noisy BN (and of the control): reference.noise (NoiseGenerator, draw_noise)
"""

from .batchnorm import batch_norm, batch_norm_backward, batch_norm_forward
from .network import (network_accuracy, network_forward, network_gradient, network_hvp,
                      network_loss, network_predict, param_count)
from .train import TrainingDiverged, TrainResult, train

__all__ = [
    "TrainResult",
    "TrainingDiverged",
    "batch_norm",
    "batch_norm_backward",
    "batch_norm_forward",
    "network_accuracy",
    "network_forward",
    "network_gradient",
    "network_hvp",
    "network_loss",
    "network_predict",
    "param_count",
    "train",
]
