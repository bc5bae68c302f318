"""Bad input to the engine's features (issue 11 item 8; docs/design/argument_rules.md):
BN variants and noise, residual blocks, loss reductions, init schemes, hvp and predict.
Each raises a clear exception naming the argument, and a failed call changes nothing."""

import copy

import numpy as np
import pytest

import bnfast
from bnfast import BatchNorm, BNNoise, Dense, Network, Residual

RNG = np.random.default_rng(0)
X = RNG.normal(size=(8, 3))
Y = RNG.normal(size=(8, 2))


def net_with_everything():
    return Network([Dense(3, 4, "tanh", batch_norm=BatchNorm(norm="l1", noise=BNNoise())),
                    Residual([Dense(4, 4, "relu", batch_norm=BatchNorm(momentum=None))]),
                    Dense(4, 2)], loss="mean")


def state(net):
    return (net.params, net.running_mean, net.running_var, net._updates)


def assert_same_state(a, b):
    np.testing.assert_array_equal(a[0], b[0])
    for x, y in zip(a[1] + a[2], b[1] + b[2]):
        np.testing.assert_array_equal(x, y)
    assert a[3] == b[3]


@pytest.mark.parametrize("kwargs,exc,match", [
    ({"norm": "l3"}, ValueError, "unknown norm 'l3'; expected one of std, l1, l2, linf"),
    ({"norm": "L1"}, ValueError, "unknown norm"),
    ({"norm": None}, ValueError, "unknown norm"),
    ({"norm": 1}, ValueError, "unknown norm"),
    ({"momentum": 1.5}, ValueError, r"momentum must be in \[0, 1\]"),
    ({"momentum": -0.1}, ValueError, r"momentum must be in \[0, 1\]"),
    ({"momentum": "0.1"}, TypeError, "momentum must be a real number"),
    ({"momentum": True}, TypeError, "momentum must be a real number"),
    ({"noise": {"n_mu": 0.5}}, TypeError, "noise must be a bnfast.BNNoise or None, got dict"),
    ({"noise": True}, TypeError, "noise must be a bnfast.BNNoise"),
])
def test_batch_norm_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        BatchNorm(**kwargs)


@pytest.mark.parametrize("kwargs,exc,match", [
    ({"n_sigma": 0.5}, ValueError, "n_sigma must be a finite number >= 1, got 0.5"),
    ({"n_mu": -0.1}, ValueError, "n_mu must be a finite number >= 0"),
    ({"r_mu": -1.0}, ValueError, "r_mu must be a finite number >= 0"),
    ({"r_sigma": -1e-9}, ValueError, "r_sigma must be a finite number >= 0"),
    ({"n_mu": float("inf")}, ValueError, "n_mu must be a finite number"),
    ({"r_sigma": float("nan")}, ValueError, "r_sigma must be a finite number"),
    ({"n_mu": "0.5"}, TypeError, "n_mu must be a real number"),
    ({"n_sigma": None}, TypeError, "n_sigma must be a real number"),
])
def test_noise_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        BNNoise(**kwargs)


def test_noise_is_immutable_and_takes_the_documented_defaults():
    noise = BNNoise()
    assert (noise.n_mu, noise.n_sigma, noise.r_mu, noise.r_sigma) == (0.5, 1.25, 0.1, 0.1)
    with pytest.raises(AttributeError):
        noise.n_mu = 3.0


@pytest.mark.parametrize("layers,exc,match", [
    ([Dense(3, 4)], ValueError, "must map n features to n, got 3 -> 4"),
    ([Dense(3, 4), Dense(4, 5)], ValueError, "must map n features to n, got 3 -> 5"),
    ([], ValueError, "layers must not be empty"),
    (Dense(3, 3), TypeError, r"layers must be a sequence of bnfast.Dense .*, got Dense"),
    ([Residual([Dense(3, 3)])], TypeError, r"layers\[0\] must be a bnfast.Dense or a convolution \(blocks do not nest\)"),
    ([Dense(3, 3), "relu"], TypeError, r"layers\[1\] must be a bnfast.Dense"),
    (3, TypeError, "layers must be a sequence"),
])
def test_residual_arguments(layers, exc, match):
    with pytest.raises(exc, match=match):
        Residual(layers)


