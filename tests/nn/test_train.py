"""bnfast.train: parity with the NumPy reference loop, the documented semantics (records,
result, callback), divergence, the GIL and Ctrl-C.

Parity tolerance: native and reference compute the same float64 steps with sums in
different orders, ~1e-15 relative per step. Over a few hundred steps such differences
grow only as fast as the training dynamics amplify them; the networks and learning
rates below were chosen well-conditioned (a 1e-15 relative perturbation of the starting
point stays below 1e-13 after 300 reference steps), so RTOL = 1e-10 is ~1000x above
the expected disagreement while a wrong batch, step or record is off by far more.
"""

import _thread
import math
import signal
import threading
import time

import numpy as np
import pytest

import bnfast
from bnfast import BatchNorm, Dense, Network
from bnfast import reference as ref
from bnfast.reference.shuffle import EpochShuffler
from network_cases import deep_layers, regression_data, rel_err
from network_cases import specs

RTOL = 1e-10

X32 = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
Y32 = np.array([8.0, 6.0, 11.0])


def example_net():
    net = Network([Dense(2, 1, bias=False,
                         batch_norm=BatchNorm(gamma=1.0, beta=0.0, trainable=False, eps=0.0))])
    net.params = [7.0, 5.0]
    return net


def assert_same_run(native, expected):
    assert native.steps == expected.steps
    assert native.stopped_by_callback == expected.stopped_by_callback
    assert native.losses.shape == expected.losses.shape
    assert rel_err(native.params, expected.params) <= RTOL
    if expected.losses.size:
        assert np.max(np.abs(native.losses - expected.losses) / np.abs(expected.losses)) <= RTOL


# ---------------------------------------------------------------- native == reference


@pytest.mark.parametrize("variant,lr", [("A", 0.01), ("C", 0.003)])
@pytest.mark.parametrize("batch_size", [None, 8], ids=["full", "minibatch8"])
@pytest.mark.parametrize("steps,record_every", [(300, 1), (300, 7), (300, 10), (0, 3)])
def test_native_train_matches_reference(variant, lr, batch_size, steps, record_every):
    layers = deep_layers(variant)
    X, Y = regression_data()
    native_net, ref_net = Network(layers, seed=4), Network(layers, seed=4)
    p0 = native_net.params
    native = bnfast.train(native_net, X, Y, lr, steps, batch_size=batch_size, seed=11,
                          record_every=record_every)
    expected = ref.train(specs(ref_net.layers), ref_net.params, X, Y, lr, steps,
                         batch_size=batch_size, seed=11, record_every=record_every)
    assert_same_run(native, expected)
    assert native.losses.size == steps // record_every + 1
    np.testing.assert_array_equal(native_net.params, native.params)
    if steps:
        assert expected.losses[-1] < 0.5 * expected.losses[0]  # it really trained
        assert rel_err(native.params, p0) > 1e-2
    else:
        np.testing.assert_array_equal(native.params, p0)


def test_different_seeds_give_different_minibatch_runs():
    layers = deep_layers("A")
    X, Y = regression_data()
    a = bnfast.train(Network(layers, seed=4), X, Y, 0.01, 20, batch_size=8, seed=1)
    b = bnfast.train(Network(layers, seed=4), X, Y, 0.01, 20, batch_size=8, seed=2)
    assert rel_err(a.params, b.params) > 1e-6
    c = ref.train(specs(layers), Network(layers, seed=4).params, X, Y, 0.01, 20,
                  batch_size=8, seed=2)
    assert_same_run(b, c)


def test_example_3_2_native_matches_reference():
    native = bnfast.train(example_net(), X32, Y32, lr=10.0, steps=500, record_every=3)
    expected = ref.train(specs(example_net().layers), example_net().params, X32, Y32,
                         lr=10.0, steps=500, record_every=3)
    assert_same_run(native, expected)


# ---------------------------------------------------------------- semantics, from scratch


