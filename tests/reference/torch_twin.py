"""A network of bnfast.reference's layer dicts built in PyTorch (float64) on the same
flat parameter vector, for the tests that check the reference against torch: torch's
own F.linear, F.conv1d/conv2d, F.max_pool1d/2d, F.avg_pool1d/2d, torch.flatten,
F.layer_norm, F.group_norm, F.batch_norm, activations and losses, so the reference's
maths is compared with an implementation it shares nothing with.

Only the helpers that build dicts come from here too (normalization dicts of each kind);
the tests import torch through pytest.importorskip before using the torch parts.
"""

import numpy as np


def dense(n_in, n_out, activation="identity", bias=True, normalization=None, **optional):
    """A layer dict with the key "normalization" (None or a dict with "kind"); optional
    keys (noise) only when given."""
    return {"in_features": n_in, "out_features": n_out, "activation": activation,
            "bias": bias, "normalization": normalization, **optional}


def layer_norm(gamma=1.0, beta=0.0, trainable=True, eps=1e-5, **optional):
    return {"kind": "layer", "gamma": gamma, "beta": beta, "trainable": trainable,
            "eps": eps, **optional}


def group_norm(groups, gamma=1.0, beta=0.0, trainable=True, eps=1e-5, **optional):
    return {"kind": "group", "groups": groups, "gamma": gamma, "beta": beta,
            "trainable": trainable, "eps": eps, **optional}


def batch_norm(gamma=1.0, beta=0.0, trainable=True, eps=1e-5, **optional):
    return {"kind": "batch", "gamma": gamma, "beta": beta, "trainable": trainable,
            "eps": eps, **optional}


def conv(in_channels, out_channels, kernel_size, stride=None, padding=None,
         activation="identity", bias=True, normalization=None, **optional):
    """A conv layer dict; stride defaults to ones, padding to zeros (lists, one entry
    per spatial dimension); optional keys (noise) only when given."""
    dims = len(kernel_size)
    return {"type": "conv", "in_channels": in_channels, "out_channels": out_channels,
            "kernel_size": list(kernel_size), "stride": list(stride or [1] * dims),
            "padding": list(padding or [0] * dims), "activation": activation,
            "bias": bias, "normalization": normalization, **optional}


def maxpool(kernel_size, stride=None):
    return {"type": "maxpool", "kernel_size": list(kernel_size),
            "stride": list(stride or kernel_size)}


def avgpool(kernel_size, stride=None):
    return {"type": "avgpool", "kernel_size": list(kernel_size),
            "stride": list(stride or kernel_size)}


def flatten():
    return {"type": "flatten"}


def residual(*layers):
    return {"residual": list(layers)}


def flat(layers):
    """The layer dicts in network order (a residual block's layers in place)."""
    return [d for entry in layers
            for d in (entry["residual"] if "residual" in entry else [entry])]


def normalization_of(d):
    """(dict or None, kind): "normalization", or the legacy "batch_norm" (kind batch);
    (None, None) for pools and flatten."""
    if "normalization" not in d and "batch_norm" not in d:
        return None, None
    if "normalization" in d:
        norm = d["normalization"]
        return norm, (norm["kind"] if norm is not None else None)
    return d["batch_norm"], ("batch" if d["batch_norm"] is not None else None)


def widths(d):
    """(fan_in, out): (in_features, out_features) of a dense dict, (in_channels *
    prod(kernel_size), out_channels) of a conv dict, None for pools and flatten."""
    kind = d.get("type", "dense")
    if kind == "dense":
        return d["in_features"], d["out_features"]
    if kind == "conv":
        return d["in_channels"] * int(np.prod(d["kernel_size"])), d["out_channels"]
    return None


def count_params(layers):
    """Written from the documented order, independently of reference.param_count."""
    n = 0
    for d in flat(layers):
        if widths(d) is None:
            continue
        fan_in, n_out = widths(d)
        n += n_out * (fan_in + d["bias"])
        norm, _ = normalization_of(d)
        if norm is not None and norm["trainable"]:
            n += 2 * n_out
    return n