def test_a_block_whose_layers_do_not_chain_is_refused_by_the_network():
    block = Residual([Dense(3, 4), Dense(5, 3)])
    with pytest.raises(ValueError, match=r"layers\[1\] has in_features 5 but layers\[0\] has out_features 4"):
        Network([block])


def test_a_block_must_fit_the_layers_around_it():
    with pytest.raises(ValueError, match=r"layers\[1\] has in_features 3 but layers\[0\] has out_features 2"):
        Network([Dense(4, 2), Residual([Dense(3, 3)])])


@pytest.mark.parametrize("loss,exc", [("avg", ValueError), ("Sum", ValueError), (None, ValueError),
                                      (1, ValueError)])
def test_loss_must_be_sum_or_mean(loss, exc):
    with pytest.raises(exc, match="unknown loss .*; expected one of sum, mean"):
        Network([Dense(3, 2)], loss=loss)


@pytest.mark.parametrize("scheme,seed,exc,match", [
    ("xavier", 0, ValueError, "unknown scheme 'xavier'; expected one of glorot, he, normal"),
    (None, 0, ValueError, "unknown scheme None"),
    ("he", -1, ValueError, "seed must be >= 0"),
    ("he", 1.5, TypeError, "seed must be an int"),
])
def test_init_arguments_and_nothing_changes(scheme, seed, exc, match):
    net = net_with_everything()
    bnfast.train(net, X, Y, 0.01, 3)
    before = state(net)
    with pytest.raises(exc, match=match):
        net.init(scheme, seed)
    assert_same_state(state(net), before)


@pytest.mark.parametrize("v,exc,match", [
    (np.ones(3), ValueError, r"v must have shape \(\d+,\), got \(3,\)"),
    (lambda n: np.ones((n, 1)), ValueError, r"v must have shape \(\d+,\), got \(\d+, 1\)"),
    (lambda n: np.full(n, np.nan), ValueError, "v must be finite"),
    (lambda n: np.r_[np.ones(n - 1), np.inf], ValueError, "v must be finite"),
    (lambda n: np.ones(n, dtype=complex), TypeError, "v"),
    ("abc", TypeError, "v must hold real numbers"),
])
def test_hvp_direction(v, exc, match):
    net = net_with_everything()
    before = state(net)
    with pytest.raises(exc, match=match):
        net.hvp(X, Y, v(net.num_params) if callable(v) else v)
    assert_same_state(state(net), before)


def test_hvp_needs_a_batch_like_loss():
    net = net_with_everything()
    with pytest.raises(ValueError, match="at least 2 samples"):
        net.hvp(X[:1], Y[:1], np.ones(net.num_params))
    with pytest.raises(ValueError, match="X has 3 rows but y has 8"):
        net.hvp(X[:3], Y, np.ones(net.num_params))


@pytest.mark.parametrize("rows", [1, 2, 5])
def test_predict_takes_any_number_of_rows_even_before_training(rows):
    """PyTorch's eval mode uses the initial running statistics (0, 1) before any
    training; so does predict (documented)."""
    net = net_with_everything()
    out = net.predict(X[:rows])
    assert out.shape == (rows, 2) and np.all(np.isfinite(out))
    np.testing.assert_array_equal(net.predict(X[:rows])[0], net.predict(X[:1])[0])


@pytest.mark.parametrize("Xbad,exc,match", [
    (np.ones((2, 4)), ValueError, r"X has 4 features but the network expects 3"),
    (np.ones((0, 3)), ValueError, r"X must have at least one row"),
    (np.ones(3), ValueError, r"X must be 2-D \(m, 3\), got shape \(3,\)"),
    (np.ones((2, 3), dtype=complex), TypeError, "X"),
])
def test_predict_arguments(Xbad, exc, match):
    with pytest.raises(exc, match=match):
        net_with_everything().predict(Xbad)


