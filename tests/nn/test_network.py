"""bnfast.Network: the documented parameter order, parity with the NumPy reference, the
Example 3.2 network of docs/math/lemma_4_5.md, scale invariance, and the SGD shuffles.

Parity tolerance: both sides compute the same float64 formulas in different orders
(blocked sums in C++, pairwise sums in NumPy). Each entry sums at most a few hundred
terms, and the result of a layer is propagated through a few well-conditioned layers,
so they agree to ~1e-14 relative; RTOL = 1e-12 keeps a margin of ~100 while any
formula difference is O(1).
"""

import math

import numpy as np
import pytest

import bnfast
from bnfast import BatchNorm, Dense, Network
from bnfast import reference as ref
from bnfast.reference.shuffle import EpochShuffler
from network_cases import (ACTIVATIONS, BN_MODES, manual_forward, network, random_case,
                           rel_err)
from network_cases import specs

RTOL = 1e-12

# Example 3.2 of docs/math/lemma_4_5.md (the canonical instance bnfast ships).
X32 = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
Y32 = np.array([8.0, 6.0, 11.0])
W_STAR = np.array([7.0, 5.0])
SQRT78 = math.sqrt(78)
BN_LOSS_AT_W_STAR = 224 - 18 * SQRT78 / 13
BN_GRAD_AT_W_STAR = np.array([-10 * SQRT78 / 507, 14 * SQRT78 / 507])
BN_MIN_LOSS = 224 - 2 * math.sqrt(38)
BN_RAY = np.array([5.0, 3.0]) / math.sqrt(34)  # 3 w1 = 5 w2, w1 > 0


def example_bn_network():
    layer = Dense(2, 1, activation="identity", bias=False,
                  batch_norm=BatchNorm(gamma=1.0, beta=0.0, trainable=False, eps=0.0))
    net = Network([layer])
    net.params = W_STAR
    return net


# ---------------------------------------------------------------- parameter layout


def test_params_order_is_the_documented_one():
    """W (out, in) row-major, b, gamma, beta per layer: checked by an independent
    forward pass (network_cases.manual_forward) that reads the flat vector itself."""
    layers = [Dense(3, 4, "tanh", batch_norm=BatchNorm(gamma=[1, 2, 3, 4], beta=0.5)),
              Dense(4, 2, "sigmoid", bias=False,
                    batch_norm=BatchNorm(gamma=[0.5, -2.0], beta=[1.0, 0.0],
                                         trainable=False, eps=0.0)),
              Dense(2, 3, "identity")]
    net = Network(layers, seed=1)
    assert net.num_params == (12 + 4 + 4 + 4) + 8 + (6 + 3)
    slices = net.param_layout()
    assert [sorted(s) for s in slices] == [["W", "b", "beta", "gamma"], ["W"], ["W", "b"]]
    assert slices[0]["W"] == (slice(0, 12), (4, 3))
    assert slices[0]["b"] == (slice(12, 16), (4,))
    assert slices[0]["gamma"] == (slice(16, 20), (4,))
    assert slices[0]["beta"] == (slice(20, 24), (4,))
    assert slices[1]["W"] == (slice(24, 32), (2, 4))
    assert slices[2]["W"] == (slice(32, 38), (3, 2))
    assert slices[2]["b"] == (slice(38, 41), (3,))
    rng = np.random.default_rng(0)
    params = rng.normal(size=net.num_params)
    net.params = params
    X = rng.normal(size=(7, 3))
    expected, _ = manual_forward(layers, params, X)
    assert rel_err(net.forward(X), expected) <= RTOL
    assert rel_err(ref.network_forward(specs(layers), params, X), expected) <= RTOL


def test_initial_params_follow_the_layers():
    """b = 0, trainable gamma/beta start at the BatchNorm's values, W ~ N(0, 1/in)."""
    layers = [Dense(50, 40, batch_norm=BatchNorm(gamma=[2.0] * 40, beta=-1.0)),
              Dense(40, 1, batch_norm=BatchNorm(gamma=3.0, trainable=False))]
    net = Network(layers, seed=3)
    views = net.unflatten()
    np.testing.assert_array_equal(views[0]["b"], 0.0)
    np.testing.assert_array_equal(views[0]["gamma"], 2.0)
    np.testing.assert_array_equal(views[0]["beta"], -1.0)
    assert set(views[1]) == {"W", "b"}
    # std of 2000 draws of N(0, 1/50): within 10% of 1/sqrt(50) (about 6 sigma)
    assert abs(views[0]["W"].std() * math.sqrt(50) - 1) < 0.1
    assert np.array_equal(Network(layers, seed=3).params, net.params)
    assert not np.array_equal(Network(layers, seed=4).params, net.params)


