"""Bad input to BatchNorm, Dense, Network and train (docs/design/argument_rules.md, network and train
rows): a clear exception naming the problem, and nothing modified by a failing call."""

import math

import numpy as np
import pytest

import bnfast
from bnfast import SGD, BatchNorm, Dense, Network
from bnfast import reference as ref
from network_cases import specs
from train_argument_cases import TRAIN_ARGUMENT_ERRORS

X32 = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
Y32 = np.array([8.0, 6.0, 11.0])


def bn_net():
    return Network([Dense(2, 3, "tanh", batch_norm=BatchNorm(eps=0.0)),
                    Dense(3, 1, "identity")], seed=0)


# ---------------------------------------------------------------- layer descriptions


@pytest.mark.parametrize("kwargs,exc,match", [
    ({"in_features": 0, "out_features": 2}, ValueError, "in_features must be >= 1"),
    ({"in_features": 2, "out_features": -1}, ValueError, "out_features must be >= 1"),
    ({"in_features": 2.0, "out_features": 2}, TypeError, "in_features must be an int"),
    ({"in_features": True, "out_features": 2}, TypeError, "in_features must be an int"),
    ({"in_features": 2, "out_features": "3"}, TypeError, "out_features must be an int"),
    ({"in_features": 2, "out_features": 2, "activation": "softmax"}, ValueError,
     "unknown activation 'softmax'"),
    ({"in_features": 2, "out_features": 2, "activation": "ReLU"}, ValueError,
     "unknown activation"),
    ({"in_features": 2, "out_features": 2, "activation": None}, ValueError,
     "unknown activation"),
    ({"in_features": 2, "out_features": 2, "bias": 1}, TypeError, "bias must be a bool"),
    ({"in_features": 2, "out_features": 2, "batch_norm": True}, TypeError,
     "batch_norm must be a bnfast.BatchNorm"),
    ({"in_features": 2, "out_features": 3, "batch_norm": BatchNorm(gamma=[1.0, 2.0])},
     ValueError, r"gamma has shape \(2,\) but the layer has 3 neurons"),
    ({"in_features": 2, "out_features": 2, "batch_norm": BatchNorm(beta=[1.0, 2.0, 3.0])},
     ValueError, r"beta has shape \(3,\) but the layer has 2 neurons"),
])
def test_dense_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        Dense(**kwargs)


@pytest.mark.parametrize("kwargs,exc,match", [
    ({"eps": -1e-5}, ValueError, "eps must be a finite number >= 0"),
    ({"eps": math.nan}, ValueError, "eps must be a finite number >= 0"),
    ({"eps": math.inf}, ValueError, "eps must be a finite number >= 0"),
    ({"eps": "0.1"}, TypeError, "eps must be a real number"),
    ({"eps": None}, TypeError, "eps must be a real number"),
    ({"gamma": math.nan}, ValueError, "gamma must be a finite number"),
    ({"beta": [0.0, math.inf]}, ValueError, "beta must be a finite number"),
    ({"gamma": [[1.0, 2.0]]}, ValueError, "gamma must be a finite number or a 1-D array"),
    ({"gamma": "1"}, ValueError, "gamma must be"),
    ({"trainable": "yes"}, TypeError, "trainable must be a bool"),
])
def test_batch_norm_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        BatchNorm(**kwargs)


def test_batch_norm_copies_its_arrays():
    gamma = np.array([1.0, 2.0])
    bn = BatchNorm(gamma=gamma, trainable=False)
    gamma[:] = 5.0
    net = Network([Dense(3, 2, batch_norm=bn)], seed=0)
    X = np.random.default_rng(0).normal(size=(5, 3))
    out = net.forward(X)
    np.testing.assert_allclose(out.std(axis=0), [1.0, 2.0], rtol=1e-4)  # eps = 1e-5


def test_layers_that_do_not_chain():
    with pytest.raises(ValueError, match=r"layers\[1\] has in_features 4 but layers\[0\] "
                                         "has out_features 3"):
        Network([Dense(2, 3), Dense(4, 1)])
    with pytest.raises(ValueError, match="at least one layer"):
        Network([])
    with pytest.raises(TypeError, match=r"layers\[1\] must be a bnfast layer \(Dense, "
                                        r"Conv1d, ...\) or bnfast.Residual, got tuple"):
        Network([Dense(2, 3), (3, 1)])


# ---------------------------------------------------------------- params


@pytest.mark.parametrize("value,exc,match", [
    (np.zeros(8), ValueError, r"params must have shape \(9,\)"),
    (np.zeros((3, 3)), ValueError, r"params must have shape \(9,\)"),
    (np.zeros(10), ValueError, r"params must have shape \(9,\)"),
    (np.r_[np.zeros(8), np.nan], ValueError, "params must be finite"),
    (np.r_[np.inf, np.zeros(8)], ValueError, "params must be finite"),
    (np.array(["a"] * 9), TypeError, "params must be real numbers"),
    (np.zeros(9, dtype=complex), TypeError, "params must be real numbers"),
])
def test_params_of_wrong_shape_or_not_finite(value, exc, match):
    net = Network([Dense(2, 3)], seed=0)
    before = net.params
    with pytest.raises(exc, match=match):
        net.params = value
    np.testing.assert_array_equal(net.params, before)