def test_inference_with_a_zero_running_variance_and_eps_zero_names_layer_and_neuron():
    net = Network([Dense(3, 2, batch_norm=BatchNorm(eps=0.0))])
    running = np.array([0.0, 0.0, 1.0, 0.0])            # means (0, 0), variances (1, 0)
    with pytest.raises(bnfast.ZeroVarianceError,
                       match="layer 0, neuron 1: the running variance is 0 and eps == 0"):
        net._core.predict(net.params, running, X)


@pytest.mark.parametrize("norm", ["l1", "l2", "linf"])
def test_an_all_zero_column_with_eps_zero_names_layer_and_neuron(norm):
    net = Network([Dense(3, 2, bias=False, batch_norm=BatchNorm(eps=0.0, norm=norm))])
    p = net.params
    p[3:6] = 0.0                                          # neuron 1 sees only zeros
    net.params = p
    with pytest.raises(bnfast.ZeroVarianceError, match="layer 0, neuron 1: the normalizing scale"):
        net.loss(X, Y)
    with pytest.raises(bnfast.ZeroVarianceError, match="layer 0, neuron 1"):
        net.hvp(X, Y, np.ones(net.num_params))


def test_a_constant_nonzero_column_is_fine_for_lp_norms():
    """lp norms divide by the uncentred scale: a constant column has s > 0 and centres
    to zero, where BN (norm="std") would divide 0 by 0."""
    net = Network([Dense(3, 2, batch_norm=BatchNorm(eps=0.0, norm="l2"))])
    p = net.params
    p[3:6] = 0.0
    p[7] = 2.0                                            # b_1 = 2: neuron 1 is constant 2
    net.params = p
    assert np.all(net.forward(X)[:, 1] == 0.0)
    net_std = Network([Dense(3, 2, batch_norm=BatchNorm(eps=0.0))])
    net_std.params = p
    with pytest.raises(bnfast.ZeroVarianceError):
        net_std.loss(X, Y)


def test_a_failed_training_run_leaves_running_statistics_as_they_were():
    net = net_with_everything()
    bnfast.train(net, X, Y, 0.01, 2)
    before = state(net)
    with pytest.raises(bnfast.TrainingDiverged):
        bnfast.train(net, X, Y * 1e200, 1e200, 5)
    assert_same_state(state(net), before)

    def stop(step, loss):
        if step == 2:
            raise KeyError("from the callback")
        return False
    with pytest.raises(KeyError, match="from the callback"):
        bnfast.train(net, X, Y, 0.01, 5, callback=stop)
    assert_same_state(state(net), before)
    twin = copy.deepcopy(net)
    assert_same_state(state(twin), before)


@pytest.mark.parametrize("batch_size", [None, 2])
def test_params_that_overflow_while_the_loss_stays_finite_are_divergence(batch_size):
    """A ReLU unit pushed to -inf outputs 0: the loss stays finite (here 0) while the
    update made the params infinite. That is TrainingDiverged, params unchanged, in
    both loops (it used to end in the params setter's ValueError, the result lost)."""
    net = Network([Dense(2, 1, "relu")])
    net.params = [1.0, 1.0, 1.0]
    Xr, yr = np.array([[1.0, 2.0], [3.0, 1.0]]), np.zeros(2)
    with pytest.raises(bnfast.TrainingDiverged,
                       match="the update of step 0 made parameters inf or NaN") as info:
        bnfast.train(net, Xr, yr, lr=1e308, steps=3, batch_size=batch_size)
    assert info.value.params_overflowed and info.value.step == 0
    assert np.isfinite(info.value.loss)
    np.testing.assert_array_equal(net.params, [1.0, 1.0, 1.0])
    with pytest.raises(bnfast.reference.TrainingDiverged, match="made parameters inf") as ref_info:
        bnfast.reference.train([d.to_dict() for d in net.layers], net.params, Xr, yr, 1e308, 3,
                               batch_size=batch_size)
    assert ref_info.value.params_overflowed and ref_info.value.step == 0
