"""Checker of Lemma 4.5 of Santurkar et al. (2018) on one layer of identity-activation
neurons without bias, in float64 or in exact arithmetic (docs/math/lemma_4_5.md).

The closed forms (derived in docs/math/lemma_4_5.md; eps = 0, biased batch variance, constant gamma
and beta). For one neuron with data X (m, d), targets y (m,), weights w:

    standard loss  L(w)    = ||y - X w||^2,   minimised by W* = (X^T X)^-1 X^T y
    centred data   X_c = X - 1 mean(X),  y_c = y - mean(y),  u(w) = X_c w
    BN loss        L_BN(w) = sum_i (y_i - gamma * sqrt(m) u_i / ||u|| - beta)^2
                           = S - 2 gamma sqrt(m) <y_c, u> / ||u||,
                   S = ||y - beta||^2 + m gamma^2    (since sum_i u_i = 0)
    its gradient   grad L_BN(w) = -2 gamma sqrt(m / ||u||^2) X_c^T (y_c - <y_c,u>/||u||^2 u)
    BN optima      L_BN depends on w only through the direction of u, and <y_c, u>/||u||
                   is the cosine of u with the projection of y_c on col(X_c) times its
                   length; as X_c is injective the only local minima are the open ray
                   {t * sign(gamma) * a : t > 0}, a = (X_c^T X_c)^-1 X_c^T y_c the slope
                   of the least-squares fit WITH intercept, and
                   min L_BN = S - 2 |gamma| sqrt(m <y_c, X_c a>).
    closest one    t* = <w0, v> / ||v||^2 for v = sign(gamma) a, if t* > 0; otherwise
                   the open ray has no point closest to w0 and the distance's infimum
                   is ||w0||^2 (the origin).

A layer of k neurons (y (m, k), w0 (d, k)) is k independent instances: the loss is a
sum over the columns and each column has its own BN statistics, so the lemma's
column-by-column norms (Remark 3.1 of Dannemann and Junike) check (1) per column.
"""

import math

import numpy as np

from .report import Lemma45Report
from .statement import arithmetic

__all__ = ["check_lemma_4_5"]


def check_lemma_4_5(X, y, w0, gamma=1.0, beta=0.0, exact=False, *, cross_check=True,
                    gd_lr=None, gd_steps=None):
    """Checks inequality (1) of Lemma 4.5 (Santurkar et al. 2018) on one instance.

    X      (m, d) inputs, one sample per row (the batch is the learning set)
    y      (m,) targets of one neuron, or (m, k) for a layer of k neurons
    w0     (d,) initial weights, or (d, k) for a layer (column j = neuron j)
    gamma, beta   the constant BN scale and shift (eps = 0, biased variance)
    exact  False: float64. True: exact sympy arithmetic; float inputs are taken at
           their exact binary value, and every reported number is an exact sympy
           number (rationals and radicals).
    cross_check   also run the native BN gradient descent from w0 (bnfast.train) and
           compare where it ends with the closed-form optimum ray (report.gd);
           gd_lr / gd_steps override the automatic learning rate and step count.

    Returns a Lemma45Report (see bnfast.claims.report for every field). Raises
    ValueError for inconsistent shapes and for degenerate instances: gamma = 0,
    centred X of rank < d, constant targets, targets uncorrelated with the inputs
    (the BN loss is then constant), w0 or W* with a zero column (BN undefined there).
    """
    ar = arithmetic(exact)
    X = ar.array(X, "X")
    y = ar.array(y, "y")
    w0 = ar.array(w0, "w0")
    gamma = ar.scalar(gamma, "gamma")
    beta = ar.scalar(beta, "beta")
    layer = _check_shapes(X, y, w0)
    if ar.is_zero(gamma, 0.0):
        raise ValueError("gamma = 0 makes the BN output the constant beta: the BN loss "
                         "does not depend on the weights, so it has no optimum to compare")

    m, d = X.shape
    Xc = X - np.array([ar.mean(X[:, j]) for j in range(d)], dtype=X.dtype)
    ar.prepare(ar.to_float(X), ar.to_float(Xc))
    rank = ar.rank(Xc)
    if rank < d:
        why = (f"only {m} samples for {d} inputs (the centred data need m >= d + 1)"
               if m < d + 1 else "the centred samples lie in a lower-dimensional subspace")
        raise ValueError(f"degenerate instance: the centred X has rank {rank} < d = {d} "
                         f"({why}); the BN optima are then not a single ray")

    if not layer:
        report = _check_column(X, Xc, y, w0, gamma, beta, ar, column=None)
    else:
        columns = tuple(_check_column(X, Xc, y[:, j], w0[:, j], gamma, beta, ar, column=j)
                        for j in range(y.shape[1]))
        report = _stack(columns, ar)
    if cross_check:
        from .gd import native_gd_check
        report = report.with_gd(native_gd_check(
            ar.to_float(X), ar.to_float(y), ar.to_float(w0), float(gamma), float(beta),
            ar.to_float(report.bn_direction), lr=gd_lr, steps=gd_steps))
    return report


