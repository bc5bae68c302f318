"""Noise in the engine (docs/math/networks.md section 8) beyond dense noisy BN: noisy BN
on convolutions (one draw per sample and channel, shared by the channel's positions) and
the same noise on layers without normalization (the noisy-bn experiment's control), on
Dense and Conv layers: training against bnfast.reference (plain and momentum SGD, full
and mini-batch), a step's gradient against central differences of the reference's
noisy loss with the same draw, the per-channel sharing against a formula written here,
determinism per seed, zero noise as the quiet run bit for bit, noise-free evaluations
(loss, gradient, hvp, forward, predict, eval mode), pickling, and the argument checks.
The parity with torch is in test_conv_torch.py.

Tolerances: trajectories against the reference, 1e-10 relative after 20 steps (as in
test_engine_reference.py: both sides sum in other orders, a few ulps a step, grown by
the steps); a step's gradient read as p0 - p1 at lr 1 against a formula written here,
1e-13 (a handful of products per entry); against central differences (h = 1e-6,
truncation and cancellation ~1e-9 relative) 1e-6, with every ReLU input and max-pool
window at least 1e-4 from a kink or a tie (checked), which a step of 1e-6 cannot reach.
"""

import pickle

import numpy as np
import pytest

import bnfast
from bnfast import (SGD, BatchNorm, BNNoise, Conv1d, Conv2d, Dense, Flatten, LayerNorm,
                    MaxPool1d, Network, _core)
from bnfast import reference as ref
from bnfast.reference._checks import check_layers
from bnfast.reference.network import backprop
from noise_cases import QUIET, engine_draws, noisy_cnn

NAMES = ("noisy-bn-1d", "noisy-bn-2d", "control-2d", "control-dense")


def close(a, b, rel):
    a, b = np.asarray(a), np.asarray(b)
    scale = max(np.max(np.abs(b)), 1e-300)
    assert np.max(np.abs(a - b)) <= rel * scale, np.max(np.abs(a - b)) / scale


def dicts(net):
    return [layer.to_dict() for layer in net.layers]


def step_gradient(net, X, y, seed):
    """The noisy batch gradient of one full-batch update at lr 1 (restores the net)."""
    p0 = net.params
    bnfast.train(net, X, y, 1.0, 1, seed=seed)
    grad = p0 - net.params
    net.params = p0
    return grad


# ---------------------------------------------------------------- against the reference


@pytest.mark.parametrize("momentum", [None, 0.9], ids=["gd", "momentum"])
@pytest.mark.parametrize("batch_size", [None, 4])
@pytest.mark.parametrize("name", NAMES)
def test_training_matches_the_reference(name, batch_size, momentum):
    net, X, y = noisy_cnn(name, m=12)
    layers, p0 = dicts(net), net.params
    ours = bnfast.train(net, X, y, 0.05, 20, batch_size=batch_size, seed=4, record_every=5,
                        optimizer=None if momentum is None else SGD(momentum=momentum))
    theirs = ref.train(layers, p0, X, y, 0.05, 20, batch_size=batch_size, seed=4,
                       record_every=5, loss=net.loss_kind,
                       optimizer=None if momentum is None else {"name": "sgd",
                                                                "momentum": momentum})
    close(ours.params, theirs.params, 1e-10)
    close(ours.losses, theirs.losses, 1e-10)
    for a, b in zip(net.running_mean + net.running_var,
                    theirs.running_mean + theirs.running_var):
        close(a, b, 1e-10)
    # the noise changed the run
    quiet, _, _ = noisy_cnn(name, m=12, noise=QUIET)
    plain = bnfast.train(quiet, X, y, 0.05, 20, batch_size=batch_size, seed=4)
    assert np.max(np.abs(plain.params - ours.params)) > 1e-4


