"""Running statistics and inference of bnfast.reference (docs/math/networks.md section
9), and train's loss reduction (section 6): train against hand-written loops whose batch
statistics come from reference_cases.manual_forward_ext, network_predict against the
inference formula, the new TrainResult fields and the argument checks.

Tolerances: the hand loops use the reference's own gradient, so parameters agree
exactly; the statistics are computed independently (plain column means against pairwise
sums with a correction pass), ~1e-16 relative per operation, so 1e-12.
"""

import dataclasses
import math

import numpy as np
import pytest

from bnfast import reference
from bnfast.reference.shuffle import EpochShuffler
from reference_cases import bn, dense, flat, manual_forward_ext, random_params, rel_err


def network(momenta=(0.1, 0.5, 1.0)):
    """4 -> 5 (std, trainable) -> 4 (l1, constant, no bias) -> 3 (linf) -> 2."""
    return [dense(4, 5, "tanh", True, bn(1.0, 0.0, True, 1e-5, momentum=momenta[0])),
            dense(5, 4, "sigmoid", False, bn([1.0, 2.0, 0.5, 1.5], 0.1, False, 0.0,
                                             norm="l1", momentum=momenta[1])),
            dense(4, 3, "tanh", True, bn(1.0, 0.0, True, 0.01, norm="linf",
                                         momentum=momenta[2])),
            dense(3, 2, "identity")]


def data(m, seed=1, layers=None):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(m, 4))
    Y = np.stack([np.sin(X[:, 0]) + X[:, 1] * X[:, 2], np.cos(X[:, 3])], axis=1)
    return X, Y, random_params(layers or network(), rng)


def batch_stats(layers, params, X):
    """[(mu_B, v_B)] per BN layer: v_B = s^2 B/(B-1) for std, s^2 for the lp norms."""
    _, records = manual_forward_ext(layers, params, X)
    B = X.shape[0]
    return [(rec["mu"], rec["s2"] * (B / (B - 1) if d["batch_norm"].get("norm", "std")
                                     == "std" else 1.0))
            for d, rec in zip(flat(layers), records) if d["batch_norm"] is not None]


def momenta(layers):
    return [d["batch_norm"].get("momentum", 0.1) for d in flat(layers)
            if d["batch_norm"] is not None]


def assert_stats_close(actual, expected, tol=1e-12):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        assert a.dtype == np.float64 and a.shape == e.shape
        assert np.max(np.abs(a - e)) <= tol * max(1.0, np.max(np.abs(e)))


# ---------------------------------------------------------------- updates


@pytest.mark.parametrize("steps", [0, 1, 4])
def test_full_batch_running_stats_by_hand(steps):
    """Each update moves the statistics by f = momentum towards the batch values at the
    params before the update (std with Bessel's B/(B-1), lp norms s^2)."""
    layers = network()
    X, Y, p0 = data(9)
    lr = 0.05
    p = p0.copy()
    mean = [np.zeros(5), np.zeros(4), np.zeros(3)]
    var = [np.ones(5), np.ones(4), np.ones(3)]
    for _ in range(steps):
        for j, ((mu, v), f) in enumerate(zip(batch_stats(layers, p, X), momenta(layers))):
            mean[j] = (1 - f) * mean[j] + f * mu
            var[j] = (1 - f) * var[j] + f * v
        p = p - lr * reference.network_gradient(layers, p, X, Y)
    result = reference.train(layers, p0, X, Y, lr, steps)
    np.testing.assert_array_equal(result.params, p)
    assert result.batches_seen == steps
    assert_stats_close(result.running_mean, mean)
    assert_stats_close(result.running_var, var)
    if steps:  # momentum 1: the last batch's values exactly (linf layer)
        assert_stats_close(result.running_var[2:], var[2:], tol=1e-14)


def test_momentum_none_is_the_plain_average_with_bessel():
    """Mini-batch SGD with momentum None: after n updates the statistics are the average
    of the n batch values (the initial ones, here not 0 and 1, are forgotten)."""
    layers = network((None, None, None))
    X, Y, p0 = data(11)
    lr, steps, B, seed = 0.02, 7, 4, 3
    shuffler, p, seen = EpochShuffler(11, seed), p0.copy(), []
    batches = []
    for _ in range(4):
        perm = shuffler.next_epoch()
        batches += [perm[0:4], perm[4:8]]
    for step in range(steps):
        rows = batches[step]
        seen.append(batch_stats(layers, p, X[rows]))
        p = p - lr * reference.network_gradient(layers, p, X[rows], Y[rows])
    start_mean = [np.full(5, 3.0), np.full(4, -1.0), np.full(3, 7.0)]
    start_var = [np.full(5, 9.0), np.full(4, 0.5), np.full(3, 2.0)]
    result = reference.train(layers, p0, X, Y, lr, steps, batch_size=B, seed=seed,
                             running_mean=start_mean, running_var=start_var)
    np.testing.assert_array_equal(result.params, p)
    assert_stats_close(result.running_mean,
                       [np.mean([s[j][0] for s in seen], axis=0) for j in range(3)])
    assert_stats_close(result.running_var,
                       [np.mean([s[j][1] for s in seen], axis=0) for j in range(3)])
    # the caller's arrays are not modified
    assert start_mean[0][0] == 3.0 and start_var[2][0] == 2.0


