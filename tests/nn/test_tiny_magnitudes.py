"""Data of any magnitude on a scale-invariant network (issue 23; reliability.md, second
round): with eps == 0 a first dense or conv layer normalized right after is invariant to
X -> 2^k X (docs/math/networks.md section 7), so loss, gradient and hvp at X 2^k must be
those at X. Before the fix the hvp raised ZeroVarianceError at X 2^-540 (the Dual
statistics underflowed) and the gradient was NaN at X 2^-1030 (d loss / d H ~ 2^1030
overflowed), while the loss was right; the reference failed too (its squares
underflowed, and the complex step's imaginary parts underflow for huge data).

Power-of-two scaling is exact (subnormal data keep fewer bits: the comparison is with
those data unscaled, X 2^k 2^-k), and every rounding of the scaled computation is the
unscaled one times 2^k while nothing under- or overflows, so the results agree to
rounding: the tolerance is that of two evaluations of the same function (1e-13
relative), far below the O(1) errors of the failures (NaN, an exception, 0).
"""

import numpy as np
import pytest

import bnfast
from bnfast import BatchNorm, Dense, GroupNorm, LayerNorm, Network
from bnfast import reference as ref

SCALES = [2.0 ** -540, 2.0 ** -1030, 2.0 ** -1060, 2.0 ** 600, 2.0 ** 1000]


def norms():
    yield "bn-std-bias", True, BatchNorm(eps=0.0)
    for kind in ("l1", "l2", "linf"):
        yield f"bn-{kind}", False, BatchNorm(eps=0.0, norm=kind)
    yield "layer", False, LayerNorm(eps=0.0)
    yield "group", False, GroupNorm(2, eps=0.0)


def first_layer(bias, norm):
    if isinstance(norm, BatchNorm):
        return Dense(3, 4, activation="identity", bias=bias, batch_norm=norm)
    return Dense(3, 4, activation="identity", bias=bias, normalization=norm)


CASES = list(norms())


def network(bias, norm, loss="sum"):
    return Network([first_layer(bias, norm),
                    Dense(4, 4, activation="tanh", batch_norm=BatchNorm(eps=1e-5)),
                    Dense(4, 2)], loss=loss, seed=3)


def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(6, 3)), rng.normal(size=(6, 2))


def rel(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


@pytest.mark.parametrize("scale", SCALES, ids=lambda s: f"2^{int(np.log2(s))}")
@pytest.mark.parametrize("name, bias, norm", CASES, ids=[c[0] for c in CASES])
def test_loss_gradient_and_hvp_do_not_depend_on_the_data_scale(name, bias, norm, scale):
    net = network(bias, norm)
    X, Y = data()
    v = np.random.default_rng(1).normal(size=net.params.size)
    layers, p = [layer.to_dict() for layer in net.layers], net.params
    Xs = X * scale
    X = Xs / scale  # subnormal Xs kept fewer bits: the same data, unscaled exactly
    want = (net.loss(X, Y), net.gradient(X, Y), net.hvp(X, Y, v))
    got = (net.loss(Xs, Y), net.gradient(Xs, Y), net.hvp(Xs, Y, v))
    for g, w in zip(got, want):
        assert np.all(np.isfinite(g)) and rel(g, w) <= 1e-13
    # the reference, on its own arithmetic (complex step for the hvp: 1e-11 as elsewhere)
    assert rel(ref.network_loss(layers, p, Xs, Y), want[0]) <= 1e-13
    assert rel(ref.network_gradient(layers, p, Xs, Y), want[1]) <= 1e-12
    assert rel(ref.network_hvp(layers, p, Xs, Y, v), want[2]) <= 1e-11


def test_example_3_2_hvp_at_tiny_magnitudes():
    # the review's case: one identity neuron without bias, BN gamma 1, beta 0, eps 0
    X = np.array([[1.0, 0], [0, 1], [1, 1]])
    y = np.array([8.0, 6, 11])
    net = Network([Dense(2, 1, activation="identity", bias=False,
                         batch_norm=BatchNorm(1.0, 0.0, trainable=False, eps=0.0))])
    net.params = np.array([7.0, 5.0])
    v = np.array([1.0, -2.0])
    want = net.hvp(X, y, v)
    for scale in (2.0 ** -540, 2.0 ** -1030):
        assert rel(net.hvp(X * scale, y, v), want) <= 1e-14
        assert rel(net.gradient(X * scale, y), net.gradient(X, y)) <= 1e-14


def test_a_training_step_on_tiny_data_keeps_the_true_running_statistics():
    X, Y = data()
    scale = 2.0 ** -1030
    runs = []
    for s in (1.0, scale):
        net = network(True, BatchNorm(eps=0.0))
        bnfast.train(net, X * s, Y, lr=1e-2, steps=3)
        runs.append(net)
    np.testing.assert_allclose(runs[1].params, runs[0].params, rtol=1e-12, atol=1e-15)
    # the first layer's batch statistics are those of the scaled data, unscaled exactly
    # (its running variance ~ 2^-2060 is 0 in double: the honest value)
    mean0, mean1 = runs[0].running_mean[0], runs[1].running_mean[0]
    np.testing.assert_allclose(mean1 / scale, mean0, rtol=1e-12)
    # layer 1's pre-activation means are 0 in exact arithmetic (its input is a BN output
    # with beta 0 and b starts at 0): rounding noise of ~u |H| on both sides
    np.testing.assert_allclose(runs[1].running_mean[1], runs[0].running_mean[1], atol=1e-15)


def test_eps_fixes_a_scale_so_nothing_is_rescaled():
    # eps > 0 is not scale invariant: tiny data give the (finite) eps-dominated loss
    net = network(True, BatchNorm(eps=1e-5))
    X, Y = data()
    assert net.loss(X * 2.0 ** -540, Y) != net.loss(X, Y)
