"""Residual blocks in bnfast.reference (docs/math/networks.md section 10): x -> x +
block(x), the sum after the last layer's activation, the block's layers in the flat
parameter vector in place. Checked against reference_cases.manual_forward_ext, exact
special cases (zero weights) and central differences; the checks of the entry.

Tolerances as in test_reference_variants: 1e-12 for forward passes computed in another
order, 1e-6 for central differences with h = 1e-6.
"""

import numpy as np
import pytest

from bnfast import reference
from reference_cases import (bn, central_gradient, count_params, dense, manual_forward_ext,
                             random_params, rel_err, residual, smooth_margin)


def networks():
    """Blocks first, last, alone, back to back, of one layer, with and without BN."""
    return {
        "middle": [dense(3, 4, "tanh", False, bn(eps=0.0)),
                   residual(dense(4, 5, "sigmoid", True, bn(1.5, 0.2, False, 0.1,
                                                            norm="l2")),
                            dense(5, 4, "tanh", True)),
                   dense(4, 2)],
        "first-and-last": [residual(dense(3, 3, "tanh", False, bn(eps=0.0, norm="linf"))),
                           dense(3, 3, "sigmoid"),
                           residual(dense(3, 2, "tanh", True, bn(eps=1e-3)),
                                    dense(2, 3, "identity", True))],
        "back-to-back": [dense(3, 4, "relu"),
                         residual(dense(4, 4, "tanh", False, bn(eps=0.0, norm="l1"))),
                         residual(dense(4, 6, "relu", True), dense(6, 6, "sigmoid"),
                                  dense(6, 4, "tanh", True, bn(0.8, -0.1, True, 0.0))),
                         dense(4, 1)],
        "no-bn": [residual(dense(3, 5, "tanh"), dense(5, 3, "sigmoid")), dense(3, 2)],
    }


def case(name, seed, m=7):
    layers = networks()[name]
    n_out = layers[-1]["residual"][-1]["out_features"] if "residual" in layers[-1] \
        else layers[-1]["out_features"]
    for attempt in range(200):
        rng = np.random.default_rng([seed, attempt])
        params = random_params(layers, rng)
        X, y = rng.normal(size=(m, 3)), rng.normal(size=(m, n_out))
        if smooth_margin(layers, params, X) > 1e-3:
            return layers, params, X, y
    raise AssertionError("no draw away from the kinks")


NAMES = list(networks())