def _check_shapes(X, y, w0):
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"X must be a non-empty (m, d) matrix, one sample per row; "
                         f"got shape {X.shape}")
    m, d = X.shape
    if y.ndim not in (1, 2) or y.shape[0] != m:
        raise ValueError(f"y must have shape ({m},) or ({m}, k) to match the {m} rows of X, "
                         f"got shape {y.shape}")
    if y.ndim == 2 and y.shape[1] == 0:
        raise ValueError(f"y of shape {y.shape} has no neuron")
    want = (d,) if y.ndim == 1 else (d, y.shape[1])
    if w0.shape != want:
        raise ValueError(f"w0 must have shape {want} for X of shape {X.shape} and y of "
                         f"shape {y.shape} (a (d,) vector for one neuron, (d, k) for a "
                         f"layer of k neurons), got shape {w0.shape}")
    return y.ndim == 2


def _norm(v):
    return float(np.linalg.norm(np.asarray(v, dtype=np.float64)))


def _check_column(X, Xc, y, w0, gamma, beta, ar, column):
    m, d = X.shape
    where = "" if column is None else f" (column {column})"
    dot, num = ar.dot, ar.number
    Xf, Xcf, yf, w0f = (ar.to_float(a) for a in (X, Xc, y, w0))

    if ar.all_equal(y):
        raise ValueError(f"degenerate instance: the targets y{where} are constant, so "
                         "they are uncorrelated with every BN output and the BN loss "
                         "does not depend on the weights")
    if all(ar.is_zero(v, 1.0) for v in w0) if ar.exact else not np.any(w0f):
        raise ValueError(f"w0{where} is zero: the BN network is undefined there "
                         "(zero batch variance with eps = 0)")
    y_mean = ar.mean(y)
    yc = np.array([v - y_mean for v in y], dtype=y.dtype)
    ycf = ar.to_float(yc)

    # The BN network: its optima are the ray of sign(gamma) * a.
    a = ar.lstsq(Xc, yc)
    proj2 = dot(yc, Xc @ a)          # ||P y_c||^2 = <y_c, X_c a>
    if ar.is_zero(ar.sqrt(proj2) if ar.exact else math.sqrt(max(proj2, 0.0)), _norm(ycf)):
        raise ValueError(f"degenerate instance: the targets y{where} are uncorrelated "
                         "with every linear function of the inputs (X_c^T y_c = 0), so "
                         "the BN loss is the same for all weights")

    # The standard network: W* (least squares without intercept).
    Xty = X.T @ y
    if ar.is_zero(ar.sqrt(dot(Xty, Xty)), _norm(Xf) * _norm(yf)):
        raise ValueError(f"degenerate instance: W*{where} = 0 (X^T y = 0), where the BN "
                         "network is undefined (zero batch variance with eps = 0)")
    w_star = ar.lstsq(X, y)
    w_star_f = ar.to_float(w_star)
    inner = dot(w0, w_star)
    premise = ar.is_positive(inner, _norm(w0f) * _norm(w_star_f))
    positive_gamma = ar.is_positive(gamma, 0.0)
    direction = a if positive_gamma else -a
    toward = dot(w0, direction)
    if ar.is_positive(toward, _norm(w0f) * _norm(ar.to_float(direction))):
        t = toward / dot(direction, direction)
        bn_optimum = ar.vector(t * direction)
        diff = w0 - bn_optimum
        lhs = dot(diff, diff)
    else:
        bn_optimum = None
        lhs = dot(w0, w0)

    # Both sides of (1).
    ws2 = dot(w_star, w_star)
    diff = w0 - w_star
    rhs = num(dot(diff, diff) - (ws2 - inner) ** 2 / ws2)
    lhs = num(lhs)
    scale = (_norm(w0f) + _norm(w_star_f)) ** 2
    holds = ar.le(lhs, rhs, scale) if premise else None

    # The gradient of the BN loss at W*.
    u = Xc @ w_star
    uu = dot(u, u)
    s = dot(yc, u)
    r = Xc.T @ (yc - (s / uu) * u)
    coef = -2 * gamma * ar.sqrt(m / uu) if ar.exact else -2 * gamma * math.sqrt(m / uu)
    grad = ar.vector(coef * r)
    grad_norm = ar.sqrt(dot(grad, grad))
    grad_scale = 2 * abs(float(gamma)) * math.sqrt(m) * _norm(Xcf) * _norm(ycf) / math.sqrt(float(uu))
    critical = ar.is_zero(grad_norm, grad_scale)

    # Loss values.
    S = dot(y - beta, y - beta) + m * gamma ** 2

    def loss_bn(w):
        uw = Xc @ w
        root = ar.sqrt(m / dot(uw, uw)) if ar.exact else math.sqrt(m / dot(uw, uw))
        return num(S - 2 * gamma * dot(yc, uw) * root)

    resid = y - X @ w_star
    loss_bn_min = num(S - 2 * abs(gamma) * (ar.sqrt(m * proj2) if ar.exact
                                            else math.sqrt(m * proj2)))

    return Lemma45Report(
        exact=ar.exact, gamma=gamma, beta=beta, n_samples=m, n_inputs=d, n_neurons=None,
        w0=ar.vector(w0), w_star=ar.vector(w_star), inner_w0_w_star=num(inner),
        premise=bool(premise), bn_direction=ar.vector(direction), bn_optimum=bn_optimum,
        lhs=lhs, rhs=rhs, margin=num(rhs - lhs), holds=holds,
        grad_bn_at_w_star=grad, grad_bn_norm=num(grad_norm),
        w_star_is_bn_critical=bool(critical),
        loss_std_at_w_star=num(dot(resid, resid)), loss_bn_at_w_star=loss_bn(w_star),
        loss_bn_at_w0=loss_bn(w0), loss_bn_min=loss_bn_min,
        tolerance=ar.tolerance(scale))


