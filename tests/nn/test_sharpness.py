"""bnfast.train(..., sharpness_every=K) records the largest eigenvalue of the full-data
train-mode loss's Hessian along the run, computed in C++ by Lanczos on exact
Hessian-vector products (nn/sharpness.cpp). Checked against the dense Hessian built from
net.hvp on basis vectors (exact to rounding): Ritz values never exceed the largest
eigenvalue, and when the first record's 20 Lanczos steps span the whole parameter space
(16 parameters here) it is the largest eigenvalue itself."""

import pickle

import numpy as np
import pytest

import bnfast
from bnfast import BatchNorm, Dense, Network


def dense_top(net, X, y):
    H = np.array([net.hvp(X, y, e) for e in np.eye(net.num_params)])
    return np.linalg.eigvalsh((H + H.T) / 2)[-1]


def small():
    net = Network([Dense(2, 3, "tanh", bias=False, batch_norm=BatchNorm()), Dense(3, 1)],
                  seed=3)
    rng = np.random.default_rng(4)
    X = rng.standard_normal((12, 2))
    return net, X, np.sin(X[:, 0]) + 0.1 * rng.standard_normal(12)


def test_records_are_lower_bounds_and_the_first_is_exact_on_a_small_network():
    net, X, y = small()
    assert net.num_params == 16
    twin = pickle.loads(pickle.dumps(net))
    result = bnfast.train(net, X, y, 0.05, 60, record_every=20, sharpness_every=20)
    steps, values = result.sharpness
    np.testing.assert_array_equal(steps, [0, 20, 40, 60])
    # replay the run to each record and compare with the dense Hessian there
    for k, (step, value) in enumerate(zip(steps, values)):
        if step:
            bnfast.train(twin, X, y, 0.05, 20)
        top = dense_top(twin, X, y)
        assert value <= top * (1 + 1e-12) + 1e-12
        if k == 0:  # 20 Lanczos steps span the 16-dimensional space: exact
            assert value == pytest.approx(top, rel=1e-9)
        else:       # 4 warm-started steps: close
            assert value >= 0.9 * top


def test_sharpness_settles_near_two_over_lr_at_the_edge_of_stability():
    """Full-batch GD on a BN MLP with a large step: the sharpness rises to about 2/lr
    and hovers there (Cohen et al. 2021), which the records show."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(64, 8)), rng.normal(size=64)
    net = Network([Dense(8, 16, "tanh", batch_norm=BatchNorm()),
                   Dense(16, 16, "tanh", batch_norm=BatchNorm()), Dense(16, 1)],
                  loss="mean", seed=0)
    lr = 0.5
    result = bnfast.train(net, X, y, lr, 400, record_every=50, sharpness_every=50)
    late = result.sharpness[1][2:]
    assert np.all(np.abs(late - 2 / lr) < 0.2 * (2 / lr))
    assert result.sharpness[1][-1] <= dense_top(net, X, y) * (1 + 1e-12)


def test_without_sharpness_every_there_is_no_record_and_nothing_changes():
    net, X, y = small()
    twin = pickle.loads(pickle.dumps(net))
    plain = bnfast.train(net, X, y, 0.05, 30)
    tracked = bnfast.train(twin, X, y, 0.05, 30, sharpness_every=7)
    assert plain.sharpness is None
    np.testing.assert_array_equal(tracked.sharpness[0], [0, 7, 14, 21, 28])
    # the records read the parameters; they do not change the run
    np.testing.assert_array_equal(plain.params, tracked.params)
    np.testing.assert_array_equal(plain.losses, tracked.losses)


@pytest.mark.parametrize("bad,exc,match", [
    (0, ValueError, "sharpness_every must be >= 1"),
    (1.5, TypeError, "sharpness_every must be an int"),
])
def test_bad_sharpness_every_is_named(bad, exc, match):
    net, X, y = small()
    with pytest.raises(exc, match=match):
        bnfast.train(net, X, y, 0.05, 3, sharpness_every=bad)
