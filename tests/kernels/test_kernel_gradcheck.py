"""Finite-difference checks of the backward pass, in float64.

L(x, weight, bias) = sum(R * y) for a fixed random R, so dL/dy = R and the backward
pass with grad_y = R must give dL/dx, dL/dweight, dL/dbias. Each partial derivative is
compared with the central difference (L(p + h) - L(p - h)) / (2h):
* truncation error h**2 / 6 * |d3L/dp3|: with h = 1e-5 and O(1) derivatives (inputs
  of unit spread, eps >= 1e-3 or unit variance) about 1e-11;
* rounding error ~ u64 * |L| / h: |L| <= sum|R| * max|y| ~ 1e2, so ~1e-9.
FD_TOL = 1e-7 * (1 + max|gradient|) is 100x above both, and a wrong term of the
backward formula is off by O(1): the check cannot pass by accident.
Both bnfast and the reference are checked (the reference is the parity oracle).
"""

import numpy as np
import pytest

import bnfast
from bnfast import reference

H = 1e-5
FD_TOL = 1e-7

IMPLEMENTATIONS = {"bnfast": (bnfast.batch_norm_forward, bnfast.batch_norm_backward),
                   "reference": (reference.batch_norm_forward, reference.batch_norm_backward)}


def central_difference(f, p):
    """Gradient of the scalar f at p (float64 array) by central differences."""
    grad = np.empty_like(p)
    for i in np.ndindex(p.shape):
        old = p[i]
        p[i] = old + H
        up = f(p)
        p[i] = old - H
        down = f(p)
        p[i] = old
        grad[i] = (up - down) / (2 * H)
    return grad


def assert_gradient(analytic, numeric, what):
    scale = 1 + np.max(np.abs(numeric))
    err = np.max(np.abs(analytic - numeric))
    assert err <= FD_TOL * scale, f"{what}: max error {err:.3e}, scale {scale:.3e}"


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("eps", [1e-5, 1e-3, 0.5], ids=lambda e: f"eps{e}")
@pytest.mark.parametrize("shape", [(2, 1), (5, 3), (4, 2, 3), (3, 2, 2, 3), (2, 3, 1, 4)],
                         ids=str)
def test_gradients_match_central_differences(rng, impl, shape, eps):
    forward, backward = IMPLEMENTATIONS[impl]
    c = shape[1]
    x = rng.normal(size=shape) * rng.uniform(0.5, 2, (1, c) + (1,) * (len(shape) - 2))
    weight, bias = rng.normal(size=c), rng.normal(size=c)
    r = rng.normal(size=shape)

    def loss(x_, w_, b_):
        return float(np.sum(r * forward(x_, w_, b_, eps)[0]))

    _, mean, invstd = forward(x, weight, bias, eps)
    gx, gw, gb = backward(r, x, mean, invstd, weight)
    assert_gradient(gx, central_difference(lambda p: loss(p, weight, bias), x.copy()), "x")
    assert_gradient(gw, central_difference(lambda p: loss(x, p, bias), weight.copy()),
                    "weight")
    assert_gradient(gb, central_difference(lambda p: loss(x, weight, p), bias.copy()), "bias")


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_gradient_without_weight_is_weight_one(rng, impl):
    forward, backward = IMPLEMENTATIONS[impl]
    x, r = rng.normal(size=(6, 3, 2)), rng.normal(size=(6, 3, 2))
    _, mean, invstd = forward(x)
    gx = backward(r, x, mean, invstd)[0]
    numeric = central_difference(lambda p: float(np.sum(r * forward(p)[0])), x.copy())
    assert_gradient(gx, numeric, "x")
    np.testing.assert_array_equal(gx, backward(r, x, mean, invstd, np.ones(3))[0])


def test_gradient_with_eps_zero(rng):
    """eps = 0, the exact transform of the theory: still a smooth function of x away
    from constant channels."""
    x, r = rng.normal(size=(5, 2, 3)), rng.normal(size=(5, 2, 3))
    weight = rng.normal(size=2)
    _, mean, invstd = bnfast.batch_norm_forward(x, weight, eps=0.0)
    gx, gw, _ = bnfast.batch_norm_backward(r, x, mean, invstd, weight)

    def loss(x_, w_):
        return float(np.sum(r * bnfast.batch_norm_forward(x_, w_, eps=0.0)[0]))

    assert_gradient(gx, central_difference(lambda p: loss(p, weight), x.copy()), "x")
    assert_gradient(gw, central_difference(lambda p: loss(x, p), weight.copy()), "weight")
