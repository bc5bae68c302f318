"""Convolutional networks of the engine against PyTorch in float64 (docs/math/networks.md
section 17): Conv1d/Conv2d (stride, padding), BatchNorm over channels (batch and
positions), LayerNorm (GroupNorm(1, C)) and GroupNorm, max and average pooling, Flatten,
residual blocks of conv layers, the squared and cross-entropy losses; loss, gradient,
hvp (double backward), forward, predict after training, 300-step trajectories of SGD and
momentum SGD, max-pool ties, and gradients against central differences. Noise (section
8): noisy BN on conv layers and the same noise without normalization, one draw per
sample and channel; a training step's gradient and noisy momentum-SGD trajectories
against torch given the draws of bnfast.reference's generator (the documented stream).

The torch side is written from the documentation: W (out, in, *kernel), b, gamma, beta
read from the flat vector in the documented order, F.conv1d/F.conv2d, F.batch_norm,
F.group_norm, F.max_pool*/F.avg_pool*, torch.flatten(x, 1).

Tolerances (relative, norm-wise), as in test_ops_torch.py: 1e-12 for loss, gradient,
forward and predict (sums of a few hundred O(1) products per value, each rounding
~1e-16, in another order than torch's); 1e-9 for the hvp (second-order terms summed in
another order); 1e-12 for 300-step trajectories at learning rates where the iteration
contracts. Central differences: h = 1e-6 on O(1) parameters, truncation ~1e-12 and
cancellation ~1e-10 relative, so 1e-7 leaves two orders of margin (the data keeps max
pool windows and ReLU inputs away from ties and kinks). A noisy step's gradient is read
from one update at lr 1 (p0 - p1: the subtraction adds ~1e-16 |p0|, far below 1e-12
|g| here), so RTOL; the noisy trajectories (60 momentum steps at lr 0.01) add ~1e-16 a
step as the others do, so RTOL_TRAJECTORY.
"""

import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from network_cases import central_differences  # noqa: E402
from noise_cases import engine_draws, noisy_cnn  # noqa: E402
from torch_helpers import WorstRelativeErrors, torch_module_fixtures  # noqa: E402

import bnfast  # noqa: E402
from bnfast import (SGD, AvgPool1d, AvgPool2d, BatchNorm, Conv1d, Conv2d, Dense,  # noqa: E402
                    Flatten, GroupNorm, LayerNorm, MaxPool1d, MaxPool2d, Network, Residual)

F = torch.nn.functional
RTOL = 1e-12
RTOL_HVP = 1e-9
RTOL_TRAJECTORY = 1e-12
RTOL_FD = 1e-7

_ERRORS = WorstRelativeErrors()
check = _ERRORS.check
report_worst, one_torch_thread = torch_module_fixtures(torch, _ERRORS, "convolutional networks")


# ---------------------------------------------------------------- the torch network

_ACT = {"identity": lambda z: z, "tanh": torch.tanh, "sigmoid": torch.sigmoid,
        "relu": torch.relu}


