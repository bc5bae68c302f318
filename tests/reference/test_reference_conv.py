"""Convolutional networks in bnfast.reference (docs/math/networks.md section 17): conv
layers (1-D and 2-D; stride, zero padding, bias; every normalization kind per channel,
the legacy "batch_norm" key), max and average pools, flatten, conv residual blocks.
Checked against torch float64 (torch_twin: F.conv1d/conv2d, F.max_pool1d/2d,
F.avg_pool1d/2d, torch.flatten, F.batch_norm and F.group_norm on (N, C, *), autograd
gradients, double-backward Hessian-vector products, torch.optim trajectories with the
running statistics of F.batch_norm, eval-mode predictions), against central
differences, exact special cases (max-pool ties and NaN, a conv over the whole input is
a dense layer, the unbiased running variance over batch and positions) and the
argument checks.

Tolerances (the largest errors measured are printed by `pytest -s`):
- Forward passes and losses: both sides evaluate the same sums in other orders (torch's
  conv kernels accumulate over channels and kernel offsets in their own order, and
  multiply by rsqrt(var + eps) where the reference divides by the square root), a few
  ulps per operation over at most seven layers; the normalizations divide by scales
  no smaller than ~0.1 of the centred values here (eps = 0 only on channels of many
  values): 1e-13 relative to the largest entry (measured: below 2e-15).
- Gradients: the backward pass adds a few operations per layer: 1e-12 (measured: below
  2e-15).
- Hessian-vector products: the complex step against double backward, both exact up to
  rounding, but the Hessian sums terms of both signs that cancel to a smaller result:
  1e-10 (measured: below 3e-15).
- The pools alone against torch: the same comparisons and the same sums in the same
  order (avg) or no arithmetic at all (max): 1e-15 (measured: below 2e-16).
- Central differences with h = 1e-6: truncation ~h^2 |third derivative| and rounding
  ~1e-16 |L| / h, each ~1e-10 to 1e-9 here, so 1e-6 (measured: below 2e-9); the data
  keep every max-pool window's two largest entries 1e-4 apart (a step of 1e-6 cannot
  swap them) and have no ReLU.
- Trajectories against torch.optim (300 full-batch steps, 60 mini-batch steps): each
  gradient agrees to ~1e-15 and torch fuses the update's multiply-adds, so each step
  adds ~1e-16 relative differences; the learning rates are small enough that the
  maps do not amplify them (as in test_reference_optimizers.py, checked by
  measurement: see TRAJECTORIES): 1e-12 for parameters, recorded losses, running
  statistics, momentum buffers and the predictions after training (measured: below
  2e-14). Adam's moments: 1e-11, as in test_reference_optimizers.py (measured: 1e-15).
- Exact special cases: max-pool ties route exactly as torch (0 difference); the conv
  over a whole input against the dense layer on the flattened input sums the same
  products in another order: 1e-14; the running statistics against NumPy's mean and
  var (ddof=1) of the hand-computed pre-activations: 1e-14.
"""

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from bnfast import reference
from bnfast.reference.conv import pool_backward, pool_forward
from reference_cases import bn, central_gradient, noise, rel_err
from test_reference_optimizers import torch_train
from torch_twin import (avgpool, batch_norm, conv, count_params, dense, flatten,
                        group_norm, layer_norm, maxpool, random_params, report_worst,
                        residual, within)

LOSSES = ("sum", "mean", "cross_entropy", "cross_entropy_sum")


@pytest.fixture(autouse=True, scope="module")
def worst():
    yield from report_worst("conv networks")


def legacy(d, batch_norm_dict):
    """A conv dict with the legacy "batch_norm" key instead of "normalization"."""
    d = {k: v for k, v in d.items() if k != "normalization"}
    return dict(d, batch_norm=batch_norm_dict)


