"""bnfast.train_many against bnfast.train instance by instance (the same maths in SIMD
lanes: the same bits), stopped instances among running ones, thread-count independence,
argument checks and Ctrl-C."""

import math
import signal
import time

import numpy as np
import pytest

import bnfast
from bnfast import BatchNorm, Dense, Network

X32 = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
Y32 = np.array([8.0, 6.0, 11.0])


def neuron(n_in, bias=False, trainable=False, eps=0.0, loss="sum"):
    gamma, beta = (1.0, 0.0) if trainable else (1.3, 0.2)
    return Network([Dense(n_in, 1, bias=bias,
                          batch_norm=BatchNorm(gamma, beta, trainable=trainable, eps=eps))],
                   loss=loss)


def train_one(net, params, X, y, lr, steps, record_every):
    """bnfast.train on one instance: (params, losses, steps, error or None)."""
    net.params = params
    try:
        r = bnfast.train(net, X, y, lr, steps, record_every=record_every)
    except (bnfast.TrainingDiverged, bnfast.ZeroVarianceError) as e:
        return None, None, None, e
    return r.params, r.losses, r.steps, None


def assert_same_bits(a, b):
    """Equal bit for bit: also the sign of a zero and NaN payloads."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape
    np.testing.assert_array_equal(a.view(np.uint64), b.view(np.uint64))


def assert_matches_train(net, P0, X, y, lr, steps, record_every, result):
    k = P0.shape[0]
    every = steps if record_every is None else record_every
    for i in range(k):
        Xi = X if X.ndim == 2 else X[i]
        yi = y if y.ndim == 1 else y[i]
        lri = lr if np.ndim(lr) == 0 else lr[i]
        params, losses, done, error = train_one(net, P0[i], Xi, yi, lri, steps, every)
        if error is None:
            assert_same_bits(result.params[i], params)
            assert_same_bits(result.losses[i], losses)
            assert result.steps[i] == done
            assert not (result.diverged[i] or result.zero_variance[i])
        elif isinstance(error, bnfast.ZeroVarianceError):
            assert result.zero_variance[i] and not result.diverged[i]
        else:
            assert result.diverged[i] and result.steps[i] == error.step
            assert result.params_overflowed[i] == error.params_overflowed
            recorded = error.losses.size
            assert_same_bits(result.losses[i, :recorded], error.losses)
            assert np.all(np.isnan(result.losses[i, recorded:]))
            assert np.all(np.isfinite(result.params[i]))


CASES = [(n_in, m, bias, trainable, eps, loss, shared)
         for n_in, m in [(1, 3), (2, 3), (3, 2), (1, 2), (4, 3), (2, 4), (4, 4), (2, 5),
                         (5, 17), (6, 64)]
         for bias, trainable in [(False, False), (True, True)]
         for eps, loss in [(0.0, "sum"), (1e-3, "mean")]
         for shared in (True, False)]


@pytest.mark.parametrize("n_in,m,bias,trainable,eps,loss,shared", CASES)
def test_each_instance_is_what_train_gives(n_in, m, bias, trainable, eps, loss, shared):
    rng = np.random.default_rng(n_in * 100 + m)
    k = 13  # not a multiple of the lane count
    net = neuron(n_in, bias, trainable, eps, loss)
    X = rng.standard_normal((m, n_in) if shared else (k, m, n_in))
    y = rng.standard_normal(m if shared else (k, m)) + 1
    P0 = rng.standard_normal((k, net.num_params))
    if trainable:
        P0[:, -2] = rng.uniform(0.5, 1.5, k)
    lr = 0.01 / (m if loss == "sum" else 1.0)
    result = bnfast.train_many(net, P0, X, y, lr, 40, record_every=3)
    assert result.params.shape == (k, net.num_params)
    assert result.losses.shape == (k, 14)
    assert_matches_train(net, P0, X, y, lr, 40, 3, result)


@pytest.mark.parametrize("m", [2, 3, 4, 5])
def test_signed_zeros_match_train(m):
    # A bias or weight of -0.0 keeps its sign through a sum of -0 terms in one
    # summation order and not in another: train and train_many must share the order.
    rng = np.random.default_rng(m)
    net = neuron(1, bias=True, trainable=True, eps=0.0)
    X = rng.standard_normal((m, 1))
    y = rng.standard_normal(m)
    P0 = np.array([[0.5, -0.0, 1.0, 0.0], [-0.0, -0.0, 1.0, -0.0], [1.5, -0.0, 0.7, 0.2]])
    result = bnfast.train_many(net, P0, X, y, 0.01, 5, record_every=1)
    assert_matches_train(net, P0, X, y, 0.01, 5, 1, result)


def test_example_3_2_many_initializations():
    rng = np.random.default_rng(0)
    net = Network([Dense(2, 1, bias=False,
                         batch_norm=BatchNorm(1.0, 0.0, trainable=False, eps=0.0))])
    net.params = [7.0, 5.0]
    P0 = rng.standard_normal((50, 2)) * 4
    result = bnfast.train_many(net, P0, X32, Y32, 1.0, 500)
    np.testing.assert_array_equal(net.params, [7.0, 5.0])  # net gives the architecture only
    assert net._updates == 0
    assert result.losses.shape == (50, 2)
    assert_matches_train(net, P0, X32, Y32, 1.0, 500, None, result)


def test_per_instance_learning_rates_with_diverging_instances():
    """Trainable gamma/beta: lr above 1/m makes beta oscillate with growing amplitude
    until the loss overflows; those instances stop, the others run on."""
    rng = np.random.default_rng(3)
    net = neuron(2, bias=True, trainable=True, eps=1e-5)
    k = 11
    P0 = rng.standard_normal((k, net.num_params))
    P0[:, -2] = 1.0
    lr = np.where(np.arange(k) % 3 == 0, 0.5, 0.01)
    lr[4] = 1e308  # its first update overflows
    result = bnfast.train_many(net, P0, X32, Y32, lr, 2000, record_every=50)
    assert result.diverged[0] and result.diverged[4] and result.params_overflowed[4]
    assert not result.diverged[1] and result.steps[1] == 2000
    assert_matches_train(net, P0, X32, Y32, lr, 2000, 50, result)


def test_zero_variance_instances_stop_the_others_run():
    net = neuron(2, bias=True)
    X = np.stack([X32, [[1.0, 2.0]] * 3, X32, X32])  # instance 1: identical rows
    P0 = np.array([[7.0, 5.0, 0.0], [7.0, 5.0, 0.0], [7.0, 5.0, 1e20], [0.0, 0.0, 0.0]])
    result = bnfast.train_many(net, P0, X, Y32, 0.1, 30, record_every=1)
    np.testing.assert_array_equal(result.zero_variance, [False, True, True, True])
    assert result.steps[0] == 30 and np.all(result.steps[1:] == 0)
    assert np.all(np.isnan(result.losses[1:]))
    assert_matches_train(net, P0, X, np.broadcast_to(Y32, (4, 3)), 0.1, 30, 1, result)


def test_lanes_that_need_the_general_kernels_but_do_not_fail():
    """eps > 0 and a bias that swamps h: every h rounds to one value, the variance is 0;
    train() and train_many both hand that step to Network::loss."""
    net = neuron(2, bias=True, eps=0.5)
    P0 = np.array([[7.0, 5.0, 1e20], [7.0, 5.0, 0.0], [0.0, 0.0, 0.0]])
    result = bnfast.train_many(net, P0, X32, Y32, 0.05, 25, record_every=5)
    assert not result.zero_variance.any() and not result.diverged.any()
    assert_matches_train(net, P0, X32, Y32, 0.05, 25, 5, result)


@pytest.mark.parametrize("record_every,records", [(None, 2), (1, 31), (7, 5), (30, 2),
                                                  (31, 1)])
def test_records(record_every, records):
    net = neuron(2)
    P0 = np.random.default_rng(1).standard_normal((5, 2))
    result = bnfast.train_many(net, P0, X32, Y32, 0.5, 30, record_every=record_every)
    assert result.losses.shape == (5, records)
    assert_matches_train(net, P0, X32, Y32, 0.5, 30, record_every, result)


def test_steps_zero():
    net = Network([Dense(2, 1, bias=False,
                         batch_norm=BatchNorm(1.0, 0.0, trainable=False, eps=0.0))])
    P0 = np.array([[7.0, 5.0], [1.0, 2.0]])
    result = bnfast.train_many(net, P0, X32, Y32, 1.0, 0)
    np.testing.assert_array_equal(result.params, P0)
    assert result.losses.shape == (2, 1) and np.all(result.steps == 0)
    assert result.losses[0, 0] == pytest.approx(224 - 18 * math.sqrt(78) / 13, rel=1e-12)


def test_results_do_not_depend_on_the_thread_count():
    rng = np.random.default_rng(5)
    net = neuron(3, bias=True, trainable=True, eps=1e-4)
    X = rng.standard_normal((301, 9, 3))
    y = rng.standard_normal((301, 9))
    P0 = rng.standard_normal((301, net.num_params))
    old = bnfast.get_num_threads()
    try:
        results = []
        for threads in (1, 2, 3):
            bnfast.set_num_threads(threads)
            results.append(bnfast.train_many(net, P0, X, y, 0.05, 200, record_every=20))
    finally:
        bnfast.set_num_threads(old)
    for r in results[1:]:
        np.testing.assert_array_equal(r.params, results[0].params)
        np.testing.assert_array_equal(r.losses, results[0].losses)


def test_inputs_are_not_modified():
    net = neuron(2)
    P0 = np.array([[7.0, 5.0], [1.0, 2.0]])
    X, y, lr = X32.copy(), Y32.copy(), np.array([0.1, 0.2])
    bnfast.train_many(net, P0, X, y, lr, 10)
    np.testing.assert_array_equal(P0, [[7.0, 5.0], [1.0, 2.0]])
    np.testing.assert_array_equal(X, X32)
    np.testing.assert_array_equal(lr, [0.1, 0.2])


@pytest.mark.parametrize("change,error,match", [
    (dict(net="net"), TypeError, "net must be a bnfast.Network"),
    (dict(net=Network([Dense(2, 2), Dense(2, 1, batch_norm=BatchNorm())])), ValueError,
     "net must be one Dense layer"),
    (dict(net=Network([Dense(2, 1, "tanh", batch_norm=BatchNorm())])), ValueError, "^net"),
    (dict(net=Network([Dense(2, 1)])), ValueError, "^net"),
    (dict(params=np.zeros((3, 3))), ValueError, r"params must have shape \(k, 2\)"),
    (dict(params=np.zeros(2)), ValueError, "params must have shape"),
    (dict(params=[[np.nan, 1.0]]), ValueError, "params must be finite"),
    (dict(params=[["a", "b"]]), TypeError, "params"),
    (dict(X=np.zeros((3, 3))), ValueError, r"^X must have shape \(m, 2\)"),
    (dict(X=np.zeros((4, 3, 2))), ValueError, "^X must have shape"),
    (dict(X=np.zeros((1, 2))), ValueError, "^X must have 2 to 64 rows"),
    (dict(X=np.zeros((65, 2))), ValueError, "^X must have 2 to 64 rows"),
    (dict(X=[[1.0, np.inf], [0.0, 1.0], [1.0, 1.0]]), ValueError, "^X must hold finite"),
    (dict(X=X32 * 1e70), ValueError, "^X must hold finite values of magnitude"),
    (dict(X=X32.astype(complex)), TypeError, "^X"),
    (dict(y=np.zeros(4)), ValueError, r"^y must have shape \(3,\) or \(2, 3\), got \(4,\)$"),
    (dict(y=np.zeros((2, 4))), ValueError, r"^y must have shape .*, got \(2, 4\)$"),
    (dict(y=np.zeros((2, 3, 2))), ValueError, r"^y must have shape .*, got \(2, 3, 2\)$"),
    (dict(y=np.zeros((3, 1, 1))), ValueError, r"^y must have shape .*, got \(3, 1, 1\)$"),
    (dict(y=[1.0, np.nan, 2.0]), ValueError, "^y must hold finite"),
    (dict(lr=0.0), ValueError, "lr must be"),
    (dict(lr=np.nan), ValueError, "lr must be"),
    (dict(lr=[0.1, 0.2, 0.3]), ValueError, r"lr must be a number or have shape \(2,\)"),
    (dict(lr=[0.1, -0.2]), ValueError, "lr must hold finite numbers > 0"),
    (dict(lr="0.1"), TypeError, "lr"),
    (dict(steps=-1), ValueError, "steps must be >= 0"),
    (dict(steps=2.5), TypeError, "steps must be an int"),
    (dict(record_every=0), ValueError, "record_every must be >= 1"),
    # train's up-front rule on the records, counting every instance's (before: 7.8 GB
    # allocated for 10**9 steps, a MemoryError at 10**12)
    (dict(steps=10**9, record_every=1), ValueError,
     r"^k \* \(steps // record_every \+ 1\) = 2000000002 loss records would not fit in "
     r"memory \(at most 268435456\)"),
    (dict(steps=10**12, record_every=1), ValueError, "would not fit in memory"),
    (dict(steps=2**27, record_every=1), ValueError, "= 268435458 loss records"),
])
def test_bad_arguments_name_the_argument(change, error, match):
    args = dict(net=neuron(2), params=np.array([[7.0, 5.0], [1.0, 2.0]]), X=X32, y=Y32,
                lr=0.1, steps=5, record_every=None)
    args.update(change)
    before = repr(args["params"])
    with pytest.raises(error, match=match):
        bnfast.train_many(**args)
    assert repr(args["params"]) == before


def test_keyboard_interrupt_stops_a_long_run():
    """SIGALRM raising KeyboardInterrupt (as Ctrl-C does) stops train_many promptly."""
    net = neuron(2)
    P0 = np.random.default_rng(0).standard_normal((256, 2))

    def handler(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGALRM, handler)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        t0 = time.perf_counter()
        with pytest.raises(KeyboardInterrupt):
            bnfast.train_many(net, P0, X32, Y32, 1e-3, 10**10)  # days without Ctrl-C
        assert time.perf_counter() - t0 < 0.2 + 1.0
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