@pytest.mark.parametrize("name", NAMES)
def test_forward_matches_the_formulas(name):
    layers, params, X, y = case(name, seed=NAMES.index(name))
    assert reference.param_count(layers) == count_params(layers) == params.size
    expected, _ = manual_forward_ext(layers, params, X)
    assert rel_err(reference.network_forward(layers, params, X), expected) <= 1e-12
    assert reference.network_loss(layers, params, X, y) == pytest.approx(
        np.sum((y - expected) ** 2), rel=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_gradient_matches_central_differences(name):
    layers, params, X, y = case(name, seed=10 + NAMES.index(name))
    grad = reference.network_gradient(layers, params, X, y)
    numerical = central_gradient(lambda p: reference.network_loss(layers, p, X, y), params)
    assert rel_err(grad, numerical) <= 1e-6


@pytest.mark.parametrize("name", NAMES)
def test_predict_matches_the_formulas(name):
    layers, params, X, _ = case(name, seed=20 + NAMES.index(name))
    rng = np.random.default_rng(5)
    sizes = [d["out_features"] for e in layers
             for d in (e["residual"] if "residual" in e else [e]) if d["batch_norm"]]
    mean = [rng.normal(size=n) for n in sizes]
    var = [rng.uniform(0.5, 2.0, n) for n in sizes]
    expected, _ = manual_forward_ext(layers, params, X[:1], running=(mean, var))
    assert rel_err(reference.network_predict(layers, params, X[:1], mean, var),
                   expected) <= 1e-12


@pytest.mark.parametrize("last", ["identity", "tanh"])
def test_zero_weights_give_the_identity_plus_the_biases(last):
    """W = 0 in every layer of the block: block(x) = phi(b_last), so f(x) = x +
    phi(b_last), bit for bit (A @ 0 + b = b exactly)."""
    layers = [residual(dense(3, 5, "sigmoid", True), dense(5, 3, last, True))]
    b1, b2 = np.array([0.3, -1.0, 2.0, 0.5, 0.1]), np.array([1.5, -0.25, 3.0])
    params = np.concatenate([np.zeros(15), b1, np.zeros(15), b2])
    X = np.random.default_rng(0).normal(size=(6, 3))
    out = reference.network_forward(layers, params, X)
    np.testing.assert_array_equal(out, X + (np.tanh(b2) if last == "tanh" else b2))
    # BN with eps > 0 on a zero-weight neuron outputs beta: x + phi(beta)
    with_bn = [residual(dense(3, 3, "tanh", False, bn(1.0, [0.5, -0.5, 0.0], False, 1e-3)))]
    np.testing.assert_allclose(reference.network_forward(with_bn, np.zeros(9), X),
                               X + np.tanh([0.5, -0.5, 0.0]), rtol=0, atol=1e-15)


def test_gradient_reaches_the_input_unchanged():
    """With a zero-weight block the loss is ||y - (A1 + b)||^2, A1 the first layer's
    output: the first layer's gradient is that of the network without the block and
    targets y - b; the block's last bias gets the gradient of the output."""
    rng = np.random.default_rng(1)
    first = dense(2, 3, "tanh", True, bn(eps=0.0))
    layers = [first, residual(dense(3, 4, "tanh", True), dense(4, 3, "identity", True))]
    p1 = rng.normal(size=6 + 3 + 6)
    b2 = rng.normal(size=3)
    params = np.concatenate([p1, np.zeros(12 + 4 + 12), b2])
    X, y = rng.normal(size=(5, 2)), rng.normal(size=(5, 3))
    grad = reference.network_gradient(layers, params, X, y)
    alone = reference.network_gradient([first], p1, X, y - b2)
    assert rel_err(grad[:15], alone) <= 1e-14
    out = reference.network_forward([first], p1, X) + b2
    assert rel_err(grad[-3:], 2 * (out - y).sum(axis=0)) <= 1e-14


def test_train_and_hvp_run_through_blocks():
    layers, params, X, y = case("middle", seed=30)
    p = params.copy()
    for _ in range(3):
        p = p - 0.01 * reference.network_gradient(layers, p, X, y)
    result = reference.train(layers, params, X, y, 0.01, 3)
    np.testing.assert_array_equal(result.params, p)
    assert len(result.running_mean) == 2  # the BN layers, the block's in place
    assert [a.shape for a in result.running_var] == [(4,), (5,)]
    v = np.random.default_rng(2).normal(size=params.size)
    hv = reference.network_hvp(layers, params, X, y, v)
    numerical = (reference.network_gradient(layers, params + 1e-5 * v, X, y)
                 - reference.network_gradient(layers, params - 1e-5 * v, X, y)) / 2e-5
    assert rel_err(hv, numerical) <= 1e-6


def test_constant_neuron_inside_a_block_names_the_flat_layer():
    """Layers are counted in network order: the block's second layer is layer 2."""
    layers = [dense(2, 2, "tanh"),
              residual(dense(2, 3, "tanh"), dense(3, 2, "identity", False, bn(eps=0.0)))]
    params = np.concatenate([np.ones(6), np.ones(9), [1.0, 1.0, 1.0, 0.0, 0.0, 0.0],
                             [1.0, 1.0, 0.0, 0.0]])
    X = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]])
    with pytest.raises(ValueError, match="layer 2, neuron 1 has a constant pre-activation"):
        reference.network_forward(layers, params, X)


# ---------------------------------------------------------------- bad entries


def good():
    return [dense(2, 3, "tanh"),
            residual(dense(3, 4, "tanh", True, bn(eps=0.0)), dense(4, 3, "identity")),
            dense(3, 1)]


