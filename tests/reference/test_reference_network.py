"""bnfast.reference's network maths checked against plain, independent maths (no native
code): the parameter order, the forward pass against reference_cases.manual_forward,
finite-difference gradients in float64, properties of BN at eps = 0, and the
reference's own argument checks (type of the exception, message naming the argument).

Tolerances. Forward: the reference and manual_forward evaluate the same formulas in a
slightly different order (sigmoid as 0.5 (1 + tanh(z/2)) against 1/(1 + e^-z), mean
with a correction pass), ~1e-16 relative per operation over three small layers, so
1e-12 is far above the disagreement while a wrong parameter or formula is O(1).
Gradient: central differences with step h = 1e-6 have truncation error ~h^2 |L'''| ~
1e-12 and rounding error ~eps_mach |L| / h ~ 1e-9 for losses of order 10, so 1e-6
(norm-wise, relative to the largest gradient entry) keeps a margin of ~1000.
"""

import math

import numpy as np
import pytest

from bnfast import reference
from reference_cases import (ACTIVATIONS, BN_MODES, bn, count_params, dense, manual_forward,
                             random_case, rel_err)

CASES = [(a, b) for a in ACTIVATIONS for b in BN_MODES]


def numerical_gradient(layers, params, X, y, h=1e-6):
    grad = np.empty_like(params)
    for k in range(params.size):
        up, down = params.copy(), params.copy()
        up[k] += h
        down[k] -= h
        grad[k] = (reference.network_loss(layers, up, X, y)
                   - reference.network_loss(layers, down, X, y)) / (2 * h)
    return grad


# ---------------------------------------------------------------- the parameter order


def test_params_order_by_hand():
    """A 2-layer network whose parameters are built by hand, against a forward pass
    written out for exactly this network."""
    layers = [dense(2, 3, "tanh", True, bn(trainable=True, eps=0.1)),
              dense(3, 2, "sigmoid", True, bn(gamma=[2.0, -1.0], beta=0.5, trainable=False,
                                              eps=0.0))]
    W1 = np.array([[1.0, -2.0], [0.5, 0.25], [-1.5, 3.0]])
    b1 = np.array([0.1, -0.2, 0.3])
    g1, be1 = np.array([1.5, -0.5, 2.0]), np.array([0.0, 1.0, -1.0])
    W2 = np.array([[0.3, -0.7, 1.1], [2.0, 0.4, -0.9]])
    b2 = np.array([5.0, -5.0])  # before BN: no effect on the output
    params = np.concatenate([W1.ravel(), b1, g1, be1, W2.ravel(), b2])
    assert reference.param_count(layers) == params.size == 6 + 3 + 3 + 3 + 6 + 2
    X = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, -1.0], [-0.5, 0.5], [1.0, 3.0]])

    H1 = X @ W1.T + b1
    Z1 = g1 * (H1 - H1.mean(0)) / np.sqrt(H1.var(0) + 0.1) + be1
    A1 = np.tanh(Z1)
    H2 = A1 @ W2.T + b2
    Z2 = np.array([2.0, -1.0]) * (H2 - H2.mean(0)) / H2.std(0) + 0.5
    expected = 1 / (1 + np.exp(-Z2))

    out = reference.network_forward(layers, params, X)
    assert out.shape == (5, 2) and out.dtype == np.float64
    assert rel_err(out, expected) <= 1e-12
    y = np.array([[1.0, 0.0]] * 5)
    assert reference.network_loss(layers, params, X, y) == pytest.approx(
        np.sum((y - expected) ** 2), rel=1e-12)
    # swapping two entries that the order keeps apart changes the output
    swapped = params.copy()
    swapped[[6, 9]] = swapped[[9, 6]]  # b1[0] and gamma1[0]
    assert rel_err(reference.network_forward(layers, swapped, X), expected) > 1e-3


@pytest.mark.parametrize("activation,bn_mode", CASES, ids=[f"{a}-{b}" for a, b in CASES])
def test_forward_matches_manual_forward(activation, bn_mode):
    layers, params, X, y = random_case(activation, bn_mode, seed=CASES.index((activation,
                                                                             bn_mode)))
    assert reference.param_count(layers) == count_params(layers) == params.size
    expected, _ = manual_forward(layers, params, X)
    assert rel_err(reference.network_forward(layers, params, X), expected) <= 1e-12
    assert reference.network_loss(layers, params, X, y) == pytest.approx(
        np.sum((y - expected) ** 2), rel=1e-12)


# ---------------------------------------------------------------- gradients


