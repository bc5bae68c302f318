"""bnfast.reference.train against hand-written loops over the reference's own loss and
gradient (docs/math/networks.md section 5), its records, callback, divergence and
argument checks. No native code: these pin the oracle the native loop is compared to.

The loops below run the same float64 operations in the same order as the reference
loop, so results are compared for exact equality.
"""

import math

import numpy as np
import pytest

from bnfast import reference
from bnfast.reference.shuffle import EpochShuffler
from reference_cases import bn, dense
from train_argument_cases import TRAIN_ARGUMENT_ERRORS

# Example 3.2 of docs/math/lemma_4_5.md: one BN neuron, constant gamma = 1, beta = 0.
EXAMPLE = [dense(2, 1, "identity", False, bn(1.0, 0.0, trainable=False, eps=0.0))]
X32 = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
Y32 = np.array([8.0, 6.0, 11.0])
W_STAR = np.array([7.0, 5.0])


def deep():
    return [dense(4, 6, "tanh", True, bn(eps=1e-5)),
            dense(6, 5, "relu", False, bn(beta=0.3, eps=0.1)),
            dense(5, 4, "sigmoid", True, bn(gamma=[1.0, 2.0, 0.5, 1.5], trainable=False,
                                            eps=1e-3)),
            dense(4, 2, "identity")]


def data(m, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(m, 4))
    Y = np.stack([np.sin(X[:, 0]) + X[:, 1] * X[:, 2], np.cos(X[:, 3])], axis=1)
    params = rng.normal(0, 0.5, reference.param_count(deep()))
    return X, Y, params


# ---------------------------------------------------------------- the loop


@pytest.mark.parametrize("steps,every", [(23, 5), (20, 5), (7, 1), (0, 3)])
def test_full_batch_is_gradient_descent(steps, every):
    """losses[k] is the full loss before step k * every, plus the loss after the last
    step when steps is a multiple of every."""
    layers = deep()
    X, Y, p0 = data(12)
    kept = p0.copy()
    lr = 0.02
    p, expected = p0.copy(), []
    for step in range(steps):
        if step % every == 0:
            expected.append(reference.network_loss(layers, p, X, Y))
        p = p - lr * reference.network_gradient(layers, p, X, Y)
    if steps % every == 0:
        expected.append(reference.network_loss(layers, p, X, Y))
    result = reference.train(layers, p0, X, Y, lr, steps, record_every=every)
    assert isinstance(result, reference.TrainResult)
    assert result.steps == steps and result.stopped_by_callback is False
    assert result.losses.dtype == np.float64 and result.losses.shape == (len(expected),)
    np.testing.assert_array_equal(result.losses, expected)
    np.testing.assert_array_equal(result.params, p)
    np.testing.assert_array_equal(p0, kept)  # the caller's params are not modified
    if steps > 10:
        assert result.losses[-1] < result.losses[0]


def test_minibatch_is_sgd_over_epoch_batches():
    """Disjoint batches of each EpochShuffler permutation, a new permutation when fewer
    than B unused rows remain (the m mod B left over are skipped), BN statistics of the
    batch; the recorded loss is over the whole learning set."""
    layers = deep()
    X, Y, p0 = data(11)
    lr, steps, B, every, seed = 0.01, 20, 4, 3, 7
    shuffler = EpochShuffler(11, seed)
    batches = []
    for _ in range(10):  # 2 batches per epoch, 3 rows left over
        perm = shuffler.next_epoch()
        batches += [perm[0:4], perm[4:8]]
    p, expected = p0.copy(), []
    for step in range(steps):
        if step % every == 0:
            expected.append(reference.network_loss(layers, p, X, Y))
        rows = batches[step]
        p = p - lr * reference.network_gradient(layers, p, X[rows], Y[rows])
    result = reference.train(layers, p0, X, Y, lr, steps, batch_size=B, seed=seed,
                             record_every=every)
    assert result.steps == steps and result.losses.shape == (7,)
    np.testing.assert_array_equal(result.losses, expected)
    np.testing.assert_array_equal(result.params, p)
    other = reference.train(layers, p0, X, Y, lr, steps, batch_size=B, seed=seed + 1,
                            record_every=every)
    assert np.max(np.abs(other.params - result.params)) > 1e-6