def test_params_get_returns_a_copy_and_set_copies():
    net = Network([Dense(2, 2)], seed=0)
    p = net.params
    p[:] = 99.0
    assert not np.any(net.params == 99.0)
    new = np.arange(6, dtype=np.float64)
    net.params = new
    new[:] = -1
    np.testing.assert_array_equal(net.params, np.arange(6.0))
    net.params = [1, 2, 3, 4, 5, 6]  # ints are accepted and stored as float64
    assert net.params.dtype == np.float64


# ---------------------------------------------------------------- native == reference


CASES = [(a, b, bias) for a in ACTIVATIONS for b in BN_MODES for bias in (True, False)]


@pytest.mark.parametrize("activation,bn_mode,bias", CASES,
                         ids=[f"{a}-{b}-{'bias' if c else 'nobias'}" for a, b, c in CASES])
def test_native_matches_reference(activation, bn_mode, bias):
    seed = 1000 + CASES.index((activation, bn_mode, bias))
    layers, params, X, y = random_case(activation, bn_mode, bias, seed, m=40, out=3)
    net = network(layers, params)
    loss, grad = net.loss_and_gradient(X, y)
    assert abs(net.loss(X, y) - ref.network_loss(specs(layers), params, X, y)) \
        <= RTOL * ref.network_loss(specs(layers), params, X, y)
    assert loss == net.loss(X, y)
    assert rel_err(grad, ref.network_gradient(specs(layers), params, X, y)) <= RTOL
    np.testing.assert_array_equal(net.gradient(X, y), grad)
    assert rel_err(net.forward(X), ref.network_forward(specs(layers), params, X)) <= RTOL
    assert rel_err(net.forward(X), manual_forward(layers, params, X)[0]) <= RTOL


def test_native_matches_reference_on_a_large_batch():
    """1000 samples: long sums, where summation order shows most."""
    layers, params, X, y = random_case("tanh", "trainable-eps0", True, seed=5, m=1000, out=2)
    net = network(layers, params)
    assert rel_err(net.loss(X, y), ref.network_loss(specs(layers), params, X, y)) <= RTOL
    assert rel_err(net.gradient(X, y),
                   ref.network_gradient(specs(layers), params, X, y)) <= RTOL
    assert rel_err(net.forward(X), ref.network_forward(specs(layers), params, X)) <= RTOL


def test_vector_targets_equal_column_targets():
    layers, params, X, y = random_case("sigmoid", "const-array-eps", True, seed=2, out=1)
    net = network(layers, params)
    assert net.forward(X).shape == (X.shape[0], 1)
    assert net.loss(X, y) == net.loss(X, y[:, None])
    np.testing.assert_array_equal(net.gradient(X, y), net.gradient(X, y[:, None]))
    expected = np.sum((y - manual_forward(layers, params, X)[0][:, 0]) ** 2)
    assert rel_err(net.loss(X, y), expected) <= RTOL


def test_loss_is_the_sum_of_squared_errors():
    layers, params, X, y = random_case("relu", "none", True, seed=4, out=2)
    net = network(layers, params)
    F = manual_forward(layers, params, X)[0]
    assert rel_err(net.loss(X, y), np.sum((y - F) ** 2)) <= RTOL


def test_integer_inputs_are_converted():
    net = Network([Dense(2, 1, batch_norm=BatchNorm(eps=0.0))], seed=0)
    Xi = np.array([[1, 0], [0, 1], [1, 1]])
    yi = np.array([8, 6, 11])
    assert net.loss(Xi, yi) == net.loss(Xi.astype(float), yi.astype(float))


def test_batch_statistics_are_those_of_the_given_rows():
    """forward with BN normalizes over the rows it is given: with identity activation
    and gamma = 1, beta = 0, eps = 0 every output column has mean 0 and variance 1."""
    rng = np.random.default_rng(8)
    net = Network([Dense(3, 2, "identity", batch_norm=BatchNorm(eps=0.0))], seed=1)
    out = net.forward(rng.normal(5.0, 3.0, size=(11, 3)))
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-14)
    np.testing.assert_allclose(out.var(axis=0), 1.0, rtol=1e-13)


def test_epoch_permutations_match_the_reference_shuffler():
    for m, seed in [(1, 0), (2, 1), (7, 0), (10, 123456789), (33, 2**64 - 1), (100, 42)]:
        epochs = 5
        native = np.asarray(bnfast._core.epoch_permutations(m, seed, epochs))
        shuffler = EpochShuffler(m, seed)
        expected = np.concatenate([shuffler.next_epoch() for _ in range(epochs)])
        np.testing.assert_array_equal(native, expected)
        for e in range(epochs):
            assert sorted(native[e * m:(e + 1) * m]) == list(range(m))
    # different seeds and successive epochs really shuffle
    a = np.asarray(bnfast._core.epoch_permutations(50, 1, 2))
    b = np.asarray(bnfast._core.epoch_permutations(50, 2, 1))
    assert not np.array_equal(a[:50], a[50:]) and not np.array_equal(a[:50], b)