@pytest.mark.parametrize("activation,bn_mode", CASES, ids=[f"{a}-{b}" for a, b in CASES])
def test_gradient_matches_finite_differences(activation, bn_mode):
    layers, params, X, y = random_case(activation, bn_mode, seed=100 + CASES.index(
        (activation, bn_mode)))
    grad = reference.network_gradient(layers, params, X, y)
    assert grad.shape == params.shape and grad.dtype == np.float64
    assert rel_err(grad, numerical_gradient(layers, params, X, y)) <= 1e-6


def test_one_output_targets_may_be_a_vector():
    layers = [dense(2, 3, "tanh"), dense(3, 1, "sigmoid")]
    rng = np.random.default_rng(3)
    params = rng.normal(size=reference.param_count(layers))
    X, y = rng.normal(size=(4, 2)), rng.normal(size=4)
    assert reference.network_loss(layers, params, X, y) == \
        reference.network_loss(layers, params, X, y[:, None])
    np.testing.assert_array_equal(reference.network_gradient(layers, params, X, y),
                                  reference.network_gradient(layers, params, X, y[:, None]))
    assert rel_err(reference.network_gradient(layers, params, X, y),
                   numerical_gradient(layers, params, X, y)) <= 1e-6


def test_bn_at_eps_zero_is_scale_invariant_and_ignores_the_bias():
    """docs/math/networks.md section 3 and docs/math/batch_norm.md section 4: before BN
    at eps = 0, scaling a neuron's weights by c > 0 leaves f unchanged, its weights are
    orthogonal to their gradient, and the bias has gradient 0."""
    layers = [dense(3, 4, "tanh", True, bn(trainable=True, eps=0.0)),
              dense(4, 2, "identity")]
    rng = np.random.default_rng(8)
    params = rng.normal(size=reference.param_count(layers))
    X, y = rng.normal(size=(6, 3)), rng.normal(size=(6, 2))
    scaled = params.copy()
    scaled[:12] *= 7.5
    assert rel_err(reference.network_forward(layers, scaled, X),
                   reference.network_forward(layers, params, X)) <= 1e-12
    grad = reference.network_gradient(layers, params, X, y)
    W, gW = params[:12].reshape(4, 3), grad[:12].reshape(4, 3)
    assert np.max(np.abs(np.sum(W * gW, axis=1))) <= 1e-12 * np.max(np.abs(grad))
    assert np.max(np.abs(grad[12:16])) <= 1e-12 * np.max(np.abs(grad))


def test_inputs_are_not_modified():
    layers = [dense(2, 2, "relu", True, bn(gamma=[1.0, 2.0], trainable=False))]
    params, X, y = np.arange(6.0), np.array([[1.0, 2.0], [3.0, -4.0]]), np.ones((2, 2))
    kept = [a.copy() for a in (params, X, y)]
    reference.network_gradient(layers, params, X, y)
    reference.network_forward(layers, params, X)
    for a, b in zip((params, X, y), kept):
        np.testing.assert_array_equal(a, b)
    assert layers[0]["batch_norm"]["gamma"] == [1.0, 2.0]


def test_integer_and_float32_inputs_compute_in_float64():
    layers = [dense(2, 1, "identity", False)]
    X = np.array([[1, 0], [0, 1], [1, 1]])
    assert reference.network_loss(layers, [7, 5], X, [8, 6, 11]) == 3.0
    out = reference.network_forward(layers, np.array([7, 5], np.float32),
                                    X.astype(np.float32))
    assert out.dtype == np.float64


# ---------------------------------------------------------------- eps = 0, constant neuron


def test_constant_pre_activation_with_eps_zero_names_the_neuron():
    layers = [dense(2, 3, "identity", False, bn(eps=0.0, trainable=False)),
              dense(3, 1)]
    W = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])  # neuron 1: x1 + x2 = 1
    params = np.concatenate([W.ravel(), [1.0, 1.0, 1.0, 0.0]])
    X = np.array([[1.0, 0.0], [0.25, 0.75], [0.5, 0.5]])
    y = np.zeros(3)
    for call in (lambda: reference.network_forward(layers, params, X),
                 lambda: reference.network_loss(layers, params, X, y),
                 lambda: reference.network_gradient(layers, params, X, y),
                 lambda: reference.train(layers, params, X, y, 0.1, 3)):
        with pytest.raises(ValueError, match="layer 0, neuron 1 .*eps == 0"):
            call()
    layers[0]["batch_norm"]["eps"] = 1e-3  # with eps > 0 the neuron outputs beta
    out = reference.network_forward(layers, params, X)
    assert np.all(np.isfinite(out))