@pytest.mark.parametrize("momentum", [None, 0.1])
def test_batches_seen_continues_a_run(momentum):
    """3 steps, then 2 more from the result with batches_seen=3: the same as 5 steps
    (full batch: no shuffle stream to restart)."""
    layers = network((momentum, momentum, 1.0))
    X, Y, p0 = data(8)
    whole = reference.train(layers, p0, X, Y, 0.05, 5)
    first = reference.train(layers, p0, X, Y, 0.05, 3)
    assert first.batches_seen == 3
    second = reference.train(layers, first.params, X, Y, 0.05, 2,
                             running_mean=first.running_mean, running_var=first.running_var,
                             batches_seen=first.batches_seen)
    assert second.batches_seen == whole.batches_seen == 5 and second.steps == 2
    np.testing.assert_array_equal(second.params, whole.params)
    for a, b in zip(second.running_mean + second.running_var,
                    whole.running_mean + whole.running_var):
        np.testing.assert_array_equal(a, b)


def test_momentum_none_with_batches_seen_weights_the_new_batches():
    """momentum None and batches_seen = k: the (k+1)-th update uses f = 1/(k+1)."""
    layers = [dense(2, 3, "tanh", False, bn(trainable=False, eps=0.0, momentum=None))]
    rng = np.random.default_rng(2)
    X, Y, p0 = rng.normal(size=(5, 2)), rng.normal(size=(5, 3)), rng.normal(size=6)
    (mu, v), = batch_stats(layers, p0, X)
    old_mean, old_var = np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0, 6.0])
    result = reference.train(layers, p0, X, Y, 0.1, 1, running_mean=[old_mean],
                             running_var=(old_var,), batches_seen=3)
    assert result.batches_seen == 4
    assert rel_err(result.running_mean[0], 0.75 * old_mean + 0.25 * mu) <= 1e-12
    assert rel_err(result.running_var[0], 0.75 * old_var + 0.25 * v) <= 1e-12


def test_callback_stop_and_no_bn():
    layers = network()
    X, Y, p0 = data(8)
    stopped = reference.train(layers, p0, X, Y, 0.05, 50, record_every=2,
                              callback=lambda step, loss: step == 4)
    plain = reference.train(layers, p0, X, Y, 0.05, 4)
    assert stopped.stopped_by_callback and stopped.batches_seen == 4
    for a, b in zip(stopped.running_mean + stopped.running_var,
                    plain.running_mean + plain.running_var):
        np.testing.assert_array_equal(a, b)
    no_bn = reference.train([dense(4, 2)], np.zeros(10), X, Y, 0.01, 3, batches_seen=10)
    assert no_bn.running_mean == [] and no_bn.running_var == [] and no_bn.batches_seen == 13


def test_train_result_fields():
    names = [f.name for f in dataclasses.fields(reference.TrainResult)]
    assert names == ["params", "losses", "steps", "stopped_by_callback", "running_mean",
                     "running_var", "batches_seen", "optimizer_state"]
    bare = reference.TrainResult(np.zeros(1), np.zeros(1))
    assert (bare.steps, bare.stopped_by_callback, bare.running_mean, bare.running_var,
            bare.batches_seen, bare.optimizer_state) == (0, False, [], [], 0, None)
    layers = network()
    X, Y, p0 = data(6)
    result = reference.train(layers, p0, X, Y, 0.05, 0)
    assert result.batches_seen == 0
    assert [a.tolist() for a in result.running_mean] == [[0.0] * 5, [0.0] * 4, [0.0] * 3]
    assert [a.tolist() for a in result.running_var] == [[1.0] * 5, [1.0] * 4, [1.0] * 3]


