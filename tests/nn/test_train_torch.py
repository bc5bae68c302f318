"""bnfast.train against PyTorch autograd + plain SGD in float64 (issue 3, "Done when").

The same network is written in torch from the layer descriptions, its parameters copied
from Network.params in the order of docs/math/networks.md (layer by layer: W (out, in) row-major,
b, gamma, beta), BN by torch.nn.functional.batch_norm(training=True) with the layer's
eps (written out with torch ops for eps = 0, which torch refuses in training),
loss = sum of squares, updated by torch.optim.SGD(lr) (no momentum). Mini-batch runs
feed torch the batches of bnfast.reference.shuffle.EpochShuffler (a new permutation
each epoch, the m mod B left-over samples skipped).

Tolerance: torch and bnfast evaluate the same float64 formulas in different orders
(~1e-15 relative per step). The networks (network_cases.deep_layers, also used by
test_train.py, and one with constant-gamma eps = 0 BN) and learning rates were chosen
so that the dynamics amplify a 1e-15 perturbation to < 1e-13 over 300 steps (some BN
networks amplify it to 1e-2: those are useless for parity). Agreement to RTOL = 1e-9
after 300 steps therefore has a wide margin (measured: 4e-15 on the parameters, 4e-13
on the losses), while a different gradient anywhere is off by far more.
"""

import pytest

torch = pytest.importorskip("torch")
from torch_helpers import single_torch_thread  # noqa: E402

import numpy as np  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import bnfast  # noqa: E402
from bnfast import BatchNorm, Dense, Network  # noqa: E402
from bnfast.reference.shuffle import EpochShuffler  # noqa: E402
from network_cases import deep_layers, regression_data, rel_err  # noqa: E402

RTOL = 1e-9
STEPS = 300

@pytest.fixture(autouse=True)
def one_torch_thread():
    with single_torch_thread(torch):
        yield


def batch_norm(H, gamma, beta, eps):
    """torch's training-mode BN; torch refuses eps = 0 in training, so the exact
    transform is written out (docs/math/batch_norm.md: biased variance)."""
    if eps > 0:
        return F.batch_norm(H, None, None, weight=gamma, bias=beta, training=True, eps=eps)
    mean = H.mean(dim=0)
    var = ((H - mean) ** 2).mean(dim=0)
    return (H - mean) / torch.sqrt(var) * gamma + beta


_PHI = {"identity": lambda z: z, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
        "relu": torch.relu}


class TorchNet:
    """The network as torch tensors, parameters cut from the flat vector in the
    documented order."""

    def __init__(self, layers, flat):
        flat = torch.tensor(np.asarray(flat), dtype=torch.float64)
        self.layers, self.tensors, self.trainable = layers, [], []
        pos = 0

        def take(n, shape):
            nonlocal pos
            t = flat[pos:pos + n].reshape(shape).clone().requires_grad_(True)
            pos += n
            self.trainable.append(t)
            return t

        for layer in layers:
            n_in, n_out = layer.in_features, layer.out_features
            entry = {"W": take(n_in * n_out, (n_out, n_in))}
            if layer.bias:
                entry["b"] = take(n_out, (n_out,))
            bn = layer.batch_norm
            if bn is not None:
                if bn.trainable:
                    entry["gamma"] = take(n_out, (n_out,))
                    entry["beta"] = take(n_out, (n_out,))
                else:
                    gamma, beta = bn.values(n_out)
                    entry["gamma"] = torch.tensor(gamma, dtype=torch.float64)
                    entry["beta"] = torch.tensor(beta, dtype=torch.float64)
            self.tensors.append(entry)
        assert pos == flat.numel()

    def forward(self, X):
        A = X
        for layer, t in zip(self.layers, self.tensors):
            H = A @ t["W"].T
            if "b" in t:
                H = H + t["b"]
            if layer.batch_norm is not None:
                H = batch_norm(H, t["gamma"], t["beta"], layer.batch_norm.eps)
            A = _PHI[layer.activation](H)
        return A

    def loss(self, X, Y):
        return ((Y - self.forward(X)) ** 2).sum()

    def flat(self):
        return torch.cat([t.detach().reshape(-1) for t in self.trainable]).numpy()


