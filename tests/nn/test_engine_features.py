"""The engine's features on their own terms (docs/math/networks.md sections 6-12):
noise reproducibility, running statistics, loss reductions, residual blocks, hvp
properties, init schemes, param_slices, pickling. Parity with the NumPy reference is in
test_engine_reference.py, with PyTorch in test_engine_torch.py."""

import copy
import pickle

import numpy as np
import pytest

import bnfast
from bnfast import BatchNorm, BNNoise, Dense, Network, Residual

RNG = np.random.default_rng(5)
X = RNG.normal(size=(24, 3))
Y = RNG.normal(size=(24, 2))


def noisy_net(noise=BNNoise(), seed=0):
    return Network([Dense(3, 5, "tanh", batch_norm=BatchNorm(noise=noise)),
                    Dense(5, 4, "relu", batch_norm=BatchNorm(norm="l2", noise=noise)),
                    Dense(4, 2)], seed=seed)


# ---------------------------------------------------------------- noise


@pytest.mark.parametrize("batch_size", [None, 8])
def test_noise_same_seed_same_bits_other_seed_other_noise(batch_size):
    runs = {}
    for seed in (3, 3, 4):
        net = noisy_net()
        result = bnfast.train(net, X, Y, 0.01, 20, batch_size=batch_size, seed=seed)
        runs.setdefault(seed, []).append((result.params, net.running_mean[1]))
    (p1, r1), (p2, r2) = runs[3]
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_array_equal(r1, r2)
    assert not np.array_equal(runs[4][0][0], p1)


@pytest.mark.parametrize("batch_size", [None, 8])
def test_noise_with_zero_ranges_changes_no_bit(batch_size):
    """n_mu = r_mu = r_sigma = 0 and n_sigma = 1 draw s = 1 and m = 0 exactly."""
    quiet, plain = noisy_net(BNNoise(0.0, 1.0, 0.0, 0.0)), noisy_net(None)
    a = bnfast.train(quiet, X, Y, 0.01, 15, batch_size=batch_size, seed=2)
    b = bnfast.train(plain, X, Y, 0.01, 15, batch_size=batch_size, seed=2)
    np.testing.assert_array_equal(a.params, b.params)
    np.testing.assert_array_equal(a.losses, b.losses)
    np.testing.assert_array_equal(quiet.running_var[1], plain.running_var[1])


def test_noise_perturbs_training_only():
    """loss, gradient, hvp, forward and predict are noise free; so are the recorded
    losses (the first is the loss at the starting point)."""
    net, plain = noisy_net(), noisy_net(None)
    np.testing.assert_array_equal(net.params, plain.params)
    for method in ("loss", "gradient"):
        np.testing.assert_array_equal(getattr(net, method)(X, Y), getattr(plain, method)(X, Y))
    v = RNG.normal(size=net.num_params)
    np.testing.assert_array_equal(net.hvp(X, Y, v), plain.hvp(X, Y, v))
    np.testing.assert_array_equal(net.forward(X), plain.forward(X))
    np.testing.assert_array_equal(net.predict(X), plain.predict(X))
    start = net.loss(X, Y)
    result = bnfast.train(net, X, Y, 0.01, 10, record_every=10)
    assert result.losses[0] == start
    assert result.losses[-1] == net.loss(X, Y)
    other = bnfast.train(plain, X, Y, 0.01, 10, record_every=10)
    assert result.losses[-1] != other.losses[-1]             # the updates were noisy


# ---------------------------------------------------------------- running statistics


def pre_activations(net, X):
    """H of the first layer, from its W and b (independent of the core's BN code)."""
    view = net.unflatten()[0]
    return X @ view["W"].T + view.get("b", 0.0)