def test_full_batch_records_and_steps_match_a_hand_written_loop():
    """losses[k] is the full loss before step k * record_every; steps % record_every != 0
    means no record after the last step. Oracle: plain GD on bnfast.reference maths."""
    layers = deep_layers("A")
    X, Y = regression_data(m=12)
    lr, steps, every = 0.02, 23, 5
    net = Network(layers, seed=2)
    p = net.params
    expected_losses = []
    for step in range(steps):
        if step % every == 0:
            expected_losses.append(ref.network_loss(specs(layers), p, X, Y))
        p = p - lr * ref.network_gradient(specs(layers), p, X, Y)
    result = bnfast.train(net, X, Y, lr, steps, record_every=every)
    assert isinstance(result, bnfast.TrainResult)
    assert result.steps == steps and result.stopped_by_callback is False
    assert result.losses.dtype == np.float64 and result.losses.shape == (5,)
    assert rel_err(result.losses, expected_losses) <= RTOL
    assert rel_err(result.params, p) <= RTOL
    np.testing.assert_array_equal(net.params, result.params)
    # with steps a multiple of record_every, the loss after the last step is recorded
    net2 = Network(layers, seed=2)
    result2 = bnfast.train(net2, X, Y, lr, 20, record_every=every)
    assert result2.losses.shape == (5,)
    assert rel_err(result2.losses[-1],
                   ref.network_loss(specs(layers), result2.params, X, Y)) <= 1e-12
    assert rel_err(result2.losses[:4], expected_losses[:4]) <= RTOL


def test_minibatch_batches_match_a_hand_written_loop():
    """Disjoint batches of the reference shuffle, a new permutation each epoch, the
    m mod B left-over samples of an epoch unused; BN statistics of the batch; the
    recorded loss is over the full learning set."""
    layers = deep_layers("C")
    X, Y = regression_data(m=11)
    lr, steps, B, every, seed = 0.01, 20, 4, 3, 7
    net = Network(layers, seed=5)
    p = net.params
    shuffler = EpochShuffler(11, seed)
    batches = []
    for _ in range(10):  # 2 batches per epoch, 3 samples left over
        perm = shuffler.next_epoch()
        batches += [perm[0:4], perm[4:8]]
    expected_losses = []
    for step in range(steps):
        if step % every == 0:
            expected_losses.append(ref.network_loss(specs(layers), p, X, Y))
        rows = batches[step]
        p = p - lr * ref.network_gradient(specs(layers), p, X[rows], Y[rows])
    result = bnfast.train(net, X, Y, lr, steps, batch_size=B, seed=seed, record_every=every)
    assert result.steps == steps and result.losses.shape == (7,)
    assert rel_err(result.losses, expected_losses) <= RTOL
    assert rel_err(result.params, p) <= RTOL


def test_batch_size_equal_to_m_is_full_batch():
    layers = deep_layers("A")
    X, Y = regression_data(m=10)
    a = bnfast.train(Network(layers, seed=1), X, Y, 0.01, 15, batch_size=10)
    b = bnfast.train(Network(layers, seed=1), X, Y, 0.01, 15)
    assert rel_err(a.params, b.params) <= 1e-13
    assert rel_err(a.losses, b.losses) <= 1e-13


def test_steps_zero_records_the_start_and_changes_nothing():
    net = example_net()
    calls = []
    result = bnfast.train(net, X32, Y32, lr=1.0, steps=0,
                          callback=lambda s, loss: calls.append((s, loss)))
    assert result.steps == 0 and not result.stopped_by_callback
    np.testing.assert_array_equal(result.params, [7.0, 5.0])
    np.testing.assert_array_equal(net.params, [7.0, 5.0])
    bn_loss = 224 - 18 * math.sqrt(78) / 13
    assert result.losses.shape == (1,) and result.losses[0] == pytest.approx(bn_loss, rel=1e-12)
    assert calls == [(0, result.losses[0])]


def test_result_params_is_a_copy():
    net = example_net()
    result = bnfast.train(net, X32, Y32, lr=1.0, steps=5)
    kept = net.params
    result.params[:] = 0.0
    np.testing.assert_array_equal(net.params, kept)
    with pytest.raises(AttributeError):
        result.steps = 3  # frozen dataclass


# ---------------------------------------------------------------- callback


@pytest.mark.parametrize("batch_size", [None, 2])
@pytest.mark.parametrize("steps", [9, 10])
def test_callback_sees_every_record(batch_size, steps):
    net = example_net()
    calls = []

    def callback(step, loss):
        assert isinstance(step, int) and isinstance(loss, float)
        calls.append((step, loss))
        return None

    result = bnfast.train(net, X32, Y32, lr=1.0, steps=steps, batch_size=batch_size, seed=3,
                          record_every=3, callback=callback)
    assert [s for s, _ in calls] == [0, 3, 6, 9]
    np.testing.assert_array_equal([loss for _, loss in calls], result.losses)
    expected = ref.train(specs(example_net().layers), example_net().params, X32, Y32,
                         lr=1.0, steps=steps, batch_size=batch_size, seed=3, record_every=3)
    assert_same_run(result, expected)
    assert result.steps == steps and not result.stopped_by_callback