# ---------------------------------------------------------------- bad input


def good_layers():
    return [dense(2, 3, "tanh", True, bn(gamma=[1.0, 2.0, 3.0], beta=0.5)),
            dense(3, 1, "identity", True, None)]


def layer_case(edit):
    layers = good_layers()
    edit(layers)
    return layers


def set_key(i, key, value, sub=None):
    def edit(layers):
        target = layers[i] if sub is None else layers[i][sub]
        target[key] = value
    return edit


def del_key(i, key):
    return lambda layers: layers[i].pop(key)


LAYER_ERRORS = [
    ("not-a-list", {"in_features": 2}, TypeError, "layers must be a list"),
    ("none", None, TypeError, "layers must be a list"),
    ("empty", [], ValueError, "layers must not be empty"),
    ("not-a-dict", [("Dense", 2, 1)], TypeError, r"layers\[0\] must be a dict"),
    ("missing-key", layer_case(del_key(0, "activation")), ValueError,
     r"layers\[0\] must have the keys.*missing \['activation'\]"),
    ("unknown-key", layer_case(set_key(1, "dropout", 0.5)), ValueError,
     r"layers\[1\] must have the keys.*unknown \['dropout'\]"),
    ("in-zero", layer_case(set_key(0, "in_features", 0)), ValueError,
     r"layers\[0\]\['in_features'\] must be >= 1"),
    ("out-float", layer_case(set_key(1, "out_features", 1.0)), TypeError,
     r"layers\[1\]\['out_features'\] must be an int"),
    ("in-bool", layer_case(set_key(0, "in_features", True)), TypeError,
     r"layers\[0\]\['in_features'\] must be an int"),
    ("activation", layer_case(set_key(1, "activation", "softmax")), ValueError,
     r"layers\[1\]\['activation'\]: unknown activation 'softmax'"),
    ("activation-type", layer_case(set_key(1, "activation", None)), ValueError,
     r"layers\[1\]\['activation'\]: unknown activation"),
    ("bias-int", layer_case(set_key(0, "bias", 1)), TypeError,
     r"layers\[0\]\['bias'\] must be a bool"),
    ("bn-type", layer_case(set_key(0, "batch_norm", True)), TypeError,
     r"layers\[0\]\['batch_norm'\] must be a dict"),
    ("bn-missing", layer_case(lambda ls: ls[0]["batch_norm"].pop("eps")), ValueError,
     r"layers\[0\]\['batch_norm'\] must have the keys.*missing \['eps'\]"),
    ("gamma-length", layer_case(set_key(0, "gamma", [1.0, 2.0], "batch_norm")), ValueError,
     r"layers\[0\]\['batch_norm'\]\['gamma'\] has shape \(2,\) but the layer has 3 "
     "neurons"),
    ("beta-2d", layer_case(set_key(0, "beta", [[0.0] * 3], "batch_norm")), ValueError,
     r"\['beta'\] has shape \(1, 3\) but the layer has 3 neurons"),
    ("gamma-nan", layer_case(set_key(0, "gamma", math.nan, "batch_norm")), ValueError,
     r"\['gamma'\] must be finite"),
    ("gamma-str", layer_case(set_key(0, "gamma", "1.0", "batch_norm")), TypeError,
     r"\['gamma'\] must be a number"),
    ("beta-complex", layer_case(set_key(0, "beta", 1j, "batch_norm")), TypeError,
     r"\['beta'\] must hold real numbers"),
    ("trainable", layer_case(set_key(0, "trainable", "yes", "batch_norm")), TypeError,
     r"\['trainable'\] must be a bool"),
    ("eps-negative", layer_case(set_key(0, "eps", -1e-5, "batch_norm")), ValueError,
     r"\['eps'\] must be a finite number >= 0"),
    ("eps-nan", layer_case(set_key(0, "eps", math.nan, "batch_norm")), ValueError,
     r"\['eps'\] must be a finite number >= 0"),
    ("eps-bool", layer_case(set_key(0, "eps", False, "batch_norm")), TypeError,
     r"\['eps'\] must be a real number"),
    ("chain", layer_case(set_key(1, "in_features", 4)), ValueError,
     r"layers\[1\] has in_features 4 but layers\[0\] has out_features 3"),
]


@pytest.mark.parametrize("layers,exc,match", [c[1:] for c in LAYER_ERRORS],
                         ids=[c[0] for c in LAYER_ERRORS])