def test_batch_size_m_is_full_batch():
    layers = deep()
    X, Y, p0 = data(10)
    a = reference.train(layers, p0, X, Y, 0.01, 15, batch_size=10)
    b = reference.train(layers, p0, X, Y, 0.01, 15)
    np.testing.assert_array_equal(a.params, b.params)
    np.testing.assert_array_equal(a.losses, b.losses)


def test_epoch_shuffles_are_fisher_yates_over_splitmix64():
    """seed 0: SplitMix64's published first outputs (Vigna's splitmix64.c) give
    j3 = o1 mod 4, j2 = o2 mod 3, j1 = o3 mod 2, swapped into the identity."""
    outputs = [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F]
    perm = [0, 1, 2, 3]
    for i, o in zip((3, 2, 1), outputs):
        j = o % (i + 1)
        perm[i], perm[j] = perm[j], perm[i]
    first = EpochShuffler(4, 0).next_epoch()
    assert first.dtype == np.int64
    assert first.tolist() == perm
    shuffler = EpochShuffler(50, 2**64 - 1)
    a, b = shuffler.next_epoch(), shuffler.next_epoch()
    assert sorted(a) == sorted(b) == list(range(50)) and not np.array_equal(a, b)


def test_example_3_2_full_batch():
    """From w* the loss is 224 - 18 sqrt(78)/13 (docs/math/lemma_4_5.md); steps = 0
    records only that and returns w*."""
    result = reference.train(EXAMPLE, W_STAR, X32, Y32, lr=1.0, steps=0)
    assert result.steps == 0 and result.losses.shape == (1,)
    assert result.losses[0] == pytest.approx(224 - 18 * math.sqrt(78) / 13, rel=1e-12)
    np.testing.assert_array_equal(result.params, W_STAR)
    assert result.params is not W_STAR


def test_result_is_frozen():
    result = reference.train(EXAMPLE, W_STAR, X32, Y32, lr=1.0, steps=2)
    with pytest.raises(AttributeError):
        result.steps = 3


# ---------------------------------------------------------------- callback


@pytest.mark.parametrize("batch_size", [None, 2])
@pytest.mark.parametrize("steps", [9, 10])
def test_callback_sees_every_record(batch_size, steps):
    calls = []

    def callback(step, loss):
        assert type(step) is int and type(loss) is float
        calls.append((step, loss))

    result = reference.train(EXAMPLE, W_STAR, X32, Y32, lr=1.0, steps=steps,
                             batch_size=batch_size, seed=3, record_every=3, callback=callback)
    assert [s for s, _ in calls] == [0, 3, 6, 9]
    np.testing.assert_array_equal([loss for _, loss in calls], result.losses)
    assert result.steps == steps and not result.stopped_by_callback


@pytest.mark.parametrize("batch_size", [None, 4])
def test_callback_returning_true_stops_at_that_step(batch_size):
    layers = deep()
    X, Y, p0 = data(12)
    result = reference.train(layers, p0, X, Y, 0.01, 100, batch_size=batch_size, seed=2,
                             record_every=4, callback=lambda step, loss: step == 12)
    assert result.stopped_by_callback is True and result.steps == 12
    assert result.losses.shape == (4,)
    expected = reference.train(layers, p0, X, Y, 0.01, 12, batch_size=batch_size, seed=2,
                               record_every=4)
    np.testing.assert_array_equal(result.params, expected.params)
    np.testing.assert_array_equal(result.losses, expected.losses[:4])


def test_callback_true_at_the_final_record_is_not_an_early_stop():
    result = reference.train(EXAMPLE, W_STAR, X32, Y32, lr=1.0, steps=6, record_every=3,
                             callback=lambda step, loss: step == 6)
    assert result.steps == 6 and result.stopped_by_callback is False
    assert result.losses.shape == (3,)


def test_callback_truthy_at_step_zero_changes_nothing():
    result = reference.train(EXAMPLE, W_STAR, X32, Y32, lr=1.0, steps=50,
                             callback=lambda step, loss: 1)
    assert result.steps == 0 and result.stopped_by_callback is True
    np.testing.assert_array_equal(result.params, W_STAR)


