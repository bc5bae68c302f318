"""Pure-NumPy twins of bnfast's kernels and network maths: short, readable,
float64-accurate. The test oracle and the asv baseline.

An independent oracle: it imports nothing from bnfast outside this package (its own
argument checks, its own parameter unpacking), so a bug in shared code cannot pass the
parity tests. Networks are plain data: a list of layer dicts (the format of
bnfast.Dense.to_dict()) and a flat float64 parameter vector (docs/math/networks.md).

Kernels (docs/math/batch_norm.md): batch_norm, batch_norm_forward, batch_norm_backward
Networks: network_forward, network_loss, network_gradient, param_count
Training: train -> TrainResult; TrainingDiverged
"""

from .batchnorm import batch_norm, batch_norm_backward, batch_norm_forward
from .network import network_forward, network_gradient, network_loss, param_count
from .train import TrainingDiverged, TrainResult, train

__all__ = [
    "TrainResult",
    "TrainingDiverged",
    "batch_norm",
    "batch_norm_backward",
    "batch_norm_forward",
    "network_forward",
    "network_gradient",
    "network_loss",
    "param_count",
    "train",
]