def edit(change):
    layers = good()
    change(layers)
    return layers


def set_in_block(j, key, value):
    def change(layers):
        layers[1]["residual"][j][key] = value
    return change


R = r"layers\[1\]\['residual'\]"
RESIDUAL_ERRORS = [
    ("width", edit(set_in_block(1, "out_features", 2)), ValueError,
     R + r" maps 3 features to 2: a residual block x -> x \+ block\(x\) must end with as "
     "many features as it starts"),
    ("nested", edit(lambda ls: ls[1]["residual"].append(residual(dense(3, 3)))), ValueError,
     R + r"\[2\]: residual blocks cannot be nested"),
    ("empty", edit(lambda ls: ls[1].update(residual=[])), ValueError,
     R + " must not be empty"),
    ("not-a-list", edit(lambda ls: ls[1].update(residual=dense(3, 3))), TypeError,
     R + " must be a list of layer dicts, got dict"),
    ("none", edit(lambda ls: ls[1].update(residual=None)), TypeError,
     R + " must be a list of layer dicts, got NoneType"),
    ("extra-key", edit(lambda ls: ls[1].update(activation="tanh")), ValueError,
     r"layers\[1\] must have the keys residual; missing \[\], unknown \['activation'\]"),
    ("activation", edit(set_in_block(0, "activation", "softmax")), ValueError,
     R + r"\[0\]\['activation'\]: unknown activation 'softmax'"),
    ("bn-eps", edit(lambda ls: ls[1]["residual"][0]["batch_norm"].update(eps=-1.0)),
     ValueError, R + r"\[0\]\['batch_norm'\]\['eps'\] must be a finite number >= 0"),
    ("bn-norm", edit(lambda ls: ls[1]["residual"][0]["batch_norm"].update(norm="l0")),
     ValueError, R + r"\[0\]\['batch_norm'\]\['norm'\]: unknown norm 'l0'"),
    ("missing-key", edit(lambda ls: ls[1]["residual"][1].pop("bias")), ValueError,
     R + r"\[1\] must have the keys.*missing \['bias'\]"),
    ("not-a-dict", edit(lambda ls: ls[1]["residual"].insert(0, "Dense")), TypeError,
     R + r"\[0\] must be a dict"),
    ("chain-in", edit(lambda ls: ls[1]["residual"][0].update(in_features=4)), ValueError,
     R + r"\[0\] has in_features 4 but layers\[0\] has out_features 3"),
    ("chain-inside", edit(set_in_block(1, "in_features", 5)), ValueError,
     R + r"\[1\] has in_features 5 but " + R + r"\[0\] has out_features 4"),
    ("chain-after", edit(lambda ls: ls[2].update(in_features=4)), ValueError,
     r"layers\[2\] has in_features 4 but " + R + r"\[1\] has out_features 3"),
]


@pytest.mark.parametrize("layers,exc,match", [c[1:] for c in RESIDUAL_ERRORS],
                         ids=[c[0] for c in RESIDUAL_ERRORS])
def test_residual_errors(layers, exc, match):
    X, y, params = np.zeros((3, 2)), np.zeros(3), np.zeros(40)
    for call in (lambda: reference.param_count(layers),
                 lambda: reference.network_forward(layers, params, X),
                 lambda: reference.network_predict(layers, params, X, None, None),
                 lambda: reference.network_loss(layers, params, X, y),
                 lambda: reference.network_gradient(layers, params, X, y),
                 lambda: reference.network_hvp(layers, params, X, y, params),
                 lambda: reference.train(layers, params, X, y, 0.1, 1)):
        with pytest.raises(exc, match=match):
            call()


def test_blocks_may_be_tuples_and_alone():
    layers = (residual(dense(2, 2, "tanh")),)
    layers[0]["residual"] = tuple(layers[0]["residual"])
    assert reference.param_count(layers) == 6
    X = np.array([[1.0, 2.0], [3.0, 4.0]])
    out = reference.network_forward(layers, np.zeros(6), X)
    np.testing.assert_array_equal(out, X)