def networks():
    """(layers, per-sample input shape): every layer type and normalization kind. No
    bias before batch normalization (it has no effect, networks.md section 3: its
    gradient is rounding noise, which Adam's per-coordinate scaling turns into steps of
    ~lr * 1e-15 / eps; test_a_conv_over_the_whole_input_is_a_dense_layer has one)."""
    return {
        # 12 -> conv k3 p1: 12 -> max 2: 6 -> conv k3 s2: 2 -> flatten 8 -> 3
        "conv1d": ([conv(2, 4, [3], [1], [1], "tanh", False, batch_norm()),
                    maxpool([2]),
                    conv(4, 4, [3], [2], [0], "sigmoid", True, group_norm(2)),
                    flatten(), dense(8, 3)], (2, 12)),
        # 7x6 -> conv 3x3 p1: 7x6 -> residual: 7x6 -> max 2x2: 3x3 -> conv 2x3 s(1,2)
        # p(0,1): 2x2 -> avg (2,1) s1: 1x2 -> flatten 8 -> 3
        "conv2d": ([conv(2, 3, [3, 3], [1, 1], [1, 1], "tanh", True, layer_norm(eps=1e-3)),
                    residual(conv(3, 3, [3, 3], [1, 1], [1, 1], "sigmoid", False,
                                  batch_norm(momentum=None))),
                    maxpool([2, 2]),
                    conv(3, 4, [2, 3], [1, 2], [0, 1], "relu", False, batch_norm(eps=0.0)),
                    avgpool([2, 1], [1, 1]), flatten(),
                    dense(8, 3, "identity", True, None)],
                   (2, 7, 6)),
        # 16 -> conv k5 s2 p2: 8 -> residual (two convs): 8 -> max k3 s1 (overlapping): 6
        # -> avg 2: 3 -> flatten 12 -> dense BN 5 -> 3
        "mixed": ([legacy(conv(1, 4, [5], [2], [2], "relu", False),
                          bn([1.0, 0.5, -1.5, 2.0], 0.2, False, 1e-5, momentum=0.3)),
                   residual(conv(4, 4, [3], [1], [1], "tanh", False,
                                 group_norm(4, [0.8, 1.2, 1.0, 0.9], 0.1, False, 1e-5)),
                            conv(4, 4, [1], [1], [0], "identity", True, layer_norm())),
                   maxpool([3], [1]), avgpool([2]), {"type": "flatten"},
                   dict(dense(12, 5, "tanh", False, batch_norm(eps=0.0)), type="dense"),
                   dense(5, 3)], (1, 16)),
    }


NAMES = list(networks())


def case(name, seed, m=6, smooth=False):
    """(layers, params, X). smooth: ReLU replaced by tanh and the draw redrawn until
    every max-pool window's two largest entries are 1e-4 apart (central differences)."""
    layers, shape = networks()[name]
    if smooth:
        layers = [dict(d, activation="tanh") if d.get("activation") == "relu" else d
                  for d in layers]
    for attempt in range(50):
        rng = np.random.default_rng([seed, NAMES.index(name), attempt])
        params = random_params(layers, rng)
        X = rng.normal(size=(m,) + shape)
        if not smooth or pool_margin(layers, params, X) > 1e-4:
            return layers, params, X
    raise AssertionError("no draw with max-pool margins in 50 attempts")


def pool_margin(layers, params, X):
    """The smallest gap between the two largest entries of a max-pool window (the
    windows cut with NumPy's sliding_window_view from the forward pass of the network
    before the pool), inf without max pools."""
    margin = np.inf
    for i, d in enumerate(layers):
        if d.get("type") != "maxpool":
            continue
        n = reference.param_count(layers[:i])
        A = reference.network_forward(layers[:i], params[:n], X)
        dims = tuple(range(2, A.ndim))
        W = sliding_window_view(A, d["kernel_size"], axis=dims)
        W = W[(slice(None), slice(None)) + tuple(slice(None, None, s) for s in d["stride"])]
        top = np.sort(W.reshape(W.shape[:A.ndim] + (-1,)), axis=-1)
        margin = min(margin, np.min(top[..., -1] - top[..., -2]))
    return margin


def targets(rng, m, loss):
    return rng.integers(0, 3, m) if loss.startswith("cross") else rng.normal(size=(m, 3))


# ---------------------------------------------------------------- against torch


@pytest.mark.parametrize("name", NAMES)
def test_networks_against_torch(name):
    """Forward, loss, gradient and Hessian-vector product for the four losses."""
    torch = pytest.importorskip("torch")
    from torch_twin import forward, loss_gradient_hvp
    layers, params, X = case(name, seed=1)
    assert reference.param_count(layers) == count_params(layers) == params.size
    with torch.no_grad():
        expected = forward(torch, layers, torch.tensor(params), X).numpy()
    within("forward", rel_err(reference.network_forward(layers, params, X), expected),
           1e-13)
    rng = np.random.default_rng(2)
    for loss in LOSSES:
        y = targets(rng, X.shape[0], loss)
        v = rng.normal(size=params.size)
        value, grad, hv = loss_gradient_hvp(torch, layers, params, X, y, loss, v)
        within(f"loss ({loss})",
               abs(reference.network_loss(layers, params, X, y, loss) - value) / abs(value),
               1e-13)
        within(f"gradient ({loss})",
               rel_err(reference.network_gradient(layers, params, X, y, loss), grad), 1e-12)
        within(f"hvp ({loss})",
               rel_err(reference.network_hvp(layers, params, X, y, v, loss), hv), 1e-10)


KERNELS = [  # (per-sample shape, kernel_size, stride, padding): odd sizes, windows that
    # leave the last inputs unread, stride > kernel, padding wider than half the kernel
    ((3, 11), [3], [2], [1]), ((2, 9), [4], [3], [0]), ((2, 7), [2], [3], [3]),
    ((2, 6, 7), [3, 2], [2, 1], [1, 0]), ((3, 5, 5), [2, 2], [3, 3], [0, 2]),
    ((1, 4, 9), [4, 1], [1, 4], [2, 0]),
]