@pytest.mark.parametrize("batch_size", [None, 8])
def test_callback_returning_true_stops_at_that_step(batch_size):
    layers = deep_layers("A")
    X, Y = regression_data()
    net = Network(layers, seed=6)
    calls = []

    def callback(step, loss):
        calls.append(step)
        return step == 12

    result = bnfast.train(net, X, Y, 0.01, 100, batch_size=batch_size, seed=2, record_every=4,
                          callback=callback)
    assert calls == [0, 4, 8, 12]
    assert result.stopped_by_callback is True and result.steps == 12
    assert result.losses.shape == (4,)
    expected = ref.train(specs(layers), Network(layers, seed=6).params, X, Y, 0.01, 12,
                         batch_size=batch_size, seed=2, record_every=4)
    assert rel_err(result.params, expected.params) <= RTOL
    assert rel_err(result.losses, expected.losses) <= RTOL
    np.testing.assert_array_equal(net.params, result.params)


def test_callback_true_at_the_final_record_is_not_an_early_stop():
    net = example_net()
    result = bnfast.train(net, X32, Y32, lr=1.0, steps=6, record_every=3,
                          callback=lambda step, loss: step == 6)
    assert result.steps == 6 and result.stopped_by_callback is False
    assert result.losses.shape == (3,)


def test_callback_true_at_step_zero_changes_nothing():
    net = example_net()
    result = bnfast.train(net, X32, Y32, lr=1.0, steps=50, callback=lambda s, loss: 1)
    assert result.steps == 0 and result.stopped_by_callback is True
    np.testing.assert_array_equal(result.params, [7.0, 5.0])
    np.testing.assert_array_equal(net.params, [7.0, 5.0])


class Boom(Exception):
    pass


@pytest.mark.parametrize("batch_size", [None, 2])
def test_exception_in_callback_propagates_and_leaves_params(batch_size):
    net = example_net()
    seen = []

    def callback(step, loss):
        seen.append(step)
        if step == 4:
            raise Boom("from the callback")
        return False

    with pytest.raises(Boom, match="from the callback"):
        bnfast.train(net, X32, Y32, lr=1.0, steps=100, batch_size=batch_size, record_every=2,
                     callback=callback)
    assert seen == [0, 2, 4]
    np.testing.assert_array_equal(net.params, [7.0, 5.0])
    # the network is usable afterwards (its lock was released)
    result = bnfast.train(net, X32, Y32, lr=1.0, steps=3)
    assert result.steps == 3


# ---------------------------------------------------------------- divergence


@pytest.mark.parametrize("batch_size,record_every", [(None, 1), (None, 7), (2, 1), (2, 5)])
def test_divergence_raises_with_step_and_leaves_params(batch_size, record_every):
    """lr = 1 on least squares with Hessian eigenvalues 2 and 6: |1 - 6 lr| = 5 > 1, the
    loss grows ~25x per step and overflows after ~200 steps."""
    net = Network([Dense(2, 1)], seed=0)
    p0 = net.params
    with pytest.raises(bnfast.TrainingDiverged) as info:
        bnfast.train(net, X32, Y32, lr=1.0, steps=100_000, batch_size=batch_size,
                     record_every=record_every)
    err = info.value
    assert isinstance(err, FloatingPointError)
    assert not math.isfinite(err.loss)
    assert 50 < err.step < 2000
    assert f"step {err.step}" in str(err)
    assert np.all(np.isfinite(err.losses)) and err.losses.size == (err.step - 1) // record_every + 1
    np.testing.assert_array_equal(net.params, p0)
    with np.errstate(all="ignore"), pytest.raises(ref.TrainingDiverged) as ref_info:
        ref.train(specs([Dense(2, 1)]), p0, X32, Y32, lr=1.0, steps=100_000,
                  batch_size=batch_size, record_every=record_every)
    assert ref_info.value.step == err.step
    assert rel_err(err.losses, ref_info.value.losses) <= RTOL


