"""A train callback that calls back into the network it trains gets a clear
RuntimeError (it used to deadlock, immune to Ctrl-C); networks pickle and deep-copy
exactly. The re-entry test runs in a subprocess with a timeout, so a regression fails
instead of hanging the suite."""

import copy
import pickle
import subprocess
import sys
import tempfile
import textwrap

import numpy as np
import pytest

import bnfast
from bnfast import BatchNorm, Dense, Network

REENTRY = textwrap.dedent("""
    import numpy as np, bnfast
    X = np.random.default_rng(0).normal(size=(8, 2)); y = X.sum(axis=1)
    net = bnfast.Network([bnfast.Dense(2, 1, batch_norm=bnfast.BatchNorm())], seed=0)
    before = net.params
    for name, call in [("loss", lambda: net.loss(X, y)), ("gradient", lambda: net.gradient(X, y)),
                       ("forward", lambda: net.forward(X)),
                       ("train", lambda: bnfast.train(net, X, y, 0.1, 1))]:
        try:
            bnfast.train(net, X, y, 0.1, 5, callback=lambda s, l: call() is None)
        except RuntimeError as exc:
            assert "a train callback cannot call" in str(exc), exc
        else:
            raise AssertionError(name + ": no RuntimeError")
        assert np.array_equal(net.params, before), name
    copy_ = __import__("copy").deepcopy(net)          # the suggested way out
    bnfast.train(net, X, y, 0.1, 5, callback=lambda s, l: copy_.loss(X, y) < 0)
    print("ok")
""")


def test_a_callback_calling_its_own_network_raises_instead_of_hanging():
    p = subprocess.run([sys.executable, "-c", REENTRY], capture_output=True, text=True,
                       timeout=120, cwd=tempfile.gettempdir())
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "ok"


@pytest.mark.parametrize("roundtrip", [lambda n: pickle.loads(pickle.dumps(n)), copy.deepcopy,
                                       copy.copy], ids=["pickle", "deepcopy", "copy"])
def test_networks_round_trip_exactly(roundtrip):
    layers = [Dense(3, 4, activation="relu", batch_norm=BatchNorm(gamma=[1, 2, 3, 4], eps=0.0)),
              Dense(4, 2, activation="sigmoid", bias=False,
                    batch_norm=BatchNorm(0.5, -1.0, trainable=False)),
              Dense(2, 1)]
    net = Network(layers, seed=3)
    X = np.random.default_rng(0).normal(size=(16, 3))
    y = np.random.default_rng(1).normal(size=16)
    bnfast.train(net, X, y, 0.01, 10)
    twin = roundtrip(net)
    assert twin is not net and twin._core is not net._core
    np.testing.assert_array_equal(twin.params, net.params)
    assert twin.loss(X, y) == net.loss(X, y)
    np.testing.assert_array_equal(twin.gradient(X, y), net.gradient(X, y))
    bnfast.train(twin, X, y, 0.01, 3)                      # independent afterwards
    assert not np.array_equal(twin.params, net.params)