@pytest.mark.parametrize("shape,kernel,stride,padding", KERNELS)
def test_conv_and_pool_kernels_against_torch(shape, kernel, stride, padding):
    """A conv layer alone (identity, bias), then each pool alone on its output: the
    outputs and the gradients (weights, bias; the pools' input gradients) as torch."""
    torch = pytest.importorskip("torch")
    from torch_twin import forward, loss_gradient_hvp
    rng = np.random.default_rng(len(shape) * 100 + kernel[0] * 10 + stride[0])
    layers = [conv(shape[0], 3, kernel, stride, padding), flatten()]
    params = random_params(layers, rng)
    X = rng.normal(size=(4,) + shape)
    F = reference.network_forward(layers, params, X)
    with torch.no_grad():
        expected = forward(torch, layers, torch.tensor(params), X).numpy()
    within("conv kernel forward", rel_err(F, expected), 1e-13)
    y = rng.normal(size=F.shape)
    _, grad, _ = loss_gradient_hvp(torch, layers, params, X, y)
    within("conv kernel gradient",
           rel_err(reference.network_gradient(layers, params, X, y), grad), 1e-12)
    for kind in ("maxpool", "avgpool"):
        f = getattr(torch.nn.functional, f"{kind[:3]}_pool{len(kernel)}d")
        pk = [min(k + 1, n) for k, n in zip(kernel, shape[1:])]
        t = torch.tensor(X, requires_grad=True)
        out = f(t, pk, stride)
        G = rng.normal(size=tuple(out.shape))
        out.backward(torch.tensor(G))
        H, arg = pool_forward(X, kind, tuple(pk), tuple(stride))
        dA = pool_backward(G, X.shape, kind, tuple(pk), tuple(stride), arg)
        within(f"{kind} kernel forward", rel_err(H, out.detach().numpy()), 1e-15)
        within(f"{kind} kernel input gradient", rel_err(dA, t.grad.numpy()), 1e-15)


# ---------------------------------------------------------------- max-pool ties and NaN


TIES_1D = np.array([[[1., 3., 3., 2., 5., 5., 5., 0., 4., 1., 4., 2.],
                     [0., 0., 0., 0., -1., -1., 7., 7., 2., 2., 2., 2.]]])
TIES_2D = np.array([[[[1., 2., 2., 0., 3.], [2., 1., 0., 0., 3.], [3., 3., 1., 1., 3.],
                      [3., 3., 1., 1., 3.]]]])


@pytest.mark.parametrize("x,kernel,stride", [
    (TIES_1D, (2,), (2,)), (TIES_1D, (3,), (3,)), (TIES_1D, (3,), (1,)),
    (TIES_1D, (4,), (2,)), (TIES_2D, (2, 2), (2, 2)), (TIES_2D, (2, 2), (1, 1)),
    (TIES_2D, (3, 2), (1, 2)), (TIES_2D, (4, 5), (1, 1))])
def test_max_pool_ties_route_the_gradient_to_the_first_maximum(x, kernel, stride):
    """Windows with equal maxima: the output is the maximum and its whole gradient goes
    to the first maximal entry in row-major scan order, as torch (exactly)."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    t = torch.tensor(x, requires_grad=True)
    out = (F.max_pool1d if x.ndim == 3 else F.max_pool2d)(t, kernel, stride)
    G = np.arange(1.0, out.numel() + 1).reshape(tuple(out.shape))
    out.backward(torch.tensor(G))
    H, arg = pool_forward(x, "maxpool", kernel, stride)
    np.testing.assert_array_equal(H, out.detach().numpy())
    np.testing.assert_array_equal(pool_backward(G, x.shape, "maxpool", kernel, stride, arg),
                                  t.grad.numpy())
    # by hand: the first maximal offset of each window
    windows = sliding_window_view(x, kernel, axis=tuple(range(2, x.ndim)))
    every = tuple(slice(None, None, s) for s in stride)
    windows = windows[(slice(None), slice(None)) + every]
    flat_windows = windows.reshape(windows.shape[:x.ndim] + (-1,))
    np.testing.assert_array_equal(arg, np.argmax(flat_windows, axis=-1))


def test_max_pool_ties_through_a_network():
    """A 1x1 conv copies channel 0 exactly (weights 1 and 0, no bias), whose windows
    have tied maxima; channel 1 differs at the tied positions, so the gradient of the
    weight of channel 1 tells which tied entry received the pool's gradient: the
    first, as in torch's autograd and by hand."""
    torch = pytest.importorskip("torch")
    from torch_twin import loss_gradient_hvp
    layers = [conv(2, 1, [1], bias=False), maxpool([3]), flatten(), dense(4, 1)]
    x0 = np.array([[2., 5., 5., 1., 1., 0., 3., 2., 3., 4., 4., 4.],
                   [1., 0., 1., 7., 6., 7., 1., 1., 1., 2., 3., 3.]])
    x1 = np.arange(24.0).reshape(2, 12) ** 1.5
    X = np.stack([x0, x1], axis=1)  # (2, 2, 12)
    params = np.array([1.0, 0.0, 0.5, -1.0, 2.0, 0.25, 0.1])
    y = np.array([1.0, -2.0])
    grad = reference.network_gradient(layers, params, X, y)
    _, expected, _ = loss_gradient_hvp(torch, layers, params, X, y)
    # another routing would move grad[1] by O(1) (x1 differs by >= 1 between tied
    # entries); the sums themselves may differ in the last bits: 1e-14
    within("max-pool ties: network gradient", rel_err(grad, expected), 1e-14)
    # by hand: dL/dW[0, 1] = sum_i r_i sum_windows v_w x1[i, first argmax of x0]
    F = reference.network_forward(layers, params, X)[:, 0]
    r = 2 * (F - y)
    first = [[1, 3, 6, 9], [0, 3, 6, 10]]  # the first maximum of each window of x0
    by_hand = sum(r[i] * params[2:6] @ x1[i, first[i]] for i in range(2))
    assert grad[1] == pytest.approx(by_hand, rel=1e-14)