def test_divergence_leaves_the_callers_statistics():
    layers = [dense(2, 1, "identity", True, bn(trainable=False, eps=1e-5)), dense(1, 1)]
    X, Y = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), np.array([8.0, 6.0, 11.0])
    mean, var = [np.array([0.5])], [np.array([2.0])]
    with np.errstate(all="ignore"), pytest.raises(reference.TrainingDiverged):
        reference.train(layers, [0.3, -0.2, 0.1, 1.0, 0.0], X, Y, lr=1e150, steps=10,
                        running_mean=mean, running_var=var)
    assert mean[0][0] == 0.5 and var[0][0] == 2.0


# ---------------------------------------------------------------- loss = "mean" in train


@pytest.mark.parametrize("batch_size", [None, 4])
def test_train_on_the_mean_loss(batch_size):
    """The recorded losses are full learning-set means; each step uses the gradient of
    the mean over the rows of its evaluation (all m, or the B of the batch)."""
    layers = network()
    X, Y, p0 = data(10)
    lr, steps, seed = 0.3, 6, 5
    shuffler, perm, pos = EpochShuffler(10, seed), None, 10
    p, expected = p0.copy(), []
    for step in range(steps):
        expected.append(reference.network_loss(layers, p, X, Y, loss="mean"))
        rows = np.arange(10)
        if batch_size:
            if pos + batch_size > 10:
                perm, pos = shuffler.next_epoch(), 0
            rows, pos = perm[pos:pos + batch_size], pos + batch_size
        p = p - lr * reference.network_gradient(layers, p, X[rows], Y[rows], loss="mean")
    expected.append(reference.network_loss(layers, p, X, Y, loss="mean"))
    result = reference.train(layers, p0, X, Y, lr, steps, batch_size=batch_size, seed=seed,
                             loss="mean")
    np.testing.assert_array_equal(result.params, p)
    np.testing.assert_array_equal(result.losses, expected)


# ---------------------------------------------------------------- inference


def some_stats(rng, sizes=(5, 4, 3)):
    return ([rng.normal(size=n) for n in sizes], [rng.uniform(0.2, 3.0, n) for n in sizes])


def test_predict_on_one_row():
    layers = network()
    X, _, p0 = data(5)
    mean, var = some_stats(np.random.default_rng(8))
    out = reference.network_predict(layers, p0, X[:1], mean, var)
    expected, _ = manual_forward_ext(layers, p0, X[:1], running=(mean, var))
    assert out.shape == (1, 2) and out.dtype == np.float64
    assert rel_err(out, expected) <= 1e-12


def test_predict_rows_do_not_interact():
    layers = network()
    X, _, p0 = data(6)
    mean, var = some_stats(np.random.default_rng(9))
    together = reference.network_predict(layers, p0, X, mean, var)
    alone = np.vstack([reference.network_predict(layers, p0, X[[i]], mean, var)
                       for i in range(6)])
    np.testing.assert_allclose(together, alone, rtol=1e-14, atol=1e-15)
    expected, _ = manual_forward_ext(layers, p0, X, running=(mean, var))
    assert rel_err(together, expected) <= 1e-12


def test_predict_equals_forward_with_the_batch_statistics():
    """One full-batch step with momentum 1 stores the batch statistics at p0; with
    Bessel's factor undone for "std", inference on the same rows is the training-mode
    forward pass at p0."""
    layers = network((1.0, 1.0, 1.0))
    X, Y, p0 = data(7)
    result = reference.train(layers, p0, X, Y, 0.1, 1)
    var = [result.running_var[0] * 6 / 7] + result.running_var[1:]
    predicted = reference.network_predict(layers, p0, X, result.running_mean, var)
    assert rel_err(predicted, reference.network_forward(layers, p0, X)) <= 1e-12


def test_predict_before_training_uses_zeros_and_ones():
    layers = network()
    X, _, p0 = data(4)
    initial = reference.network_predict(layers, p0, X, None, None)
    explicit = reference.network_predict(layers, p0, X, [np.zeros(5), np.zeros(4),
                                                         np.zeros(3)],
                                         [np.ones(5), np.ones(4), np.ones(3)])
    np.testing.assert_array_equal(initial, explicit)
    zeros, ones = [np.zeros(n) for n in (5, 4, 3)], [np.ones(n) for n in (5, 4, 3)]
    expected, _ = manual_forward_ext(layers, p0, X, running=(zeros, ones))
    assert rel_err(initial, expected) <= 1e-12


