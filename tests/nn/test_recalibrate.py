"""Network.recalibrate (precise BN): each BN layer's running statistics are the exact
population statistics of its inference-mode pre-activations over the data, layer by
layer, in training's convention (unbiased variance for "std", s^2 for the lp norms), to
within the tolerances of tests/kernels/moments_bounds.py; streaming in chunks, in this
process or as Dask tasks, with the same bits for the same chunks."""

import copy
import math
import warnings
from fractions import Fraction

import numpy as np
import pytest

import bnfast
from bnfast import (AvgPool1d, BatchNorm, Conv1d, Conv2d, Dense, Flatten, GroupNorm,
                    LayerNorm, MaxPool2d, Network, Residual)
from bnfast.reference.moments import exact_moments

pytestmark = pytest.mark.timeout(300)

U = 2.0**-53


def dense_net(norms, width=12, seed=0):
    layers, n_in = [], 5
    for norm in norms:
        layers.append(Dense(n_in, width, "tanh", batch_norm=BatchNorm(norm=norm, momentum=1.0)))
        n_in = width
    layers.append(Dense(n_in, 2))
    return Network(layers, seed=seed)


def one_update(net, X):
    """A copy of net after one full-batch training step (momentum 1: the running
    statistics are that batch's), the step's parameters discarded."""
    trained = copy.deepcopy(net)
    y = np.zeros((len(X), trained.out_features or 1))
    bnfast.train(trained, X, y, lr=1e-3, steps=1, batch_size=len(X))
    return trained


def assert_close_stats(a, b, rtol):
    for ma, mb, va, vb in zip(a.running_mean, b.running_mean, a.running_var, b.running_var):
        np.testing.assert_allclose(va, vb, rtol=rtol, atol=0)
        scale = np.sqrt(vb)   # the mean on the scale BN sees it: (h - mean) / std
        assert np.all(np.abs(ma - mb) <= rtol * np.maximum(np.abs(mb), scale))


# Training's batch statistics come from the kernels' plain algorithm and (lp norms) the
# engine's own sums, ours from the precise moments: each within ~10 roundings of the
# exact value on 64-300 values (plain sums of <= 300 terms: a few u typically), var =
# s^2 doubling s's relative error: 64 u = 7e-15 leaves room for both.
ONE_BATCH_RTOL = 64 * U


@pytest.mark.parametrize("norm", ["std", "l1", "l2", "linf"])
def test_one_batch_is_one_training_update_with_momentum_one(norm):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((64, 5))
    net = dense_net([norm])
    assert_close_stats(copy.deepcopy(net).recalibrate(X), one_update(net, X), ONE_BATCH_RTOL)
    # lp layers keep s^2 and mean without Bessel, so a layer's inference inputs after
    # recalibration equal its training inputs: every layer agrees, not only the first
    if norm != "std":
        deep = dense_net([norm] * 3)
        assert_close_stats(copy.deepcopy(deep).recalibrate(X), one_update(deep, X),
                           ONE_BATCH_RTOL)


@pytest.mark.parametrize("make", [
    lambda: Network([Conv1d(2, 4, 3, activation="relu",
                            batch_norm=BatchNorm(momentum=1.0)), Flatten(), Dense(56, 2)]),
    lambda: Network([Conv2d(1, 3, 3, padding=1, activation="tanh",
                            batch_norm=BatchNorm(momentum=1.0)), MaxPool2d(2), Flatten(),
                     Dense(3 * 4 * 4, 2)]),
], ids=["conv1d", "conv2d"])
def test_conv_layers_count_positions(make):
    """A conv BN channel's statistics run over rows x positions, with Bessel n/(n - 1)
    on that count, as training's."""
    net = make()
    rng = np.random.default_rng(2)
    X = rng.standard_normal((30, 2, 16)) if isinstance(net.layers[0], Conv1d) else \
        rng.standard_normal((30, 1, 8, 8))
    assert_close_stats(copy.deepcopy(net).recalibrate(X, batch_size=7), one_update(net, X),
                       ONE_BATCH_RTOL)


def exact_layer_stats(net, X, layer, channels):
    """(count, mean, biased var) Fractions per channel of layer ``layer``'s inference
    inputs with net's current running statistics."""
    h = net._core.normalization_input(net._params, net._running, np.asarray(X, float), layer)
    h = h.reshape(len(h), channels, -1)
    return [(n, mu, m2 / n) for n, mu, m2 in exact_moments(h, axis=1)]


