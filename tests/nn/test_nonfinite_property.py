"""NaN and inf in X propagate through every activation, normalization, network kind and
loss exactly as in PyTorch (float64 autograd) and in bnfast.reference (issue 23, item 4):
forward (train mode), loss, gradient, hvp and predict (eval mode, with the running
statistics of two training steps on finite data) compared element by element: the same
NaN, +inf and -inf entries (np.isnan, np.isposinf, np.isneginf masks equal) and close
finite entries.

The grid: 4 activations x normalizations (none, BatchNorm std / l1 / l2 / linf,
LayerNorm, GroupNorm(2)) x kinds (Dense, a Residual block, BNNoise, Conv1d + MaxPool1d /
AvgPool1d + Flatten, Conv2d + MaxPool2d / AvgPool2d + Flatten) x the 4 losses, each
loss with its own non-finite pattern (one NaN, one +inf, one -inf, or a NaN, a +inf and
a -inf) at places drawn from the case's seed. The torch twins are the other tests'
(tests/nn/test_fuzz_engine_torch.py for Dense networks, all BN scales;
tests/nn/test_conv_torch.py for conv networks, which writes BN std and l2 only, so the
conv cases take those two scales). Noise enters training only (networks.md section 8):
the BNNoise cases train with it, then are compared noise free.

One documented difference (docs/design/reliability.md, second round) is checked as what
holds instead of equal masks: the reference's hvp (a complex step) on data holding +-inf
has a NaN iff bnfast's has one and equals it where both are finite (complex arithmetic
meets inf * 0 in the real part, where autodiff does not). Everything else, 5 quantities
x 2 twins x 656 evaluations, has equal masks; the ReLU backward is torch's
threshold_backward (0 where z <= 0, not 0 times a NaN from downstream).

Tolerance on the finite entries, norm-wise relative to the largest finite magnitude:
the torch comparisons' (test_conv_torch.py: 1e-12 first order, 1e-9 hvp), widened to
1e-10 and 1e-8 because the random weights here are not kept away from ill-conditioned
normalizations (eps = 1e-5 bounds 1/d by ~316, and the hvp takes that twice).
"""

import warnings

import numpy as np
import pytest

import bnfast
from bnfast import (AvgPool1d, AvgPool2d, BatchNorm, BNNoise, Conv1d, Conv2d, Dense,
                    Flatten, GroupNorm, LayerNorm, MaxPool1d, MaxPool2d, Network, Residual)
from bnfast import reference as ref

try:
    import torch
except ImportError:                                    # the reference comparisons only
    torch = None
else:
    from test_conv_torch import targets, torch_forward, torch_loss
    from test_fuzz_engine_torch import torch_all
    from torch_helpers import single_torch_thread

RTOL, RTOL_HVP = 1e-10, 1e-8
ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu")
LOSSES = ("sum", "mean", "cross_entropy", "cross_entropy_sum")
NORMS = ("none", "std", "l1", "l2", "linf", "layer", "group")
CONV_NORMS = ("none", "std", "l2", "layer", "group")
KINDS = ("dense", "residual", "noise", "conv1d-max", "conv1d-avg", "conv2d-max",
         "conv2d-avg")
BAD = ((np.nan,), (np.inf,), (-np.inf,), (np.nan, np.inf, -np.inf))
M = 5

CASES = [(kind, norm, activation) for kind in KINDS
         for norm in (CONV_NORMS if kind.startswith("conv") else NORMS)
         for activation in ACTIVATIONS]


def normalization(norm, noise=False):
    if norm == "none":
        return None
    if norm == "layer":
        return LayerNorm()
    if norm == "group":
        return GroupNorm(2)
    return BatchNorm(norm=norm, noise=BNNoise() if noise else None)


def network(kind, norm, activation, loss):
    out = 3 if loss.startswith("cross") else 2
    act = activation
    if kind == "dense":
        layers = [Dense(3, 4, act, normalization=normalization(norm)), Dense(4, out, act)]
    elif kind == "residual":
        layers = [Dense(3, 4, act),
                  Residual([Dense(4, 4, act, normalization=normalization(norm)),
                            Dense(4, 4, act)]),
                  Dense(4, out)]
    elif kind == "noise":   # BNNoise on the BN; beside a row norm or none, on a plain layer
        first = Dense(3, 4, act, normalization=normalization(norm, noise=True))
        noisy = norm in ("none", "layer", "group")
        layers = [first, Dense(4, 4, act, noise=BNNoise() if noisy else None),
                  Dense(4, out)]
    else:
        two = kind.startswith("conv2d")
        pool = {(False, "max"): MaxPool1d, (False, "avg"): AvgPool1d,
                (True, "max"): MaxPool2d, (True, "avg"): AvgPool2d}[two, kind[-3:]]
        conv = (Conv2d(1, 4, 3, padding=1, activation=act, normalization=normalization(norm))
                if two else
                Conv1d(2, 4, 3, padding=1, activation=act, normalization=normalization(norm)))
        layers = [conv, pool(2), Flatten(), Dense(16 if two else 12, out)]
    return Network(layers, loss=loss, seed=3)


