"""Initial parameters of a network (docs/math/networks.md).

The default draw of bnfast.Network: W ~ N(0, 1/in_features) entrywise, b = 0, and gamma,
beta (when trainable) the values of the layer's BatchNorm.
"""

import numpy as np

from .layers import unflatten

__all__ = ["default_params"]


def default_params(layers, layout, seed):
    """A float64 (num_params,) vector for `layers` (Dense) with the core's `layout`."""
    rng = np.random.default_rng(seed)
    size = max((start + int(np.prod(shape)) for entry in layout
                for start, shape in entry.values()), default=0)
    params = np.zeros(size)
    for layer, views in zip(layers, unflatten(layout, params)):
        views["W"][...] = rng.normal(0.0, 1.0 / np.sqrt(layer.in_features), views["W"].shape)
        if "gamma" in views:
            views["gamma"][...], views["beta"][...] = layer.batch_norm.values(
                layer.out_features)
    return params