def torch_forward(layers, p, X, training=True, stats=None, noise=None):
    """f(X) from the flat tensor p; noise: None or one (s, m) pair of (m, C) arrays per
    layer with noise (applied_noise) in order, z <- s z + m after the normalization
    (without one, on H) and before phi, per sample and channel (networks.md section 8)."""
    pos, A, bn_index = 0, X, 0
    draws = iter(noise or ())

    def take(n):
        nonlocal pos
        pos += n
        return p[pos - n:pos]

    def layer_forward(d, A):
        nonlocal bn_index
        if isinstance(d, Flatten):
            return torch.flatten(A, 1)
        if isinstance(d, (MaxPool1d, MaxPool2d, AvgPool1d, AvgPool2d)):
            two = isinstance(d, (MaxPool2d, AvgPool2d))
            pool = {(True, False): F.max_pool1d, (True, True): F.max_pool2d,
                    (False, False): F.avg_pool1d, (False, True): F.avg_pool2d}[
                (isinstance(d, (MaxPool1d, MaxPool2d)), two)]
            return pool(A, d.kernel_size, d.stride)
        if isinstance(d, Dense):
            W = take(d.in_features * d.out_features).reshape(d.out_features, d.in_features)
            b = take(d.out_features) if d.bias else None
            H = F.linear(A, W, b)
        else:
            k = int(np.prod(d.kernel_size))
            W = take(d.out_channels * d.in_channels * k).reshape(
                d.out_channels, d.in_channels, *d.kernel_size)
            b = take(d.out_channels) if d.bias else None
            conv = F.conv1d if isinstance(d, Conv1d) else F.conv2d
            H = conv(A, W, b, stride=d.stride, padding=d.padding)
        norm = d.normalization
        if norm is not None:
            c = d.out_features
            if norm.trainable:
                gamma, beta = take(c), take(c)
            else:
                g, bt = norm.values(c)
                gamma, beta = torch.tensor(g), torch.tensor(bt)
            if norm.kind == "layer":
                H = (F.layer_norm(H, (c,), gamma, beta, norm.eps) if H.ndim == 2
                     else F.group_norm(H, 1, gamma, beta, norm.eps))
            elif norm.kind == "group":
                H = F.group_norm(H, norm.groups, gamma, beta, norm.eps)
            elif training:
                H = batch_norm_train(H, gamma, beta, norm)
            else:
                rm, rv = stats[bn_index]
                H = F.batch_norm(H, rm, rv, gamma, beta, training=False, eps=norm.eps)
            bn_index += norm.kind == "batch"
        if noise is not None and d.applied_noise is not None:
            s, m = (torch.tensor(a).reshape(a.shape + (1,) * (H.ndim - 2)) for a in next(draws))
            H = s * H + m
        return _ACT[d.activation](H)

    for entry in layers:
        if isinstance(entry, Residual):
            skip = A
            for d in entry.layers:
                A = layer_forward(d, A)
            A = A + skip
        else:
            A = layer_forward(entry, A)
    assert pos == p.shape[0]
    assert next(draws, None) is None
    return A


def batch_norm_train(H, gamma, beta, norm):
    """BN in training mode per channel over the batch and positions: F.batch_norm for
    the std scale (its ATen op for eps = 0, which F.batch_norm refuses), the l2 scale
    (networks.md section 7) written out."""
    shape = (1, -1) + (1,) * (H.ndim - 2)
    if norm.norm == "l2":
        axes = [0] + list(range(2, H.ndim))
        mu = H.mean(dim=axes, keepdim=True)
        s2 = (H * H).mean(dim=axes, keepdim=True)
        return gamma.reshape(shape) * (H - mu) / torch.sqrt(s2 + norm.eps) + beta.reshape(shape)
    assert norm.norm == "std"
    return torch.batch_norm(H, gamma, beta, None, None, True, 0.0, norm.eps, False)


def torch_loss(out, y, kind):
    if kind == "cross_entropy":
        return F.cross_entropy(out, y)
    if kind == "cross_entropy_sum":
        return F.cross_entropy(out, y, reduction="sum")
    total = ((y - out.reshape(y.shape)) ** 2).sum()
    return total / out.shape[0] if kind == "mean" else total


def targets(net, y):
    return torch.tensor(y, dtype=torch.int64) if net.takes_labels else torch.tensor(y)


# ---------------------------------------------------------------- cases

def mnist1d_cnn(norm="batch"):
    """The MNIST-1D network of docs/design/performance.md (smaller batch here)."""
    def n():
        return {"batch": BatchNorm(), "layer": LayerNorm(), "group": GroupNorm(5)}[norm]
    return Network([Conv1d(1, 25, 5, stride=2, padding=1, activation="relu", normalization=n()),
                    Conv1d(25, 25, 3, stride=2, padding=1, activation="relu", normalization=n()),
                    Conv1d(25, 25, 3, stride=2, padding=1, activation="relu", normalization=n()),
                    Flatten(), Dense(125, 10)], loss="cross_entropy", seed=1)


def digits_cnn():
    """The digits network of docs/design/performance.md."""
    return Network([Conv2d(1, 16, 3, padding=1, activation="relu", batch_norm=BatchNorm()),
                    MaxPool2d(2),
                    Conv2d(16, 32, 3, padding=1, activation="relu", batch_norm=BatchNorm()),
                    MaxPool2d(2),
                    Flatten(), Dense(128, 10)], loss="cross_entropy", seed=2)


def residual_cnn():
    return Network([Conv1d(2, 4, 3, padding=1, activation="tanh",
                           normalization=GroupNorm(2, gamma=1.2, beta=0.1)),
                    Residual([Conv1d(4, 4, 3, padding=1, activation="tanh",
                                     batch_norm=BatchNorm(eps=0.0)),
                              Conv1d(4, 4, 1, normalization=LayerNorm(trainable=False,
                                                                      beta=0.2))]),
                    AvgPool1d(2), Flatten(), Dense(12, 3, "sigmoid")], loss="mean", seed=3)