def random_params(layers, rng):
    """W ~ N(0, 1/fan_in), b ~ N(0, 0.5^2), gamma in +-[0.6, 1.4], beta in [-0.5, 0.5]."""
    chunks = []
    for d in flat(layers):
        if widths(d) is None:
            continue
        n_in, n_out = widths(d)
        chunks.append(rng.normal(0, 1 / np.sqrt(n_in), n_in * n_out))
        if d["bias"]:
            chunks.append(rng.normal(0, 0.5, n_out))
        norm, _ = normalization_of(d)
        if norm is not None and norm["trainable"]:
            chunks.append(rng.uniform(0.6, 1.4, n_out) * rng.choice([-1.0, 1.0], n_out))
            chunks.append(rng.uniform(-0.5, 0.5, n_out))
    return np.concatenate(chunks)


class BatchStats:
    """Running statistics of the batch-kind layers for torch's F.batch_norm: one
    (mean, var, momentum) per BN layer in network order, updated in place by training
    forward passes; momentum None is the cumulative average (factor 1/n at the n-th
    update, as torch's nn.BatchNorm with momentum=None)."""

    def __init__(self, torch, layers):
        self.entries = []
        for d in flat(layers):
            norm, kind = normalization_of(d)
            if kind == "batch":
                n = widths(d)[1]
                self.entries.append((torch.zeros(n, dtype=torch.float64),
                                     torch.ones(n, dtype=torch.float64),
                                     norm.get("momentum", 0.1)))
        self.updates = 0

    def arrays(self):
        return ([e[0].numpy().copy() for e in self.entries],
                [e[1].numpy().copy() for e in self.entries])


def noise_of(d):
    """The noise dict a dense or conv layer dict applies (its BN's or its own), or None."""
    norm, _ = normalization_of(d)
    return norm.get("noise") if norm is not None else d.get("noise")


def forward(torch, layers, p, X, stats=None, training=True, noise=None):
    """f(X) in torch float64 from the flat parameter tensor p (the documented order).

    stats : None (training: batch statistics only) or a BatchStats: training=True
        updates it (call stats.updates += 1 before, for momentum None), training=False
        normalizes the batch-kind layers with it (inference).
    noise : None or a list of (s, m), float64 (m, out) arrays, one per layer with noise
        (noise_of) in network order: the layer's normalized value (without
        normalization: its pre-activation) z becomes s z + m before the activation, one
        entry per sample and feature, or per sample and channel on all the channel's
        positions (networks.md section 8).
    """
    draws = iter(noise or ())
    F = torch.nn.functional
    acts = {"identity": lambda z: z, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
            "relu": torch.relu}
    A, pos, k = torch.as_tensor(X, dtype=torch.float64), 0, 0

    def take(size):
        nonlocal pos
        pos += size
        return p[pos - size:pos]

    for entry in layers:
        block = entry["residual"] if "residual" in entry else [entry]
        block_input = A
        for d in block:
            kind = d.get("type", "dense")
            if kind in ("maxpool", "avgpool"):
                pool = getattr(F, f"{kind[:3]}_pool{len(d['kernel_size'])}d")
                A = pool(A, d["kernel_size"], d["stride"] or d["kernel_size"])
                continue
            if kind == "flatten":
                A = torch.flatten(A, 1)
                continue
            if kind == "conv":
                n_out, shape = d["out_channels"], (d["out_channels"], d["in_channels"],
                                                   *d["kernel_size"])
                W = take(int(np.prod(shape))).reshape(shape)
                b = take(n_out) if d["bias"] else None
                conv = F.conv1d if len(d["kernel_size"]) == 1 else F.conv2d
                Z = conv(A, W, b, d["stride"], d["padding"])
            else:
                n_in, n_out = d["in_features"], d["out_features"]
                W = take(n_in * n_out).reshape(n_out, n_in)
                b = take(n_out) if d["bias"] else None
                Z = F.linear(A, W, b)
            norm, kind = normalization_of(d)
            if norm is not None:
                if norm["trainable"]:
                    gamma, beta = take(n_out), take(n_out)
                else:
                    gamma, beta = (torch.tensor(np.broadcast_to(np.asarray(norm[key], float),
                                                                (n_out,)).copy())
                                   for key in ("gamma", "beta"))
                eps = norm["eps"]
                if kind == "layer" and Z.ndim > 2:  # on a conv layer: GroupNorm(1, C)
                    Z = F.group_norm(Z, 1, gamma, beta, eps)
                elif kind == "layer":
                    Z = F.layer_norm(Z, (n_out,), gamma, beta, eps)
                elif kind == "group":
                    Z = F.group_norm(Z, norm["groups"], gamma, beta, eps)
                else:
                    mean = var = factor = None
                    if stats is not None:
                        mean, var, momentum = stats.entries[k]
                        factor = 1.0 / stats.updates if momentum is None else momentum
                        k += 1
                    if eps > 0 or not training:
                        Z = F.batch_norm(Z, mean, var, gamma, beta, training,
                                         factor or 0.0, eps)
                    else:  # torch's batch_norm refuses eps = 0 in training
                        dims = [0] + list(range(2, Z.ndim))  # the batch and positions
                        mu, s2 = Z.mean(dim=dims), Z.var(dim=dims, unbiased=False)
                        if mean is not None:
                            with torch.no_grad():
                                m = Z.numel() // Z.shape[1]
                                mean.mul_(1 - factor).add_(factor * mu)
                                var.mul_(1 - factor).add_(factor * s2 * m / (m - 1))
                        c = (-1,) + (1,) * (Z.ndim - 2)  # per channel
                        Z = ((Z - mu.reshape(c)) / torch.sqrt(s2.reshape(c))
                             * gamma.reshape(c) + beta.reshape(c))
            if noise is not None and noise_of(d) is not None:
                s, m = (torch.as_tensor(a).reshape(a.shape + (1,) * (Z.ndim - 2))
                        for a in next(draws))
                Z = s * Z + m
            A = acts[d["activation"]](Z)
        if "residual" in entry:
            A = A + block_input
    assert pos == p.numel(), "the torch twin did not consume every parameter"
    assert next(draws, None) is None, "the torch twin did not use every noise draw"
    return A


