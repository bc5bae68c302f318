"""The network engine (docs/math/networks.md sections 6-11) against PyTorch in float64.

The torch side is written from the documentation only: each Dense layer becomes
torch.nn.Linear (weights copied from Network.unflatten()), then the BN layer, then the
activation module; a Residual block is x + block(x). BN with norm="std" and eps > 0 is
torch.nn.BatchNorm1d itself (running statistics, momentum=None cumulative, eval mode);
the lp norms of section 7 (and "std" at eps = 0, which BatchNorm1d refuses in training)
are written out by hand below, with running statistics as section 9 defines them
(running_var <- s^2 for the lp norms, no Bessel correction). The trainable tensors are
listed in the documented flat order (per Dense layer W row-major, b, gamma, beta) and
checked to reproduce Network.params exactly, so every comparison is against the flat
vector.

Covered: (a) running_mean/running_var and predict after bnfast.train against torch
train-mode SGD followed by eval mode (momentum 0.1, 0.3, None; full batch and mini-batch
through bnfast._core.epoch_permutations; loss "sum" and "mean"); (b) hvp against torch
double backward; (c) loss and gradient per norm and with residual blocks; (d) parameters
and losses after 50 SGD steps of residual networks; (e) noisy BN training, the noise
drawn by a SplitMix64 written from section 8.

Tolerances (relative, norm-wise: max |difference| / max |expected|): 1e-10 for running
statistics and predict, 1e-9 for hvp and the 50-step trajectories, 1e-12 for loss and
gradient. Run with -s to see the worst errors measured per feature.
"""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch_helpers import WorstRelativeErrors, torch_module_fixtures  # noqa: E402
from manual_network import rel_err  # noqa: E402

import bnfast  # noqa: E402
from bnfast import BatchNorm, BNNoise, Dense, Network, Residual  # noqa: E402

nn = torch.nn
F64 = torch.float64

RTOL_RUNNING = 1e-10
RTOL_HVP = 1e-9
RTOL_GRAD = 1e-12
RTOL_TRAJECTORY = 1e-9

_ERRORS = WorstRelativeErrors()
check = _ERRORS.check
report_worst, one_torch_thread = torch_module_fixtures(torch, _ERRORS, "engine")


# ---------------------------------------------------------------- the torch network

class SplitMix64:
    """docs/math/networks.md sections 5 and 8, arithmetic mod 2^64."""

    MASK = (1 << 64) - 1

    def __init__(self, seed):
        self.s = seed & self.MASK

    def next(self):
        self.s = (self.s + 0x9E3779B97F4A7C15) & self.MASK
        z = self.s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & self.MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & self.MASK
        return z ^ (z >> 31)

    def uniform(self):
        return (self.next() >> 11) * 2.0**-53

    def normal(self):
        u1 = self.uniform()
        u2 = self.uniform()
        return math.sqrt(-2.0 * math.log(1.0 - u1)) * math.cos(2.0 * math.pi * u2)


class NoiseStream:
    """The one noise generator of a training run (section 8): seed XOR 0x6A09E667F3BCC909."""

    def __init__(self, seed):
        self.gen = SplitMix64(seed ^ 0x6A09E667F3BCC909)


class Noise(nn.Module):
    """z_ij <- s_ij z_ij + m_ij in training mode, drawn in the documented order (per
    unit j: mu_j, s0_j; then per row i: m_ij, s_ij). Identity in eval mode."""

    def __init__(self, noise, stream):
        super().__init__()
        self.noise, self.stream = noise, stream

    def forward(self, z):
        if not self.training:
            return z
        g, p = self.stream.gen, self.noise
        B, out = z.shape
        s = np.empty((B, out))
        m = np.empty((B, out))
        for j in range(out):
            mu = p.n_mu * (2.0 * g.uniform() - 1.0)
            s0 = 1.0 + (p.n_sigma - 1.0) * g.uniform()
            for i in range(B):
                m[i, j] = mu + p.r_mu * (2.0 * g.uniform() - 1.0)
                s[i, j] = s0 + p.r_sigma * g.normal()
        return torch.tensor(s, dtype=F64) * z + torch.tensor(m, dtype=F64)


