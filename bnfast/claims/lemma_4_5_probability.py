"""How often Lemma 4.5 of Santurkar et al. (2018) holds for a random initialization: a
closed form (docs/math/lemma_4_5.md, docs/math/santurkar_section_4.md).

One identity neuron without bias, data X (m, d), targets y (m,), constant gamma != 0,
eps = 0. Let a be the least-squares slope WITH intercept, v = sign(gamma) a (the BN
optima are the open ray of v), and W* the slope WITHOUT intercept. Under the premise
<W0, W*> > 0 the right side of (1) is ||W0||^2 - <W0, W*>^2/||W*||^2 and the left side is
||W0||^2 - <W0, v>^2/||v||^2 when <W0, v> > 0 (else ||W0||^2), so

    (1) holds  <=>  <W0, v> > 0  and  cos angle(W0, v) >= cos angle(W0, W*).

The three conditions are half-spaces whose normals W*, v and v/||v|| - W*/||W*|| lie in
the plane span(v, W*), so for an isotropic W0 (any dimension d) only the angle phi of
its projection on that plane matters, and phi is uniform. With W* at phi = 0 and v at
phi = theta in (0, pi]: the premise is |phi| < pi/2, <W0, v> > 0 is |phi - theta| <
pi/2, and the bisector condition is phi in [theta/2, theta/2 + pi]; their intersection
is [theta/2, pi/2), of length (pi - theta)/2, out of the premise's pi:

    P[(1) holds | <W0, W*> > 0] = 1/2 - theta/(2 pi),   theta = angle(v, W*).

At theta = 0 (W* on the BN ray: both sides of (1) are the same distance) (1) holds
for every W0 with the premise: p = 1.
"""

import math

import numpy as np

from ._float import FloatArithmetic
from .lemma_4_5 import check_lemma_4_5

__all__ = ["lemma_4_5_holds_probability"]


def lemma_4_5_holds_probability(X, y, gamma=1.0):
    """P[(1) of Lemma 4.5 holds | <W0, W*> > 0] for an isotropic random W0.

    X      (m, d) inputs, one sample per row (the batch is the learning set)
    y      (m,) targets of one neuron
    gamma  the constant BN scale (nonzero; its sign picks the ray of BN optima)

    Returns (p, theta): theta in [0, pi] the angle in radians between sign(gamma) a
    (a the least-squares slope with intercept) and W* (without intercept), p =
    1/2 - theta/(2 pi), or 1 when theta = 0 (W* on the BN ray, within rounding). The
    inputs are validated as check_lemma_4_5 does (ValueError for inconsistent shapes
    and degenerate instances, TypeError for non-numbers). The answer does not depend on
    positive scales of X and y, at any magnitude (y * 1e154, X * 1e-300): a power-of-two
    factor changes no bit. Example 3.2: theta = 4.574 degrees, p = 0.4873.
    """
    if isinstance(y, (str, bytes)):
        raise TypeError(f"y must be an array of real numbers, got {type(y).__name__}")
    if np.ndim(y) != 1:
        raise ValueError("y must be a vector (m,): the probability is for one neuron "
                         f"(apply it to each column of a layer), got shape {np.shape(y)}")
    d = np.shape(X)[1] if np.ndim(X) == 2 else 1
    # theta does not change when X or y is multiplied by a positive number (v and W*
    # both scale by r/s for X -> s X, y -> r y), but the reported v and W* are scaled
    # back and over- or underflow at extreme scales (y * 1e154, X * 1e300): X and y are
    # first divided by powers of two with check_lemma_4_5's own scaling (exact), and
    # v, W* likewise before their norms. check_lemma_4_5 validates everything; any
    # nonzero w0 serves (it is not used here).
    fa = FloatArithmetic()
    X = fa.split_scale(fa.array(X, "X"))[0]
    y = fa.split_scale(fa.array(y, "y"))[0]
    report = check_lemma_4_5(X, y, np.ones(d), gamma=gamma, cross_check=False)
    v = fa.split_scale(report.bn_direction)[0]
    w = fa.split_scale(report.w_star)[0]
    v, w = v / np.linalg.norm(v), w / np.linalg.norm(w)
    # Stable at every angle (acos loses half the digits near 0 and pi).
    theta = 2.0 * math.atan2(float(np.linalg.norm(v - w)), float(np.linalg.norm(v + w)))
    if report.w_star_is_bn_critical and theta < math.pi / 2:
        # W* on the BN ray (its gradient is zero up to rounding): the two sides of
        # (1) coincide for every W0 with the premise.
        return 1.0, 0.0
    return 0.5 - theta / (2.0 * math.pi), theta
