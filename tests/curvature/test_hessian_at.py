"""The core's HessianAt (nn/hessian_at.hpp): many Hessian-vector products at one point,
the ones after the first recomputing only the tangents. They must be Network.hvp's
products bit for bit, on every network kind, in train and eval mode, for any sequence
of directions, and hold the point they were made at."""

import numpy as np
import pytest

from curvature_cases import problem

import bnfast
from bnfast import BatchNorm, BNNoise, Dense, GroupNorm, LayerNorm, Network, Residual, _core


def dense(norm, activation="tanh", loss="sum", bias=True, out=2):
    return Network([Dense(5, 6, activation, bias=bias, normalization=norm()),
                    Dense(6, 6, activation, bias=bias, normalization=norm()),
                    Dense(6, out)], loss=loss, seed=3)


NETWORKS = {
    "bn std tanh": lambda: dense(BatchNorm),
    "bn std no bias": lambda: dense(BatchNorm, bias=False),
    "bn l1": lambda: dense(lambda: BatchNorm(norm="l1")),
    "bn l2 sigmoid": lambda: dense(lambda: BatchNorm(norm="l2"), "sigmoid"),
    "bn linf relu": lambda: dense(lambda: BatchNorm(norm="linf"), "relu"),
    "bn eps 0": lambda: dense(lambda: BatchNorm(eps=0.0)),
    "bn constant gamma": lambda: dense(lambda: BatchNorm(trainable=False)),
    "layer norm": lambda: dense(LayerNorm),
    "group norm": lambda: dense(lambda: GroupNorm(2)),
    "no norm identity": lambda: dense(lambda: None, "identity"),
    "mean loss": lambda: dense(BatchNorm, loss="mean"),
    "cross entropy": lambda: dense(BatchNorm, loss="cross_entropy", out=3),
    "noisy bn": lambda: dense(lambda: BatchNorm(noise=BNNoise())),
    "residual": lambda: Network([Dense(5, 6, "tanh", normalization=BatchNorm()),
                                 Residual([Dense(6, 6, "tanh", normalization=BatchNorm())]),
                                 Dense(6, 2)], seed=4),
}


def data(net, m=7, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, 5))
    if net.takes_labels:
        return X, rng.integers(0, net.out_features, m)
    return X, rng.standard_normal((m, net.out_features))


def point(net, X, y, mode):
    X, y = net.learning_set(X, y)
    running = None if mode == "train" else np.array(net._running)
    return _core.HessianAt(net._core, net.params, X, y, running), X, y, running


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_products_are_hvp_bit_for_bit(name, mode):
    net = NETWORKS[name]()
    X, y = data(net)
    if mode == "eval":   # move the running statistics off 0 / 1
        bnfast.train(net, X, y, lr=1e-3, steps=3)
    at, X, y, running = point(net, X, y, mode)
    rng = np.random.default_rng(1)
    for _ in range(4):   # the first product is a whole pass, the next tangent passes
        v = rng.standard_normal(net.num_params)
        want = net._core.hvp(net.params, X, y, v, running)[2]
        assert np.array_equal(at.apply(v), want)
    assert at.apply(np.zeros(net.num_params)).tolist() == [0.0] * net.num_params


@pytest.mark.parametrize("name", ["conv1d", "conv2d"])
def test_convolutions_take_whole_passes_with_the_same_bits(name):
    net, X, y = problem(name)
    at, X, y, _ = point(net, X, y, "train")
    assert not at.tangent_passes
    rng = np.random.default_rng(2)
    for _ in range(3):
        v = rng.standard_normal(net.num_params)
        assert np.array_equal(at.apply(v), net._core.hvp(net.params, X, y, v)[2])


def test_tangent_passes_where_every_op_allows_them():
    assert point(NETWORKS["bn std tanh"](), *data(NETWORKS["bn std tanh"]()), "train")[0] \
        .tangent_passes
    residual = NETWORKS["residual"]()
    assert not point(residual, *data(residual), "train")[0].tangent_passes


def test_the_point_is_a_copy():
    """Changing the network, its data or evaluating it elsewhere changes no product."""
    net = NETWORKS["bn std tanh"]()
    X, y = data(net)
    at, Xc, yc, _ = point(net, X, y, "train")
    v = np.random.default_rng(3).standard_normal(net.num_params)
    first = at.apply(v)
    params, X0 = net.params, Xc.copy()
    net.params = params + 1.0
    Xc += 1.0
    net.hvp(X[:4], y[:4], v)          # another evaluation, another batch size
    assert np.array_equal(at.apply(v), first)
    net.params = params
    assert np.array_equal(at.apply(v), net._core.hvp(params, X0, yc, v)[2])


def test_a_failed_product_leaves_the_next_whole():
    net = NETWORKS["bn std tanh"]()
    at, X, y, _ = point(net, *data(net), "train")
    v = np.random.default_rng(4).standard_normal(net.num_params)
    want = at.apply(v)
    with pytest.raises(ValueError, match="v must have shape"):
        at.apply(v[:-1])
    with pytest.raises(TypeError, match="float64"):
        at.apply(v.astype(np.float32))
    assert np.array_equal(at.apply(v), want)


def test_arguments_are_checked_as_hvp_checks_them():
    net = NETWORKS["bn std tanh"]()
    X, y = data(net)
    X, y = net.learning_set(X, y)
    with pytest.raises(ValueError, match="y is required"):
        _core.HessianAt(net._core, net.params, X, None)
    with pytest.raises(ValueError, match="X has 4 features"):
        _core.HessianAt(net._core, net.params, X[:, :4].copy(), y)
    with pytest.raises(ValueError, match="running must have shape"):
        _core.HessianAt(net._core, net.params, X, y, np.zeros(3))
    with pytest.raises(ValueError, match="at least 2 samples"):
        _core.HessianAt(net._core, net.params, X[:1], y[:1])
