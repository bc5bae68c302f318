"""Networks with noise (docs/math/networks.md section 8) for the engine's tests: noisy BN
on conv layers (one draw per sample and channel) and the same noise on layers without
normalization (the noisy-bn experiment's control), and the draws the engine makes for a
training seed, read from bnfast.reference's generator (the documented stream)."""

import numpy as np

from bnfast import (BatchNorm, BNNoise, Conv1d, Conv2d, Dense, Flatten, MaxPool2d, Network,
                    Residual)
from bnfast.reference._checks import check_layers, layer_noise
from bnfast.reference.noise import NoiseGenerator, draw_noise

QUIET = object()  # noisy_cnn(..., noise=QUIET): the same network without any noise


def _n(noise, *args):
    """BNNoise(*args), or None for the quiet twin, or ``noise`` itself when given."""
    if noise is QUIET:
        return None
    return noise if noise is not None else BNNoise(*args)


def noisy_cnn(name, m=10, seed=0, noise=None):
    """(net, X, y): a small network of kind ``name`` with noise, its data (m samples)
    and targets; noise: None (each layer's own BNNoise below), a BNNoise for every noisy
    layer, or QUIET (no noise, the same parameters).

    noisy-bn-1d   MNIST-1D-like: Conv1d + noisy BN (std, and l2 with momentum None),
                  ReLU; (m, 1, 40) inputs, cross-entropy over 10 classes.
    noisy-bn-2d   digits-like: Conv2d + noisy BN + ReLU + max pool, twice, then a Dense
                  noisy BN layer; (m, 1, 8, 8), cross-entropy.
    control-2d    the same without normalization, with the noise on the conv and dense
                  pre-activations; (m, 1, 8, 8), cross-entropy.
    control-dense a digits-like MLP with the control's noise and a residual block; (m, 6),
                  the mean squared loss.
    """
    if name == "noisy-bn-1d":
        layers = [Conv1d(1, 6, 5, stride=2, padding=1, activation="relu", bias=False,
                         batch_norm=BatchNorm(noise=_n(noise))),
                  Conv1d(6, 6, 3, stride=2, padding=1, activation="relu", bias=False,
                         batch_norm=BatchNorm(norm="l2", momentum=None,
                                              noise=_n(noise, 0.3, 1.5, 0.2, 0.3))),
                  Flatten(), Dense(60, 10)]
        shape, loss = (1, 40), "cross_entropy"
    elif name == "noisy-bn-2d":
        layers = [Conv2d(1, 4, 3, padding=1, activation="relu", bias=False,
                         batch_norm=BatchNorm(noise=_n(noise))),
                  MaxPool2d(2),
                  Conv2d(4, 6, 3, padding=1, activation="relu", bias=False,
                         batch_norm=BatchNorm(eps=0.0, noise=_n(noise, 1.0, 2.0, 0.3, 0.5))),
                  MaxPool2d(2), Flatten(),
                  Dense(24, 16, "tanh", batch_norm=BatchNorm(noise=_n(noise))),
                  Dense(16, 10)]
        shape, loss = (1, 8, 8), "cross_entropy"
    elif name == "control-2d":
        layers = [Conv2d(1, 4, 3, padding=1, activation="relu", noise=_n(noise)),
                  MaxPool2d(2),
                  Conv2d(4, 6, 3, padding=1, activation="relu",
                         noise=_n(noise, 1.0, 2.0, 0.3, 0.5)),
                  MaxPool2d(2), Flatten(),
                  Dense(24, 16, "tanh", noise=_n(noise, 0.2, 1.1, 0.05, 0.2)),
                  Dense(16, 10)]
        shape, loss = (1, 8, 8), "cross_entropy"
    elif name == "control-dense":
        layers = [Dense(6, 8, "tanh", noise=_n(noise)),
                  Residual([Dense(8, 8, "relu", noise=_n(noise, 0.3, 1.5, 0.2, 0.3))]),
                  Dense(8, 3)]
        shape, loss = (6,), "mean"
    else:
        raise KeyError(name)
    net = Network(layers, loss=loss, seed=seed)
    rng = np.random.default_rng([seed, len(name)])
    net.params = net.params + 0.1 * rng.standard_normal(net.num_params)
    X = rng.standard_normal((m,) + shape)
    y = (rng.integers(0, 10, m) if loss == "cross_entropy"
         else rng.standard_normal((m, net.out_features)))
    return net, X, y


def engine_draws(net, seed, batch_sizes):
    """The noise of a training run with ``seed``: per update (batch size B in
    ``batch_sizes``), the list of (s, m) (B, out) pairs of the noisy layers in network
    order, as the documented stream draws them."""
    noisy = [layer for layer in check_layers([d.to_dict() for d in net.layers])
             if layer_noise(layer) is not None]
    gen = NoiseGenerator(seed)
    return [draw_noise(gen, noisy, B) for B in batch_sizes]