def test_predict_ignores_noise():
    noisy = [dense(2, 3, "tanh", True, bn(eps=0.0, noise={"n_mu": 1.0, "n_sigma": 3.0,
                                                          "r_mu": 1.0, "r_sigma": 1.0})),
             dense(3, 1)]
    quiet = [dense(2, 3, "tanh", True, bn(eps=0.0)), dense(3, 1)]
    rng = np.random.default_rng(1)
    p, X = rng.normal(size=19), rng.normal(size=(4, 2))
    mean, var = [rng.normal(size=3)], [rng.uniform(1, 2, 3)]
    np.testing.assert_array_equal(reference.network_predict(noisy, p, X, mean, var),
                                  reference.network_predict(quiet, p, X, mean, var))


def test_predict_with_eps_zero_and_a_zero_running_var_names_the_neuron():
    layers = [dense(2, 3, "tanh"), dense(3, 4, "tanh", False, bn(eps=0.0, norm="l2")),
              dense(4, 1)]
    p, X = np.ones(6 + 3 + 12 + 8 + 5), np.ones((2, 2))
    var = [np.array([1.0, 1.0, 0.0, 1.0])]
    with pytest.raises(ValueError,
                       match="layer 1, neuron 2 has running_var 0 and eps == 0"):
        reference.network_predict(layers, p, X, [np.zeros(4)], var)
    layers[1]["batch_norm"]["eps"] = 1e-5
    assert np.all(np.isfinite(reference.network_predict(layers, p, X, [np.zeros(4)], var)))


# ---------------------------------------------------------------- arguments


RUNNING_ERRORS = [
    ({"running_mean": np.zeros(5)}, TypeError,
     "running_mean must be a list with one array per BN layer, got ndarray"),
    ({"running_var": "ones"}, TypeError, "running_var must be a list"),
    ({"running_mean": [np.zeros(5)] * 2}, ValueError,
     r"running_mean must have one array per BN layer \(3\), got 2"),
    ({"running_var": [np.ones(5)] * 4}, ValueError,
     r"running_var must have one array per BN layer \(3\), got 4"),
    ({"running_mean": [np.zeros(5), np.zeros(3), np.zeros(3)]}, ValueError,
     r"running_mean\[1\] must have shape \(4,\) \(layers\[1\] has 4 neurons\), got \(3,\)"),
    ({"running_var": [np.ones((5, 1)), np.ones(4), np.ones(3)]}, ValueError,
     r"running_var\[0\] must have shape \(5,\)"),
    ({"running_var": [np.ones(5), np.ones(4), np.array([1.0, -1.0, 1.0])]}, ValueError,
     r"running_var\[2\] must be finite and >= 0"),
    ({"running_mean": [np.zeros(5), np.zeros(4), np.array([0.0, math.nan, 0.0])]},
     ValueError, r"running_mean\[2\] must be finite"),
    ({"running_var": [np.ones(5), np.ones(4), np.array([1.0, math.inf, 1.0])]},
     ValueError, r"running_var\[2\] must be finite"),
    ({"running_mean": [np.zeros(5, complex), np.zeros(4), np.zeros(3)]}, TypeError,
     r"running_mean\[0\] must hold real numbers"),
    ({"running_mean": [np.zeros(5), np.zeros(4, bool), np.zeros(3)]}, TypeError,
     r"running_mean\[1\] must hold real numbers"),
]


@pytest.mark.parametrize("kwargs,exc,match", RUNNING_ERRORS)
def test_running_statistics_errors(kwargs, exc, match):
    layers = network()
    X, Y, p0 = data(4)
    with pytest.raises(exc, match=match):
        reference.train(layers, p0, X, Y, 0.1, 1, **kwargs)
    args = {"running_mean": None, "running_var": None}
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        reference.network_predict(layers, p0, X, **args)


@pytest.mark.parametrize("value,exc,match", [
    (-1, ValueError, "batches_seen must be >= 0"),
    (1.0, TypeError, "batches_seen must be an int"),
    (True, TypeError, "batches_seen must be an int"),
    (None, TypeError, "batches_seen must be an int"),
])
def test_batches_seen_errors(value, exc, match):
    layers = network()
    X, Y, p0 = data(4)
    with pytest.raises(exc, match=match):
        reference.train(layers, p0, X, Y, 0.1, 1, batches_seen=value)


def test_predict_checks_its_other_arguments():
    layers = network()
    X, _, p0 = data(4)
    with pytest.raises(ValueError, match="X must have at least one row"):
        reference.network_predict(layers, p0, np.zeros((0, 4)), None, None)
    with pytest.raises(ValueError, match="X has 3 features"):
        reference.network_predict(layers, p0, np.zeros((2, 3)), None, None)
    with pytest.raises(ValueError, match=r"params must have shape"):
        reference.network_predict(layers, p0[:-1], X, None, None)
