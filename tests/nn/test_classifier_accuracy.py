"""The papers' training setting learns: a digits classifier (scikit-learn's 8x8 digits,
shipped with the package, no download) with cross-entropy and momentum SGD, and one with
LayerNorm/GroupNorm and Adam, reach the held-out accuracy the README's tour states.

The bounds are what a correct engine reaches with margin (measured 0.981 and 0.978 on
these seeds; a 10-class problem at chance is 0.1): a wrong gradient, a wrong label
pairing in the mini-batches or a wrong update rule leaves the accuracy near chance."""

import numpy as np
import pytest

import bnfast

datasets = pytest.importorskip("sklearn.datasets")


@pytest.fixture(scope="module")
def digits():
    X, y = datasets.load_digits(return_X_y=True)
    X = X / 16.0
    test = np.random.default_rng(0).permutation(len(y))[:360]
    train = np.setdiff1d(np.arange(len(y)), test)
    return X[train], y[train], X[test], y[test]


def test_bn_classifier_with_momentum_sgd(digits):
    X, y, X_test, y_test = digits
    net = bnfast.Network([
        bnfast.Dense(64, 64, "relu", batch_norm=bnfast.BatchNorm()),
        bnfast.Dense(64, 10)], loss="cross_entropy").init("he", seed=0)
    result = bnfast.train(net, X, y, lr=0.05, steps=2000, batch_size=64,
                          optimizer=bnfast.SGD(momentum=0.9), record_every=500)
    assert result.losses[0] > 2.0 and result.losses[-1] < 0.01
    assert net.accuracy(X_test, y_test) >= 0.96


def test_layer_and_group_norm_classifier_with_adam(digits):
    X, y, X_test, y_test = digits
    net = bnfast.Network([
        bnfast.Dense(64, 64, "tanh", normalization=bnfast.LayerNorm()),
        bnfast.Dense(64, 32, "tanh", normalization=bnfast.GroupNorm(4)),
        bnfast.Dense(32, 10)], loss="cross_entropy").init("glorot", seed=0)
    bnfast.train(net, X, y, lr=1e-3, steps=1500, batch_size=64, optimizer=bnfast.Adam())
    assert net.accuracy(X_test, y_test) >= 0.96
    np.testing.assert_array_equal(net.predict(X_test), net.forward(X_test))
