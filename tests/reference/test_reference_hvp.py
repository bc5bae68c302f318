"""bnfast.reference.network_hvp (docs/math/networks.md section 11): the complex-step
Hessian-vector product of the training-mode loss, against central differences of the
gradient, exact Hessians, symmetry, linearity and the scale invariance of BN.

Tolerances. Central differences of the gradient along v with t = 1e-5 have truncation
error ~t^2 |d^3 g / dt^3| / 6 ~ 1e-10 and rounding error ~1e-16 |g| / t ~ 1e-10 for
gradients of order 10, so 1e-6 relative to max |H v| leaves a margin of ~1e3 either
way (measured: at most 2e-8). The complex step itself takes no difference: its result
is the exact derivative up to rounding (~1e-15 relative per operation), so the algebraic
identities below (symmetry, linearity, exact Hessians, H w = -grad) hold to 1e-12
(measured: below 1e-15).
"""

import math

import numpy as np
import pytest

from bnfast import reference
from reference_cases import (bn, dense, noise, random_params, rel_err, residual,
                             smooth_margin)

CASES = [("std", "tanh", 0.0), ("std", "relu", 1e-3), ("l1", "sigmoid", 0.0),
         ("l2", "tanh", 0.1), ("linf", "sigmoid", 0.0), ("linf", "relu", 0.1),
         (None, "tanh", 0.0)]


def hvp_case(norm, activation, eps, seed, m=6):
    """3 -> 4 -> {residual 4 -> 5 -> 4} -> 2, BN with ``norm`` (None: no BN) on the
    first layer (trainable) and inside the block (constant); no kink within 1e-3."""
    for attempt in range(200):
        rng = np.random.default_rng([seed, attempt])

        def norm_dict(trainable):
            return None if norm is None else bn(float(rng.uniform(0.6, 1.4)),
                                                float(rng.uniform(-0.5, 0.5)), trainable,
                                                eps, norm=norm)

        layers = [dense(3, 4, activation, False, norm_dict(True)),
                  residual(dense(4, 5, activation, True, norm_dict(False)),
                           dense(5, 4, "tanh", True)),
                  dense(4, 2, "identity", True)]
        params = random_params(layers, rng)
        X, y = rng.normal(size=(m, 3)), rng.normal(size=(m, 2))
        if smooth_margin(layers, params, X) > 1e-3:
            return layers, params, X, y, rng
    raise AssertionError("no draw away from the kinks")


def gradient_difference(layers, params, X, y, v, t=1e-5, loss="sum"):
    return (reference.network_gradient(layers, params + t * v, X, y, loss)
            - reference.network_gradient(layers, params - t * v, X, y, loss)) / (2 * t)


@pytest.mark.parametrize("norm,activation,eps", CASES)
def test_hvp_matches_differences_of_the_gradient(norm, activation, eps):
    layers, params, X, y, rng = hvp_case(norm, activation, eps, seed=CASES.index(
        (norm, activation, eps)))
    for _ in range(3):
        v = rng.normal(size=params.size)
        hv = reference.network_hvp(layers, params, X, y, v)
        assert hv.shape == params.shape and hv.dtype == np.float64
        assert rel_err(hv, gradient_difference(layers, params, X, y, v)) <= 1e-6


@pytest.mark.parametrize("norm,activation,eps", CASES)
def test_hvp_is_symmetric_and_linear(norm, activation, eps):
    layers, params, X, y, rng = hvp_case(norm, activation, eps, seed=50 + CASES.index(
        (norm, activation, eps)))
    v1, v2 = rng.normal(size=(2, params.size))
    h1 = reference.network_hvp(layers, params, X, y, v1)
    h2 = reference.network_hvp(layers, params, X, y, v2)
    scale = np.linalg.norm(v1) * max(np.linalg.norm(h1), np.linalg.norm(h2))
    assert abs(v1 @ h2 - v2 @ h1) <= 1e-12 * scale
    combined = reference.network_hvp(layers, params, X, y, 2.5 * v1 - 0.75 * v2)
    assert rel_err(combined, 2.5 * h1 - 0.75 * h2) <= 1e-12
    # a huge or tiny direction is scaled for the step: still linear
    assert rel_err(reference.network_hvp(layers, params, X, y, 1e250 * v1), 1e250 * h1) \
        <= 1e-12
    assert rel_err(reference.network_hvp(layers, params, X, y, 1e-250 * v1),
                   1e-250 * h1) <= 1e-12


def test_hvp_of_least_squares_is_2_At_A_v():
    """One identity layer with bias: L = ||y - [X 1] theta||^2 has Hessian 2 A^T A,
    A = [X 1] in the parameter order (W row, then b)."""
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(8, 3)), rng.normal(size=8)
    params, v = rng.normal(size=4), rng.normal(size=4)
    A = np.hstack([X, np.ones((8, 1))])
    hv = reference.network_hvp([dense(3, 1)], params, X, y, v)
    assert rel_err(hv, 2 * A.T @ A @ v) <= 1e-14
    mean = reference.network_hvp([dense(3, 1)], params, X, y, v, loss="mean")
    assert rel_err(mean, 2 * A.T @ A @ v / 8) <= 1e-14


