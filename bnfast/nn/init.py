"""Initial parameters of a network (docs/math/networks.md sections 2 and 12).

The default draw of bnfast.Network: W ~ N(0, 1/fan_in) entrywise (fan_in = in_features,
or in_channels times the kernel's size), b = 0, and gamma,
beta (when trainable) the values of the layer's normalization. Network.init draws W from one
of SCHEMES instead.
"""

import numpy as np

from .layers import unflatten

__all__ = ["SCHEMES", "default_params", "scheme_params"]


def _glorot(rng, n_in, n_out, shape):
    a = np.sqrt(6.0 / (n_in + n_out))
    return rng.uniform(-a, a, shape)


#: W's law per scheme: (rng, fan_in, fan_out, shape) -> array.
SCHEMES = {
    "glorot": _glorot,
    "he": lambda rng, n_in, n_out, shape: rng.normal(0.0, np.sqrt(2.0 / n_in), shape),
    "normal": lambda rng, n_in, n_out, shape: rng.normal(0.0, 1.0, shape),
}


def _draw(layers, layout, seed, weights):
    rng = np.random.default_rng(seed)
    size = max((start + int(np.prod(shape)) for entry in layout
                for start, shape in entry.values()), default=0)
    params = np.zeros(size)
    for layer, views in zip(layers, unflatten(layout, params)):
        if "W" not in views:  # pooling, Flatten
            continue
        views["W"][...] = weights(rng, layer.fan_in, layer.fan_out, views["W"].shape)
        if "gamma" in views:
            views["gamma"][...], views["beta"][...] = layer.normalization.values(
                layer.out_features)
    return params


def default_params(layers, layout, seed):
    """A float64 (num_params,) vector for `layers` (network order, blocks opened) with the
    core's `layout`: W ~ N(0, 1/fan_in)."""
    return _draw(layers, layout, seed,
                 lambda rng, n_in, n_out, shape: rng.normal(0.0, 1.0 / np.sqrt(n_in), shape))


def scheme_params(layers, layout, scheme, seed):
    """Like default_params, W drawn by ``scheme`` (a key of SCHEMES)."""
    if not isinstance(scheme, str) or scheme not in SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r}; expected one of {', '.join(SCHEMES)}")
    return _draw(layers, layout, seed, SCHEMES[scheme])
