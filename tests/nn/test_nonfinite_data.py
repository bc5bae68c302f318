"""NaN and inf in the data propagate through every activation, loss, gradient, hvp and
predict as they do in the NumPy reference (where a value is NaN, the reference's is NaN
too, and the finite values agree), and training refuses non-finite data by name instead
of reporting a divergence and blaming the learning rate. Before, the native ReLU turned
NaN into 0, so a NaN in X gave a finite loss."""

import numpy as np
import pytest

import bnfast
from bnfast import BatchNorm, Dense, LayerNorm, Network
from bnfast import reference as ref

ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu")
NORMS = {"none": lambda: None, "batch": BatchNorm, "layer": LayerNorm}


def network(activation, norm, loss):
    return Network([Dense(3, 4, activation, normalization=NORMS[norm]()),
                    Dense(4, 2, activation)], loss=loss, seed=1)


def same_pattern(ours, theirs):
    """NaN where the reference has NaN, the same infinities, close finite values."""
    ours, theirs = np.atleast_1d(ours), np.atleast_1d(theirs)
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
    finite = np.isfinite(theirs)
    np.testing.assert_array_equal(ours[~finite & ~np.isnan(theirs)],
                                  theirs[~finite & ~np.isnan(theirs)])
    np.testing.assert_allclose(ours[finite], theirs[finite], rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("loss", ["sum", "cross_entropy"])
@pytest.mark.parametrize("norm", sorted(NORMS))
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_nonfinite_inputs_propagate_as_in_the_reference(activation, norm, loss, bad):
    net = network(activation, norm, loss)
    rng = np.random.default_rng(2)
    X = rng.standard_normal((5, 3))
    X[1, 2] = bad
    y = rng.integers(0, 2, 5) if loss == "cross_entropy" else rng.standard_normal((5, 2))
    layers, p = [layer.to_dict() for layer in net.layers], net.params
    with np.errstate(all="ignore"):
        same_pattern(net.forward(X), ref.network_forward(layers, p, X))
        same_pattern(net.loss(X, y), ref.network_loss(layers, p, X, y, loss))
        same_pattern(net.predict(X), ref.network_predict(
            layers, p, X, net.running_mean, net.running_var))
        # gradients: NaN wherever the reference's is (their finite values agree)
        same_pattern(net.gradient(X, y), ref.network_gradient(layers, p, X, y, loss))
        v = rng.standard_normal(net.num_params)
        assert np.isnan(net.hvp(X, y, v)).any() == np.isnan(
            ref.network_hvp(layers, p, X, y, v, loss)).any()


@pytest.mark.parametrize("where", ["X", "y"])
def test_training_refuses_nonfinite_data_by_name(where):
    net = network("relu", "batch", "sum")
    X, y = np.ones((4, 3)), np.ones((4, 2))
    X[0, 0] = 1.5
    (X if where == "X" else y)[3, 1] = np.nan
    before = net.params
    with pytest.raises(ValueError, match=rf"{where} holds nan at \(3, 1\): training needs "
                                         "finite data"):
        bnfast.train(net, X, y, 0.1, 5)
    np.testing.assert_array_equal(net.params, before)


def test_relu_keeps_nan_and_maps_negative_zero_to_zero():
    net = Network([Dense(1, 1, "relu", bias=False)])
    net.params = [1.0]
    out = net.forward(np.array([[np.nan], [-0.0], [-2.0], [3.0]])).ravel()
    assert np.isnan(out[0]) and out[1] == 0 and not np.signbit(out[1])
    assert out[2] == 0 and out[3] == 3


def test_a_run_whose_records_would_not_fit_in_memory_is_refused_up_front():
    net = network("tanh", "none", "sum")
    with pytest.raises(ValueError, match="loss records would not fit in memory"):
        bnfast.train(net, np.ones((4, 3)), np.ones((4, 2)), 0.1, 10**12)
    # a callback may stop such a run: it is allowed (records are reserved as they come)
    result = bnfast.train(net, np.ones((4, 3)), np.ones((4, 2)), 0.1, 10**12,
                          callback=lambda step, loss: step >= 2)
    assert result.steps == 2 and result.stopped_by_callback