def test_nan_in_a_max_pool_window_is_its_maximum():
    """As torch: NaN propagates through the pool (NaN where torch has NaN), the other
    windows are unaffected."""
    torch = pytest.importorskip("torch")
    from torch_twin import forward
    layers = [conv(1, 2, [1, 1], bias=True), maxpool([2, 2]), flatten()]
    params = np.array([1.0, -2.0, 0.5, 0.25])
    X = np.arange(32.0).reshape(2, 1, 4, 4) % 7
    X[0, 0, 1, 1] = np.nan  # the window (0, 0) of sample 0
    X[1, 0, 3, 2] = np.nan  # the window (1, 1) of sample 1
    F = reference.network_forward(layers, params, X)
    with torch.no_grad():
        expected = forward(torch, layers, torch.tensor(params), X).numpy()
    np.testing.assert_array_equal(F, expected)  # equal_nan: NaN where torch has NaN
    assert np.isnan(F).sum() == 4 and np.isnan(F[0, [0, 4]]).all()
    assert np.isnan(F[1, [3, 7]]).all()
    H, arg = pool_forward(np.array([[[np.nan, 9.0, np.nan, 1.0]]]), "maxpool", (4,), (1,))
    assert np.isnan(H).all() and arg.item() == 2  # the last NaN, as torch's kernel