class HandBN(nn.Module):
    """BN with the scales of section 7 and the running statistics of section 9:

    train: z = gamma (h - mu)/sqrt(s^2 + eps) + beta, mu the batch mean, s per ``norm``;
           running_mean <- (1-f) running_mean + f mu, running_var <- (1-f) running_var
           + f v, v the unbiased variance ("std") or s^2 (lp), f = momentum or 1/n.
    eval:  z = gamma (h - running_mean)/sqrt(running_var + eps) + beta.
    """

    def __init__(self, out, norm, eps, momentum, gamma, beta, trainable):
        super().__init__()
        self.norm, self.eps, self.momentum = norm, eps, momentum
        gamma = torch.tensor(gamma, dtype=F64)
        beta = torch.tensor(beta, dtype=F64)
        self.weight = nn.Parameter(gamma, requires_grad=trainable)
        self.bias = nn.Parameter(beta, requires_grad=trainable)
        self.register_buffer("running_mean", torch.zeros(out, dtype=F64))
        self.register_buffer("running_var", torch.ones(out, dtype=F64))
        self.updates = 0

    def forward(self, h):
        if not self.training:
            return (self.weight * (h - self.running_mean)
                    / torch.sqrt(self.running_var + self.eps) + self.bias)
        m = h.shape[0]
        mu = h.mean(dim=0)
        if self.norm == "std":
            s2 = ((h - mu) ** 2).mean(dim=0)
        elif self.norm == "l1":
            s2 = h.abs().mean(dim=0) ** 2
        elif self.norm == "l2":
            s2 = (h ** 2).mean(dim=0)
        else:
            s2 = h.abs().amax(dim=0) ** 2
        with torch.no_grad():
            self.updates += 1
            f = 1.0 / self.updates if self.momentum is None else self.momentum
            v = s2 * m / (m - 1) if self.norm == "std" else s2
            self.running_mean.mul_(1 - f).add_(f * mu)
            self.running_var.mul_(1 - f).add_(f * v)
        return self.weight * (h - mu) / torch.sqrt(s2 + self.eps) + self.bias


class Skip(nn.Module):
    def __init__(self, block):
        super().__init__()
        self.block = block

    def forward(self, x):
        return x + self.block(x)


_PHI = {"identity": nn.Identity, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU}


def torch_network(net, noise_stream=None):
    """(torch module, trainable tensors in the documented flat order, BN modules in
    network order) with the current values of ``net``."""
    values = iter(net.unflatten())
    trainable, bns = [], []

    def dense(layer):
        vals = next(values)
        n_in, n_out = layer.in_features, layer.out_features
        lin = nn.Linear(n_in, n_out, bias=layer.bias, dtype=F64)
        with torch.no_grad():
            lin.weight.copy_(torch.tensor(vals["W"]))
            if layer.bias:
                lin.bias.copy_(torch.tensor(vals["b"]))
        trainable.append(lin.weight)
        if layer.bias:
            trainable.append(lin.bias)
        mods = [lin]
        bn = layer.batch_norm
        if bn is not None:
            if bn.trainable:
                gamma, beta = vals["gamma"], vals["beta"]
            else:
                gamma, beta = bn.values(n_out)
            if bn.norm == "std" and bn.eps > 0:
                mod = nn.BatchNorm1d(n_out, eps=bn.eps, momentum=bn.momentum, dtype=F64)
                with torch.no_grad():
                    mod.weight.copy_(torch.tensor(gamma))
                    mod.bias.copy_(torch.tensor(beta))
                mod.weight.requires_grad_(bn.trainable)
                mod.bias.requires_grad_(bn.trainable)
            else:
                mod = HandBN(n_out, bn.norm, bn.eps, bn.momentum, gamma, beta,
                             bn.trainable)
            if bn.trainable:
                trainable.extend([mod.weight, mod.bias])
            mods.append(mod)
            bns.append(mod)
            if bn.noise is not None:
                mods.append(Noise(bn.noise, noise_stream))
        mods.append(_PHI[layer.activation]())
        return nn.Sequential(*mods)

    modules = []
    for layer in net.layers:
        if isinstance(layer, Residual):
            modules.append(Skip(nn.Sequential(*[dense(d) for d in layer.layers])))
        else:
            modules.append(dense(layer))
    model = nn.Sequential(*modules)
    flat = torch.cat([t.detach().reshape(-1) for t in trainable]).numpy()
    np.testing.assert_array_equal(flat, net.params)  # the documented order, exactly
    return model, trainable, bns