def input_shape(kind):
    return {"conv1d": (M, 2, 6), "conv2d": (M, 1, 4, 4)}.get(kind[:6], (M, 3))


def same_pattern(what, ours, theirs, rtol):
    """The same NaN, +inf and -inf entries; finite entries within rtol of the largest
    finite magnitude."""
    ours, theirs = np.atleast_1d(ours), np.atleast_1d(theirs)
    assert ours.shape == theirs.shape, (what, ours.shape, theirs.shape)
    for mask in (np.isnan, np.isposinf, np.isneginf):
        a, b = mask(ours), mask(theirs)
        assert np.array_equal(a, b), (f"{what}: {mask.__name__} at {np.flatnonzero(a)}, "
                                      f"expected at {np.flatnonzero(b)}")
    finite = np.isfinite(theirs)
    scale = np.max(np.abs(theirs[finite]), initial=0.0)
    err = np.max(np.abs(ours[finite] - theirs[finite]), initial=0.0)
    assert err <= rtol * scale, f"{what}: finite entries differ by {err:.3e} (scale {scale:.3e})"


def torch_results(net, X, y, v):
    """(forward, loss, gradient, hvp, predict) by the torch twins."""
    running = (net.running_mean, net.running_var)
    if all(isinstance(e, (Dense, Residual)) for e in net.layers):
        value, grad, hv, _, f, _ = torch_all(net, X, y, v)
        predicted = torch_all(net, X, y, mode="eval", running=running)[4]
        return f, value, grad, hv, predicted
    p = torch.tensor(net.params, requires_grad=True)
    f = torch_forward(net.layers, p, torch.tensor(X))
    value = torch_loss(f, targets(net, y), net.loss_kind)
    (grad,) = torch.autograd.grad(value, p, create_graph=True)
    (hv,) = torch.autograd.grad(grad @ torch.tensor(v), p)
    stats = [(torch.tensor(a), torch.tensor(b)) for a, b in zip(*running)]
    predicted = torch_forward(net.layers, torch.tensor(net.params), torch.tensor(X),
                              training=False, stats=stats)
    return (f.detach().numpy(), value.item(), grad.detach().numpy(), hv.numpy(),
            predicted.numpy())


WHAT = ("forward", "loss", "gradient", "hvp", "predict")


def finite_where_both_are(what, ours, theirs, rtol):
    """The reference's hvp with non-finite data (its complex step: docs/design/
    reliability.md): a NaN somewhere iff bnfast has one, equal where both are finite."""
    ours, theirs = np.atleast_1d(ours), np.atleast_1d(theirs)
    assert np.isnan(ours).any() == np.isnan(theirs).any(), what
    both = np.isfinite(ours) & np.isfinite(theirs)
    same_pattern(what, ours[both], theirs[both], rtol)


@pytest.mark.parametrize("kind,norm,activation", CASES)
def test_nonfinite_data_propagate_as_in_torch_and_the_reference(kind, norm, activation):
    case = CASES.index((kind, norm, activation))
    for j, loss in enumerate(LOSSES):
        net = network(kind, norm, activation, loss)
        rng = np.random.default_rng([case, j])
        X = rng.standard_normal(input_shape(kind))
        y = (rng.integers(0, 3, M) if net.takes_labels
             else rng.standard_normal((M, net.out_features)))
        bnfast.train(net, X, y, 0.05, 2, seed=case)  # running statistics for predict
        bad = BAD[(case + j) % len(BAD)]             # every loss meets every pattern
        X.flat[rng.choice(X.size, len(bad), replace=False)] = bad
        v = rng.standard_normal(net.num_params)
        layers, p = [layer.to_dict() for layer in net.layers], net.params
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            ours = (net.forward(X), net.loss(X, y), net.gradient(X, y), net.hvp(X, y, v),
                    net.predict(X))
            oracle = (ref.network_forward(layers, p, X),
                      ref.network_loss(layers, p, X, y, loss),
                      ref.network_gradient(layers, p, X, y, loss),
                      ref.network_hvp(layers, p, X, y, v, loss),
                      ref.network_predict(layers, p, X, net.running_mean, net.running_var))
            twins = [("reference", oracle)]
            if torch is not None:
                with single_torch_thread(torch):
                    twins.append(("torch", torch_results(net, X, y, v)))
        for name, theirs in twins:
            for what, a, b in zip(WHAT, ours, theirs):
                rule = same_pattern
                if name == "reference" and what == "hvp" and np.isinf(X).any():
                    rule = finite_where_both_are
                rule(f"{loss}, {bad}: {what} against {name}", a, b,
                     RTOL_HVP if what == "hvp" else RTOL)
