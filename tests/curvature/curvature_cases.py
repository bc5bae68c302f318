"""Small networks for the curvature tests, and a PyTorch float64 twin of their loss written
from the documentation (docs/math/networks.md; the parameter order of
``Network.params``: per layer W (out, in) or (out, in, *kernel) row-major, b, gamma,
beta), so that the dense Hessian torch.autograd.functional.hessian builds from it is
independent of bnfast's engine.

Train mode: BN with the batch mean and the biased batch variance per channel (over the
batch and positions); eval mode: F.batch_norm with the running statistics.
"""

import numpy as np

import bnfast
from bnfast import (AvgPool1d, BatchNorm, Conv1d, Conv2d, Dense, Flatten, MaxPool2d,
                    Network)


def mlp(bn=True, seed=0):
    """Dense 3 -> 6 (tanh) -> 4 (tanh) -> 2, BN on the hidden layers; summed loss."""
    def norm():
        return BatchNorm() if bn else None
    return Network([Dense(3, 6, "tanh", batch_norm=norm()),
                    Dense(6, 4, "tanh", batch_norm=norm()),
                    Dense(4, 2)], seed=seed)


def conv1d(bn=True, seed=1):
    """Conv1d 2 -> 3 (k3, tanh, BN), average pool 2, flatten, Dense 9 -> 3, mean
    cross-entropy: X (m, 2, 8)."""
    return Network([Conv1d(2, 3, 3, activation="tanh",
                           batch_norm=BatchNorm() if bn else None),
                    AvgPool1d(2), Flatten(), Dense(9, 3)], loss="cross_entropy", seed=seed)


def conv2d(bn=True, seed=2):
    """Conv2d 1 -> 2 (k3, padding 1, tanh, BN), max pool 2, flatten, Dense 8 -> 1, mean
    squared loss: X (m, 1, 4, 4)."""
    return Network([Conv2d(1, 2, 3, padding=1, activation="tanh",
                           batch_norm=BatchNorm() if bn else None),
                    MaxPool2d(2), Flatten(), Dense(8, 1)], loss="mean", seed=seed)


BUILDERS = {"mlp": (mlp, (3,)), "conv1d": (conv1d, (2, 8)), "conv2d": (conv2d, (1, 4, 4))}


def problem(name, bn=True, m=8, seed=0, train_steps=5):
    """(net, X, y): the network moved off its initialization, random data of m rows,
    and running statistics from ``train_steps`` SGD steps (so that eval mode differs
    from the initial 0/1 statistics)."""
    build, shape = BUILDERS[name]
    net = build(bn)
    rng = np.random.default_rng([seed, len(name), bn])
    net.params = net.params + 0.3 * rng.standard_normal(net.num_params)
    X = rng.standard_normal((m, *shape))
    if net.takes_labels:
        y = rng.integers(0, net.out_features, m)
    else:
        y = rng.standard_normal((m, net.out_features))
    if train_steps:
        params = net.params
        bnfast.train(net, X, y, lr=1e-3, steps=train_steps, batch_size=m // 2, seed=seed)
        net.params = params     # the statistics moved; the point stays where it was
    return net, X, y


# ---- the torch twin ------------------------------------------------------------------

def torch_loss_function(torch, net, X, y, mode):
    """p (num_params,) float64 tensor -> the loss of ``net`` on (X, y) in ``mode``."""
    F = torch.nn.functional
    Xt = torch.tensor(X)
    yt = torch.tensor(y, dtype=torch.int64) if net.takes_labels else torch.tensor(y)
    stats = [(torch.tensor(a), torch.tensor(b))
             for a, b in zip(net.running_mean, net.running_var)]
    act = {"identity": lambda z: z, "tanh": torch.tanh}

    def loss(p):
        pos, A, bn_index = 0, Xt, 0

        def take(count):
            nonlocal pos
            pos += count
            return p[pos - count:pos]

        for layer in net.layers:
            if isinstance(layer, Flatten):
                A = torch.flatten(A, 1)
                continue
            if isinstance(layer, AvgPool1d):
                A = F.avg_pool1d(A, layer.kernel_size, layer.stride)
                continue
            if isinstance(layer, MaxPool2d):
                A = F.max_pool2d(A, layer.kernel_size, layer.stride)
                continue
            if isinstance(layer, Dense):
                W = take(layer.in_features * layer.out_features).reshape(
                    layer.out_features, layer.in_features)
                b = take(layer.out_features) if layer.bias else None
                H = F.linear(A, W, b)
            else:
                k = int(np.prod(layer.kernel_size))
                W = take(layer.out_channels * layer.in_channels * k).reshape(
                    layer.out_channels, layer.in_channels, *layer.kernel_size)
                b = take(layer.out_channels) if layer.bias else None
                conv = F.conv1d if isinstance(layer, Conv1d) else F.conv2d
                H = conv(A, W, b, stride=layer.stride, padding=layer.padding)
            bn = layer.batch_norm
            if bn is not None:
                c = layer.out_features
                gamma, beta = take(c), take(c)
                shape = (1, -1) + (1,) * (H.ndim - 2)
                if mode == "train":
                    axes = [0] + list(range(2, H.ndim))
                    mu = H.mean(dim=axes, keepdim=True)
                    var = ((H - mu) ** 2).mean(dim=axes, keepdim=True)
                    H = (gamma.reshape(shape) * (H - mu) / torch.sqrt(var + bn.eps)
                         + beta.reshape(shape))
                else:
                    mean, var = stats[bn_index]
                    H = F.batch_norm(H, mean, var, gamma, beta, training=False, eps=bn.eps)
                bn_index += 1
            A = act[layer.activation](H)
        assert pos == p.shape[0]
        if net.loss_kind == "cross_entropy":
            return F.cross_entropy(A, yt)
        total = ((yt - A.reshape(yt.shape)) ** 2).sum()
        return total / A.shape[0] if net.loss_kind == "mean" else total

    return loss


def torch_hessian(torch, net, X, y, mode):
    """The dense Hessian (n, n) of the twin's loss at net.params, float64 numpy."""
    f = torch_loss_function(torch, net, X, y, mode)
    H = torch.autograd.functional.hessian(f, torch.tensor(net.params))
    return H.numpy()