@pytest.mark.parametrize("norm", ["std", "l1", "l2", "linf"])
def test_hessian_times_a_bn_neurons_weights_is_minus_its_gradient(norm):
    """eps = 0, no bias: the loss is invariant under w -> c w (c > 0) for the incoming
    weights w of a BN neuron, so Hess_ww w = -grad_w and Hess_(other, w) w = 0
    (batch_norm.md section 4): H v = -grad on w's entries and 0 elsewhere for v = w
    padded with zeros."""
    layers, params, X, y, _ = hvp_case(norm, "tanh", 0.0, seed=20)
    w = slice(3, 6)  # neuron 1 of the first layer (3 inputs, no bias)
    v = np.zeros_like(params)
    v[w] = params[w]
    hv = reference.network_hvp(layers, params, X, y, v)
    grad = reference.network_gradient(layers, params, X, y)
    expected = np.zeros_like(params)
    expected[w] = -grad[w]
    assert np.max(np.abs(hv - expected)) <= 1e-12 * np.max(np.abs(grad))


@pytest.mark.parametrize("norm", ["std", "linf"])
def test_mean_hvp_is_the_sum_over_m(norm):
    layers, params, X, y, rng = hvp_case(norm, "sigmoid", 0.1, seed=30, m=5)
    v = rng.normal(size=params.size)
    total = reference.network_hvp(layers, params, X, y, v)
    assert rel_err(reference.network_hvp(layers, params, X, y, v, loss="mean"),
                   total / 5) <= 1e-15
    np.testing.assert_array_equal(reference.network_hvp(layers, params, X, y, v, "sum"),
                                  total)


def test_hvp_ignores_noise_and_zero_v_gives_zeros():
    layers, params, X, y, rng = hvp_case("std", "tanh", 0.0, seed=40)
    noisy = [dict(layers[0], batch_norm=dict(layers[0]["batch_norm"], noise=noise()))] \
        + layers[1:]
    v = rng.normal(size=params.size)
    np.testing.assert_array_equal(reference.network_hvp(noisy, params, X, y, v),
                                  reference.network_hvp(layers, params, X, y, v))
    zero = reference.network_hvp(layers, params, X, y, np.zeros(params.size))
    assert zero.dtype == np.float64 and not np.any(zero)


def test_hvp_does_not_modify_its_inputs():
    layers, params, X, y, rng = hvp_case("l2", "tanh", 0.0, seed=41)
    v = rng.normal(size=params.size)
    kept = [a.copy() for a in (params, X, y, v)]
    reference.network_hvp(layers, params, X, y, v)
    for a, b in zip((params, X, y, v), kept):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("v,exc,match", [
    (np.zeros(18), ValueError, r"v must have shape \(19,\) \(one entry per parameter\), "
     r"got \(18,\)"),
    (np.zeros(20), ValueError, r"v must have shape \(19,\)"),
    (np.zeros((19, 1)), ValueError, r"v must have shape \(19,\).*got \(19, 1\)"),
    (np.full(19, math.nan), ValueError, "v must be finite"),
    (np.array([math.inf] + [0.0] * 18), ValueError, "v must be finite"),
    (np.zeros(19, complex), TypeError, "v must hold real numbers"),
    (np.zeros(19, bool), TypeError, "v must hold real numbers"),
    (["a"] * 19, TypeError, "v must hold real numbers"),
    (None, TypeError, "v must hold real numbers"),
])
def test_v_errors(v, exc, match):
    layers = [dense(2, 3, "tanh", True, bn(gamma=[1.0, 2.0, 3.0], beta=0.5)),
              dense(3, 1, "identity", True, None)]
    with pytest.raises(exc, match=match):
        reference.network_hvp(layers, np.zeros(19), np.ones((3, 2)), np.zeros(3), v)


def test_hvp_argument_checks_come_from_the_network_checks():
    layers = [dense(2, 1, "identity", False, bn(eps=0.0))]
    with pytest.raises(ValueError, match=r"params must have shape \(4,\)"):
        reference.network_hvp(layers, np.zeros(3), np.ones((3, 2)), np.zeros(3),
                              np.zeros(3))
    with pytest.raises(ValueError, match="batch normalization needs at least 2 samples"):
        reference.network_hvp(layers, np.ones(4), np.ones((1, 2)), np.zeros(1), np.ones(4))
    for v in (np.ones(4), np.zeros(4)):
        with pytest.raises(ValueError,
                           match="layer 0, neuron 0 has a constant pre-activation"):
            reference.network_hvp(layers, np.ones(4), np.ones((3, 2)), np.zeros(3), v)