def kink_margin(layers, tape):
    """The smallest distance of a ReLU input from 0 and of a max-pool window's largest
    entry from its second largest (all windows here are 2 x 2, stride 2), among the
    windows whose largest entry is not a ReLU's 0 (ties of zeros pass no gradient)."""
    margin = np.inf
    for layer, rec in zip(layers, tape):
        if layer.type in ("dense", "conv") and layer.activation == "relu":
            margin = min(margin, np.min(np.abs(rec["Z"])))
        if layer.type == "maxpool":
            A = rec["input"]
            m, c, h, w = A.shape
            windows = A[:, :, :h // 2 * 2, :w // 2 * 2].reshape(m, c, h // 2, 2, w // 2, 2)
            windows = np.sort(windows.transpose(0, 1, 2, 4, 3, 5).reshape(-1, 4), axis=1)
            live = windows[windows[:, -1] > 0]
            margin = min(margin, np.min(live[:, -1] - live[:, -2]))
    return margin


@pytest.mark.parametrize("name", NAMES)
def test_step_gradient_matches_central_differences(name):
    """A fixed draw (the first update's of seed 6) makes the noisy loss a function of
    the parameters; the engine's step gradient is its derivative."""
    net, X, y = noisy_cnn(name, m=6, seed=2)
    layers = check_layers(dicts(net))
    index = [k for k, d in enumerate(layers)
             if (d.bn.noise if d.bn is not None else d.noise) is not None]
    noise = dict(zip(index, engine_draws(net, 6, [X.shape[0]])[0]))
    p0 = net.params
    _, _, tape = backprop(layers, p0, X, y, net.loss_kind, noise)
    assert kink_margin(layers, tape) > 1e-4

    def noisy_loss(q):
        return backprop(layers, q, X, y, net.loss_kind, noise)[0]

    # 40 coordinates: the first and last of each layer's parameters, the rest at random
    ends = [k for sl in net.param_slices for k in (sl.start, sl.stop - 1) if sl.stop > sl.start]
    rest = np.random.default_rng(0).choice(p0.size, 40 - len(ends), replace=False)
    coords = np.unique(np.concatenate([ends, rest]))
    h = 1e-6
    numeric = [(noisy_loss(p0 + h * e) - noisy_loss(p0 - h * e)) / (2 * h)
               for e in np.eye(p0.size)[coords]]
    close(step_gradient(net, X, y, 6)[coords], numeric, 1e-6)


@pytest.mark.parametrize("conv", [Conv1d, Conv2d])
def test_one_draw_per_sample_and_channel(conv):
    """A 1x1 convolution z_icp = sum_k W_ck x_ikp with noise s_ic z_icp + m_ic, the
    loss sum_icp (s_ic z_icp + m_ic)^2: dL/dW_ck = sum_ip 2 (s_ic z_icp + m_ic) s_ic
    x_ikp, with (s, m) (m, 2) from the documented stream."""
    net = Network([conv(2, 2, 1, bias=False, noise=BNNoise(0.5, 1.5, 0.2, 0.3)), Flatten()])
    shape = (5, 2, 7) if conv is Conv1d else (5, 2, 3, 4)
    X = np.random.default_rng(3).standard_normal(shape)
    net.params = [0.7, -0.4, 0.3, 1.1]
    W = net.params.reshape(2, 2)
    y = np.zeros((5, net.forward(X).shape[1]))
    (s, m), = engine_draws(net, 9, [5])[0]
    x = X.reshape(5, 2, -1)
    z = np.einsum("ck,ikp->icp", W, x)
    noisy = s[:, :, None] * z + m[:, :, None]
    expected = np.einsum("icp,ic,ikp->ck", 2 * noisy, s, x).reshape(-1)
    close(step_gradient(net, X, y, 9), expected, 1e-13)


# ---------------------------------------------------------------- determinism


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_bits_other_seed_other_noise(name):
    runs = []
    for seed in (3, 3, 4):
        net, X, y = noisy_cnn(name, m=12)
        result = bnfast.train(net, X, y, 0.05, 10, batch_size=4, seed=seed)
        runs.append((result.params, result.losses, net.running_mean + net.running_var))
    (pa, la, ra), (pb, lb, rb), (pc, _, _) = runs
    np.testing.assert_array_equal(pa, pb)
    np.testing.assert_array_equal(la, lb)
    for a, b in zip(ra, rb):
        np.testing.assert_array_equal(a, b)
    assert np.max(np.abs(pa - pc)) > 1e-6


@pytest.mark.parametrize("name", NAMES)
def test_zero_noise_is_the_quiet_run_bit_for_bit(name):
    """s = 1, m = 0: 1 z + 0 = z and 1 dz = dz exactly."""
    zero, X, y = noisy_cnn(name, m=12, noise=BNNoise(0.0, 1.0, 0.0, 0.0))
    quiet, _, _ = noisy_cnn(name, m=12, noise=QUIET)
    a = bnfast.train(zero, X, y, 0.05, 8, batch_size=4, seed=2, record_every=2)
    b = bnfast.train(quiet, X, y, 0.05, 8, batch_size=4, seed=2, record_every=2)
    np.testing.assert_array_equal(a.params, b.params)
    np.testing.assert_array_equal(a.losses, b.losses)
    for x, z in zip(zero.running_mean + zero.running_var,
                    quiet.running_mean + quiet.running_var):
        np.testing.assert_array_equal(x, z)


@pytest.mark.parametrize("name", NAMES)
def test_evaluations_are_noise_free(name):
    """loss, gradient, hvp, forward, predict and the eval-mode loss, gradient and hvp
    are those of the network without noise, bit for bit."""
    net, X, y = noisy_cnn(name, m=8)
    quiet, _, _ = noisy_cnn(name, m=8, noise=QUIET)
    bnfast.train(net, X, y, 0.05, 2, seed=1, batch_size=4)
    quiet.params = net.params
    for n in (net, quiet):  # running statistics away from their initial 0 and 1
        n.recalibrate(X)
    v = np.random.default_rng(5).standard_normal(net.num_params)
    for mode in ("train", "eval"):
        assert net.loss(X, y, mode=mode) == quiet.loss(X, y, mode=mode)
        np.testing.assert_array_equal(net.gradient(X, y, mode=mode),
                                      quiet.gradient(X, y, mode=mode))
        np.testing.assert_array_equal(net.hvp(X, y, v, mode=mode), quiet.hvp(X, y, v, mode=mode))
    np.testing.assert_array_equal(net.forward(X), quiet.forward(X))
    np.testing.assert_array_equal(net.predict(X), quiet.predict(X))


@pytest.mark.parametrize("name", NAMES)
def test_pickle_round_trip_keeps_the_noise(name):
    net, X, y = noisy_cnn(name, m=12)
    bnfast.train(net, X, y, 0.05, 3, batch_size=4, seed=1)
    twin = pickle.loads(pickle.dumps(net))
    assert repr(twin) == repr(net) and dicts(twin) == dicts(net)
    a = bnfast.train(net, X, y, 0.05, 3, batch_size=4, seed=5)
    b = bnfast.train(twin, X, y, 0.05, 3, batch_size=4, seed=5)
    np.testing.assert_array_equal(a.params, b.params)
    for x, z in zip(net.running_mean + net.running_var, twin.running_mean + twin.running_var):
        np.testing.assert_array_equal(x, z)


# ---------------------------------------------------------------- the layer arguments


def test_layer_noise_arguments():
    noise = BNNoise(0.2, 1.1, 0.05, 0.2)
    layer = Dense(3, 2, "relu", noise=noise)
    assert layer.noise == layer.applied_noise == noise
    assert repr(layer) == ("Dense(3, 2, activation='relu', bias=True, "
                           "noise=BNNoise(n_mu=0.2, n_sigma=1.1, r_mu=0.05, r_sigma=0.2))")
    assert layer.to_dict()["noise"] == noise.to_dict()
    assert "noise" not in Dense(3, 2).to_dict() and "noise" not in repr(Dense(3, 2))
    noisy_bn = Conv1d(1, 2, 3, batch_norm=BatchNorm(noise=noise))
    assert noisy_bn.noise is None and noisy_bn.applied_noise == noise
    assert Conv2d(1, 2, 3, noise=noise).spec().noise.r_sigma == 0.2
    assert Conv2d(1, 2, 3).spec().noise is None
    with pytest.raises(TypeError, match="noise must be a bnfast.BNNoise or None, got dict"):
        Dense(3, 2, noise=noise.to_dict())
    for norm in (BatchNorm(), LayerNorm()):
        with pytest.raises(ValueError, match="noise: a normalized layer takes its noise "
                                             "from the normalization"):
            Conv2d(1, 2, 3, normalization=norm, noise=noise)
    # the core's own check: only layers with weights take noise
    spec = _core.LayerSpec(kind=_core.LayerKind.max_pool, kernel=[2], stride=[2],
                           noise=_core.NoiseSpec(**noise.to_dict()))
    with pytest.raises(ValueError, match=r"layers\[1\]: only dense and convolutional layers "
                                         "take noise"):
        _core.Network([Conv1d(1, 2, 3).spec(), spec])
    assert MaxPool1d(2).spec().noise is None