@pytest.mark.parametrize("norm", ["std", "l1", "l2", "linf"])
def test_one_step_with_momentum_one_stores_that_batch(norm):
    net = Network([Dense(3, 4, "tanh", batch_norm=BatchNorm(momentum=1.0, norm=norm)),
                   Dense(4, 2)])
    H = pre_activations(net, X)
    bnfast.train(net, X, Y, 0.01, 1)
    scale2 = {"std": H.var(axis=0, ddof=1), "l1": np.mean(np.abs(H), axis=0) ** 2,
              "l2": np.mean(H**2, axis=0), "linf": np.max(np.abs(H), axis=0) ** 2}[norm]
    np.testing.assert_allclose(net.running_mean[0], H.mean(axis=0), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(net.running_var[0], scale2, rtol=1e-13)


def test_momentum_none_is_the_average_of_the_batches():
    """The Ioffe-Szegedy estimator: with lr tiny enough that the batches' statistics are
    those of the first layer at fixed weights, the cumulative average after k SGD steps
    is the plain mean over the k batches (first layer, unbiased variance)."""
    net = Network([Dense(3, 4, batch_norm=BatchNorm(momentum=None)), Dense(4, 2)])
    H, W = pre_activations(net, X), net.unflatten()[0]["W"].copy()
    # lr = 1e-300: the updates of W are below its rounding, so every batch sees the same
    # W (the bias moves from 0 to ~1e-300, which H's rounding absorbs likewise).
    bnfast.train(net, X, Y, 1e-300, 6, batch_size=8, seed=9)
    np.testing.assert_array_equal(net.unflatten()[0]["W"], W)
    perm = bnfast._core.epoch_permutations(24, 9, 2)
    batches = [perm[e * 24 + k * 8: e * 24 + k * 8 + 8] for e in range(2) for k in range(3)]
    np.testing.assert_allclose(net.running_mean[0],
                               np.mean([H[b].mean(axis=0) for b in batches], axis=0),
                               rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(net.running_var[0],
                               np.mean([H[b].var(axis=0, ddof=1) for b in batches], axis=0),
                               rtol=1e-13)
    assert net._updates == 6


def test_predict_equals_forward_when_running_statistics_are_the_batch_statistics():
    """momentum 1 after one step on X (lr ~ 0): the running statistics are X's, with
    Bessel's correction m/(m-1) on the variance. So predict and forward differ only by
    that factor: a gap of order 1/m, neither zero nor larger."""
    m = 4000
    Xl = np.random.default_rng(1).normal(size=(m, 3))
    Yl = np.zeros((m, 2))
    net = Network([Dense(3, 4, "tanh", batch_norm=BatchNorm(momentum=1.0)), Dense(4, 2)])
    bnfast.train(net, Xl, Yl, 1e-300, 1)
    gap = np.max(np.abs(net.predict(Xl) - net.forward(Xl)))
    assert 1e-6 < gap < 5.0 / m        # exactly the m/(m-1) factor, ~1/(2m) relative


def test_init_resets_the_running_statistics():
    net = noisy_net()
    bnfast.train(net, X, Y, 0.01, 4)
    assert net._updates == 4 and not np.all(net.running_var[0] == 1.0)
    net.init("he", 1)
    assert net._updates == 0
    assert all(np.all(v == 1.0) for v in net.running_var)
    assert all(np.all(v == 0.0) for v in net.running_mean)


# ---------------------------------------------------------------- loss reductions


@pytest.mark.parametrize("batch_size", [None, 6])
def test_mean_loss_is_the_sum_over_m(batch_size):
    layers = [Dense(3, 4, "sigmoid", batch_norm=BatchNorm(norm="linf")), Dense(4, 2)]
    mean, total = Network(layers, loss="mean"), Network(layers, loss="sum")
    m = len(X)
    assert mean.loss(X, Y) == pytest.approx(total.loss(X, Y) / m, rel=1e-15)
    np.testing.assert_allclose(mean.gradient(X, Y), total.gradient(X, Y) / m, rtol=1e-14)
    v = RNG.normal(size=mean.num_params)
    np.testing.assert_allclose(mean.hvp(X, Y, v), total.hvp(X, Y, v) / m, rtol=1e-12,
                               atol=1e-14 * np.max(np.abs(total.hvp(X, Y, v))) / m)
    # SGD on the mean with lr is SGD on the sum with lr / B (B the rows of a step)
    rows = m if batch_size is None else batch_size
    a = bnfast.train(mean, X, Y, 0.3, 10, batch_size=batch_size)
    b = bnfast.train(total, X, Y, 0.3 / rows, 10, batch_size=batch_size)
    np.testing.assert_allclose(a.params, b.params, rtol=1e-12)


# ---------------------------------------------------------------- residual blocks


def test_a_block_with_zero_weights_adds_its_biases():
    """x + block(x) with W = 0: the block outputs phi(b), so f(x) = x + phi(b)."""
    block = Residual([Dense(3, 5, "relu"), Dense(5, 3, "tanh")])
    net = Network([block])
    p = np.zeros(net.num_params)
    p[net.param_layout()[1]["b"][0]] = [0.5, -0.2, 1.0]
    net.params = p
    np.testing.assert_allclose(net.forward(X), X + np.tanh([0.5, -0.2, 1.0]), rtol=1e-15)


def test_a_network_of_blocks_matches_its_manual_forward():
    blocks = [Dense(3, 4, "tanh", batch_norm=BatchNorm()),
              Residual([Dense(4, 6, "relu", batch_norm=BatchNorm()), Dense(6, 4)]),
              Residual([Dense(4, 4, "sigmoid")]),
              Dense(4, 2)]
    net = Network(blocks, seed=2)
    v = net.unflatten()

    def bn(H, gamma, beta, eps=1e-5):
        return gamma * (H - H.mean(0)) / np.sqrt(H.var(0) + eps) + beta
    A = np.tanh(bn(X @ v[0]["W"].T + v[0]["b"], v[0]["gamma"], v[0]["beta"]))
    inner = np.maximum(bn(A @ v[1]["W"].T + v[1]["b"], v[1]["gamma"], v[1]["beta"]), 0)
    A = A + inner @ v[2]["W"].T + v[2]["b"]
    A = A + 1 / (1 + np.exp(-(A @ v[3]["W"].T + v[3]["b"])))
    F = A @ v[4]["W"].T + v[4]["b"]
    np.testing.assert_allclose(net.forward(X), F, rtol=1e-12, atol=1e-13)
    assert len(net.param_slices) == 5


# ---------------------------------------------------------------- hvp


def hvp_net(norm="std", loss="sum"):
    return Network([Dense(3, 5, "tanh", batch_norm=BatchNorm(norm=norm, eps=0.0)),
                    Residual([Dense(5, 5, "sigmoid", batch_norm=BatchNorm(norm=norm))]),
                    Dense(5, 2)], loss=loss, seed=1)


@pytest.mark.parametrize("norm", ["std", "l1", "l2", "linf"])
def test_hvp_is_symmetric_and_linear(norm):
    net = hvp_net(norm)
    u, w = RNG.normal(size=(2, net.num_params))
    Hu, Hw = net.hvp(X, Y, u), net.hvp(X, Y, w)
    scale = np.linalg.norm(Hu) * np.linalg.norm(w)
    assert abs(w @ Hu - u @ Hw) < 1e-12 * scale
    np.testing.assert_allclose(net.hvp(X, Y, 2 * u - 3 * w), 2 * Hu - 3 * Hw,
                               atol=1e-12 * np.max(np.abs(Hu) + np.abs(Hw)))
    assert np.all(net.hvp(X, Y, np.zeros(net.num_params)) == 0.0)


@pytest.mark.parametrize("norm", ["std", "l1", "l2", "linf"])
def test_hvp_matches_central_differences_of_the_gradient(norm):
    """Central differences of the exact gradient: truncation O(h^2 |g'''|) plus
    rounding O(eps |g| / h); h = 1e-5 balances them near 1e-9 relative."""
    net = hvp_net(norm)
    p, v = net.params, RNG.normal(size=net.num_params)
    h = 1e-5
    net.params = p + h * v
    g_plus = net.gradient(X, Y)
    net.params = p - h * v
    g_minus = net.gradient(X, Y)
    net.params = p
    fd = (g_plus - g_minus) / (2 * h)
    hv = net.hvp(X, Y, v)
    assert np.max(np.abs(hv - fd)) < 1e-7 * np.max(np.abs(hv))


def test_hvp_of_a_scale_invariant_direction():
    """With eps = 0 the loss is constant along w -> t w for a BN neuron's weights, so
    L(w + t w) = L(w): H w = -grad (differentiate <grad L(w), w> = 0 along w)."""
    net = Network([Dense(3, 4, "tanh", bias=False, batch_norm=BatchNorm(eps=0.0)),
                   Dense(4, 2)], seed=3)
    v = np.zeros(net.num_params)
    sl = net.param_layout()[0]["W"][0]
    v[sl] = net.params[sl]
    g = net.gradient(X, Y)
    np.testing.assert_allclose(net.hvp(X, Y, v)[sl], -g[sl], atol=1e-12 * np.max(np.abs(g)))


# ---------------------------------------------------------------- init and slices


@pytest.mark.parametrize("scheme", ["glorot", "he", "normal"])
def test_init_schemes_draw_their_laws(scheme):
    net = Network([Dense(200, 300, batch_norm=BatchNorm(gamma=2.0, beta=-1.0)),
                   Dense(300, 100)])
    assert net.init(scheme, seed=4) is net
    views = net.unflatten()
    for view, (n_in, n_out) in zip(views, [(200, 300), (300, 100)]):
        W = view["W"]
        if scheme == "glorot":
            a = np.sqrt(6 / (n_in + n_out))
            assert np.max(np.abs(W)) <= a and np.max(np.abs(W)) > 0.99 * a
            expected = a / np.sqrt(3)
        else:
            expected = np.sqrt(2 / n_in) if scheme == "he" else 1.0
        # the sample std of n iid draws is within 5 standard errors
        assert abs(W.std() / expected - 1) < 5 / np.sqrt(2 * W.size)
        assert abs(W.mean()) < 5 * expected / np.sqrt(W.size)
        assert np.all(view["b"] == 0)
    assert np.all(views[0]["gamma"] == 2.0) and np.all(views[0]["beta"] == -1.0)
    first = net.params
    np.testing.assert_array_equal(net.init(scheme, seed=4).params, first)
    assert not np.array_equal(net.init(scheme, seed=5).params, first)


def test_param_slices_cut_params_into_layers_in_order():
    net = hvp_net()
    slices = net.param_slices
    assert [s.start for s in slices] == [0] + [s.stop for s in slices[:-1]]
    assert slices[-1].stop == net.num_params
    g = net.gradient(X, Y)
    np.testing.assert_array_equal(np.concatenate([g[s] for s in slices]), g)
    for s, layout in zip(slices, net.param_layout()):
        assert sum(sl.stop - sl.start for sl, _ in layout.values()) == s.stop - s.start


# ---------------------------------------------------------------- pickle


@pytest.mark.parametrize("roundtrip", [lambda n: pickle.loads(pickle.dumps(n)), copy.deepcopy],
                         ids=["pickle", "deepcopy"])
def test_everything_round_trips(roundtrip):
    net = Network([Dense(3, 4, "tanh", batch_norm=BatchNorm(norm="l1", noise=BNNoise(0.2),
                                                             momentum=None)),
                   Residual([Dense(4, 4, "relu", batch_norm=BatchNorm(momentum=0.3))]),
                   Dense(4, 2)], loss="mean", seed=7)
    bnfast.train(net, X, Y, 0.05, 7, batch_size=6, seed=1)
    twin = roundtrip(net)
    assert twin.loss_kind == "mean" and twin._updates == 7
    np.testing.assert_array_equal(twin.params, net.params)
    for a, b in zip(twin.running_mean + twin.running_var, net.running_mean + net.running_var):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(twin.predict(X), net.predict(X))
    a = bnfast.train(twin, X, Y, 0.05, 5, batch_size=6, seed=2)
    b = bnfast.train(net, X, Y, 0.05, 5, batch_size=6, seed=2)
    np.testing.assert_array_equal(a.params, b.params)
    np.testing.assert_array_equal(twin.running_var[0], net.running_var[0])
