"""bnfast's engine against its independent NumPy twin (bnfast.reference) on every
feature of docs/math/networks.md sections 6-12: BN variants, noise, residual blocks,
loss reductions, hvp (the twin differentiates by the complex step), running statistics
and predict, training with all of them.

Tolerances: one evaluation differs by rounding only (both sides sum in different
orders), a few ulps of the largest term: 1e-12 relative to the largest entry. After
training, rounding differences grow with the number of steps and the contraction of
the map: 1e-10 relative after 30 steps."""

import numpy as np
import pytest

import bnfast
from bnfast import BatchNorm, BNNoise, Dense, Network, Residual
from bnfast import reference as ref

NORMS = ("std", "l1", "l2", "linf")


def network(norm, loss="sum", noise=None, momentum=0.1, seed=0):
    return Network([
        Dense(3, 5, "tanh", batch_norm=BatchNorm(norm=norm, eps=0.0, noise=noise,
                                                  momentum=momentum)),
        Residual([Dense(5, 6, "relu", batch_norm=BatchNorm(gamma=1.3, beta=0.2, norm=norm,
                                                           momentum=momentum)),
                  Dense(6, 5, "sigmoid", bias=False,
                        batch_norm=BatchNorm(0.7, -0.1, trainable=False, norm=norm,
                                             noise=noise, momentum=momentum))]),
        Dense(5, 2)], loss=loss, seed=seed)


def data(m=20, seed=1):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(m, 3)), rng.normal(size=(m, 2))


def dicts(net):
    return [layer.to_dict() for layer in net.layers]


def close(a, b, rel):
    a, b = np.asarray(a), np.asarray(b)
    scale = max(np.max(np.abs(b)), 1e-300)
    assert np.max(np.abs(a - b)) <= rel * scale, np.max(np.abs(a - b)) / scale


@pytest.mark.parametrize("loss", ["sum", "mean"])
@pytest.mark.parametrize("norm", NORMS)
def test_one_evaluation(norm, loss):
    net, (X, Y) = network(norm, loss), data()
    layers, p = dicts(net), net.params
    close(net.loss(X, Y), ref.network_loss(layers, p, X, Y, loss=loss), 1e-13)
    close(net.gradient(X, Y), ref.network_gradient(layers, p, X, Y, loss=loss), 1e-12)
    close(net.forward(X), ref.network_forward(layers, p, X), 1e-13)
    v = np.random.default_rng(2).normal(size=net.num_params)
    close(net.hvp(X, Y, v), ref.network_hvp(layers, p, X, Y, v, loss=loss), 1e-11)


@pytest.mark.parametrize("batch_size", [None, 6])
@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("noise", [None, BNNoise()], ids=["plain", "noisy"])
@pytest.mark.parametrize("norm", NORMS)
def test_training_and_inference(norm, noise, momentum, batch_size):
    net, (X, Y) = network(norm, "mean", noise, momentum), data()
    layers, p0 = dicts(net), net.params
    ours = bnfast.train(net, X, Y, 0.05, 30, batch_size=batch_size, seed=4, record_every=3)
    theirs = ref.train(layers, p0, X, Y, 0.05, 30, batch_size=batch_size, seed=4,
                       record_every=3, loss="mean")
    close(ours.params, theirs.params, 1e-10)
    close(ours.losses, theirs.losses, 1e-10)
    assert ours.steps == theirs.steps == 30 and net._updates == theirs.batches_seen
    for a, b in zip(net.running_mean + net.running_var,
                    theirs.running_mean + theirs.running_var):
        close(a, b, 1e-10)
    close(net.predict(X), ref.network_predict(layers, net.params, X, net.running_mean,
                                              net.running_var), 1e-12)
    close(net.predict(X[:1]), ref.network_predict(layers, net.params, X[:1],
                                                  net.running_mean, net.running_var), 1e-12)


def test_the_noise_of_one_step_is_the_reference_generators():
    """Same draws on both sides: one step of training with noise equals the reference
    to rounding (a different stream would differ at O(1))."""
    net, (X, Y) = network("std", noise=BNNoise(0.5, 2.0, 0.3, 0.4)), data()
    start = net.params
    ours = bnfast.train(net, X, Y, 0.1, 1, seed=11)
    theirs = ref.train(dicts(net), start, X, Y, 0.1, 1, seed=11)
    close(ours.params, theirs.params, 1e-13)
    other = ref.train(dicts(net), start, X, Y, 0.1, 1, seed=12)
    assert np.max(np.abs(other.params - ours.params)) > 1e-3 * np.max(np.abs(ours.params - start))