def _stack(columns, ar):
    """The layer report: per-neuron fields side by side, losses summed."""
    def matrix(name):
        out = np.stack([getattr(c, name) for c in columns], axis=1)
        out.setflags(write=False)
        return out

    def per_neuron(name):
        values = [getattr(c, name) for c in columns]
        out = np.array(values, dtype=object if ar.exact else np.float64)
        out.setflags(write=False)
        return out

    def total(name):
        return ar.number(sum((getattr(c, name) for c in columns), 0))

    verdicts = [c.holds for c in columns]
    if any(v is False for v in verdicts):
        holds = False
    elif all(v is True for v in verdicts):
        holds = True
    else:
        holds = None
    premise = np.array([c.premise for c in columns], dtype=bool)
    premise.setflags(write=False)
    first = columns[0]
    return Lemma45Report(
        exact=ar.exact, gamma=first.gamma, beta=first.beta, n_samples=first.n_samples,
        n_inputs=first.n_inputs, n_neurons=len(columns), w0=matrix("w0"),
        w_star=matrix("w_star"), inner_w0_w_star=per_neuron("inner_w0_w_star"),
        premise=premise, bn_direction=matrix("bn_direction"),
        bn_optimum=tuple(c.bn_optimum for c in columns), lhs=per_neuron("lhs"),
        rhs=per_neuron("rhs"), margin=per_neuron("margin"), holds=holds,
        grad_bn_at_w_star=matrix("grad_bn_at_w_star"),
        grad_bn_norm=ar.number(ar.sqrt(sum((c.grad_bn_norm ** 2 for c in columns), 0))),
        w_star_is_bn_critical=all(c.w_star_is_bn_critical for c in columns),
        loss_std_at_w_star=total("loss_std_at_w_star"),
        loss_bn_at_w_star=total("loss_bn_at_w_star"), loss_bn_at_w0=total("loss_bn_at_w0"),
        loss_bn_min=total("loss_bn_min"), columns=columns,
        tolerance=max(c.tolerance for c in columns))