def test_exception_in_callback_propagates():
    def callback(step, loss):
        if step == 4:
            raise KeyError("from the callback")

    p0 = W_STAR.copy()
    with pytest.raises(KeyError, match="from the callback"):
        reference.train(EXAMPLE, p0, X32, Y32, lr=1.0, steps=100, record_every=2,
                        callback=callback)
    np.testing.assert_array_equal(p0, W_STAR)


# ---------------------------------------------------------------- divergence


@pytest.mark.parametrize("batch_size,record_every", [(None, 1), (None, 7), (2, 1), (2, 5)])
def test_divergence_raises_with_the_step(batch_size, record_every):
    """lr = 1 on least squares with Hessian eigenvalues 2 and 6: |1 - 6 lr| = 5 > 1, the
    loss grows ~25x per step and overflows after ~200 steps."""
    layers = [dense(2, 1)]
    p0 = np.array([0.3, -0.2, 0.1])
    kept = p0.copy()
    with np.errstate(all="ignore"), pytest.raises(reference.TrainingDiverged) as info:
        reference.train(layers, p0, X32, Y32, lr=1.0, steps=100_000, batch_size=batch_size,
                        record_every=record_every)
    err = info.value
    assert isinstance(err, FloatingPointError)
    assert not math.isfinite(err.loss) and 50 < err.step < 2000
    assert f"step {err.step}" in str(err)
    assert err.losses.dtype == np.float64 and np.all(np.isfinite(err.losses))
    assert err.losses.size == (err.step - 1) // record_every + 1
    np.testing.assert_array_equal(p0, kept)


@pytest.mark.parametrize("batch_size", [None, 2])
@pytest.mark.parametrize("steps,record_every", [(1, 2), (1, 5), (3, 2)])
def test_divergence_on_the_last_unrecorded_step_is_reported(batch_size, steps, record_every):
    lr = 1e300 if steps == 1 else 1e60
    with np.errstate(all="ignore"), pytest.raises(reference.TrainingDiverged) as info:
        reference.train([dense(2, 1)], [0.3, -0.2, 0.1], X32, Y32, lr=lr, steps=steps,
                        batch_size=batch_size, record_every=record_every)
    assert info.value.step == steps and not math.isfinite(info.value.loss)


def test_non_finite_start_diverges_at_step_zero():
    with np.errstate(all="ignore"), pytest.raises(reference.TrainingDiverged) as info:
        reference.train([dense(2, 1)], [math.inf, 0.0, 0.0], X32, Y32, lr=0.1, steps=5)
    assert info.value.step == 0 and info.value.losses.size == 0


# ---------------------------------------------------------------- arguments


@pytest.mark.parametrize("kwargs,exc,match", TRAIN_ARGUMENT_ERRORS)
def test_train_arguments(kwargs, exc, match):
    p0 = W_STAR.copy()
    args = {"lr": 0.1, "steps": 5}
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        reference.train(EXAMPLE, p0, X32, Y32, **args)
    np.testing.assert_array_equal(p0, W_STAR)


def test_numpy_scalars_are_accepted():
    result = reference.train(EXAMPLE, W_STAR, X32, Y32, lr=np.float32(0.5), steps=np.int64(3),
                             batch_size=np.uint8(2), seed=np.uint64(2**64 - 1),
                             record_every=np.int32(1))
    assert result.steps == 3 and result.losses.shape == (4,)


def test_batch_size_one_without_batch_norm_is_plain_sgd():
    layers, p0 = [dense(2, 1)], np.array([0.3, -0.2, 0.1])
    result = reference.train(layers, p0, X32, Y32, lr=0.05, steps=6, batch_size=1, seed=2)
    shuffler, p = EpochShuffler(3, 2), p0.copy()
    for epoch in range(2):
        for row in shuffler.next_epoch():
            p = p - 0.05 * reference.network_gradient(layers, p, X32[[row]], Y32[[row]])
    np.testing.assert_array_equal(result.params, p)
