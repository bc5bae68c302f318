"""The fast training step costs no accuracy: after 300 float64 steps the native loop
matches the NumPy reference to 1e-13 relative on every well-conditioned network case,
and a run is bit-for-bit repeatable for a given thread count.

Why 1e-13: each step differs from the reference only in summation order (threaded,
blocked products; Chan-merged BN statistics) and in the vectorised tanh/sigmoid (at most
1.46 and 3.01 ulp, docs/math/activations.md), ~1e-15 relative per step. On these cases
(eps > 0, small lr) a 1e-15 perturbation of the start stays below 1e-14 after 300
steps (measured: the largest disagreement is ~1.4e-15), so 1e-13 leaves a margin of ~70
while a wrong formula is off by many orders more. eps == 0 cases are left out: near a
vanishing variance their dynamics amplify rounding chaotically (there native and
reference disagree by up to 2e-2 after 300 steps, with the scalar loop of earlier
releases as with this one).
"""

import itertools

import numpy as np
import pytest

import bnfast
from bnfast import BatchNorm, Dense, Network
from bnfast import reference as ref
from network_cases import ACTIVATIONS, BN_MODES, deep_layers, random_case, regression_data
from network_cases import rel_err, specs

RTOL = 1e-13
STEPS = 300
WELL_CONDITIONED = [mode for mode in BN_MODES if not mode.endswith("eps0")]


def assert_matches_reference(layers, params, X, y, lr, batch_size=None):
    net = Network(layers)
    net.params = params
    native = bnfast.train(net, X, y, lr, STEPS, batch_size=batch_size, record_every=10)
    expected = ref.train(specs(layers), params, X, y, lr, STEPS, batch_size=batch_size,
                         record_every=10)
    assert rel_err(native.params, expected.params) <= RTOL
    assert rel_err(native.losses, expected.losses) <= RTOL


@pytest.mark.parametrize("activation,bn_mode,bias",
                         list(itertools.product(ACTIVATIONS, WELL_CONDITIONED, (True, False))))
def test_random_networks_match_reference_after_300_steps(activation, bn_mode, bias):
    layers, params, X, y = random_case(activation, bn_mode, bias, seed=3, m=16)
    assert_matches_reference(layers, params, X, y, lr=1e-3)


@pytest.mark.parametrize("variant", ["A", "C"])
@pytest.mark.parametrize("batch_size", [None, 8], ids=["full", "minibatch8"])
def test_deep_networks_match_reference_after_300_steps(variant, batch_size):
    layers = deep_layers(variant)
    X, Y = regression_data()
    params = Network(layers, seed=4).params
    assert_matches_reference(layers, params, X, Y, lr=0.01, batch_size=batch_size)


def wide_tanh_mlp():
    """Wide enough that the products, the BN passes and tanh split across threads."""
    rng = np.random.default_rng(5)
    X = rng.standard_normal((256, 16))
    y = np.sin(X[:, :4].sum(axis=1))
    layers = [Dense(16, 64, "tanh", batch_norm=BatchNorm(eps=1e-5)),
              Dense(64, 64, "sigmoid", batch_norm=BatchNorm(eps=1e-5)),
              Dense(64, 1)]
    return layers, Network(layers, seed=2).params, X, y


def test_wide_network_matches_reference_after_300_steps():
    layers, params, X, y = wide_tanh_mlp()
    assert_matches_reference(layers, params, X, y, lr=1e-4)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_training_is_repeatable_for_a_thread_count(threads):
    layers, params, X, y = wide_tanh_mlp()
    saved = bnfast.get_num_threads()
    try:
        bnfast.set_num_threads(threads)
        runs = []
        for _ in range(2):
            net = Network(layers)
            net.params = params
            runs.append(bnfast.train(net, X, y, 1e-4, 50, batch_size=64, record_every=5))
    finally:
        bnfast.set_num_threads(saved)
    np.testing.assert_array_equal(runs[0].params, runs[1].params)
    np.testing.assert_array_equal(runs[0].losses, runs[1].losses)