def test_splitmix64_first_outputs():
    """The reference shuffler's generator is SplitMix64: its first outputs for seed 0
    are the published ones (Vigna's splitmix64.c)."""
    s = EpochShuffler(2, 0)
    assert [s._next() for _ in range(3)] == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4,
                                            0x06C45D188009454F]


# ---------------------------------------------------------------- Example 3.2


def test_example_3_2_bn_loss_and_gradient_at_w_star():
    net = example_bn_network()
    assert abs(net.loss(X32, Y32) - BN_LOSS_AT_W_STAR) <= 1e-12 * BN_LOSS_AT_W_STAR
    grad = net.gradient(X32, Y32)
    assert np.max(np.abs(grad - BN_GRAD_AT_W_STAR)) <= 1e-12 * np.max(np.abs(BN_GRAD_AT_W_STAR))
    loss, grad2 = net.loss_and_gradient(X32, Y32)
    assert loss == net.loss(X32, Y32)
    np.testing.assert_array_equal(grad, grad2)


def test_example_3_2_standard_network_is_optimal_at_w_star():
    net = Network([Dense(2, 1, activation="identity", bias=False)])
    net.params = W_STAR
    assert net.loss(X32, Y32) == 3.0
    np.testing.assert_array_equal(net.gradient(X32, Y32), [0.0, 0.0])


def test_example_3_2_gradient_descent_from_w_star_converges_onto_the_ray():
    net = example_bn_network()
    result = bnfast.train(net, X32, Y32, lr=10.0, steps=5000, record_every=50)
    w = result.params
    assert w[0] > 0 and w[1] > 0
    assert np.max(np.abs(w / np.linalg.norm(w) - BN_RAY)) <= 1e-9
    assert abs(3 * w[0] - 5 * w[1]) <= 1e-9 * np.linalg.norm(w)
    assert result.losses[0] == pytest.approx(BN_LOSS_AT_W_STAR, rel=1e-12)
    assert abs(result.losses[-1] - BN_MIN_LOSS) <= 1e-12 * BN_MIN_LOSS
    assert abs(net.loss(X32, Y32) - BN_MIN_LOSS) <= 1e-12 * BN_MIN_LOSS
    assert np.all(np.diff(result.losses) <= 1e-12)  # descent
    # W* itself is not on the ray: the BN optimum differs from the standard one
    assert np.max(np.abs(W_STAR / np.linalg.norm(W_STAR) - BN_RAY)) > 1e-2


def test_example_3_2_scale_invariance():
    """eps = 0: the loss is constant along rays, the gradient is orthogonal to w and
    scales like 1/t (docs/math/batch_norm.md)."""
    net = example_bn_network()
    rng = np.random.default_rng(32)
    for w in [W_STAR, np.array([-1.0, 4.0]), rng.normal(size=2), rng.normal(size=2)]:
        net.params = w
        loss, grad = net.loss_and_gradient(X32, Y32)
        assert np.linalg.norm(grad) * np.linalg.norm(w) > 1e-2
        assert abs(grad @ w) <= 1e-14 * np.linalg.norm(grad) * np.linalg.norm(w)
        for t in [1e-3, 0.5, 3.0, 1e4]:
            net.params = t * w
            assert net.loss(X32, Y32) == pytest.approx(loss, rel=1e-13, abs=1e-13)
            assert rel_err(t * net.gradient(X32, Y32), grad) <= 1e-12
    # on the ray the gradient vanishes and the loss is the minimum
    for t in [0.01, 1.0, 100.0]:
        net.params = t * np.array([5.0, 3.0])
        assert np.linalg.norm(net.gradient(X32, Y32)) <= 1e-13 / t
        assert net.loss(X32, Y32) == pytest.approx(BN_MIN_LOSS, rel=1e-13)


def test_scale_invariance_of_a_deep_network_with_bn_first_layer():
    """Scaling the weights of one neuron feeding an eps = 0 BN layer changes nothing."""
    layers, params, X, y = random_case("tanh", "trainable-eps0", True, seed=9, out=2)
    net = network(layers, params)
    loss, grad = net.loss_and_gradient(X, y)
    W = net.param_layout()[0]["W"][0]
    w = params[W].reshape(layers[0].out_features, -1)
    g = grad[W].reshape(w.shape)
    for j in range(w.shape[0]):
        assert abs(g[j] @ w[j]) <= 1e-12 * np.linalg.norm(g) * np.linalg.norm(w[j])
    scaled = params.copy()
    scaled[W] = (w * np.array([[0.1], [2.0], [7.0], [1.0]])).ravel()
    net.params = scaled
    assert net.loss(X, y) == pytest.approx(loss, rel=1e-13)
