"""The network maths of docs/math/networks.md in plain NumPy (the oracle).

A layer maps A (m, in) to phi(BN(A W^T + b)) with batch statistics over the m rows; the
loss is sum_i ||y_i - f(x_i)||^2. A network is a list of layer dicts (the format of
bnfast.Dense.to_dict()):

    {"in_features": int, "out_features": int,
     "activation": "identity" | "sigmoid" | "tanh" | "relu", "bias": bool,
     "batch_norm": None or {"gamma": float or (out,), "beta": float or (out,),
                            "trainable": bool, "eps": float >= 0}}

The flat float64 parameter vector runs layer by layer: W (out, in) row-major, then b
(out,) if bias, then gamma, beta (out,) each if batch_norm is trainable. A constant
batch_norm uses the dict's gamma and beta.
"""

import numpy as np

from ._checks import check_layers, check_params, learning_set, num_params
from .batchnorm import batch_norm_backward, batch_norm_forward

__all__ = ["network_forward", "network_loss", "network_gradient", "param_count"]

_PHI = {
    "identity": lambda z: z,
    "sigmoid": lambda z: 0.5 * (1.0 + np.tanh(0.5 * z)),
    "tanh": np.tanh,
    "relu": lambda z: np.maximum(z, 0.0),
}

# phi'(z) from z and a = phi(z)
_DPHI = {
    "identity": lambda z, a: np.ones_like(z),
    "sigmoid": lambda z, a: a * (1.0 - a),
    "tanh": lambda z, a: 1.0 - a * a,
    "relu": lambda z, a: (z > 0).astype(np.float64),
}


def unpack(layers, vector):
    """Views into a flat vector (params or a gradient), one dict per layer with the
    entries the layer has: W (out, in), b (out,), gamma (out,), beta (out,)."""
    views, pos = [], 0

    def take(shape):
        nonlocal pos
        size = int(np.prod(shape))
        view = vector[pos:pos + size].reshape(shape)
        pos += size
        return view

    for layer in layers:
        n_in, n_out = layer.in_features, layer.out_features
        v = {"W": take((n_out, n_in))}
        if layer.bias:
            v["b"] = take((n_out,))
        if layer.bn is not None and layer.bn.trainable:
            v["gamma"], v["beta"] = take((n_out,)), take((n_out,))
        views.append(v)
    assert pos == vector.size
    return views


def forward_tape(layers, params, X):
    """Every intermediate value, one dict per layer (the backward pass needs them).
    layers are checked (_checks.Layer), params float64 of the right length."""
    tape, A = [], X
    for index, (layer, v) in enumerate(zip(layers, unpack(layers, params))):
        H = A @ v["W"].T
        if layer.bias:
            H = H + v["b"]
        rec = {"input": A, "H": H, "W": v["W"]}
        Z = H
        if layer.bn is not None:
            gamma, beta = (v["gamma"], v["beta"]) if layer.bn.trainable \
                else (layer.bn.gamma, layer.bn.beta)
            if layer.bn.eps == 0:
                constant = np.flatnonzero(np.all(H == H[0], axis=0))
                if constant.size:
                    raise ValueError(f"layer {index}, neuron {constant[0]} has a constant "
                                     "pre-activation and eps == 0")
            Z, rec["mean"], rec["invstd"] = batch_norm_forward(H, gamma, beta, layer.bn.eps)
            rec["gamma"] = gamma
        A = _PHI[layer.activation](Z)
        rec["Z"], rec["A"] = Z, A
        tape.append(rec)
    return tape


def loss_of(layers, params, X, y):
    """sum_i ||y_i - f(x_i)||^2 on checked arguments."""
    return float(np.sum((y - forward_tape(layers, params, X)[-1]["A"]) ** 2))


def loss_and_gradient(layers, params, X, y):
    """(loss, gradient) on checked arguments: backpropagation of docs/math/networks.md
    section 4."""
    tape = forward_tape(layers, params, X)
    F = tape[-1]["A"]
    loss = float(np.sum((y - F) ** 2))
    grad = np.zeros_like(params)
    dA = 2.0 * (F - y)
    grads = unpack(layers, grad)
    for layer, rec, g in zip(reversed(layers), reversed(tape), reversed(grads)):
        dH = dA * _DPHI[layer.activation](rec["Z"], rec["A"])
        if layer.bn is not None:
            dH, dgamma, dbeta = batch_norm_backward(dH, rec["H"], rec["mean"],
                                                    rec["invstd"], rec["gamma"])
            if "gamma" in g:
                g["gamma"][...], g["beta"][...] = dgamma, dbeta
        g["W"][...] = dH.T @ rec["input"]
        if "b" in g:
            g["b"][...] = dH.sum(axis=0)
        dA = dH @ rec["W"]
    return loss, grad


def param_count(layers):
    """The number of parameters of a network described by ``layers`` (list of dicts)."""
    return num_params(check_layers(layers))


def network_forward(layers, params, X):
    """Outputs f(X), float64 (m, out_features), batch statistics over the rows of X.

    layers : list of layer dicts; params : (param_count(layers),); X : (m, in_features).
    """
    layers = check_layers(layers)
    params = check_params(layers, params)
    X = learning_set(layers, X)
    return forward_tape(layers, params, X)[-1]["A"]


def network_loss(layers, params, X, y):
    """sum_i ||y_i - f(x_i)||^2, a float. y : (m, out_features), or (m,) when
    out_features == 1."""
    layers = check_layers(layers)
    params = check_params(layers, params)
    X, y = learning_set(layers, X, y)
    return loss_of(layers, params, X, y)


def network_gradient(layers, params, X, y):
    """d loss / d params, float64 (param_count(layers),), in the order of params."""
    layers = check_layers(layers)
    params = check_params(layers, params)
    X, y = learning_set(layers, X, y)
    return loss_and_gradient(layers, params, X, y)[1]