# ---------------------------------------------------------------- central differences


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("loss", ["sum", "cross_entropy"])
def test_gradient_matches_central_differences(name, loss):
    layers, params, X = case(name, seed=3, m=5, smooth=True)
    y = targets(np.random.default_rng(4), X.shape[0], loss)
    numerical = central_gradient(lambda p: reference.network_loss(layers, p, X, y, loss),
                                 params)
    within("gradient vs central differences",
           rel_err(reference.network_gradient(layers, params, X, y, loss), numerical), 1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_hvp_matches_differences_of_the_gradient_and_is_symmetric(name):
    layers, params, X = case(name, seed=5, m=5, smooth=True)
    rng = np.random.default_rng(6)
    v1, v2 = rng.normal(size=(2, params.size))
    t = 1e-6
    for loss in ("mean", "cross_entropy_sum"):
        y = targets(rng, X.shape[0], loss)
        h1 = reference.network_hvp(layers, params, X, y, v1, loss)
        diff = (reference.network_gradient(layers, params + t * v1, X, y, loss)
                - reference.network_gradient(layers, params - t * v1, X, y, loss)) / (2 * t)
        within("hvp vs differences of the gradient", rel_err(h1, diff), 1e-6)
        h2 = reference.network_hvp(layers, params, X, y, v2, loss)
        assert abs(v1 @ h2 - v2 @ h1) <= 1e-12 * np.linalg.norm(v1) * np.linalg.norm(h2)


# ---------------------------------------------------------------- training against torch


def check_state(what, ours, opt, theirs, steps):
    """The reference's optimizer state against torch's optimizer.state[p]; Adam's
    moments to 1e-11 (they follow the gradient, see test_reference_optimizers.py)."""
    if opt is None:
        assert ours is None
    elif opt["name"] == "sgd":
        within(f"{what}: momentum buffer",
               rel_err(ours["momentum_buffer"], theirs["momentum_buffer"].numpy()), 1e-12)
    else:
        assert ours["step"] == steps == int(theirs["step"].item())
        for key in ("exp_avg", "exp_avg_sq"):
            within(f"{what}: Adam {key}", rel_err(ours[key], theirs[key].numpy()), 1e-11)


def check_predictions(torch, layers, ours, params, stats, X, y):
    """network_predict with the trained running statistics against torch's eval-mode
    forward with torch's, and the accuracy against torch's argmax."""
    from torch_twin import forward
    with torch.no_grad():
        expected = forward(torch, layers, torch.tensor(params), X, stats,
                           training=False).numpy()
    predicted = reference.network_predict(layers, ours.params, X, ours.running_mean,
                                          ours.running_var)
    within("predict after training", rel_err(predicted, expected), 1e-12)
    assert reference.network_accuracy(layers, ours.params, X, y, ours.running_mean,
                                      ours.running_var) == np.mean(expected.argmax(1) == y)


# learning rates at which the 300-step maps do not amplify roundings (measured: with
# lr 0.05 the "conv1d" trajectory grows differences ~1000-fold per 50 steps, 1e-7 after
# 300; with 0.02 they stay below 1e-15)
TRAJECTORIES = {"sgd": (None, 0.02), "momentum": ({"name": "sgd", "momentum": 0.9}, 0.003)}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("opt", list(TRAJECTORIES))
def test_300_full_batch_steps_against_torch_optim(name, opt):
    """Parameters, recorded losses, running statistics (BN on conv layers: over batch
    and positions, momentum 0.1, 0.3 and None) and the momentum buffer after 300 steps;
    then predictions and accuracy on new data in inference mode."""
    torch = pytest.importorskip("torch")
    opt, lr = TRAJECTORIES[opt]
    layers, params, X = case(name, seed=7, m=10)
    y = np.random.default_rng(8).integers(0, 3, X.shape[0])
    result = reference.train(layers, params, X, y, lr, 300, record_every=50,
                             loss="cross_entropy", optimizer=opt)
    p, losses, stats, state = torch_train(torch, layers, params, X, y, "cross_entropy", opt,
                                          np.full(300, lr), 300, 50)
    within("300 steps: params", rel_err(result.params, p), 1e-12)
    within("300 steps: recorded losses", rel_err(result.losses, losses), 1e-12)
    assert result.losses[-1] < 0.8 * result.losses[0]
    ours = result.running_mean + result.running_var
    theirs = stats.arrays()[0] + stats.arrays()[1]
    assert len(ours) == len(theirs) > 0
    for a, b in zip(ours, theirs):
        within("300 steps: running statistics", rel_err(a, b), 1e-12)
    check_state("300 steps", result.optimizer_state, opt, state, 300)
    _, _, X_new = case(name, seed=9, m=7)
    check_predictions(torch, layers, result, p, stats, X_new,
                      np.random.default_rng(10).integers(0, 3, 7))


@pytest.mark.parametrize("name,opt", [
    ("conv1d", {"name": "sgd", "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    ("conv2d", {"name": "adam", "betas": (0.5, 0.9)}), ("conv1d", {"name": "adam"}),
    ("mixed", {"name": "sgd", "momentum": 0.5})])
def test_mini_batches_against_torch_optim(name, opt):
    """60 steps on batches of 4 of 12 rows (EpochShuffler batches), the running
    statistics of the batches, then inference. Not Adam on "mixed": the beta of its
    layer normalization shifts each channel by a constant, which the pools and flatten
    pass on as the same shift of every sample's features, which the dense layer's batch
    normalization removes; so its gradient is rounding noise, which Adam scales to steps
    of ~lr * 1e-15 / eps (differences ~1e-11 after 60 steps, measured)."""
    torch = pytest.importorskip("torch")
    layers, params, X = case(name, seed=11, m=12)
    y = np.random.default_rng(12).integers(0, 3, 12)
    lr = 0.002 if opt["name"] == "sgd" else 2e-4
    result = reference.train(layers, params, X, y, lr, 60, batch_size=4, seed=5,
                             record_every=20, loss="cross_entropy", optimizer=opt)
    p, losses, stats, state = torch_train(torch, layers, params, X, y, "cross_entropy",
                                          opt, np.full(60, lr), 60, 20, batch_size=4,
                                          seed=5)
    within("60 mini-batch steps: params", rel_err(result.params, p), 1e-12)
    within("60 mini-batch steps: losses", rel_err(result.losses, losses), 1e-12)
    for a, b in zip(result.running_mean + result.running_var,
                    stats.arrays()[0] + stats.arrays()[1]):
        within("60 mini-batch steps: running statistics", rel_err(a, b), 1e-12)
    check_state("60 mini-batch steps", result.optimizer_state, opt, state, 60)
    check_predictions(torch, layers, result, p, stats, X, y)


# ---------------------------------------------------------------- exact special cases


def test_running_variance_is_unbiased_over_batch_and_positions():
    """One step with momentum 1: the running statistics are the batch's, per channel
    over the m * P values of the pre-activation (P positions), the variance times
    m P / (m P - 1); an lp norm's running "variance" is s^2 without the factor."""
    rng = np.random.default_rng(13)
    for norm in ("std", "l2", "linf"):
        layers = [conv(2, 3, [2, 2], [1, 2], [0, 1], "tanh", False,
                       batch_norm(momentum=1.0, norm=norm)), flatten(), dense(27, 1)]
        params = random_params(layers, rng)
        X = rng.normal(size=(4, 2, 4, 4))  # conv output (4, 3, 3, 3): 36 values a channel
        r = reference.train(layers, params, X, rng.normal(size=4), 1e-3, 1)
        W = params[:24].reshape(3, 2, 2, 2)
        Xp = np.pad(X, [(0, 0), (0, 0), (0, 0), (1, 1)])
        H = np.stack([[[(Xp[n, :, i:i + 2, 2 * j:2 * j + 2] * W[o]).sum()
                        for j in range(3)] for i in range(3)]
                      for n in range(4) for o in range(3)]).reshape(4, 3, 3, 3)
        values = H.transpose(1, 0, 2, 3).reshape(3, -1)
        assert rel_err(r.running_mean[0], values.mean(axis=1)) <= 1e-14
        var = {"std": values.var(axis=1, ddof=1), "l2": (values ** 2).mean(axis=1),
               "linf": np.abs(values).max(axis=1) ** 2}[norm]
        assert rel_err(r.running_var[0], var) <= 1e-14


@pytest.mark.parametrize("kind", ["batch", "layer", "group", None])
def test_a_conv_over_the_whole_input_is_a_dense_layer(kind):
    """kernel_size = the input's size, no padding: one position, so the conv layer with
    its normalization (batch: per channel over the batch; layer; group) is the dense
    layer on the flattened input with the same parameter vector (W (O, C, L) row-major
    is W (O, C * L))."""
    norm = {"batch": batch_norm(momentum=0.5), "layer": layer_norm(),
            "group": group_norm(2), None: None}[kind]
    as_conv = [conv(2, 4, [3, 2], [1, 1], [0, 0], "tanh", True, norm), flatten(),
               dense(4, 2)]
    as_dense = [flatten(), dense(12, 4, "tanh", True, norm), dense(4, 2)]
    rng = np.random.default_rng(14)
    params = random_params(as_dense, rng)
    X, y = rng.normal(size=(5, 2, 3, 2)), rng.normal(size=(5, 2))
    v = rng.normal(size=params.size)
    assert reference.param_count(as_conv) == params.size
    for f in (lambda ls: reference.network_forward(ls, params, X),
              lambda ls: reference.network_gradient(ls, params, X, y),
              lambda ls: reference.network_hvp(ls, params, X, y, v)):
        assert rel_err(f(as_conv), f(as_dense)) <= 1e-14
    a = reference.train(as_conv, params, X, y, 0.01, 5, batch_size=3, seed=2)
    b = reference.train(as_dense, params, X, y, 0.01, 5, batch_size=3, seed=2)
    assert rel_err(a.params, b.params) <= 1e-14
    for s, t in zip(a.running_mean + a.running_var, b.running_mean + b.running_var):
        assert rel_err(s, t) <= 1e-14


def test_group_norm_with_one_group_is_the_layer_kind_on_conv_layers():
    rng = np.random.default_rng(15)
    as_layer = [conv(2, 4, [3], [1], [1], "tanh", True, layer_norm(eps=1e-3)), flatten(),
                dense(24, 2)]
    as_group = [conv(2, 4, [3], [1], [1], "tanh", True, group_norm(1, eps=1e-3)), flatten(),
                dense(24, 2)]
    params = random_params(as_layer, rng)
    X, y = rng.normal(size=(3, 2, 6)), rng.normal(size=(3, 2))
    v = rng.normal(size=params.size)
    np.testing.assert_array_equal(reference.network_gradient(as_group, params, X, y),
                                  reference.network_gradient(as_layer, params, X, y))
    np.testing.assert_array_equal(reference.network_hvp(as_group, params, X, y, v),
                                  reference.network_hvp(as_layer, params, X, y, v))
    # per-sample statistics: one sample alone is the same as within the batch
    F = reference.network_forward(as_layer, params, X)
    assert rel_err(reference.network_forward(as_layer, params, X[1:2]), F[1:2]) <= 1e-15


def test_avg_pool_is_the_window_mean_and_dense_type_key_is_accepted():
    X = np.arange(2 * 3 * 5, dtype=float).reshape(2, 3, 5) ** 1.3
    layers = [avgpool([2], [2]), {"type": "flatten"}]
    F = reference.network_forward(layers, np.zeros(0), X)
    np.testing.assert_array_equal(F, ((X[:, :, 0:4:2] + X[:, :, 1:5:2]) / 2).reshape(2, 6))
    a = [dense(3, 2, "tanh", True, batch_norm()), dense(2, 1)]
    b = [dict(a[0], type="dense"), a[1]]
    params = random_params(a, np.random.default_rng(16))
    Xd, y = np.random.default_rng(17).normal(size=(4, 3)), np.arange(4.0)
    np.testing.assert_array_equal(reference.network_gradient(a, params, Xd, y),
                                  reference.network_gradient(b, params, Xd, y))


def test_forward_and_predict_return_spatial_outputs():
    """A network ending with a conv or pool layer: forward and predict give (m, C, *);
    losses and accuracy need (m, k)."""
    layers = [conv(1, 2, [3], [1], [1], "tanh", False, batch_norm()), maxpool([2])]
    params = random_params(layers, np.random.default_rng(18))
    X = np.random.default_rng(19).normal(size=(3, 1, 8))
    assert reference.network_forward(layers, params, X).shape == (3, 2, 4)
    assert reference.network_predict(layers, params, X, None, None).shape == (3, 2, 4)


# ---------------------------------------------------------------- bad input

C1 = conv(2, 4, [3], [1], [1], "tanh")  # (m, 2, L) -> (m, 4, L)
X1 = np.zeros((3, 2, 10))


def _call(layers, X=X1, y=None, f="loss", loss="sum", **kwargs):
    def run():
        params = np.zeros(reference.param_count(layers))
        Y = np.zeros((X.shape[0], 3)) if y is None else y
        if f == "loss":
            return reference.network_loss(layers, params, X, Y, loss)
        if f == "accuracy":
            return reference.network_accuracy(layers, params, X, np.zeros(X.shape[0]))
        if f == "predict":
            return reference.network_predict(layers, params, X, **kwargs)
        return reference.param_count(layers)
    return run


BAD = [
    (_call([C1, conv(3, 4, [3])], f="count"), ValueError,
     r"layers\[1\] has in_channels 3 but layers\[0\] has out_channels 4"),
    (_call([C1, maxpool([2]), conv(3, 4, [3])], f="count"), ValueError,
     r"layers\[2\] has in_channels 3 but layers\[0\] has out_channels 4"),
    (_call([C1, flatten(), dense(40, 3)], X=np.zeros((3, 3, 10))), ValueError,
     r"layers\[0\] has in_channels 2 but X has 3 channels \(shape \(m, 3, 10\)\)"),
    (_call([conv(2, 4, [6], [1], [1]), flatten(), dense(4, 3)], X=np.zeros((3, 2, 3))),
     ValueError, r"layers\[0\]: kernel_size \[6\] is larger than its input's spatial "
                 r"size \[5\] \(padding included; X has shape \(m, 2, 3\)\)"),
    (_call([C1, maxpool([11]), flatten(), dense(4, 3)]), ValueError,
     r"layers\[1\]: kernel_size \[11\] is larger than its input's spatial size \[10\] "
     r"\(padding included; the output of layers\[0\] has shape \(m, 4, 10\)\)"),
    (_call([C1, maxpool([2]), flatten(), dense(40, 3)]), ValueError,
     r"layers\[3\] has in_features 40 but the output of layers\[2\] has 20 features"),
    (_call([C1, dense(10, 3)]), ValueError,
     r"layers\[1\] is a dense layer and needs inputs \(m, features\), but the output of "
     r"layers\[0\] has shape \(m, 4, 10\): put a flatten layer before it"),
    (_call([C1, flatten(), dense(40, 3)], X=np.zeros((3, 20))), ValueError,
     r"layers\[0\] is a 1-D conv layer and needs inputs \(m, C, L\), but X has shape "
     r"\(m, 20\)"),
    (_call([conv(2, 4, [3, 3]), flatten(), dense(4, 3)], X=np.zeros((3, 2, 10))),
     ValueError, r"layers\[0\] is a 2-D conv layer and needs inputs \(m, C, H, W\)"),
    (_call([C1, flatten(), dense(40, 3)], X=np.zeros(5)), ValueError,
     r"X must be \(m, C, L\) or \(m, C, H, W\), got shape \(5,\)"),
    (_call([C1, maxpool([2, 2])], f="count"), ValueError,
     r"layers\[1\] is 2-D but layers\[0\] is 1-D: a network's conv and pool layers have "
     r"the same number of spatial dimensions"),
    (_call([conv(2, 4, [3], normalization=batch_norm(noise=noise()))], f="count"),
     None, None),  # noisy BN on a conv layer: per sample and channel
    (_call([conv(2, 4, [3], noise=noise())], f="count"), None, None),  # noise without BN
    (_call([dict(legacy(conv(2, 4, [3]), bn()), noise=noise())], f="count"), ValueError,
     r"layers\[0\]\['noise'\]: a layer with a normalization takes its noise from the "
     r"normalization dict"),
    (_call([dense(3, 2, normalization=layer_norm(), noise=noise())], f="count"),
     ValueError, r"layers\[0\]\['noise'\]: a layer with a normalization"),
    (_call([conv(2, 4, [3], noise={"n_mu": 0.5})], f="count"), ValueError,
     r"layers\[0\]\['noise'\] must have the keys n_mu, n_sigma, r_mu, r_sigma"),
    (_call([C1, residual(conv(4, 4, [3]), maxpool([1]))], f="count"), ValueError,
     r"layers\[1\]\['residual'\]\[1\]: a residual block holds dense and conv layers only, "
     r"not maxpool"),
    (_call([C1, residual(flatten())], f="count"), ValueError, r"not flatten"),
    (_call([C1, residual(conv(4, 3, [3], [1], [1]))], f="count"), ValueError,
     r"layers\[1\]\['residual'\] maps 4 channels to 3: a residual block x -> x \+ "
     r"block\(x\) must end with as many channels as it starts"),
    (_call([C1, residual(conv(4, 4, [3])), flatten(), dense(32, 3)]), ValueError,
     r"layers\[1\]\['residual'\] maps inputs of shape \(m, 4, 10\) to \(m, 4, 8\): a "
     r"residual block x -> x \+ block\(x\) must keep the shape"),
    (_call([C1]), ValueError,
     r"the network's outputs have shape \(m, 4, 10\), but a loss needs outputs \(m, k\): "
     r"end the network with a flatten or a dense layer"),
    (_call([C1], f="accuracy"), ValueError,
     r"the network's outputs have shape \(3, 4, 10\), but accuracy needs outputs"),
    (_call([C1, flatten(), dense(40, 3)], loss="cross_entropy", y=np.zeros(3)), None, None),
    (_call([dict(C1, kernel_size=3)], f="count"), TypeError,
     r"layers\[0\]\['kernel_size'\] must be a list of ints, one per spatial dimension"),
    (_call([dict(C1, kernel_size=[])], f="count"), ValueError,
     r"layers\[0\]\['kernel_size'\] must have 1 or 2 entries, one per spatial dimension; "
     r"got 0"),
    (_call([conv(2, 4, [3, 3, 3])], f="count"), ValueError, r"must have 1 or 2 entries"),
    (_call([conv(2, 4, [3], [1, 1])], f="count"), ValueError,
     r"layers\[0\]\['stride'\] must have 1 \(as kernel_size\) entries"),
    (_call([conv(2, 4, [3], [0])], f="count"), ValueError,
     r"layers\[0\]\['stride'\]\[0\] must be >= 1, got 0"),
    (_call([conv(2, 4, [3], [1], [-1])], f="count"), ValueError,
     r"layers\[0\]\['padding'\]\[0\] must be >= 0, got -1"),
    (_call([conv(2, 4, [3.0])], f="count"), TypeError,
     r"layers\[0\]\['kernel_size'\]\[0\] must be an int, got float"),
    (_call([conv(0, 4, [3])], f="count"), ValueError,
     r"layers\[0\]\['in_channels'\] must be >= 1"),
    (_call([dict(C1, type="conv3d")], f="count"), ValueError,
     r"layers\[0\]\['type'\]: unknown layer type 'conv3d'; expected one of dense, conv, "
     r"maxpool, avgpool, flatten"),
    (_call([{k: v for k, v in C1.items() if k != "padding"}], f="count"), ValueError,
     r"layers\[0\] must have the keys type, in_channels, out_channels, kernel_size, "
     r"stride, padding, activation, bias \(optional: normalization, batch_norm, noise\); "
     r"missing \['padding'\]"),
    (_call([dict(C1, batch_norm=None)], f="count"), ValueError,
     r"layers\[0\] has both 'normalization' and 'batch_norm'"),
    (_call([dict(maxpool([2]), padding=[1])], f="count"), ValueError,
     r"layers\[0\] must have the keys type, kernel_size, stride; missing \[\], "
     r"unknown \['padding'\]"),
    (_call([dict(flatten(), start_dim=1)], f="count"), ValueError,
     r"layers\[0\] must have the keys type; missing \[\], unknown \['start_dim'\]"),
    (_call([conv(2, 4, [3], normalization=group_norm(3))], f="count"), ValueError,
     r"layers\[0\]\['normalization'\]\['groups'\] = 3 does not divide the layer's "
     r"out_channels 4"),
    (_call([conv(2, 4, [3], normalization=batch_norm([1.0, 2.0]))], f="count"),
     ValueError, r"\['gamma'\] has shape \(2,\) but the layer has 4 channels"),
    (_call([conv(2, 4, [3], normalization=batch_norm()), flatten(), dense(32, 3)],
           f="predict", running_mean=[np.zeros(3)], running_var=None), ValueError,
     r"running_mean\[0\] must have shape \(4,\) \(layers\[0\] has 4 channels\), "
     r"got \(3,\)"),
    (_call([conv(2, 4, [3], normalization=batch_norm()), flatten(), dense(32, 3)],
           X=np.zeros((1, 2, 10))), ValueError,
     r"X: batch normalization needs at least 2 samples, got 1"),
]


@pytest.mark.parametrize("call,exc,match", BAD)
def test_bad_input(call, exc, match):
    if exc is None:  # a valid call next to the invalid ones (the checks let it through)
        assert np.isfinite(call())
        return
    with pytest.raises(exc, match=match):
        call()


def test_mini_batch_training_takes_spatial_inputs_and_rejects_noise_early():
    layers = [conv(2, 4, [3], normalization=batch_norm()), flatten(), dense(32, 3)]
    params = random_params(layers, np.random.default_rng(20))
    X = np.random.default_rng(21).normal(size=(6, 2, 10))
    r = reference.train(layers, params, X, np.arange(6) % 3, 0.01, 4, batch_size=3,
                        loss="cross_entropy")
    assert r.steps == 4 and r.running_mean[0].shape == (4,)
    with pytest.raises(ValueError, match="batch_size must be >= 2 with batch "
                                         "normalization"):
        reference.train(layers, params, X, np.arange(6) % 3, 0.01, 4, batch_size=1,
                        loss="cross_entropy")
