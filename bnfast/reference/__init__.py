"""Pure-NumPy twins of bnfast's kernels and network maths: short, readable,
float64-accurate.

The test oracle and the asv baseline; nothing here imports bnfast._core.

Kernels: batch_norm, batch_norm_forward, batch_norm_backward
Networks: network_forward, network_loss, network_gradient, train
"""

from .batchnorm import batch_norm, batch_norm_backward, batch_norm_forward
from .network import network_forward, network_gradient, network_loss, train

__all__ = [
    "batch_norm",
    "batch_norm_backward",
    "batch_norm_forward",
    "network_forward",
    "network_gradient",
    "network_loss",
    "train",
]