def torch_sgd(layers, params, X, Y, lr, steps, batch_size=None, seed=0):
    """(final flat params, full-set losses before each step and after the last)."""
    net = TorchNet(layers, params)
    opt = torch.optim.SGD(net.trainable, lr=lr)
    Xt = torch.tensor(X, dtype=torch.float64)
    Yt = torch.tensor(Y, dtype=torch.float64)
    m = X.shape[0]
    shuffler, perm, pos = EpochShuffler(m, seed), None, m
    losses = []
    for _ in range(steps):
        with torch.no_grad():
            losses.append(float(net.loss(Xt, Yt)))
        if batch_size is None:
            xb, yb = Xt, Yt
        else:
            if pos + batch_size > m:
                perm, pos = torch.as_tensor(shuffler.next_epoch()), 0
            rows = perm[pos:pos + batch_size]
            pos += batch_size
            xb, yb = Xt[rows], Yt[rows]
        opt.zero_grad()
        net.loss(xb, yb).backward()
        opt.step()
    with torch.no_grad():
        losses.append(float(net.loss(Xt, Yt)))
    return net.flat(), np.array(losses)


def mixed_constant_bn_layers():
    """Constant per-neuron gamma/beta with eps = 0 between trainable BN layers."""
    return [Dense(4, 6, "tanh", batch_norm=BatchNorm(gamma=0.8, beta=0.1, eps=0.0)),
            Dense(6, 5, "sigmoid", bias=False,
                  batch_norm=BatchNorm(gamma=[1.0, -0.5, 2.0, 0.7, 1.3],
                                       beta=[0.0, 0.2, -0.3, 0.1, 0.0],
                                       trainable=False, eps=0.0)),
            Dense(5, 3, "relu", batch_norm=BatchNorm(beta=0.4, eps=1e-5)),
            Dense(3, 2, "identity")]


NETWORKS = {"A": (lambda: deep_layers("A"), 0.01), "C": (lambda: deep_layers("C"), 0.003),
            "constBN": (mixed_constant_bn_layers, 0.01)}


@pytest.mark.parametrize("batch_size", [None, 8], ids=["full", "minibatch8"])
@pytest.mark.parametrize("name", list(NETWORKS))
def test_trajectory_matches_torch_sgd(name, batch_size):
    make_layers, lr = NETWORKS[name]
    layers = make_layers()
    X, Y = regression_data()  # 30 samples: batches of 8 leave 6 over each epoch
    net = Network(layers, seed=3)
    p0 = net.params
    expected_params, expected_losses = torch_sgd(layers, p0, X, Y, lr, STEPS, batch_size,
                                                 seed=21)
    result = bnfast.train(net, X, Y, lr, STEPS, batch_size=batch_size, seed=21)
    assert result.steps == STEPS
    assert expected_losses[-1] < 0.5 * expected_losses[0]  # it really trained
    assert rel_err(expected_params, p0) > 1e-2
    assert rel_err(result.params, expected_params) <= RTOL
    assert result.losses.shape == expected_losses.shape
    assert np.max(np.abs(result.losses - expected_losses) / expected_losses) <= RTOL


def test_gradient_matches_torch_autograd():
    """One gradient, every network above, against autograd directly."""
    X, Y = regression_data()
    for make_layers, _ in NETWORKS.values():
        layers = make_layers()
        net = Network(layers, seed=8)
        tnet = TorchNet(layers, net.params)
        tnet.loss(torch.tensor(X), torch.tensor(Y)).backward()
        expected = torch.cat([t.grad.reshape(-1) for t in tnet.trainable]).numpy()
        assert rel_err(net.gradient(X, Y), expected) <= 1e-12
