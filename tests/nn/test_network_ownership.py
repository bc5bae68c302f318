"""A Network owns copies of its layers (a layer object changed after building the
network changes nothing: not the compiled network, not repr, pickle, deepcopy or what a
Dask worker rebuilds), its seed follows the one seed rule, and unpickling applies the
same checks as the constructor and the setters."""

import copy
import pickle

import numpy as np
import pytest

from bnfast import BatchNorm, Dense, Network


def test_a_layer_changed_after_building_changes_nothing():
    layer = Dense(2, 3, "tanh", batch_norm=BatchNorm(gamma=0.5))
    net = Network([layer, Dense(3, 1)], seed=1)
    X = np.random.default_rng(0).standard_normal((5, 2))
    before, text = net.forward(X), repr(net)
    layer.activation = "relu"
    layer.normalization.gamma = np.float64(9.0)
    net.layers[0].activation = "sigmoid"   # the property hands out copies too
    for twin in (net, pickle.loads(pickle.dumps(net)), copy.deepcopy(net)):
        np.testing.assert_array_equal(twin.forward(X), before)
        assert repr(twin) == text


@pytest.mark.parametrize("seed,exc,match", [
    (-1, ValueError, r"seed must be in \[0, 2\*\*63\), got -1"),
    (1.5, TypeError, "seed must be an int"),
    (True, TypeError, "seed must be an int"),
])
def test_network_seed_follows_the_seed_rule(seed, exc, match):
    with pytest.raises(exc, match=match):
        Network([Dense(2, 1)], seed=seed)


@pytest.mark.parametrize("edit,exc,match", [
    (lambda s: s.update(params=np.full(4, np.nan)), ValueError, "params must be finite"),
    (lambda s: s.update(params=np.zeros(5)), ValueError, r"params must have shape \(4,\)"),
    (lambda s: s.update(updates=-1), ValueError, "updates must be >= 0"),
    # the core's int64 count: before, it loaded and the next train raised pybind's
    # TypeError
    (lambda s: s.update(updates=2**70), ValueError, r"updates must be < 2\*\*63 \(an int64"),
    (lambda s: s.update(updates=1.5), TypeError, "updates must be an int"),
    (lambda s: s.update(running=np.zeros(7)), ValueError, "running must be finite with "
                                                          "shape"),
    (lambda s: s["running"].__setitem__(1, -1.0), ValueError, "running variance is negative"),
])
def test_an_edited_pickle_state_is_refused(edit, exc, match):
    net = Network([Dense(1, 1, batch_norm=BatchNorm())], seed=0)
    state = net.__getstate__()
    state = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in state.items()}
    edit(state)
    with pytest.raises(exc, match=match):
        Network.__new__(Network).__setstate__(state)
