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

Magnitudes. The maths is scale invariant (BN with eps = 0 does not see the scale of w
nor of X, and the verdict does not see the scale of y), and so is the float path: it
divides X, y and w0 by powers of two (exact), decides in those units, and scales the
reported numbers back (check_lemma_4_5's docstring gives every power), so no finite
input overflows, underflows or divides by zero on the way to a verdict.
"""

import dataclasses
import math
from functools import partial

import numpy as np

from ._float import FloatArithmetic
from .counterexample import Row, draw_data
from .report import Lemma45Report
from .statement import arithmetic

__all__ = ["AUDIT_ROWS", "check_lemma_4_5"]


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

    Magnitudes (float path). Every finite input is accepted, however large or small:
    the verdicts do not depend on the scales of w0, X and y, and are computed as if
    they were 1. X, each column of y and each column of w0 is first divided by a
    power of two (max |entry| in [1/2, 1)), which is exact, and the decisions (premise,
    holds, w_star_is_bn_critical, and the degenerate-instance errors) are made on
    those scaled numbers with tolerances measured in the same units. With eps = 0
    they are exactly scale invariant: w0 -> t w0, X -> s X, y -> r y (s, t, r > 0)
    give the same verdicts and errors (for powers of two bit for bit; for other
    factors up to the rounding of the products t w0, s X, r y themselves). The
    reported numbers are then scaled back by the power of two the maths gives:
    lhs, rhs, gap and tolerance by t^2 (both sides of (1) depend only on w0 and on
    the directions of W* and of the BN ray, so they do not change with X or y);
    w_star and bn_direction by r / s; inner_w0_w_star by t r / s; bn_optimum by t;
    grad_bn_at_w_star and grad_bn_norm by s (the BN loss does not depend on w's
    scale, nor on X's); loss_std_at_w_star by r^2; the BN losses are computed in the
    units of the largest of y, gamma and beta. A reported number whose true value
    lies outside the float64 range saturates to +-inf (or underflows towards 0);
    the verdicts are decided before scaling back and are not affected (e.g. y =
    1e300 * (8, 6, 11) reports the BN losses as inf and the same verdict as the
    unscaled Example 3.2). No magnitude raises. The gradient-descent cross-check runs
    the same way on the scaled data (GD from t w0 with learning rate t^2 lr is t
    times GD from w0 with lr; the BN loss does not depend on X's scale; scaling y,
    gamma and beta by 1/r scales the loss by 1/r^2), and report.gd is scaled back.
    The exact path computes with the exact values and needs no scaling; only the
    cross-check (float64) then requires inputs within the float64 range (ValueError
    otherwise).
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
    # X = Xn * 2**kx exactly (float path; exact: Xn = X, kx = 0).
    Xn, kx = ar.split_scale(X)
    Xc = np.empty_like(Xn)
    for j in range(d):
        Xc[:, j] = ar.centre(Xn[:, j])[0]
    if not ar.exact:
        ar.prepare(Xn, Xc)
    rank = ar.rank(Xc)
    if rank < d:
        why = (f"only {m} samples for {d} inputs (the centred data need m >= d + 1)"
               if m < d + 1 else "the centred samples lie in a lower-dimensional subspace")
        raise ValueError(f"degenerate instance: the centred X has rank {rank} < d = {d} "
                         f"({why}); the BN optima are then not a single ray")

    if not layer:
        report, direction = _check_column(Xn, Xc, kx, y, w0, gamma, beta, ar, column=None)
    else:
        results = [_check_column(Xn, Xc, kx, y[:, j], w0[:, j], gamma, beta, ar, column=j)
                   for j in range(y.shape[1])]
        report = _stack(tuple(r for r, _ in results), ar)
        direction = np.stack([v for _, v in results], axis=1)
    if cross_check:
        report = report.with_gd(_gd_cross_check(
            ar.to_float(X), ar.to_float(y), ar.to_float(w0), float(gamma), float(beta),
            direction, gd_lr, gd_steps))
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


def _check_column(Xn, Xc, kx, y, w0, gamma, beta, ar, column):
    """One neuron. Xn = X / 2**kx and Xc its centred columns. Returns the report and
    a float64 vector along the BN ray (for the gradient-descent cross-check).

    Units (float path; on the exact path every exponent is 0): w0 = w0n 2**k0,
    y = yn 2**ky, W* = ws 2**(kw + ky - kx), the BN direction = vn 2**(ka + ky - kx),
    gamma = gn 2**kg; ws, vn, w0n, yn, gn have their largest entry in [1/2, 1), so
    no square or product below over- or underflows. The decisions compare numbers
    in these units with tolerances in the same units: they are scale invariant."""
    m, d = Xn.shape
    where = "" if column is None else f" (column {column})"
    dot, num, back = ar.dot, ar.number, ar.scale_back
    fl = not ar.exact

    def norm(v):
        # The size a float decision is measured against (the exact path ignores it,
        # and does not compute it: its numbers may lie outside the float64 range).
        return _norm(v) if fl else 0.0

    if ar.all_equal(y):
        raise ValueError(f"degenerate instance: the targets y{where} are constant, so "
                         "they are uncorrelated with every BN output and the BN loss "
                         "does not depend on the weights")
    if all(ar.is_zero(v, 1.0) for v in w0) if ar.exact else not np.any(w0):
        raise ValueError(f"w0{where} is zero: the BN network is undefined there "
                         "(zero batch variance with eps = 0)")
    w0n, k0 = ar.split_scale(w0)
    yn, ky = ar.split_scale(y)
    ycn = ar.centre(yn)[0]

    # The BN network: its optima are the ray of sign(gamma) * a.
    a = ar.lstsq(Xc, ycn)            # the slope with intercept, times 2**(kx - ky)
    proj2 = dot(ycn, Xc @ a)         # ||P y_c||^2 = <y_c, X_c a>, times 4**-ky
    if ar.is_zero(ar.sqrt(proj2) if ar.exact else math.sqrt(max(proj2, 0.0)), norm(ycn)):
        raise ValueError(f"degenerate instance: the targets y{where} are uncorrelated "
                         "with every linear function of the inputs (X_c^T y_c = 0), so "
                         "the BN loss is the same for all weights")

    # The standard network: W* (least squares without intercept).
    Xty = Xn.T @ yn
    if ar.is_zero(ar.sqrt(dot(Xty, Xty)), norm(Xn) * norm(yn)):
        raise ValueError(f"degenerate instance: W*{where} = 0 (X^T y = 0), where the BN "
                         "network is undefined (zero batch variance with eps = 0)")
    w_star = ar.lstsq(Xn, yn)        # W* times 2**(kx - ky)
    ws, kw = ar.split_scale(w_star)
    e_ws = kw + ky - kx              # W* = ws * 2**e_ws
    inner = dot(w0n, ws)             # <W0, W*> * 2**-(k0 + e_ws)
    premise = ar.is_positive(inner, norm(w0n) * norm(ws))
    an, ka = ar.split_scale(a)
    vn = an if ar.is_positive(gamma, 0.0) else -an
    e_v = ka + ky - kx               # the BN direction sign(gamma) a = vn * 2**e_v

    # Both sides of (1), in units of 4**k0. Each is a squared distance from w0 (to the
    # ray, and to the line of W*: ||W0 - W*||^2 - (||W*||^2 - <W*, W0>)^2/||W*||^2 =
    # ||W0 - (<W0, W*>/||W*||^2) W*||^2, docs/math/lemma_4_5.md section 4), computed
    # as such so that its rounding is relative to ||w0||^2 whatever ||W*|| is.
    toward = dot(w0n, vn)
    if ar.is_positive(toward, norm(w0n) * norm(vn)):
        optimum = ar.vector(toward / dot(vn, vn) * vn)
        bn_optimum = ar.vector(back(optimum, k0))
        diff = w0n - optimum
        lhs = dot(diff, diff)
    else:
        bn_optimum = None
        lhs = dot(w0n, w0n)
    diff = w0n - (inner / dot(ws, ws)) * ws
    rhs = num(dot(diff, diff))
    lhs = num(lhs)
    scale = 4 * dot(w0n, w0n) if fl else 0.0
    holds = ar.le(lhs, rhs, scale) if premise else None

    # The gradient of the BN loss at W*: grad = G * 2**e_g (homogeneous of degree -1
    # in w, linear in gamma, independent of y's scale, degree 1 in X's scale).
    gn, kg = ar.split_scale(gamma)
    u = Xc @ ws
    uu = dot(u, u)
    s = dot(ycn, u)
    r = Xc.T @ (ycn - (s / uu) * u)
    coef = -2 * gn * ar.sqrt(m / uu) if ar.exact else -2 * gn * math.sqrt(m / uu)
    G = ar.vector(coef * r)
    G_norm = ar.sqrt(dot(G, G))
    e_g = kx + kg - kw
    grad_scale = (2 * abs(gn) * math.sqrt(m) * norm(Xc) * norm(ycn) / math.sqrt(uu)
                  if fl else 0.0)
    critical = ar.is_zero(G_norm, grad_scale)

    # Loss values, in units of 4**e, 2**e the scale of the largest of y, gamma, beta.
    bn_, kb = ar.split_scale(beta)
    e = max([ky, kg] + ([] if ar.is_zero(beta, 0.0) else [kb]))
    yL, bL, gL = back(yn, ky - e), back(bn_, kb - e), back(gn, kg - e)
    S = dot(yL - bL, yL - bL) + m * gL ** 2

    def loss_bn(w):                  # any positive multiple of w gives the same loss
        uw = Xc @ w
        root = ar.sqrt(m / dot(uw, uw)) if ar.exact else math.sqrt(m / dot(uw, uw))
        return back(num(S - back(2 * gL * dot(ycn, uw) * root, ky - e)), 2 * e)

    resid = yn - Xn @ w_star
    loss_bn_min = back(num(S - back(2 * abs(gL) * (ar.sqrt(m * proj2) if ar.exact
                                                   else math.sqrt(m * proj2)), ky - e)),
                       2 * e)

    report = Lemma45Report(
        exact=ar.exact, gamma=gamma, beta=beta, n_samples=m, n_inputs=d, n_neurons=None,
        w0=ar.vector(w0), w_star=ar.vector(back(ws, e_ws)),
        inner_w0_w_star=num(back(inner, k0 + e_ws)),
        premise=bool(premise), bn_direction=ar.vector(back(vn, e_v)), bn_optimum=bn_optimum,
        lhs=num(back(lhs, 2 * k0)), rhs=num(back(rhs, 2 * k0)),
        gap=num(back(num(rhs - lhs), 2 * k0)), holds=holds,
        grad_bn_at_w_star=ar.vector(back(G, e_g)), grad_bn_norm=num(back(G_norm, e_g)),
        w_star_is_bn_critical=bool(critical),
        loss_std_at_w_star=num(back(num(dot(resid, resid)), 2 * ky)),
        loss_bn_at_w_star=num(loss_bn(ws)), loss_bn_at_w0=num(loss_bn(w0n)),
        loss_bn_min=num(loss_bn_min), tolerance=float(back(ar.tolerance(scale), 2 * k0)))
    if fl:
        direction = ar.to_float(vn)
    else:                            # exact: along the ray, largest entry +-1
        top = max(abs(v) for v in vn)
        direction = ar.to_float(ar.vector(vn / top))
    return report, direction


def _exponent(ar, x):
    """The power-of-two exponent split_scale gives x, or None when x is 0."""
    return None if ar.is_zero(x, 0.0) else ar.split_scale(x)[1]


def _gd_cross_check(X, y, w0, gamma, beta, direction, lr, steps):
    """native_gd_check on the same trajectory in well-scaled units (docs/math/
    lemma_4_5.md section 2, eps = 0). The BN loss does not depend on X's scale, and
    its gradient, -(2 gamma sqrt(m) / ||u||) X_c^T (y_c - <y_c, u> u / ||u||^2) with
    u = X_c w, is of degree -1 in w, linear in gamma * y and free of beta. So with
    X = Xn 2**kx, w0 = w0n 2**k0, y = yn 2**ky, gamma = gn 2**kg (powers of two, exact),
    GD on (Xn, yn, gn, beta = 0) from w0n with learning rate lr 2**(ky + kg - 2 k0) is
    GD on the given instance from w0 with lr, divided by 2**k0; its end point and
    learning rate are scaled back (saturating outside the float64 range). Running it
    in these units keeps the native backward pass free of the rounding that swamps
    the gradient when |y| << |gamma| (its gamma^2 and beta terms cancel only in exact
    arithmetic), so the cross-check does not depend on the magnitudes either. The
    losses are the given instance's, evaluated by the native network with y, gamma
    and beta divided by one common power of two 2**e (the loss times 4**-e)."""
    from .gd import _network, _to_params, native_gd_check
    for name, value in (("X", X), ("y", y), ("w0", w0), ("gamma", gamma), ("beta", beta)):
        if not np.all(np.isfinite(value)):
            raise ValueError(f"{name} is outside the float64 range, where the native "
                             "gradient-descent cross-check runs; pass cross_check=False")
    fa = FloatArithmetic()
    Xn = fa.split_scale(X)[0]
    w0n, k0 = fa.split_scale(w0)
    yn, ky = fa.split_scale(y)
    gn, kg = fa.split_scale(gamma)
    lr_n = None if lr is None else fa.scale_back(float(lr), ky + kg - 2 * k0)
    gd = native_gd_check(Xn, yn, w0n, gn, 0.0, direction, lr=lr_n, steps=steps)

    e = max(k for k in (ky, kg, _exponent(fa, beta)) if k is not None)
    net = _network(X.shape[1], 1 if w0.ndim == 1 else w0.shape[1],
                   fa.scale_back(gamma, -e), fa.scale_back(beta, -e))
    y_e = fa.scale_back(y, -e)

    def loss(w):
        net.params = _to_params(np.asarray(w, dtype=np.float64))
        return fa.scale_back(float(net.loss(Xn, y_e)), 2 * e)

    end = np.array(fa.scale_back(gd.end_point, k0), dtype=np.float64)
    end.setflags(write=False)
    return dataclasses.replace(
        gd, lr=fa.scale_back(gd.lr, 2 * k0 - ky - kg), end_point=end,
        loss_start=loss(w0n), loss_end=loss(gd.end_point))


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
        rhs=per_neuron("rhs"), gap=per_neuron("gap"), holds=holds,
        grad_bn_at_w_star=matrix("grad_bn_at_w_star"),
        grad_bn_norm=(ar.number(ar.sqrt(sum((c.grad_bn_norm ** 2 for c in columns), 0)))
                      if ar.exact else math.hypot(*(c.grad_bn_norm for c in columns))),
        w_star_is_bn_critical=all(c.w_star_is_bn_critical for c in columns),
        loss_std_at_w_star=total("loss_std_at_w_star"),
        loss_bn_at_w_star=total("loss_bn_at_w_star"), loss_bn_at_w0=total("loss_bn_at_w0"),
        loss_bn_min=total("loss_bn_min"), columns=columns,
        tolerance=max(c.tolerance for c in columns))


# ---- the row of `bnfast audit` (claims/audit.py) ---------------------------------------

def _example_3_2_probability():
    """How often (1) holds on Example 3.2 for a random initialization (closed form)."""
    from .example_3_2 import EXAMPLE_3_2      # both modules import this one
    from .lemma_4_5_probability import lemma_4_5_holds_probability

    p, theta = lemma_4_5_holds_probability(EXAMPLE_3_2["X"], EXAMPLE_3_2["y"])
    return {"example_3_2_holds_probability": p,
            "example_3_2_theta_degrees": float(np.degrees(theta))}


def _example_3_2_notes(extra):
    p, theta = extra["example_3_2_holds_probability"], extra["example_3_2_theta_degrees"]
    # P[premise] = 1/2 for an isotropic W0: the lemma fails for (1 - p)/2 of all W0.
    return ["on Example 3.2, for a random W0 with the premise",
            "<W0, W*> > 0, (1) holds with probability",
            f"1/2 - theta/(2 pi) = {p:.4f} (theta = {theta:.3f} deg):",
            f"it fails for {1 - p:.0%} of the initializations with the",
            f"premise ({(1 - p) / 2:.0%} of all), not only at W0 = W*"]


AUDIT_ROWS = (Row("lemma-4-5", "Lemma 4.5", "printed",
                  partial(check_lemma_4_5, cross_check=False), draw_data,
                  extra=_example_3_2_probability, notes=_example_3_2_notes),)
