"""Network.gradient against float64 central finite differences of Network.loss.

Tolerance. The central difference (L(p + h e_i) - L(p - h e_i)) / 2h differs from
dL/dp_i by the truncation term h^2/6 * d^3L/dp_i^3 plus the rounding term
~ u * k * |L| / h, where u = 2**-53 ~ 1.1e-16 and k ~ 10 roundings of the loss
evaluation (sums over at most a few dozen terms). With h = 1e-5, parameters and data of
order 1 and third derivatives of order |L| (at most ~100 |L| where a BN variance is
small): truncation <~ 2e-9 * (1 + |L|), rounding ~ 1e-10 * (1 + |L|). TOL = 1e-6 * (1 + |L|)
is ~500x above that estimate (the worst error measured over these cases is 4e-9 *
(1 + |L|), 250x below TOL), while
a wrong term of the backward pass (a missing BN projection, a wrong activation
derivative, a parameter in the wrong slot) is off by O(|gradient|) ~ 0.1-10 here.
Every case asserts its gradient is far from zero, so the check cannot pass vacuously.

ReLU is not differentiable at 0: the data are drawn (network_cases.random_case) so that
no ReLU pre-activation is within 1e-3 of 0, and each finite-difference evaluation
asserts that the ReLU on/off pattern is the one at p (so the difference quotient never
straddles a kink).
"""

import itertools

import numpy as np
import pytest

import bnfast
from network_cases import (ACTIVATIONS, BN_MODES, manual_forward, network, random_case,
                           relu_masks)

H = 1e-5
TOL = 1e-6


def finite_difference_gradient(net, X, y, check_relu=True):
    p0 = net.params
    masks = relu_masks(net.layers, p0, X) if check_relu else None
    fd = np.empty_like(p0)
    for i in range(p0.size):
        values = []
        for sign in (1.0, -1.0):
            p = p0.copy()
            p[i] += sign * H
            if masks is not None:
                for a, b in zip(relu_masks(net.layers, p, X), masks):
                    assert np.array_equal(a, b), "a finite-difference step crossed a ReLU kink"
            net.params = p
            values.append(net.loss(X, y))
        fd[i] = (values[0] - values[1]) / (2 * H)
    net.params = p0
    return fd


def check_gradient(net, X, y):
    loss = net.loss(X, y)
    grad = net.gradient(X, y)
    fd = finite_difference_gradient(net, X, y)
    assert np.linalg.norm(grad) > 1e-2, "the gradient is too small for a meaningful check"
    err = np.max(np.abs(grad - fd))
    assert err <= TOL * (1 + abs(loss)), (err, loss)
    return err / (1 + abs(loss))


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("bn_mode", list(BN_MODES))
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_gradient_matches_finite_differences(activation, bn_mode, bias):
    seed = ACTIVATIONS.index(activation) * 100 + list(BN_MODES).index(bn_mode) * 10 + bias
    layers, params, X, y = random_case(activation, bn_mode, bias, seed)
    net = network(layers, params)
    check_gradient(net, X, y)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_gradient_single_output_vector_targets(activation):
    """out_features = 1 with y of shape (m,), BN with trainable gamma/beta."""
    layers, params, X, y = random_case(activation, "trainable-eps0", True, seed=7, out=1)
    assert y.ndim == 1
    net = network(layers, params)
    check_gradient(net, X, y)


def test_gradient_of_a_wide_deep_mixed_network():
    """Four layers mixing every activation and BN kind, three outputs, 16 samples."""
    rng = np.random.default_rng(2024)
    layers = [
        bnfast.Dense(5, 7, "tanh", batch_norm=bnfast.BatchNorm(eps=0.0)),
        bnfast.Dense(7, 6, "relu", bias=False,
                     batch_norm=bnfast.BatchNorm(gamma=rng.uniform(0.5, 1.5, 6),
                                                 beta=rng.uniform(0.2, 0.6, 6),
                                                 trainable=False, eps=1e-5)),
        bnfast.Dense(6, 5, "sigmoid"),
        bnfast.Dense(5, 3, "identity", batch_norm=bnfast.BatchNorm(gamma=2.0, beta=-1.0,
                                                                   eps=0.1)),
    ]
    for attempt in range(50):
        net = bnfast.Network(layers, seed=attempt)
        X = rng.normal(size=(16, 5))
        y = rng.normal(size=(16, 3))
        _, Zs = manual_forward(layers, net.params, X)
        if np.min(np.abs(Zs[1])) > 1e-3:
            break
    else:
        raise AssertionError("no draw without ReLU pre-activations near 0")
    check_gradient(net, X, y)


def test_bias_before_batch_norm_has_zero_gradient():
    """BN removes a bias (the centring), so d loss / d b is 0 up to rounding and the FD
    quotient agrees; the bias of a layer whose output is not normalized has a clearly
    non-zero gradient."""
    rng = np.random.default_rng(11)
    layers = [bnfast.Dense(3, 4, "tanh", batch_norm=bnfast.BatchNorm(
                  gamma=[1.0, -0.7, 1.2, 0.9], beta=0.2, trainable=False, eps=1e-3)),
              bnfast.Dense(4, 3, "sigmoid"),
              bnfast.Dense(3, 2, "identity", batch_norm=bnfast.BatchNorm(eps=0.0))]
    net = bnfast.Network(layers, seed=3)
    params = net.params
    params[net.param_layout()[1]["b"][0]] = rng.normal(size=3)
    net.params = params
    X, y = rng.normal(size=(8, 3)), rng.normal(size=(8, 2))
    grad = net.gradient(X, y)
    slices = net.param_layout()
    for i in (0, 2):
        assert np.max(np.abs(grad[slices[i]["b"][0]])) <= 1e-12 * np.max(np.abs(grad))
    assert np.min(np.abs(grad[slices[1]["b"][0]])) > 1e-3
    check_gradient(net, X, y)


@pytest.mark.parametrize("eps", [0.0, 1e-5, 2.0])
def test_gradient_with_every_eps(eps):
    """eps enters the backward pass through invstd; a large eps makes a wrong eps
    handling visible, eps = 0 is the exact transform."""
    for activation, bias in itertools.product(["identity", "sigmoid"], [True, False]):
        rng = np.random.default_rng(int(eps * 10) + bias)
        layers = [bnfast.Dense(3, 4, activation, bias=bias,
                               batch_norm=bnfast.BatchNorm(gamma=rng.uniform(0.5, 2, 4),
                                                           beta=0.3, eps=eps)),
                  bnfast.Dense(4, 2, "identity", bias=bias,
                               batch_norm=bnfast.BatchNorm(gamma=[1.5, -0.5], beta=[0, 1],
                                                           trainable=False, eps=eps))]
        net = bnfast.Network(layers, seed=5)
        X = rng.normal(size=(6, 3))
        y = rng.normal(size=(6, 2))
        check_gradient(net, X, y)