def test_every_layer_is_exact_given_the_layers_before():
    """The definition, layer by layer: after recalibration, layer k's running_mean and
    running_var are the exact mean and unbiased variance of its inputs computed with the
    recalibrated layers before it (its own statistics do not enter its inputs)."""
    rng = np.random.default_rng(3)
    net = Network([Dense(5, 8, "relu", batch_norm=BatchNorm()),
                   Residual([Dense(8, 8, "tanh", batch_norm=BatchNorm()),
                             Dense(8, 8, "identity", batch_norm=BatchNorm(norm="l2"))]),
                   Dense(8, 6, "tanh", normalization=LayerNorm()),
                   Dense(6, 3, "tanh", batch_norm=BatchNorm(norm="l1")),
                   Dense(3, 1)], seed=4)
    X = 3 + 2 * rng.standard_normal((2000, 5))
    net.recalibrate(X, batch_size=333)
    bn = [(k, start) for k, start in enumerate(net._core.running_offsets) if start >= 0]
    scales = ["std", "std", "l2", "l1"]
    for (k, _), mean, var, kind in zip(bn, net.running_mean, net.running_var, scales):
        for j, (n, mu, v) in enumerate(exact_layer_stats(net, X, k, len(mean))):
            # the mean within MEAN_ULPS = 2 ulps (4 u) of the scale max(|mu|, std)
            scale = max(abs(float(mu)), float(v) ** 0.5)
            assert abs(Fraction(float(mean[j])) - mu) <= 4 * U * scale
            if kind == "std":
                target = v * n / (n - 1)
            elif kind == "l2":
                target = v + mu * mu
            else:
                h = net._core.normalization_input(net._params, net._running, X, k)
                target = Fraction(float(np.mean(np.abs(h[:, j])))) ** 2
            # m2 within M2_TOL = 16 u, then a division ("std") or a square and a sum
            # ("l2"): 32 u; l1's target is NumPy's mean |h| (pairwise sums, a few u) and
            # the square doubles both errors: 64 u
            tol = 32 * U if kind != "l1" else 64 * U
            assert abs(Fraction(float(var[j])) - target) <= tol * target, (k, j, kind)


def test_chunkings_agree_and_the_same_chunks_give_the_same_bits():
    import dask.array as da
    rng = np.random.default_rng(5)
    net = dense_net(["std", "linf", "std"])
    X = rng.standard_normal((1000, 5)) * 2 + 1
    by = {}
    pieces = [X[i:i + 37] for i in range(0, 1000, 37)]
    for label, data, batch in [("array/37", X, 37), ("list/37", pieces, None),
                               ("dask/37", da.from_array(X, chunks=(37, 5)), None),
                               ("dask rechunked", da.from_array(X, chunks=(500, 5)), 37),
                               ("array", X, None), ("array/1", X, 1),
                               ("list re-split", [X[:600], X[600:]], 37)]:
        by[label] = copy.deepcopy(net).recalibrate(data, batch_size=batch)._running
    for label in ("list/37", "dask/37", "dask rechunked"):
        assert np.array_equal(by[label], by["array/37"]), label
    # other chunks: other roundings (deeper layers see the earlier ones' through the
    # network, a few ulps each: 64 u); means near 0 are judged on the std's scale (~1
    # here): atol 1e-15 is ~9 u of it
    for label in ("array", "array/1", "list re-split"):
        np.testing.assert_allclose(by[label], by["array/37"], rtol=64 * U, atol=1e-15)


def test_streams_in_chunks_of_batch_size(monkeypatch):
    from bnfast.nn import recalibrate as module
    seen = []
    original = module._Evaluator.normalization_input

    def spy(self, X, layer):
        seen.append(X.shape[0])
        return original(self, X, layer)

    monkeypatch.setattr(module._Evaluator, "normalization_input", spy)
    net = dense_net(["std", "std"])
    X = np.random.default_rng(6).standard_normal((100, 5))
    net.recalibrate(X, batch_size=30)
    assert seen == [30, 30, 30, 10] * 2      # one pass per BN layer, 30 rows at a time
    seen.clear()
    monkeypatch.setattr(module, "DEFAULT_CHUNK_VALUES", 12 * 40)
    net.recalibrate(X)                        # widest BN layer 12: 40 rows
    assert max(seen) == 40 and sum(seen) == 200