def strided_2d():
    return Network([Conv2d(3, 4, (3, 2), stride=(2, 1), padding=(1, 0), activation="sigmoid",
                           normalization=BatchNorm(norm="l2", momentum=None)),
                    AvgPool2d((1, 2)),
                    Conv2d(4, 5, 2, bias=False, activation="relu"),
                    MaxPool2d((2, 1), stride=1),
                    Flatten(), Dense(10, 2)], loss="cross_entropy_sum", seed=4)


CASES = {
    "mnist1d-bn": (lambda: mnist1d_cnn("batch"), (10, 1, 40)),
    "mnist1d-ln": (lambda: mnist1d_cnn("layer"), (10, 1, 40)),
    "mnist1d-gn": (lambda: mnist1d_cnn("group"), (10, 1, 40)),
    "digits": (digits_cnn, (6, 1, 8, 8)),
    "residual": (residual_cnn, (7, 2, 6)),
    "strided-2d": (strided_2d, (5, 3, 7, 5)),
}


def problem(name, seed=0):
    build, shape = CASES[name]
    net = build()
    rng = np.random.default_rng([seed, len(name)])
    net.params = net.params + 0.2 * rng.standard_normal(net.num_params)
    X = rng.standard_normal(shape)
    m = shape[0]
    if net.takes_labels:
        y = rng.integers(0, net.out_features, m)
    else:
        y = rng.standard_normal((m, net.out_features))
    return net, X, y, rng


@pytest.mark.parametrize("name", sorted(CASES))
def test_loss_gradient_hvp_forward_match_torch(name):
    net, X, y, rng = problem(name)
    v = rng.standard_normal(net.num_params)
    p = torch.tensor(net.params, requires_grad=True)
    out = torch_forward(net.layers, p, torch.tensor(X))
    loss = torch_loss(out, targets(net, y), net.loss_kind)
    (g,) = torch.autograd.grad(loss, p, create_graph=True)
    (hv,) = torch.autograd.grad(g @ torch.tensor(v), p)
    value, grad = net.loss_and_gradient(X, y)
    check(f"loss {name}", [value], [loss.item()], RTOL)
    check(f"gradient {name}", grad, g.detach().numpy(), RTOL)
    check(f"hvp {name}", net.hvp(X, y, v), hv.numpy(), RTOL_HVP)
    check(f"forward {name}", net.forward(X), out.detach().numpy(), RTOL)


@pytest.mark.parametrize("name", ["mnist1d-bn", "digits", "strided-2d"])
def test_predict_after_training_matches_torch_eval(name):
    net, X, y, _ = problem(name)
    X = np.concatenate([X, X[::-1] * 0.5])
    y = np.concatenate([y, y[::-1]])
    bnfast.train(net, X, y, 0.01, 5, batch_size=4, seed=1)
    stats = [(torch.tensor(a), torch.tensor(b))
             for a, b in zip(net.running_mean, net.running_var)]
    expected = torch_forward(net.layers, torch.tensor(net.params), torch.tensor(X),
                             training=False, stats=stats)
    check(f"predict {name}", net.predict(X), expected.numpy(), RTOL)
    # inference rows are independent
    np.testing.assert_allclose(net.predict(X[:1]), net.predict(X)[:1], rtol=1e-14)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
@pytest.mark.parametrize("name,lr", [("mnist1d-bn", 0.01), ("mnist1d-gn", 0.01),
                                     ("digits", 0.01), ("residual", 0.02)])