# ---------------------------------------------------------------- learning sets


@pytest.mark.parametrize("X,y,exc,match", [
    (np.zeros((3, 2)), np.zeros(4), ValueError, "X has 3 rows but y has 4"),
    (np.zeros((3, 2)), np.zeros((2, 1)), ValueError, "X has 3 rows but y has 2"),
    (np.zeros((3, 3)), np.zeros(3), ValueError, "X has 3 features but the network expects 2"),
    (np.zeros(2), np.zeros(1), ValueError, "X must be 2-D"),
    (np.zeros((0, 2)), np.zeros(0), ValueError, "at least one row"),
    (np.zeros((3, 2)), np.zeros((3, 2)), ValueError, r"y must have shape \(m, 1\)"),
    (np.zeros((3, 2)), np.zeros((3, 1, 1)), ValueError, r"y must have shape"),
    (np.zeros((3, 2), dtype=complex), np.zeros(3), TypeError, "X must hold real numbers"),
    (np.zeros((3, 2)), np.array(["a", "b", "c"]), TypeError, "y must hold real numbers"),
])
def test_learning_set_errors(X, y, exc, match):
    net = Network([Dense(2, 1)], seed=0)
    before = net.params
    for call in (net.loss, net.gradient, net.loss_and_gradient):
        with pytest.raises(exc, match=match):
            call(X, y)
    with pytest.raises(exc, match=match):
        bnfast.train(net, X, y, lr=0.1, steps=3)
    with pytest.raises(exc, match=match):
        ref.network_loss(specs(net.layers), before, X, y)
    np.testing.assert_array_equal(net.params, before)


def test_forward_errors():
    net = Network([Dense(2, 1)], seed=0)
    with pytest.raises(ValueError, match="X has 3 features but the network expects 2"):
        net.forward(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="X must be 2-D"):
        net.forward(np.zeros(2))
    with pytest.raises(TypeError, match="X must hold real numbers"):
        net.forward(np.zeros((2, 2), dtype=object))


def test_one_sample_with_batch_norm():
    net = bn_net()
    with pytest.raises(ValueError, match="batch normalization needs at least 2 samples"):
        net.loss(np.zeros((1, 2)), np.zeros(1))
    with pytest.raises(ValueError, match="batch normalization needs at least 2 samples"):
        net.forward(np.zeros((1, 2)))
    # without BN one sample is fine
    plain = Network([Dense(2, 1)], seed=0)
    plain.params = [1.0, 2.0, 3.0]
    assert plain.loss([[1.0, 1.0]], [0.0]) == 36.0


# ---------------------------------------------------------------- train arguments


@pytest.mark.parametrize("kwargs,exc,match", TRAIN_ARGUMENT_ERRORS)
def test_train_arguments(kwargs, exc, match):
    net = bn_net()
    before = net.params
    args = {"lr": 0.1, "steps": 5}
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        bnfast.train(net, X32, Y32, **args)
    np.testing.assert_array_equal(net.params, before)
    with pytest.raises(exc, match=match):  # the reference loop accepts and rejects alike
        ref.train(specs(net.layers), before, X32, Y32, **args)
    np.testing.assert_array_equal(net.params, before)


def test_train_net_must_be_a_network():
    with pytest.raises(TypeError, match="net must be a bnfast.Network"):
        bnfast.train([Dense(2, 1)], X32, Y32, lr=0.1, steps=1)


def test_batch_size_one_without_batch_norm_is_plain_sgd():
    net = Network([Dense(2, 1)], seed=0)
    result = bnfast.train(net, X32, Y32, lr=0.05, steps=30, batch_size=1, seed=2)
    expected = ref.train(specs([Dense(2, 1)]), Network([Dense(2, 1)], seed=0).params,
                         X32, Y32, lr=0.05, steps=30, batch_size=1, seed=2)
    np.testing.assert_allclose(result.params, expected.params, rtol=1e-12)


# ---------------------------------------------------------------- zero variance, eps = 0


def constant_neuron_case():
    """Layer 1, neuron 2 gets the pre-activation x1 + x2 = 1 on every sample."""
    X = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.25, 0.75]])
    y = np.array([1.0, 2.0, 3.0, 4.0])
    layers = [Dense(2, 3, "tanh"),
              Dense(3, 3, "identity", bias=False, batch_norm=BatchNorm(eps=0.0)),
              Dense(3, 1)]
    net = Network(layers, seed=1)
    params = net.params
    W1 = net.param_layout()[0]["W"][0]
    W1_values = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    params[W1] = W1_values.ravel()
    params[net.param_layout()[0]["b"][0]] = 0.0
    # layer 0 outputs tanh(x1), tanh(x2), tanh(x1 + x2) = tanh(1): constant column 2;
    # layer 1 row 2 picks exactly that column.
    W2 = net.param_layout()[1]["W"][0]
    params[W2] = np.array([[1.0, 0.5, 0.0], [0.3, -1.0, 0.0], [0.0, 0.0, 2.0]]).ravel()
    net.params = params
    return net, X, y