def torch_loss(model, X, Y, kind):
    loss = ((model(X) - Y) ** 2).sum()
    return loss / X.shape[0] if kind == "mean" else loss


def flat_of(tensors):
    return torch.cat([t.detach().reshape(-1) for t in tensors]).numpy()


def batch_rows(m, batch_size, seed, steps):
    """The rows of each SGD step: epochs of floor(m/B) consecutive slices of B entries
    of bnfast._core.epoch_permutations."""
    if batch_size is None:
        return [None] * steps
    per_epoch = m // batch_size
    epochs = -(-steps // per_epoch)
    perm = np.asarray(bnfast._core.epoch_permutations(m, seed, epochs))
    rows = []
    for k in range(steps):
        e, j = divmod(k, per_epoch)
        start = e * m + j * batch_size
        rows.append(torch.as_tensor(perm[start:start + batch_size]))
    return rows


def torch_train(net, X, Y, lr, steps, batch_size=None, seed=0, noise=False):
    """torch SGD (train mode) from net's current params; returns (model, trainable,
    BN modules, full-set losses before each step and after the last)."""
    stream = NoiseStream(seed) if noise else None
    model, trainable, bns = torch_network(net, stream)
    opt = torch.optim.SGD(trainable, lr=lr)
    Xt, Yt = torch.tensor(X), torch.tensor(Y)
    losses = []

    def full_loss():
        # Full-set loss with batch statistics but without touching the running
        # statistics or the noise stream: a copy of the BN state is restored after.
        saved = [(b.running_mean.clone(), b.running_var.clone(),
                  b.num_batches_tracked.clone() if hasattr(b, "num_batches_tracked")
                  else None, getattr(b, "updates", None)) for b in bns]
        noisy = [mod for mod in model.modules() if isinstance(mod, Noise)]
        for mod in noisy:
            mod.training = False
        with torch.no_grad():
            value = float(torch_loss(model, Xt, Yt, net.loss_kind))
        for mod in noisy:
            mod.training = True
        for b, (rm, rv, nbt, upd) in zip(bns, saved):
            b.running_mean.copy_(rm)
            b.running_var.copy_(rv)
            if nbt is not None:
                b.num_batches_tracked.copy_(nbt)
            if upd is not None:
                b.updates = upd
        return value

    model.train()
    for rows in batch_rows(X.shape[0], batch_size, seed, steps):
        losses.append(full_loss())
        xb, yb = (Xt, Yt) if rows is None else (Xt[rows], Yt[rows])
        opt.zero_grad()
        torch_loss(model, xb, yb, net.loss_kind).backward()
        opt.step()
    losses.append(full_loss())
    return model, trainable, bns, np.array(losses)


def data(m, n_in, n_out, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, n_in)) * rng.uniform(0.5, 2.0, n_in) + rng.normal(0, 1, n_in)
    W = rng.standard_normal((n_in, n_out))
    Y = np.tanh(X @ W / np.sqrt(n_in)) + 0.1 * rng.standard_normal((m, n_out))
    return X, Y


def perturbed(net, seed, scale=0.1):
    """net with every parameter moved a little off the default draw (b != 0)."""
    rng = np.random.default_rng(seed)
    net.params = net.params + scale * rng.standard_normal(net.num_params)
    return net


# ---------------------------------------------------------------- (a) running statistics

def arch_mlp(momentum):
    return [Dense(4, 6, "tanh", batch_norm=BatchNorm(gamma=0.9, beta=0.1, momentum=momentum)),
            Dense(6, 5, "relu", bias=False,
                  batch_norm=BatchNorm(beta=0.3, eps=1e-3, momentum=momentum)),
            Dense(5, 2)]


def arch_residual(momentum):
    return [Dense(4, 5, "tanh", batch_norm=BatchNorm(momentum=momentum)),
            Residual([Dense(5, 5, "relu", batch_norm=BatchNorm(beta=0.2, momentum=momentum)),
                      Dense(5, 5, "tanh", bias=False,
                            batch_norm=BatchNorm(gamma=0.7, momentum=momentum))]),
            Dense(5, 2, "identity")]