def test_non_finite_channels_keep_their_statistics():
    net = Network([Dense(3, 4, "tanh", batch_norm=BatchNorm()), Dense(4, 1)], seed=1)
    params = net.params
    W = np.zeros((4, 3))
    W[0, 0] = 2.0
    W[1:, 1:] = np.random.default_rng(7).standard_normal((3, 2))
    params[:12] = W.ravel()
    net.params = params
    X = np.random.default_rng(8).standard_normal((50, 3))
    X[4, 0] = 1e308          # 2 * 1e308 = inf in neuron 0 only (0 * 1e308 = 0 elsewhere)
    before = [v.copy() for v in net.running_var]
    with pytest.warns(RuntimeWarning, match=r"layer 0: .* 1 channel\(s\) \(\[0\]\) are not finite"):
        net.recalibrate(X)
    assert net.running_var[0][0] == before[0][0] and net.running_mean[0][0] == 0.0
    assert np.all(net.running_var[0][1:] != 1.0)
    # a warning turned into an error changes nothing
    fresh = Network([Dense(3, 4, "tanh", batch_norm=BatchNorm()), Dense(4, 1)], seed=1)
    fresh.params = params
    state = fresh._running.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with pytest.raises(RuntimeWarning):
            fresh.recalibrate(X)
    assert np.array_equal(fresh._running, state)


def test_what_recalibration_leaves_alone():
    rng = np.random.default_rng(9)
    X = rng.standard_normal((40, 5))
    net = dense_net(["std"])
    bnfast.train(net, X, rng.standard_normal((40, 2)), lr=1e-2, steps=3, batch_size=10)
    params, updates = net.params, net._updates
    assert net.recalibrate(X) is net
    assert np.array_equal(net.params, params) and net._updates == updates
    # networks without running statistics: nothing to do
    plain = Network([Dense(5, 4, "tanh", normalization=GroupNorm(2)), Dense(4, 1)])
    state = plain._running.copy()
    plain.recalibrate(X)
    assert np.array_equal(plain._running, state)
    # predict uses the new statistics: rows do not interact, and a row's output is
    # BN with the recalibrated (population) statistics
    out = net.predict(X[:3])
    assert np.allclose(out, net.predict(X)[:3], rtol=0, atol=0)


def test_bad_arguments_change_nothing():
    net = dense_net(["std"])
    X = np.random.default_rng(10).standard_normal((20, 5))
    state = net._running.copy()
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        net.recalibrate(X, batch_size=0)
    with pytest.raises(TypeError, match="batch_size must be an int"):
        net.recalibrate(X, batch_size=True)
    with pytest.raises(TypeError, match="client must be a dask.distributed.Client"):
        net.recalibrate(X, client="tcp://localhost:8786")
    with pytest.raises(TypeError, match="iterator, which can be read once"):
        net.recalibrate(c for c in [X])
    with pytest.raises(TypeError, match="data must be an array"):
        net.recalibrate(3)
    with pytest.raises(ValueError, match="at least 2 values per channel, got 1"):
        net.recalibrate(X[:1])
    with pytest.raises(ValueError, match="X has 4 features but the network expects 5"):
        net.recalibrate(X[:, :4])
    with pytest.raises(ValueError, match="one sample per row"):
        net.recalibrate(np.ones(5))
    for empty in ([], np.zeros((0, 5))):
        with pytest.raises(ValueError, match="data has no rows"):
            net.recalibrate(empty)
    assert np.array_equal(net._running, state)


def test_pooling_and_avgpool_networks():
    # AvgPool after a BN conv: the BN layer's statistics are those of the conv output
    net = Network([Conv1d(1, 2, 3, batch_norm=BatchNorm(momentum=1.0), activation="relu"),
                   AvgPool1d(2), Flatten(), Dense(28, 1)])
    X = np.random.default_rng(11).standard_normal((25, 1, 30))
    a = copy.deepcopy(net).recalibrate(X)
    assert_close_stats(a, one_update(net, X), ONE_BATCH_RTOL)
    assert math.isfinite(float(a.running_var[0][0]))