def test_layer_errors(layers, exc, match):
    X, y, params = np.zeros((3, 2)), np.zeros(3), np.zeros(19)
    for call in (lambda: reference.param_count(layers),
                 lambda: reference.network_forward(layers, params, X),
                 lambda: reference.network_loss(layers, params, X, y),
                 lambda: reference.network_gradient(layers, params, X, y),
                 lambda: reference.train(layers, params, X, y, 0.1, 1)):
        with pytest.raises(exc, match=match):
            call()


def test_layers_may_be_a_tuple_and_numpy_scalars():
    layers = (dense(np.int64(2), 1, bias=np.bool_(True),
                    batch_norm=bn(gamma=np.float32(2.0), eps=np.float64(0.0))),)
    assert reference.param_count(layers) == 5


DATA_ERRORS = [
    ("X-1d", np.zeros(2), np.zeros(1), ValueError, r"X must be 2-D \(m, 2\)"),
    ("X-3d", np.zeros((3, 2, 1)), np.zeros(3), ValueError, "X must be 2-D"),
    ("X-features", np.zeros((3, 3)), np.zeros(3), ValueError,
     "X has 3 features but the network expects 2"),
    ("X-no-rows", np.zeros((0, 2)), np.zeros(0), ValueError,
     "X must have at least one row"),
    ("X-one-row-bn", np.zeros((1, 2)), np.zeros(1), ValueError,
     "batch normalization needs at least 2 samples"),
    ("X-complex", np.zeros((3, 2), complex), np.zeros(3), TypeError,
     "X must hold real numbers"),
    ("X-object", np.zeros((3, 2), object), np.zeros(3), TypeError,
     "X must hold real numbers"),
    ("X-str", [["a", "b"]] * 3, np.zeros(3), TypeError, "X must hold real numbers"),
    ("y-rows", np.zeros((3, 2)), np.zeros(4), ValueError, "X has 3 rows but y has 4"),
    ("y-rows-2d", np.zeros((3, 2)), np.zeros((2, 1)), ValueError,
     "X has 3 rows but y has 2"),
    ("y-columns", np.zeros((3, 2)), np.zeros((3, 2)), ValueError,
     r"y must have shape \(m, 1\) or \(m,\), got \(3, 2\)"),
    ("y-3d", np.zeros((3, 2)), np.zeros((3, 1, 1)), ValueError, "y must have shape"),
    ("y-str", np.zeros((3, 2)), np.array(["a", "b", "c"]), TypeError, "y must hold real numbers"),
    ("y-complex", np.zeros((3, 2)), np.zeros(3, complex), TypeError, "y must hold real numbers"),
]


@pytest.mark.parametrize("X,y,exc,match", [c[1:] for c in DATA_ERRORS],
                         ids=[c[0] for c in DATA_ERRORS])
def test_data_errors(X, y, exc, match):
    layers, params = good_layers(), np.zeros(19)
    with pytest.raises(exc, match=match):
        reference.network_loss(layers, params, X, y)
    with pytest.raises(exc, match=match):
        reference.network_gradient(layers, params, X, y)
    with pytest.raises(exc, match=match):
        reference.train(layers, params, X, y, 0.1, 1)
    if not match.startswith(("y", "X has 3 rows")):
        with pytest.raises(exc, match=match):
            reference.network_forward(layers, params, X)


def test_vector_targets_need_one_output():
    layers = [dense(2, 2)]
    with pytest.raises(ValueError, match=r"y must have shape \(m, 2\), got \(3,\)"):
        reference.network_loss(layers, np.zeros(6), np.zeros((3, 2)), np.zeros(3))


def test_one_sample_without_batch_norm_is_fine():
    layers = [dense(2, 1)]
    assert reference.network_loss(layers, [1.0, 2.0, 3.0], [[1.0, 1.0]], [0.0]) == 36.0


@pytest.mark.parametrize("params,exc,match", [
    (np.zeros(18), ValueError, r"params must have shape \(19,\), got \(18,\)"),
    (np.zeros((19, 1)), ValueError, r"params must have shape \(19,\), got \(19, 1\)"),
    (np.zeros(19, complex), TypeError, "params must be real numbers"),
    (np.zeros(19, bool), TypeError, "params must be real numbers"),
    (["a"] * 19, TypeError, "params must be real numbers"),
])
def test_params_errors(params, exc, match):
    layers, X, y = good_layers(), np.zeros((3, 2)), np.zeros(3)
    for call in (lambda: reference.network_forward(layers, params, X),
                 lambda: reference.network_loss(layers, params, X, y),
                 lambda: reference.network_gradient(layers, params, X, y),
                 lambda: reference.train(layers, params, X, y, 0.1, 1)):
        with pytest.raises(exc, match=match):
            call()
