"""Cross-check of the closed-form BN optima by the native gradient descent.

The BN network of the lemma (Dense without bias, identity activation, constant
gamma/beta, eps = 0) is built with the public network API and trained full batch
from w0 by bnfast.train (C++). Where it ends is compared with the closed-form ray.

Shapes: the claims use w of shape (d,) or (d, k) (column = neuron); the network
stores W of shape (out_features, in_features) = (k, d), row-major in net.params.

Learning rate. The BN loss is constant along rays, so its gradient is orthogonal to
w and GD only turns the direction (the norm grows slowly). Near the optimum ray the
Hessian is 2|gamma| sqrt(m) ||P y_c|| X_c^T (I - u u^T/||u||^2) X_c / ||u||^2 with
u = X_c w, whose largest eigenvalue is at most
    2 |gamma| sqrt(m) ||P y_c|| s_max(X_c)^2 / (s_min(X_c)^2 ||w||^2);
lr = 1 / that bound (at ||w|| = ||w0||, and the norm only grows) keeps every step
below the stability limit 2 / lambda_max.
"""

import math

import numpy as np

from ..nn import BatchNorm, Dense, Network, train
from .report import GDCrossCheck

__all__ = ["native_gd_check", "native_gd_path", "auto_lr"]

#: Angle (radians) under which the GD end point counts as on the closed-form ray.
AGREEMENT_TOLERANCE = 1e-6
DEFAULT_STEPS = 5000


def _columns(a):
    return a.reshape(a.shape[0], -1)


def auto_lr(X, y, w0, gamma):
    """The learning rate described in the module docstring (min over the neurons)."""
    Xc = X - X.mean(axis=0)
    s = np.linalg.svd(Xc, compute_uv=False)
    yc = _columns(y) - _columns(y).mean(axis=0)
    proj = Xc @ np.linalg.lstsq(Xc, yc, rcond=None)[0]
    lrs = []
    for j in range(yc.shape[1]):
        w_norm2 = float(np.sum(_columns(w0)[:, j] ** 2))
        bound = (2 * abs(gamma) * math.sqrt(X.shape[0]) * np.linalg.norm(proj[:, j])
                 * s[0] ** 2 / (s[-1] ** 2 * w_norm2))
        lrs.append(1.0 / bound)
    return float(min(lrs))


def _network(d, k, gamma, beta):
    return Network([Dense(d, k, activation="identity", bias=False,
                          batch_norm=BatchNorm(gamma, beta, trainable=False, eps=0.0))])


def _to_params(w):
    return np.ascontiguousarray(_columns(w).T).ravel()          # W (k, d) row-major


def _from_params(params, w_shape):
    d = w_shape[0]
    W = np.asarray(params, dtype=np.float64).reshape(-1, d)     # (k, d)
    return W.T.reshape(w_shape).copy()                          # (d,) or (d, k)


def _angles(w, direction):
    """Angle between each column of w and of direction, computed stably near 0."""
    w, v = _columns(w), _columns(direction)
    out = []
    for j in range(w.shape[1]):
        unit = v[:, j] / np.linalg.norm(v[:, j])
        along = float(w[:, j] @ unit)
        across = float(np.linalg.norm(w[:, j] - along * unit))
        out.append(math.atan2(across, along))
    return np.array(out)


def native_gd_check(X, y, w0, gamma, beta, direction, lr=None, steps=None):
    """Runs bnfast.train on the BN network from w0 and compares the end point with
    the ray {t * direction, t > 0} (per column). X (m, d), y (m,) or (m, k), w0 and
    direction (d,) or (d, k), all float64. Returns a GDCrossCheck."""
    lr = auto_lr(X, y, w0, gamma) if lr is None else float(lr)
    steps = DEFAULT_STEPS if steps is None else int(steps)
    d = X.shape[1]
    k = 1 if w0.ndim == 1 else w0.shape[1]
    net = _network(d, k, gamma, beta)
    net.params = _to_params(w0)
    result = train(net, X, y, lr, steps)
    end = _from_params(result.params, w0.shape)
    unit = _columns(end) / np.linalg.norm(_columns(end), axis=0)
    angles = _angles(end, direction)
    loss_end = float(net.loss(X, y))
    losses = np.asarray(result.losses, dtype=np.float64)
    end.setflags(write=False)
    unit = unit.reshape(w0.shape)
    unit.setflags(write=False)
    return GDCrossCheck(
        lr=lr, steps=steps, end_point=end, end_direction=unit,
        angle=float(angles[0]) if w0.ndim == 1 else angles,
        agrees=bool(np.all(angles < AGREEMENT_TOLERANCE)), tolerance=AGREEMENT_TOLERANCE,
        loss_start=float(losses[0]) if losses.size else loss_end, loss_end=loss_end)


def native_gd_path(X, y, w0, gamma, beta, lr, steps, every=1):
    """The GD trajectory from w0: an array (n, d) of the weights of one neuron after
    0, every, 2*every, ... steps, from repeated native runs of `every` steps."""
    net = _network(X.shape[1], 1, gamma, beta)
    net.params = _to_params(w0)
    points = [np.array(w0, dtype=np.float64)]
    for _ in range(0, steps, every):
        train(net, X, y, lr, every)
        points.append(_from_params(net.params, w0.shape))
    return np.array(points)
