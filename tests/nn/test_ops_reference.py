"""The new ops of the engine against their independent NumPy twins in bnfast.reference
(LayerNorm, GroupNorm, the cross-entropy losses, the optimizers), and the engine's
gradients against central differences.

The reference gets the layers as plain dicts (Dense.to_dict()) and the flat parameter
vector; it shares no code with the engine. Tolerances (relative, norm-wise), as in
test_engine_reference.py: 1e-12 for loss, gradient, forward and predict (a few dozen
roundings of O(1) values); 1e-9 for the hvp (the reference's complex step differs from
forward-over-reverse in the order of second-order terms); 1e-12 for 100-step
trajectories and running statistics of the optimizers (contracting runs, so per-step
roundings do not grow). Central differences: step h = 1e-6 on O(1) parameters gives
truncation ~h^2 |f'''| ~ 1e-12 and cancellation ~1e-16 |f| / h ~ 1e-10 relative, so 1e-7
has two orders of margin.
"""

import numpy as np
import pytest

import bnfast
from bnfast import SGD, Adam, BatchNorm, Dense, GroupNorm, LayerNorm, Network, Residual
from bnfast import reference as ref
from network_cases import central_differences

RTOL = 1e-12
RTOL_HVP = 1e-9
RTOL_FD = 1e-7


def rel_err(actual, expected):
    actual, expected = np.asarray(actual, float), np.asarray(expected, float)
    assert actual.shape == expected.shape
    return float(np.max(np.abs(actual - expected)) / np.max(np.abs(expected)))


def dicts(net):
    return [entry.to_dict() for entry in net.layers]


NETWORKS = {
    "layer-ce": lambda: Network(
        [Dense(4, 6, "tanh", normalization=LayerNorm(gamma=1.2, beta=0.1)),
         Residual([Dense(6, 6, "relu", normalization=LayerNorm(eps=0.0))]),
         Dense(6, 3)], loss="cross_entropy", seed=1),
    # groups of 3 and 4 features: a group of 2 normalizes to +-gamma whatever its input,
    # and the gradient through it is rounding noise (which Adam scales up to lr)
    "group-ce-sum": lambda: Network(
        [Dense(4, 6, "sigmoid", bias=False, normalization=GroupNorm(2, trainable=False,
                                                                     gamma=0.7)),
         Dense(6, 8, "tanh", normalization=GroupNorm(2)),
         Dense(8, 3)], loss="cross_entropy_sum", seed=2),
    "mixed-mean": lambda: Network(
        [Dense(4, 6, "tanh", batch_norm=BatchNorm(momentum=None)),
         Dense(6, 4, "relu", normalization=GroupNorm(4, eps=0.1)),
         Dense(4, 2, normalization=LayerNorm())], loss="mean", seed=3),
    "batch-ce": lambda: Network(
        [Dense(4, 6, "relu", batch_norm=BatchNorm(norm="l2")),
         Dense(6, 3, normalization=LayerNorm(trainable=False, beta=[0.1, 0.0, -0.1]))],
        loss="cross_entropy", seed=4),
}


def problem(name, m=10):
    net = NETWORKS[name]()
    rng = np.random.default_rng(len(name))
    net.params = net.params + 0.2 * rng.standard_normal(net.num_params)
    X = rng.standard_normal((m, 4))
    y = (rng.integers(0, net.out_features, m) if net.takes_labels
         else rng.standard_normal((m, net.out_features)))
    return net, X, y, rng


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_loss_gradient_hvp_forward_match_the_reference(name):
    net, X, y, rng = problem(name)
    layers, p, kind = dicts(net), net.params, net.loss_kind
    assert rel_err([net.loss(X, y)], [ref.network_loss(layers, p, X, y, kind)]) <= RTOL
    assert rel_err(net.gradient(X, y), ref.network_gradient(layers, p, X, y, kind)) <= RTOL
    v = rng.standard_normal(net.num_params)
    assert rel_err(net.hvp(X, y, v), ref.network_hvp(layers, p, X, y, v, kind)) <= RTOL_HVP
    assert rel_err(net.forward(X), ref.network_forward(layers, p, X)) <= RTOL
    if kind.startswith("cross"):
        assert net.accuracy(X, y) == ref.network_accuracy(
            layers, p, X, y, net.running_mean or None, net.running_var or None)


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_gradient_matches_central_differences(name):
    net, X, y, _ = problem(name)
    grad, numeric = net.gradient(X, y), central_differences(net, X, y)
    assert rel_err(grad, numeric) <= RTOL_FD


OPTIMIZERS = [
    (SGD(momentum=0.9), {"name": "sgd", "momentum": 0.9}, 0.01),
    (SGD(momentum=0.5, nesterov=True, weight_decay=0.01),
     {"name": "sgd", "momentum": 0.5, "nesterov": True, "weight_decay": 0.01}, 0.01),
    (Adam(), {"name": "adam"}, 1e-3),
    (Adam(betas=(0.8, 0.9), eps=1e-6, weight_decay=0.1),
     {"name": "adam", "betas": (0.8, 0.9), "eps": 1e-6, "weight_decay": 0.1}, 1e-3),
]


@pytest.mark.parametrize("batch_size", [None, 5])
@pytest.mark.parametrize("name", ["group-ce-sum", "mixed-mean"])
@pytest.mark.parametrize("ours,theirs,lr", OPTIMIZERS, ids=["momentum", "nesterov-wd",
                                                            "adam", "adam-wd"])
def test_training_with_optimizers_matches_the_reference(ours, theirs, lr, name, batch_size):
    net, X, y, _ = problem(name, m=20)
    g0 = np.max(np.abs(net.gradient(X, y)))
    rates = lr * np.linspace(1.0, 0.5, 100)
    if net.loss_kind.endswith("sum"):  # its gradient is m times the mean's: the same steps
        rates /= X.shape[0]
    expected = ref.train(dicts(net), net.params, X, y, rates, 100, batch_size=batch_size,
                         seed=7, record_every=10, loss=net.loss_kind, optimizer=theirs)
    result = bnfast.train(net, X, y, rates, 100, batch_size=batch_size, seed=7,
                          record_every=10, optimizer=ours)
    assert rel_err(result.params, expected.params) <= RTOL
    # a parameter error e max|p| moves the loss by up to e max|p| ||grad||_1 (first
    # order): the losses' bound is RTOL times that condition number (at least 1)
    kappa = max(1.0, np.max(np.abs(result.params)) * np.sum(np.abs(net.gradient(X, y)))
                / abs(result.losses[-1]))
    assert rel_err(result.losses, expected.losses) <= RTOL * kappa
    for ours_stat, theirs_stat in zip(net.running_mean + net.running_var,
                                      expected.running_mean + expected.running_var):
        assert rel_err(ours_stat, theirs_stat) <= RTOL
    state = expected.optimizer_state
    buffers = ([state["momentum_buffer"]] if "momentum_buffer" in state
               else [state["exp_avg"], state["exp_avg_sq"]])
    # The buffers are averages of the gradients (Adam's second: of their squares), whose
    # entries shrink as training converges: their errors are bounded against the scale
    # of the gradients averaged, the first gradient's g0 (g0^2), not against themselves.
    for mine, theirs_buffer, scale in zip(result.optimizer_state.buffers, buffers,
                                          (g0, g0 ** 2)):
        assert np.max(np.abs(mine - theirs_buffer)) <= RTOL * scale
    if "step" in state:
        assert result.optimizer_state.updates == state["step"]
