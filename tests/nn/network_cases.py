"""Helpers of the network and train tests: random networks and an independent forward.

``manual_forward`` (tests/manual_network.py) re-implements f(x) straight from
docs/math/networks.md (it reads the flat parameter vector in the documented order
itself, without bnfast's layout), so the tests can check the parameter order and find
the pre-activations of ReLU layers without asking the code under test.
"""

import numpy as np
from manual_network import manual_forward, rel_err

import bnfast
from bnfast import BatchNorm, Dense

ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu")

# How a layer is batch-normalized, by name: None (no BN) or (trainable, gamma/beta kind,
# eps). "scalar" gamma/beta are numbers, "array" ones per-neuron vectors.
BN_MODES = {
    "none": None,
    "trainable-eps0": (True, "scalar", 0.0),
    "trainable-array-eps": (True, "array", 0.3),
    "const-scalar-eps0": (False, "scalar", 0.0),
    "const-array-eps": (False, "array", 0.3),
    "const-array-eps0": (False, "array", 0.0),
}

# A ReLU pre-activation closer to 0 than this makes the loss non-smooth within reach of
# a finite-difference step: such data is redrawn.
RELU_MARGIN = 1e-3


def batch_norm_layer(mode, width, rng):
    spec = BN_MODES[mode]
    if spec is None:
        return None
    trainable, kind, eps = spec
    if kind == "scalar":
        gamma, beta = float(rng.uniform(0.6, 1.4)), float(rng.uniform(-0.5, 0.5))
    else:
        gamma = rng.uniform(0.6, 1.4, width) * rng.choice([-1.0, 1.0], width)
        beta = rng.uniform(-0.5, 0.5, width)
    return BatchNorm(gamma=gamma, beta=beta, trainable=trainable, eps=eps)


def random_params(layers, rng):
    """Parameters in the public order with W ~ N(0, 1/in), b, gamma, beta all non-trivial."""
    chunks = []
    for layer in layers:
        chunks.append(rng.normal(0, 1 / np.sqrt(layer.in_features),
                                 layer.in_features * layer.out_features))
        if layer.bias:
            chunks.append(rng.normal(0, 0.5, layer.out_features))
        if layer.batch_norm is not None and layer.batch_norm.trainable:
            chunks.append(rng.uniform(0.6, 1.4, layer.out_features)
                          * rng.choice([-1.0, 1.0], layer.out_features))
            chunks.append(rng.uniform(-0.5, 0.5, layer.out_features))
    return np.concatenate(chunks)


def relu_margin(layers, params, X):
    """Smallest |pre-activation| over all ReLU layers (inf without ReLU)."""
    _, Zs = manual_forward(layers, params, X)
    margins = [np.min(np.abs(Z)) for layer, Z in zip(layers, Zs) if layer.activation == "relu"]
    return min(margins, default=np.inf)


def relu_masks(layers, params, X):
    _, Zs = manual_forward(layers, params, X)
    return [Z > 0 for layer, Z in zip(layers, Zs) if layer.activation == "relu"]


def random_case(activation, bn_mode, bias, seed, m=9, out=2):
    """A 3-layer network whose first and last layers use ``activation`` and ``bn_mode``
    (the middle layer cycles through the others), with data, targets and parameters
    drawn so that no ReLU pre-activation is within RELU_MARGIN of 0.

    Returns (layers, params, X, y); y has shape (m,) when out == 1.
    """
    for attempt in range(100):
        rng = np.random.default_rng([seed, attempt])
        widths = [3, 4, 5, out]
        other_act = ACTIVATIONS[(ACTIVATIONS.index(activation) + 1 + seed) % 4]
        modes = list(BN_MODES)
        other_bn = modes[(modes.index(bn_mode) + 1 + seed) % len(modes)]
        acts = [activation, other_act, activation]
        bns = [bn_mode, other_bn, bn_mode]
        layers = [Dense(widths[i], widths[i + 1], activation=acts[i], bias=bias,
                        batch_norm=batch_norm_layer(bns[i], widths[i + 1], rng))
                  for i in range(3)]
        params = random_params(layers, rng)
        X = rng.normal(0, 1, (m, widths[0]))
        y = rng.normal(0, 1, (m, out)) if out > 1 else rng.normal(0, 1, m)
        if relu_margin(layers, params, X) > RELU_MARGIN:
            return layers, params, X, y
    raise AssertionError("no data without ReLU pre-activations near 0 in 100 draws")


def specs(layers):
    """The layers as the plain dicts bnfast.reference takes."""
    return [layer.to_dict() for layer in layers]


def network(layers, params):
    net = bnfast.Network(layers)
    net.params = params
    return net


def deep_layers(variant):
    """Deep networks with trainable BN and mixed activations (well-conditioned dynamics)."""
    if variant == "A":
        return [Dense(4, 6, "tanh", batch_norm=BatchNorm(eps=1e-5)),
                Dense(6, 5, "relu", batch_norm=BatchNorm(beta=0.3, eps=0.1)),
                Dense(5, 4, "sigmoid", batch_norm=BatchNorm(eps=1e-3)),
                Dense(4, 2, "identity")]
    return [Dense(4, 8, "relu", batch_norm=BatchNorm(beta=0.5, eps=1e-5)),
            Dense(8, 6, "tanh", bias=False, batch_norm=BatchNorm(eps=0.0)),
            Dense(6, 4, "sigmoid", batch_norm=BatchNorm(gamma=2.0, eps=1e-2)),
            Dense(4, 2, "identity")]


def regression_data(m=30, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(m, 4))
    Y = np.stack([np.sin(X[:, 0]) + X[:, 1] * X[:, 2], np.cos(X[:, 3])], axis=1)
    return X, Y


def central_differences(net, X, y, h=1e-6):
    """d loss / d params of ``net`` at its params by central differences with step h
    (the params are restored)."""
    p0 = net.params
    numeric = np.empty_like(p0)
    for k in range(p0.size):
        step = np.zeros_like(p0)
        step[k] = h
        net.params = p0 + step
        up = net.loss(X, y)
        net.params = p0 - step
        numeric[k] = (up - net.loss(X, y)) / (2 * h)
    net.params = p0
    return numeric