def loss(torch, out, y, kind):
    """The reference's losses written with torch's own functions."""
    F = torch.nn.functional
    if kind in ("cross_entropy", "cross_entropy_sum"):
        target = torch.as_tensor(np.asarray(y), dtype=torch.int64)
        return F.cross_entropy(out, target,
                               reduction="mean" if kind == "cross_entropy" else "sum")
    y = torch.as_tensor(np.asarray(y, dtype=np.float64).reshape(out.shape))
    total = ((y - out) ** 2).sum()
    return total / out.shape[0] if kind == "mean" else total


def loss_gradient_hvp(torch, layers, params, X, y, kind="sum", v=None, noise=None):
    """(loss, gradient, Hessian times v or None) by torch autograd (double backward);
    noise as for forward."""
    p = torch.tensor(np.asarray(params, dtype=np.float64), requires_grad=True)
    value = loss(torch, forward(torch, layers, p, X, noise=noise), y, kind)
    (grad,) = torch.autograd.grad(value, p, create_graph=v is not None)
    hv = None
    if v is not None:
        (hv,) = torch.autograd.grad(grad @ torch.tensor(np.asarray(v, float)), p)
        hv = hv.numpy()
    return value.item(), grad.detach().numpy(), hv


# ---------------------------------------------------------------- measured errors

WORST = {}


def within(what, err, tol):
    """err <= tol, recording the largest err seen under ``what`` (printed with -s)."""
    WORST[what] = max(WORST.get(what, 0.0), float(err))
    assert err <= tol, f"{what}: error {err:.3e} > tolerance {tol:.1e}"


def report_worst(title):
    """A module fixture's body: torch on one thread (tiny tensors), then the largest
    errors measured by within() in the module."""
    try:
        import torch
    except ImportError:
        torch = None
    old = torch.get_num_threads() if torch else None
    if torch:
        torch.set_num_threads(1)
    WORST.clear()
    yield
    if torch:
        torch.set_num_threads(old)
    if WORST:
        print(f"\nlargest errors measured ({title}):")
        for what, err in sorted(WORST.items()):
            print(f"  {what:<40s} {err:.2e}")