def arch_constant(momentum):
    """Constant (trainable=False) BN, per-neuron and scalar, eps = 0 and eps > 0."""
    return [Dense(4, 6, "sigmoid",
                  batch_norm=BatchNorm(gamma=[1.0, -0.5, 2.0, 0.7, 1.3, 0.9],
                                       beta=[0.0, 0.2, -0.3, 0.1, 0.0, 0.5],
                                       trainable=False, eps=0.0, momentum=momentum)),
            Dense(6, 5, "tanh", bias=False,
                  batch_norm=BatchNorm(gamma=1.2, beta=-0.1, trainable=False, eps=1e-5,
                                       momentum=momentum)),
            Dense(5, 2, batch_norm=BatchNorm(eps=1e-5, momentum=momentum))]


def arch_lp(momentum):
    """One layer per lp norm (running_var the running average of s^2)."""
    return [Dense(4, 6, "tanh", batch_norm=BatchNorm(norm="l1", momentum=momentum)),
            Residual([Dense(6, 6, "sigmoid",
                            batch_norm=BatchNorm(norm="l2", eps=0.0, momentum=momentum))]),
            Dense(6, 4, "relu", batch_norm=BatchNorm(norm="linf", beta=0.5,
                                                     momentum=momentum)),
            Dense(4, 2)]


ARCHS = {"mlp": arch_mlp, "residual": arch_residual, "constBN": arch_constant,
         "lp": arch_lp}
LR = {"sum": 0.01, "mean": 0.15}


