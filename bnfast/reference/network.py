"""The network maths of bnfast.Network and bnfast.train in plain NumPy (the oracle).

A layer maps A (m, in) to phi(BN(A W^T + b)); the loss is sum_i ||y_i - f(x_i)||^2.
Functions take the layer descriptions (a sequence of bnfast.Dense) and a flat float64
parameter vector in the public order (layer by layer: W (out, in), b, gamma, beta).
"""

import numpy as np

from ..data import learning_set
from ..layers import check_chain, unflatten
from .batchnorm import batch_norm_backward, batch_norm_forward
from .shuffle import EpochShuffler

__all__ = ["network_forward", "network_loss", "network_gradient", "train"]

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


def _bn_constants(layer, views):
    if "gamma" in views:
        return views["gamma"], views["beta"]
    return layer.batch_norm.values(layer.out_features)


def _forward(layers, params, X):
    """All intermediate values, one dict per layer (the backward pass needs them)."""
    tape, A = [], X
    for layer, views in zip(layers, unflatten(layers, params)):
        H = A @ views["W"].T
        if "b" in views:
            H = H + views["b"]
        rec = {"input": A, "H": H, "views": views}
        Z = H
        if layer.batch_norm is not None:
            gamma, beta = _bn_constants(layer, views)
            if layer.batch_norm.eps == 0:
                constant = np.all(H == H[0], axis=0)
                if np.any(constant):
                    raise ValueError(f"neuron {int(np.flatnonzero(constant)[0])} has a "
                                     "constant pre-activation and eps == 0")
            Z, rec["mean"], rec["invstd"] = batch_norm_forward(H, gamma, beta,
                                                               layer.batch_norm.eps)
            rec["gamma"] = gamma
        A = _PHI[layer.activation](Z)
        rec["Z"], rec["A"] = Z, A
        tape.append(rec)
    return tape


def network_forward(layers, params, X):
    """Outputs f(X), (m, out_features), batch statistics over the rows of X."""
    layers = check_chain(layers)
    X = learning_set(layers, X)
    return _forward(layers, np.asarray(params, dtype=np.float64), X)[-1]["A"]


def network_loss(layers, params, X, y):
    """sum_i ||y_i - f(x_i)||^2."""
    layers = check_chain(layers)
    X, y = learning_set(layers, X, y)
    F = _forward(layers, np.asarray(params, dtype=np.float64), X)[-1]["A"]
    return float(np.sum((y - F) ** 2))


def _loss_and_gradient(layers, params, X, y):
    tape = _forward(layers, params, X)
    F = tape[-1]["A"]
    loss = float(np.sum((y - F) ** 2))
    grad = np.zeros_like(params)
    grads = unflatten(layers, grad)
    dA = 2.0 * (F - y)
    for layer, rec, g in zip(reversed(layers), reversed(tape), reversed(grads)):
        dZ = dA * _DPHI[layer.activation](rec["Z"], rec["A"])
        dH = dZ
        if layer.batch_norm is not None:
            dH, dgamma, dbeta = batch_norm_backward(dZ, rec["H"], rec["mean"],
                                                    rec["invstd"], rec["gamma"])
            if "gamma" in g:
                g["gamma"][...], g["beta"][...] = dgamma, dbeta
        g["W"][...] = dH.T @ rec["input"]
        if "b" in g:
            g["b"][...] = dH.sum(axis=0)
        dA = dH @ rec["views"]["W"]
    return loss, grad


def network_gradient(layers, params, X, y):
    """d loss / d params, float64, in the order of params."""
    layers = check_chain(layers)
    X, y = learning_set(layers, X, y)
    return _loss_and_gradient(layers, np.asarray(params, dtype=np.float64), X, y)[1]


def train(net, X, y, lr, steps, batch_size=None, seed=0, record_every=1, callback=None):
    """The loop of bnfast.train in NumPy: same arguments, same batches, same records.

    Sets net.params to the result and returns a bnfast.TrainResult; raises
    bnfast.TrainingDiverged when the loss becomes inf or NaN.
    """
    from ..train import TrainingDiverged, TrainResult, check_train_args

    X, y, lr, steps, batch_size, seed, record_every = check_train_args(
        net, X, y, lr, steps, batch_size, seed, record_every, callback)
    layers = net.layers
    params = net.params
    m = X.shape[0]
    full = batch_size in (0, m)
    shuffler = EpochShuffler(m, seed)
    perm, pos = None, m
    losses, done, by_callback = [], 0, False
    for step in range(steps + 1):
        record = step % record_every == 0
        last = step == steps
        if full and not last:
            loss, grad = _loss_and_gradient(layers, params, X, y)
        elif record or last:  # the final parameters are checked even unrecorded
            loss = float(np.sum((y - _forward(layers, params, X)[-1]["A"]) ** 2))
        if (full and not last) or record or last:
            if not np.isfinite(loss):
                raise TrainingDiverged(step, loss, np.array(losses))
        if record:
            losses.append(loss)
            if callback is not None and callback(step, loss):
                by_callback = not last
                break
        if last:
            break
        if not full:
            if pos + batch_size > m:
                perm, pos = shuffler.next_epoch(), 0
            rows = perm[pos:pos + batch_size]
            pos += batch_size
            batch_loss, grad = _loss_and_gradient(layers, params, X[rows], y[rows])
            if not np.isfinite(batch_loss):
                raise TrainingDiverged(step, batch_loss, np.array(losses))
        params = params - lr * grad
        done = step + 1
    net.params = params
    return TrainResult(params.copy(), np.array(losses), done, by_callback)
