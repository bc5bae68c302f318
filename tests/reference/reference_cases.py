"""Helpers of the bnfast.reference tests: layer dicts and parameters; the forward pass
written straight from docs/math/networks.md is tests/manual_network.py, so the
reference's own maths can be checked without native code."""

import numpy as np

from manual_network import manual_forward, rel_err  # noqa: F401 (re-exported for the tests)

ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu")

# How a layer is batch-normalized: None, or the keyword arguments of bn() but gamma/beta
# given as "scalar" (one number) or "list" (one per neuron).
BN_MODES = {
    "none": None,
    "trainable-eps0": dict(trainable=True, kind="scalar", eps=0.0),
    "trainable-list-eps": dict(trainable=True, kind="list", eps=0.3),
    "const-scalar-eps0": dict(trainable=False, kind="scalar", eps=0.0),
    "const-list-eps": dict(trainable=False, kind="list", eps=0.3),
}

# A ReLU pre-activation closer to 0 than this is within reach of a finite-difference
# step (the loss is not smooth there): such draws are redrawn.
RELU_MARGIN = 1e-3


def bn(gamma=1.0, beta=0.0, trainable=True, eps=1e-5):
    return {"gamma": gamma, "beta": beta, "trainable": trainable, "eps": eps}


def dense(n_in, n_out, activation="identity", bias=True, batch_norm=None):
    return {"in_features": n_in, "out_features": n_out, "activation": activation,
            "bias": bias, "batch_norm": batch_norm}


def count_params(layers):
    """Written from the documented order, independently of reference.param_count."""
    n = 0
    for d in layers:
        n += d["in_features"] * d["out_features"] + (d["out_features"] if d["bias"] else 0)
        if d["batch_norm"] is not None and d["batch_norm"]["trainable"]:
            n += 2 * d["out_features"]
    return n


def random_bn(mode, width, rng):
    spec = BN_MODES[mode]
    if spec is None:
        return None
    if spec["kind"] == "scalar":
        gamma, beta = float(rng.uniform(0.6, 1.4)), float(rng.uniform(-0.5, 0.5))
    else:
        signs = rng.choice([-1.0, 1.0], width)
        gamma = [float(g) for g in rng.uniform(0.6, 1.4, width) * signs]
        beta = [float(b) for b in rng.uniform(-0.5, 0.5, width)]
    return bn(gamma, beta, spec["trainable"], spec["eps"])


def random_params(layers, rng):
    """W ~ N(0, 1/in), b, gamma, beta all non-trivial, in the documented order."""
    chunks = []
    for d in layers:
        n_in, n_out = d["in_features"], d["out_features"]
        chunks.append(rng.normal(0, 1 / np.sqrt(n_in), n_in * n_out))
        if d["bias"]:
            chunks.append(rng.normal(0, 0.5, n_out))
        if d["batch_norm"] is not None and d["batch_norm"]["trainable"]:
            chunks.append(rng.uniform(0.6, 1.4, n_out) * rng.choice([-1.0, 1.0], n_out))
            chunks.append(rng.uniform(-0.5, 0.5, n_out))
    return np.concatenate(chunks)


def random_case(activation, bn_mode, seed, m=7):
    """A 3-layer network (3 -> 4 -> 3 -> 2): the first two layers use ``activation`` and
    ``bn_mode`` (the second without a bias), the last is identity with a bias; with
    data, targets and parameters such that no ReLU pre-activation is near 0.

    Returns (layers, params, X, y)."""
    for attempt in range(100):
        rng = np.random.default_rng([seed, attempt])
        layers = [dense(3, 4, activation, True, random_bn(bn_mode, 4, rng)),
                  dense(4, 3, activation, False, random_bn(bn_mode, 3, rng)),
                  dense(3, 2, "identity", True, None)]
        params = random_params(layers, rng)
        X = rng.normal(0, 1, (m, 3))
        y = rng.normal(0, 1, (m, 2))
        _, Zs = manual_forward(layers, params, X)
        if activation != "relu" or min(np.min(np.abs(Z)) for Z in Zs[:2]) > RELU_MARGIN:
            return layers, params, X, y
    raise AssertionError("no data without ReLU pre-activations near 0 in 100 draws")
