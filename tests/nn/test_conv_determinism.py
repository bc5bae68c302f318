"""Convolutional networks give the same bits every time for a given thread count: the
products split rows over threads, every sum keeps its order, and the statistics are
merged in a fixed order (docs/design/performance.md). Runs in a fresh copy and after
other work on the same network must agree bit for bit."""

import pickle

import numpy as np
import pytest

import bnfast
from bnfast import BatchNorm, Conv1d, Conv2d, Dense, Flatten, GroupNorm, MaxPool2d, Network


def networks():
    return {
        "mnist1d": (Network([Conv1d(1, 25, 5, stride=2, padding=1, activation="relu",
                                    batch_norm=BatchNorm()),
                             Conv1d(25, 25, 3, stride=2, padding=1, activation="relu",
                                    normalization=GroupNorm(5)),
                             Flatten(), Dense(250, 10)], loss="cross_entropy"),
                    (120, 1, 40)),
        "digits": (Network([Conv2d(1, 16, 3, padding=1, activation="relu",
                                   batch_norm=BatchNorm()),
                            MaxPool2d(2), Flatten(), Dense(256, 10)], loss="cross_entropy"),
                   (120, 1, 8, 8)),
    }


@pytest.mark.parametrize("name", ["mnist1d", "digits"])
def test_runs_repeat_bit_for_bit_per_thread_count(threads, name):
    net, shape = networks()[name]
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal(shape), rng.integers(0, 10, shape[0])
    twin = pickle.loads(pickle.dumps(net))
    first = bnfast.train(net, X, y, 0.05, 20, batch_size=40, seed=1,
                         optimizer=bnfast.SGD(momentum=0.9))
    twin.gradient(X[:7], y[:7])  # other work first: workspaces of another size
    second = bnfast.train(twin, X, y, 0.05, 20, batch_size=40, seed=1,
                          optimizer=bnfast.SGD(momentum=0.9))
    np.testing.assert_array_equal(first.params, second.params)
    np.testing.assert_array_equal(first.losses, second.losses)
    v = rng.standard_normal(net.num_params)
    np.testing.assert_array_equal(net.hvp(X, y, v), twin.hvp(X, y, v))
    np.testing.assert_array_equal(net.predict(X), twin.predict(X))