def test_300_steps_follow_torch_sgd(name, lr, momentum):
    net, X, y, _ = problem(name, seed=5)
    X = np.concatenate([X, -X])
    y = np.concatenate([y, y])
    m, B = X.shape[0], X.shape[0] // 2
    p = torch.tensor(net.params, requires_grad=True)
    opt = torch.optim.SGD([p], lr=lr, momentum=momentum)
    perm = np.asarray(bnfast._core.epoch_permutations(m, 3, 300 // (m // B) + 1))
    Xt, yt = torch.tensor(X), targets(net, y)
    for k in range(300):
        e, j = divmod(k, m // B)
        rows = torch.as_tensor(perm[e * m + j * B:e * m + (j + 1) * B])
        opt.zero_grad()
        torch_loss(torch_forward(net.layers, p, Xt[rows]), yt[rows], net.loss_kind).backward()
        opt.step()
    result = bnfast.train(net, X, y, lr, 300, batch_size=B, seed=3,
                          optimizer=SGD(momentum=momentum), record_every=100)
    check(f"trajectory {name}", result.params, p.detach().numpy(), RTOL_TRAJECTORY)


@pytest.mark.parametrize("pool,first", [(MaxPool2d(2), (0, 0)), (MaxPool1d(4), (0, 0))])
def test_max_pool_ties_send_the_gradient_to_the_first_maximum(pool, first):
    """A window whose two largest values are equal but come from different input
    channels (z = x1 + x2 through a 1x1 convolution with weights (1, 1)): the gradient of
    the convolution's weights says which one received the window's gradient; PyTorch
    and bnfast both pick the first in row-major order."""
    two = isinstance(pool, MaxPool2d)
    conv = Conv2d(2, 1, 1, bias=False) if two else Conv1d(2, 1, 1, bias=False)
    net = Network([conv, pool, Flatten(), Dense(1, 1, bias=False)], loss="sum")
    net.params = [1.0, 1.0, 1.0]
    x1, x2 = np.array([1.0, 0.0, 0.5, 0.0]), np.array([0.0, 1.0, 0.0, 0.0])  # z = 1, 1, .5, 0
    X = np.stack([x1, x2])[None]
    X = X.reshape(1, 2, 2, 2) if two else X
    y = np.zeros(1)
    p = torch.tensor(net.params, requires_grad=True)
    loss = torch_loss(torch_forward(net.layers, p, torch.tensor(X)), torch.tensor(y), "sum")
    (g,) = torch.autograd.grad(loss, p)
    np.testing.assert_array_equal(net.gradient(X, y), g.numpy())
    # the window's gradient 2 (f - y) = 2 went to the first maximum, x1's position
    np.testing.assert_array_equal(net.gradient(X, y)[:2], [2.0, 0.0])


@pytest.mark.parametrize("name", ["residual", "strided-2d", "mnist1d-gn"])
def test_gradient_matches_central_differences(name):
    net, X, y, _ = problem(name, seed=9)
    grad, numeric = net.gradient(X, y), central_differences(net, X, y)
    check(f"central differences {name}", grad, numeric, RTOL_FD)


def test_convolutional_networks_pickle_exactly():
    net, X, y, _ = problem("digits")
    bnfast.train(net, X, y, 0.01, 3, seed=1)
    twin = pickle.loads(pickle.dumps(net))
    np.testing.assert_array_equal(twin.predict(X), net.predict(X))
    np.testing.assert_array_equal(twin.gradient(X, y), net.gradient(X, y))
    assert repr(twin) == repr(net)


@pytest.mark.parametrize("layers,X,match", [
    ([Conv1d(2, 3, 3)], np.ones((2, 1, 5)), r"layers\[0\] has in_channels 2 but its input "
                                            r"has 1 channels"),
    ([Conv1d(1, 3, 7)], np.ones((2, 1, 5)), r"layers\[0\]: the kernel is larger"),
    ([Conv1d(1, 3, 3), Flatten(), Dense(10, 1)], np.ones((2, 1, 5)),
     r"layers\[2\] has in_features 10 but its input samples have shape \(9,\)"),
    ([Conv2d(1, 3, 3)], np.ones((2, 1, 5)), r"X must have shape \(m, C, H, W\)"),
    ([Residual([Conv1d(2, 2, 3)])], np.ones((2, 2, 5)),
     r"a residual block must map n features to n, got \(2, 5\) -> \(2, 3\)"),
])
def test_shape_errors_name_the_layer(layers, X, match):
    net = Network(layers)
    with pytest.raises(ValueError, match=match):
        net.forward(X)


def test_bad_layer_arguments_are_named():
    with pytest.raises(ValueError, match="kernel_size must be an int or 2 ints"):
        Conv2d(1, 2, (3, 3, 3))
    with pytest.raises(ValueError, match="padding must be >= 0"):
        Conv1d(1, 2, 3, padding=-1)
    with pytest.raises(ValueError, match="stride must be >= 1"):
        MaxPool1d(2, stride=0)
    with pytest.raises(ValueError, match="noise: a normalized layer takes its noise from "
                                         "the normalization"):
        Conv1d(1, 2, 3, batch_norm=BatchNorm(), noise=bnfast.BNNoise())
    with pytest.raises(ValueError, match="cross-entropy losses need a network that ends "
                                         "with a Dense layer"):
        Network([Conv1d(1, 3, 3)], loss="cross_entropy").loss(np.ones((2, 1, 5)), [0, 1])


@pytest.mark.parametrize("name", ["digits", "mnist1d-bn", "strided-2d", "residual"])
def test_eval_mode_loss_gradient_hvp_match_torch_eval(name):
    """mode="eval": the inference-mode loss (BN with the running statistics), its
    gradient and its Hessian-vector product, against torch in eval mode."""
    net, X, y, rng = problem(name)
    bnfast.train(net, X, y, 0.01, 5, seed=1)
    stats = [(torch.tensor(a), torch.tensor(b))
             for a, b in zip(net.running_mean, net.running_var)]
    p = torch.tensor(net.params, requires_grad=True)
    out = torch_forward(net.layers, p, torch.tensor(X), training=False, stats=stats)
    loss = torch_loss(out, targets(net, y), net.loss_kind)
    (g,) = torch.autograd.grad(loss, p, create_graph=True)
    v = rng.standard_normal(net.num_params)
    (hv,) = torch.autograd.grad(g @ torch.tensor(v), p)
    value, grad = net.loss_and_gradient(X, y, mode="eval")
    check(f"eval loss {name}", [value], [loss.item()], RTOL)
    check(f"eval gradient {name}", grad, g.detach().numpy(), RTOL)
    check(f"eval hvp {name}", net.hvp(X, y, v, mode="eval"), hv.numpy(), RTOL_HVP)
    # eval mode takes a single row (rows are independent)
    assert np.isfinite(net.loss(X[:1], y[:1], mode="eval"))
    with pytest.raises(ValueError, match="mode must be one of 'train', 'eval'"):
        net.loss(X, y, mode="test")


# ---------------------------------------------------------------- noise (section 8)

NOISY = ("noisy-bn-1d", "noisy-bn-2d", "control-2d")


@pytest.mark.parametrize("name", NOISY)
def test_noisy_step_gradient_matches_torch(name):
    """One full-batch update at lr 1 gives the noisy batch gradient; torch computes it
    with the draws of the documented stream for the same seed."""
    net, X, y = noisy_cnn(name)
    p0 = net.params
    bnfast.train(net, X, y, 1.0, 1, seed=13)
    draws = engine_draws(net, 13, [X.shape[0]])[0]
    p = torch.tensor(p0, requires_grad=True)
    out = torch_forward(net.layers, p, torch.tensor(X), noise=draws)
    (g,) = torch.autograd.grad(torch_loss(out, targets(net, y), net.loss_kind), p)
    check(f"noisy step gradient {name}", p0 - net.params, g.numpy(), RTOL)
    # the noise mattered: the noise-free gradient is another one
    assert np.max(np.abs(net.gradient(X, y) - g.numpy())) > 1e-3 * np.max(np.abs(g.numpy()))


@pytest.mark.parametrize("name", NOISY)
def test_noisy_momentum_sgd_follows_torch(name):
    """60 mini-batch updates of momentum SGD, fresh draws each update from one stream."""
    net, X, y = noisy_cnn(name, m=12)
    m, B, steps, lr = 12, 4, 60, 0.01
    perm = np.asarray(bnfast._core.epoch_permutations(m, 3, steps // (m // B) + 1))
    draws = engine_draws(net, 3, [B] * steps)
    p = torch.tensor(net.params, requires_grad=True)
    opt = torch.optim.SGD([p], lr=lr, momentum=0.9)
    Xt, yt = torch.tensor(X), targets(net, y)
    for k in range(steps):
        e, j = divmod(k, m // B)
        rows = torch.as_tensor(perm[e * m + j * B:e * m + (j + 1) * B])
        opt.zero_grad()
        out = torch_forward(net.layers, p, Xt[rows], noise=draws[k])
        torch_loss(out, yt[rows], net.loss_kind).backward()
        opt.step()
    result = bnfast.train(net, X, y, lr, steps, batch_size=B, seed=3,
                          optimizer=SGD(momentum=0.9), record_every=20)
    check(f"noisy trajectory {name}", result.params, p.detach().numpy(), RTOL_TRAJECTORY)