def test_zero_variance_with_eps_zero_names_layer_and_neuron():
    net, X, y = constant_neuron_case()
    before = net.params
    for call in (lambda: net.loss(X, y), lambda: net.gradient(X, y),
                 lambda: net.loss_and_gradient(X, y), lambda: net.forward(X),
                 lambda: bnfast.train(net, X, y, lr=0.1, steps=5),
                 lambda: bnfast.train(net, X, y, lr=0.1, steps=5, batch_size=2)):
        with pytest.raises(bnfast.ZeroVarianceError, match="layer 1, neuron 2") as info:
            call()
        assert isinstance(info.value, ValueError)
        np.testing.assert_array_equal(net.params, before)
    with pytest.raises(ValueError, match="neuron 2"):  # the reference agrees
        ref.network_loss(specs(net.layers), before, X, y)


def test_zero_variance_needs_eps_zero():
    """The same constant neuron with eps > 0 is fine: its normalized value is beta."""
    net, X, y = constant_neuron_case()
    layers = list(net.layers)
    layers[1] = Dense(3, 3, "identity", bias=False, batch_norm=BatchNorm(eps=1e-3))
    net2 = Network(layers, seed=1)
    net2.params = net.params
    loss = net2.loss(X, y)
    assert math.isfinite(loss)
    assert np.all(np.isfinite(net2.gradient(X, y)))


def test_zero_variance_from_zero_weights():
    """A neuron whose weights are all 0 has a constant pre-activation (its bias)."""
    net = Network([Dense(2, 2, batch_norm=BatchNorm(eps=0.0)), Dense(2, 1)], seed=0)
    params = net.params
    params[2:4] = 0.0  # W row of neuron 1
    net.params = params
    with pytest.raises(bnfast.ZeroVarianceError, match="layer 0, neuron 1"):
        net.loss(X32, Y32)


def test_the_network_works_after_errors():
    """Failing calls leave the network usable with the same results."""
    net = bn_net()
    loss = net.loss(X32, Y32)
    with pytest.raises(ValueError):
        net.loss(np.zeros((3, 5)), Y32)
    with pytest.raises(ValueError):
        bnfast.train(net, X32, Y32, lr=-1.0, steps=1)
    assert net.loss(X32, Y32) == loss


# ---------------------------------------------------------------- found in review


def test_a_layer_changed_after_construction_is_checked_again():
    bn = BatchNorm()
    layer = Dense(2, 3, batch_norm=bn)
    bn.eps = math.nan
    with pytest.raises(ValueError, match="eps must be a finite number >= 0"):
        Network([layer])
    bn.eps = 0.0
    layer.activation = "softmax"
    with pytest.raises(ValueError, match="unknown activation 'softmax'"):
        Network([layer])
    layer.activation, layer.out_features = "tanh", -1
    with pytest.raises(ValueError, match="out_features must be >= 1"):
        Network([layer])


def test_targets_are_required():
    net = Network([Dense(2, 1)], seed=0)
    for call in (net.loss, net.gradient, net.loss_and_gradient):
        with pytest.raises(TypeError, match="y must be an array of targets, got None"):
            call(np.zeros((3, 2)), None)
    with pytest.raises(TypeError, match="y must be an array of targets"):
        bnfast.train(net, np.zeros((3, 2)), None, lr=0.1, steps=1)


@pytest.mark.parametrize("name", ["steps", "batch_size", "record_every"])
def test_integers_beyond_int64_name_the_argument(name):
    net = Network([Dense(2, 1)], seed=0)
    args = {"lr": 0.1, "steps": 1, name: 2**63}
    with pytest.raises(ValueError, match=rf"{name} must be < 2\*\*63"):
        bnfast.train(net, X32, Y32, **args)


def test_a_huge_run_stopped_by_its_callback_does_not_reserve_every_record():
    net = Network([Dense(2, 1)], seed=0)
    result = bnfast.train(net, X32, Y32, lr=0.01, steps=2**62, callback=lambda s, l: s >= 3)
    assert result.steps == 3 and result.stopped_by_callback


def test_the_core_guards_against_a_crash_or_a_hang():
    """bnfast.train owns these rules; the binding still refuses a zero record_every (a
    division by zero would kill the process) and negative steps (a loop without end)."""
    net = Network([Dense(2, 1)], seed=0)
    X, Y = np.asarray(X32, dtype=np.float64), np.asarray(Y32, dtype=np.float64).reshape(-1, 1)
    for steps, batch_size, record_every in [(3, 0, 0), (-1, 0, 1), (3, -1, 1)]:
        with pytest.raises(ValueError, match="record_every >= 1 and sharpness_every >= 0 are required"):
            net._core.train(net.params, np.zeros(0), 0, X, Y, 0.1, None, steps, batch_size,
                            0, record_every, None, SGD().spec(), np.zeros(0), 0)


def test_a_network_too_large_for_any_memory_is_refused_by_name():
    with pytest.raises(ValueError, match=r"layers\[0\] has 3 x 4611686018427387904 weights"):
        Network([Dense(3, 2**62)])