@pytest.mark.parametrize("batch_size", [None, 2])
@pytest.mark.parametrize("steps,record_every", [(1, 2), (1, 5), (3, 2)])
def test_divergence_on_the_last_unrecorded_step_is_reported(batch_size, steps, record_every):
    """The final update can overflow the loss even when the last step is not a record
    (steps % record_every != 0): that must raise, not return parameters whose loss is
    inf. lr is chosen so the loss before the last step is still finite."""
    lr = 1e300 if steps == 1 else 1e60
    net = Network([Dense(2, 1)], seed=0)
    p0 = net.params
    with pytest.raises(bnfast.TrainingDiverged) as info:
        bnfast.train(net, X32, Y32, lr=lr, steps=steps, batch_size=batch_size,
                     record_every=record_every)
    assert info.value.step == steps and not math.isfinite(info.value.loss)
    np.testing.assert_array_equal(net.params, p0)
    with np.errstate(all="ignore"), pytest.raises(ref.TrainingDiverged) as ref_info:
        ref.train(specs([Dense(2, 1)]), p0, X32, Y32, lr=lr, steps=steps,
                  batch_size=batch_size, record_every=record_every)
    assert ref_info.value.step == steps


# ---------------------------------------------------------------- GIL and Ctrl-C


def seconds_per_step(net, X, Y, batch_size=None, steps=20_000):
    t0 = time.perf_counter()
    bnfast.train(net, X, Y, lr=1e-6, steps=steps, batch_size=batch_size, record_every=steps)
    return (time.perf_counter() - t0) / steps


def test_gil_is_released_during_train():
    """A counting thread makes progress while the main thread is inside a long train:
    its samples fall strictly inside the train call (with the GIL held throughout, the
    counter could only run before and after it)."""
    net = example_net()
    steps = max(1000, int(0.4 / seconds_per_step(net, X32, Y32)))
    samples, stop = [], threading.Event()

    def count():
        n = 0
        while not stop.is_set():
            n += 1
            if n % 1000 == 0:
                samples.append(time.perf_counter())

    worker = threading.Thread(target=count)
    worker.start()
    try:
        time.sleep(0.05)
        t0 = time.perf_counter()
        result = bnfast.train(net, X32, Y32, lr=1e-6, steps=steps, record_every=steps)
        t1 = time.perf_counter()
    finally:
        stop.set()
        worker.join()
    assert result.steps == steps
    duration = t1 - t0
    assert duration > 0.2
    inside = [t for t in samples if t0 + 0.05 < t < t1 - 0.05]
    assert len(inside) >= 20, (len(inside), duration)


@pytest.fixture
def alarm_keyboard_interrupt():
    """SIGALRM raising KeyboardInterrupt; returns a function arming it after `delay` s."""
    fired = []

    def handler(signum, frame):
        fired.append(time.perf_counter())
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGALRM, handler)

    def arm(delay):
        signal.setitimer(signal.ITIMER_REAL, delay)

    try:
        yield arm
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def long_train_steps(net, X, Y, batch_size=None, calibration_steps=20_000):
    """Enough steps for ~30 s: far longer than the test may take if Ctrl-C is ignored."""
    return int(30 / seconds_per_step(net, X, Y, batch_size, calibration_steps))


@pytest.mark.parametrize("batch_size", [None, 2])
def test_keyboard_interrupt_stops_a_long_train(alarm_keyboard_interrupt, batch_size):
    net = example_net()
    steps = long_train_steps(net, X32, Y32, batch_size)
    p0 = net.params
    alarm_keyboard_interrupt(0.2)
    t0 = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        # records at the start and the end only: a record per step of a 30 s run would be
        # refused up front (more loss records than fit in memory)
        bnfast.train(net, X32, Y32, lr=1e-6, steps=steps, batch_size=batch_size,
                     record_every=steps)
    elapsed = time.perf_counter() - t0
    assert elapsed < 0.2 + 1.0, elapsed
    np.testing.assert_array_equal(net.params, p0)


def test_keyboard_interrupt_from_interrupt_main_with_a_bigger_network():
    """_thread.interrupt_main() simulates Ctrl-C (SIGINT); the poll interval adapts to
    the step cost (here ~50 us a step rather than ~0.5 us)."""
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(64, 8)), rng.normal(size=(64, 2))
    net = Network([Dense(8, 32, "tanh", batch_norm=BatchNorm()), Dense(32, 2)], seed=0)
    steps = long_train_steps(net, X, Y, calibration_steps=1000)
    p0 = net.params
    timer = threading.Timer(0.2, _thread.interrupt_main)
    # Python's own Ctrl-C handler, even where SIGINT is ignored (a background job)
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    t0 = time.perf_counter()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            bnfast.train(net, X, Y, lr=1e-6, steps=steps)
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, old)
    elapsed = time.perf_counter() - t0
    assert elapsed < 0.2 + 1.0, elapsed
    np.testing.assert_array_equal(net.params, p0)