@pytest.mark.parametrize("loss", ["sum", "mean"])
@pytest.mark.parametrize("batch_size", [None, 8], ids=["full", "batch8"])
@pytest.mark.parametrize("momentum", [0.1, 0.3, None], ids=["m0.1", "m0.3", "cumulative"])
@pytest.mark.parametrize("arch", list(ARCHS))
def test_running_statistics_and_predict(arch, momentum, batch_size, loss):
    X, Y = data(30, 4, 2, seed=1)  # batches of 8: 3 per epoch, 6 rows left over
    net = perturbed(Network(ARCHS[arch](momentum), loss=loss, seed=2), seed=3)
    steps = 25
    model, trainable, bns, _ = torch_train(net, X, Y, LR[loss], steps, batch_size, seed=4)
    result = bnfast.train(net, X, Y, LR[loss], steps, batch_size=batch_size, seed=4)
    assert result.steps == steps
    check("train params", net.params, flat_of(trainable), RTOL_RUNNING)

    assert len(net.running_mean) == len(bns) == len(net.running_var)
    for mean, var, bn in zip(net.running_mean, net.running_var, bns):
        check("running_mean", mean, bn.running_mean.numpy(), RTOL_RUNNING)
        check("running_var", var, bn.running_var.numpy(), RTOL_RUNNING)
        assert not np.allclose(var, 1.0)  # the statistics moved

    model.eval()
    X_new, _ = data(40, 4, 2, seed=5)
    with torch.no_grad():
        for rows, feature in ((X_new[:1], "predict 1 row"), (X_new, "predict 40 rows"),
                              (X, "predict train rows")):
            check(feature, net.predict(rows), model(torch.tensor(rows)).numpy(),
                  RTOL_RUNNING)
    # rows do not interact in inference
    np.testing.assert_allclose(net.predict(X_new[3:4]), net.predict(X_new)[3:4],
                               rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("arch", ["mlp", "lp"])
def test_running_statistics_batch_of_two_momentum_one(arch):
    """B = 2 (the unbiased variance doubles the biased one) and momentum 1 (the running
    statistics are the last batch's)."""
    X, Y = data(9, 4, 2, seed=9)  # 4 batches an epoch, one row left over
    net = perturbed(Network(ARCHS[arch](1.0), loss="mean", seed=10), seed=11)
    model, trainable, bns, _ = torch_train(net, X, Y, 0.05, 7, batch_size=2, seed=12)
    bnfast.train(net, X, Y, 0.05, 7, batch_size=2, seed=12)
    check("train params", net.params, flat_of(trainable), RTOL_RUNNING)
    for mean, var, bn in zip(net.running_mean, net.running_var, bns):
        check("running_mean", mean, bn.running_mean.numpy(), RTOL_RUNNING)
        check("running_var", var, bn.running_var.numpy(), RTOL_RUNNING)
    model.eval()
    with torch.no_grad():
        check("predict 1 row", net.predict(X[4:5]), model(torch.tensor(X[4:5])).numpy(),
              RTOL_RUNNING)


def test_predict_before_training_uses_initial_statistics():
    """Running mean 0 and var 1 before any step, as torch's eval mode."""
    net = perturbed(Network(arch_residual(0.1), seed=6), seed=7)
    model, _, _ = torch_network(net)
    model.eval()
    X, _ = data(9, 4, 2, seed=8)
    with torch.no_grad():
        check("predict untrained", net.predict(X), model(torch.tensor(X)).numpy(),
              RTOL_RUNNING)


def test_init_resets_running_statistics():
    X, Y = data(30, 4, 2, seed=1)
    net = Network(arch_mlp(0.1), seed=2)
    bnfast.train(net, X, Y, 0.01, 3)
    net.init("he", seed=5)
    for mean, var in zip(net.running_mean, net.running_var):
        np.testing.assert_array_equal(mean, 0.0)
        np.testing.assert_array_equal(var, 1.0)
    # and the cumulative counter starts again: one step with momentum None replaces
    # the initial statistics by the batch's, as in a fresh torch module
    net = Network(arch_mlp(None), seed=2)
    bnfast.train(net, X, Y, 0.01, 3)
    net.init("glorot", seed=9)
    model, _, bns, _ = torch_train(net, X, Y, 0.01, 2, batch_size=8, seed=3)
    bnfast.train(net, X, Y, 0.01, 2, batch_size=8, seed=3)
    for mean, var, bn in zip(net.running_mean, net.running_var, bns):
        check("running_mean", mean, bn.running_mean.numpy(), RTOL_RUNNING)
        check("running_var", var, bn.running_var.numpy(), RTOL_RUNNING)


# ---------------------------------------------------------------- (b) hvp

def torch_hvp(net, X, Y, v):
    model, trainable, _ = torch_network(net)
    model.train()
    Xt, Yt = torch.tensor(X), torch.tensor(Y)
    loss = torch_loss(model, Xt, Yt, net.loss_kind)
    grads = torch.autograd.grad(loss, trainable, create_graph=True)
    vs = torch.split(torch.tensor(v), [t.numel() for t in trainable])
    dot = sum((g.reshape(-1) * vi).sum() for g, vi in zip(grads, vs))
    hv = torch.autograd.grad(dot, trainable, allow_unused=True, materialize_grads=True)
    return flat_of(hv)


def norm_net(activation, norm, eps):
    second = {"identity": "tanh", "sigmoid": "relu", "tanh": "sigmoid", "relu": "identity"}
    return [Dense(3, 5, activation, batch_norm=BatchNorm(gamma=1.1, beta=0.2, eps=eps,
                                                         norm=norm)),
            Dense(5, 4, second[activation], bias=False,
                  batch_norm=BatchNorm(gamma=[0.8, -1.2, 1.5, 0.6], beta=0.1,
                                       trainable=False, eps=eps, norm=norm)),
            Dense(4, 2, activation)]


def residual_net(activation, norm, eps):
    return [Dense(3, 4, "tanh", batch_norm=BatchNorm(eps=eps, norm=norm)),
            Residual([Dense(4, 6, activation, batch_norm=BatchNorm(eps=eps, norm=norm)),
                      Dense(6, 4, "sigmoid", bias=False,
                            batch_norm=BatchNorm(gamma=0.9, eps=eps, norm="std"))]),
            Residual([Dense(4, 4, activation)]),
            Residual([Dense(4, 4, "tanh", batch_norm=BatchNorm(gamma=0.5, beta=-0.2,
                                                                trainable=False, eps=eps,
                                                                norm=norm))]),
            Dense(4, 2)]


def compare_hvp(net, X, Y, seed):
    v = np.random.default_rng(seed).standard_normal(net.num_params)
    expected = torch_hvp(net, X, Y, v)
    check("hvp", net.hvp(X, Y, v), expected, RTOL_HVP)


@pytest.mark.parametrize("loss", ["sum", "mean"])
@pytest.mark.parametrize("eps", [0.0, 1e-5], ids=["eps0", "eps1e-5"])
@pytest.mark.parametrize("norm", ["std", "l1", "l2", "linf"])
@pytest.mark.parametrize("activation", ["identity", "sigmoid", "tanh", "relu"])
def test_hvp_matches_torch_double_backward(activation, norm, eps, loss):
    X, Y = data(12, 3, 2, seed=11)
    net = perturbed(Network(norm_net(activation, norm, eps), loss=loss, seed=12),
                    seed=13, scale=0.3)
    compare_hvp(net, X, Y, seed=14)


@pytest.mark.parametrize("loss", ["sum", "mean"])
@pytest.mark.parametrize("eps", [0.0, 1e-5], ids=["eps0", "eps1e-5"])
@pytest.mark.parametrize("norm", ["std", "l1", "l2", "linf"])
@pytest.mark.parametrize("activation", ["identity", "tanh", "relu"])
def test_hvp_residual_matches_torch(activation, norm, eps, loss):
    X, Y = data(10, 3, 2, seed=21)
    net = perturbed(Network(residual_net(activation, norm, eps), loss=loss, seed=22),
                    seed=23, scale=0.3)
    compare_hvp(net, X, Y, seed=24)


def test_hvp_without_batch_norm_and_one_output():
    X, Y = data(7, 3, 1, seed=31)
    net = perturbed(Network([Dense(3, 5, "sigmoid"), Residual([Dense(5, 5, "tanh")]),
                             Dense(5, 1, "identity")], loss="mean", seed=32), seed=33)
    compare_hvp(net, X, Y, seed=34)
    v = np.random.default_rng(35).standard_normal(net.num_params)
    check("hvp", net.hvp(X, Y[:, 0], v), torch_hvp(net, X, Y, v), RTOL_HVP)


def test_hvp_is_linear_in_v_and_symmetric():
    """Torch-free sanity on one network: H(a u + b w) = a Hu + b Hw, <w, Hu> = <u, Hw>."""
    X, Y = data(12, 3, 2, seed=41)
    net = perturbed(Network(residual_net("tanh", "l2", 1e-5), seed=42), seed=43)
    rng = np.random.default_rng(44)
    u, w = rng.standard_normal((2, net.num_params))
    Hu, Hw = net.hvp(X, Y, u), net.hvp(X, Y, w)
    check("hvp linearity", net.hvp(X, Y, 2.0 * u - 3.0 * w), 2.0 * Hu - 3.0 * Hw, 1e-12)
    assert abs(w @ Hu - u @ Hw) <= 1e-10 * np.max(np.abs(Hu)) * np.sum(np.abs(w))


# ---------------------------------------------------------------- (c) loss and gradient

@pytest.mark.parametrize("loss", ["sum", "mean"])
@pytest.mark.parametrize("eps", [0.0, 1e-5], ids=["eps0", "eps1e-5"])
@pytest.mark.parametrize("norm", ["std", "l1", "l2", "linf"])
@pytest.mark.parametrize("residual", [False, True], ids=["plain", "residual"])
def test_loss_gradient_forward_match_torch(residual, norm, eps, loss):
    X, Y = data(11, 3, 2, seed=51)
    layers = residual_net("relu", norm, eps) if residual else norm_net("tanh", norm, eps)
    net = perturbed(Network(layers, loss=loss, seed=52), seed=53, scale=0.3)
    model, trainable, _ = torch_network(net)
    model.train()
    Xt, Yt = torch.tensor(X), torch.tensor(Y)
    with torch.no_grad():
        check("forward", net.forward(X), model(Xt).numpy(), RTOL_GRAD)
    value = torch_loss(model, Xt, Yt, loss)
    value.backward()
    expected = flat_of([t.grad for t in trainable])
    check("loss", net.loss(X, Y), float(value.detach()), RTOL_GRAD)
    check("gradient", net.gradient(X, Y), expected, RTOL_GRAD)
    lg_loss, lg_grad = net.loss_and_gradient(X, Y)
    check("loss", lg_loss, float(value.detach()), RTOL_GRAD)
    check("gradient", lg_grad, expected, RTOL_GRAD)


def test_mean_loss_is_sum_over_rows():
    """loss="mean" divides by the rows m, not by m * outputs (section 6)."""
    X, Y = data(11, 3, 2, seed=61)
    layers = residual_net("tanh", "std", 1e-5)
    total, mean = Network(layers, loss="sum", seed=62), Network(layers, loss="mean", seed=62)
    assert mean.loss(X, Y) == pytest.approx(total.loss(X, Y) / 11, rel=1e-14)
    # Entries that are 0 in exact arithmetic (a bias ahead of BN) come out as rounding
    # noise of sums whose terms are as large as the largest entries, and the 1/11
    # scaling rounds every term differently: absolute tolerance relative to the largest.
    expected = total.gradient(X, Y) / 11
    np.testing.assert_allclose(mean.gradient(X, Y), expected, rtol=1e-13,
                               atol=1e-13 * np.abs(expected).max())


# ---------------------------------------------------------------- (d) 50-step trajectories

def trajectory_net_a():
    return [Dense(4, 6, "tanh", bias=False, batch_norm=BatchNorm()),
            Residual([Dense(6, 6, "relu", batch_norm=BatchNorm(beta=0.3)),
                      Dense(6, 6, "tanh", bias=False, batch_norm=BatchNorm(gamma=0.5))]),
            Residual([Dense(6, 6, "sigmoid")]),
            Dense(6, 2)]


def trajectory_net_b():
    return [Dense(4, 5, "tanh", batch_norm=BatchNorm(norm="l2", eps=0.0)),
            Residual([Dense(5, 5, "tanh", batch_norm=BatchNorm(norm="l1")),
                      Dense(5, 5, "identity", bias=False,
                            batch_norm=BatchNorm(gamma=0.6, trainable=False, eps=0.0))]),
            Dense(5, 2, batch_norm=BatchNorm(norm="linf", momentum=None))]


TRAJECTORY_NETS = {"resA": trajectory_net_a, "resB-lp": trajectory_net_b}


@pytest.mark.parametrize("loss", ["sum", "mean"])
@pytest.mark.parametrize("batch_size", [None, 8], ids=["full", "batch8"])
@pytest.mark.parametrize("name", list(TRAJECTORY_NETS))
def test_residual_training_matches_torch_sgd(name, batch_size, loss):
    X, Y = data(30, 4, 2, seed=71)
    net = perturbed(Network(TRAJECTORY_NETS[name](), loss=loss, seed=72), seed=73)
    p0 = net.params
    steps = 50
    lr = {"sum": 0.005, "mean": 0.08}[loss]
    _, trainable, _, losses = torch_train(net, X, Y, lr, steps, batch_size, seed=74)
    result = bnfast.train(net, X, Y, lr, steps, batch_size=batch_size, seed=74)
    assert losses[-1] < 0.8 * losses[0]  # it really trained
    assert rel_err(result.params, p0) > 1e-2
    check("params after 50 steps", result.params, flat_of(trainable), RTOL_TRAJECTORY)
    check("losses over 50 steps", result.losses, losses, RTOL_TRAJECTORY)


# ---------------------------------------------------------------- (e) noisy BN

def noisy_net():
    return [Dense(4, 5, "tanh", bias=False,
                  batch_norm=BatchNorm(noise=BNNoise(0.5, 1.25, 0.1, 0.1))),
            Residual([Dense(5, 5, "sigmoid", batch_norm=BatchNorm(
                norm="l2", momentum=0.3, noise=BNNoise(0.3, 1.5, 0.2, 0.05)))]),
            Dense(5, 3, "relu", batch_norm=BatchNorm()),
            Dense(3, 2, batch_norm=BatchNorm(gamma=0.8, trainable=False, eps=0.0,
                                             noise=BNNoise(0.2, 1.1, 0.0, 0.3)))]


@pytest.mark.parametrize("loss", ["sum", "mean"])
@pytest.mark.parametrize("batch_size", [None, 8], ids=["full", "batch8"])
def test_noisy_training_matches_torch(batch_size, loss):
    """The noise of section 8 from a SplitMix64 written from the docs, applied in torch
    after BN and before the activation; the recorded losses are noise free."""
    X, Y = data(30, 4, 2, seed=81)
    net = perturbed(Network(noisy_net(), loss=loss, seed=82), seed=83)
    lr = {"sum": 0.005, "mean": 0.08}[loss]
    steps = 12
    model, trainable, bns, losses = torch_train(net, X, Y, lr, steps, batch_size,
                                                seed=84, noise=True)
    result = bnfast.train(net, X, Y, lr, steps, batch_size=batch_size, seed=84)
    check("noisy params", result.params, flat_of(trainable), RTOL_RUNNING)
    check("noisy losses", result.losses, losses, RTOL_RUNNING)
    for mean, var, bn in zip(net.running_mean, net.running_var, bns):
        check("noisy running_mean", mean, bn.running_mean.numpy(), RTOL_RUNNING)
        check("noisy running_var", var, bn.running_var.numpy(), RTOL_RUNNING)
    model.eval()
    with torch.no_grad():
        check("noisy predict", net.predict(X), model(torch.tensor(X)).numpy(), RTOL_RUNNING)
