"""The new ops of the engine against PyTorch in float64: LayerNorm and GroupNorm
(F.layer_norm, F.group_norm), the cross-entropy losses (F.cross_entropy), and the
optimizers (torch.optim.SGD with momentum, Nesterov and weight decay; torch.optim.Adam).

The torch side is written from the documentation (docs/math/networks.md sections 12-14):
each Dense layer is F.linear on W, b read from the flat vector in the documented order
(per layer W row-major, b, gamma, beta), then the normalization, then the activation; a
Residual block is x + block(x); BatchNorm is F.batch_norm in training mode.

Tolerances (relative, norm-wise: max |difference| / max |expected|), as in
test_engine_torch.py: 1e-12 for loss, gradient and outputs (a few dozen roundings of
O(1) values, each ~1e-16, through a handful of layers); 1e-9 for the hvp (double
backward and forward-over-reverse sum the second-order terms in different orders, and
the hvp of a normalization subtracts nearly equal terms); 1e-12 for 300-step
trajectories of well-conditioned runs (no bias before a normalization, whose gradient is
rounding noise that Adam would scale up to lr; learning rates at which the iteration
contracts, so per-step roundings do not grow). Run with -s to see the worst errors.
"""

import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch_helpers import WorstRelativeErrors, torch_module_fixtures  # noqa: E402

import bnfast  # noqa: E402
from bnfast import (SGD, Adam, BatchNorm, Dense, GroupNorm, LayerNorm, Network,  # noqa: E402
                    Residual)

F = torch.nn.functional
F64 = torch.float64
RTOL = 1e-12
RTOL_HVP = 1e-9
RTOL_TRAJECTORY = 1e-12

_ERRORS = WorstRelativeErrors()
check = _ERRORS.check
report_worst, one_torch_thread = torch_module_fixtures(torch, _ERRORS, "new ops")


# ---------------------------------------------------------------- the torch network

def _dense_layers(layers):
    return [(d, i == len(block) - 1 and isinstance(entry, Residual))
            for entry in layers
            for block in [entry.layers if isinstance(entry, Residual) else [entry]]
            for i, d in enumerate(block)]


def torch_forward(layers, p, X, training=True, stats=None):
    """f(X) on the flat vector p (a torch tensor); stats: per BN layer (running_mean,
    running_var) tensors for eval mode."""
    pos, A, skip, bn_index = 0, X, None, 0

    def take(n):
        nonlocal pos
        pos += n
        return p[pos - n:pos]

    for entry in layers:
        block = entry.layers if isinstance(entry, Residual) else [entry]
        skip = A if isinstance(entry, Residual) else None
        for d in block:
            W = take(d.in_features * d.out_features).reshape(d.out_features, d.in_features)
            b = take(d.out_features) if d.bias else None
            H = F.linear(A, W, b)
            norm = d.normalization
            if norm is not None:
                if norm.trainable:
                    gamma, beta = take(d.out_features), take(d.out_features)
                else:
                    g, bt = norm.values(d.out_features)
                    gamma, beta = torch.tensor(g), torch.tensor(bt)
                if norm.kind == "layer":
                    H = F.layer_norm(H, (d.out_features,), gamma, beta, norm.eps)
                elif norm.kind == "group":
                    H = F.group_norm(H, norm.groups, gamma, beta, norm.eps)
                elif training:
                    H = F.batch_norm(H, None, None, gamma, beta, training=True, eps=norm.eps)
                else:
                    rm, rv = stats[bn_index]
                    H = F.batch_norm(H, rm, rv, gamma, beta, training=False, eps=norm.eps)
                bn_index += norm.kind == "batch"
            A = {"identity": lambda z: z, "tanh": torch.tanh, "sigmoid": torch.sigmoid,
                 "relu": torch.relu}[d.activation](H)
        if skip is not None:
            A = A + skip
    assert pos == p.shape[0]
    return A


def torch_loss(F_out, y, kind):
    if kind == "cross_entropy":
        return F.cross_entropy(F_out, y)
    if kind == "cross_entropy_sum":
        return F.cross_entropy(F_out, y, reduction="sum")
    total = ((y - F_out) ** 2).sum()
    return total / F_out.shape[0] if kind == "mean" else total


def torch_targets(y, kind):
    return torch.tensor(y, dtype=torch.int64) if kind.startswith("cross") else torch.tensor(y)


def torch_loss_grad_hvp(net, X, y, v):
    p = torch.tensor(net.params, requires_grad=True)
    loss = torch_loss(torch_forward(net.layers, p, torch.tensor(X)),
                      torch_targets(y, net.loss_kind), net.loss_kind)
    (g,) = torch.autograd.grad(loss, p, create_graph=True)
    (hv,) = torch.autograd.grad(g @ torch.tensor(v), p)
    return loss.item(), g.detach().numpy(), hv.numpy()


# ---------------------------------------------------------------- cases

NORMALIZATIONS = {
    "layer": lambda rng: LayerNorm(gamma=rng.uniform(0.5, 1.5, 6), beta=0.2),
    "layer-const": lambda rng: LayerNorm(gamma=rng.uniform(0.5, 1.5, 6), beta=-0.1,
                                         trainable=False),
    "layer-eps0": lambda rng: LayerNorm(eps=0.0),
    "group2": lambda rng: GroupNorm(2, gamma=1.3, beta=rng.uniform(-.3, .3, 6)),
    "group3-const": lambda rng: GroupNorm(3, trainable=False, eps=1e-3),
    "group6": lambda rng: GroupNorm(6, eps=0.5),
    "batch": lambda rng: BatchNorm(beta=0.1),
}
LOSSES = ("sum", "mean", "cross_entropy", "cross_entropy_sum")


def case(norm, loss, seed, m=9, residual=True):
    rng = np.random.default_rng(seed)
    mid = [Dense(6, 6, "relu" if seed % 2 else "sigmoid", bias=False,
                 normalization=NORMALIZATIONS[norm](rng))]
    layers = [Dense(4, 6, "tanh", normalization=NORMALIZATIONS[norm](rng)),
              Residual(mid) if residual else mid[0],
              Dense(6, 3, normalization=GroupNorm(3, eps=0.1) if norm == "batch" else None)]
    net = Network(layers, loss=loss, seed=seed)
    net.params = net.params + 0.3 * rng.standard_normal(net.num_params)
    X = rng.standard_normal((m, 4)) * 1.5 + 0.3
    y = rng.integers(0, 3, m) if loss.startswith("cross") else rng.standard_normal((m, 3))
    return net, X, y, rng


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("norm", sorted(NORMALIZATIONS))
def test_loss_gradient_hvp_match_torch(norm, loss):
    net, X, y, rng = case(norm, loss, seed=len(norm) * 7 + len(loss))
    v = rng.standard_normal(net.num_params)
    t_loss, t_grad, t_hv = torch_loss_grad_hvp(net, X, y, v)
    loss_value, grad = net.loss_and_gradient(X, y)
    check(f"loss {loss}", [loss_value], [t_loss], RTOL)
    check(f"gradient {norm}", grad, t_grad, RTOL)
    check(f"hvp {norm}", net.hvp(X, y, v), t_hv, RTOL_HVP)
    check(f"forward {norm}", net.forward(X),
          torch_forward(net.layers, torch.tensor(net.params), torch.tensor(X)).numpy(), RTOL)


@pytest.mark.parametrize("norm", ["layer", "group2", "group3-const"])
def test_row_normalizations_need_no_batch_and_predict_as_they_train(norm):
    """LayerNorm and GroupNorm use each row's own statistics: predict equals forward,
    row by row, and a single row is a valid batch."""
    net, X, y, _ = case(norm, "cross_entropy", seed=3, residual=False)
    expected = torch_forward(net.layers, torch.tensor(net.params), torch.tensor(X)).numpy()
    check(f"predict {norm}", net.predict(X), expected, RTOL)
    for i in range(3):
        np.testing.assert_allclose(net.forward(X[i:i + 1]), expected[i:i + 1], rtol=1e-13)
    assert net.running_mean == [] and net._core.num_running == 0


def test_predict_with_batch_and_group_norm_after_training_matches_torch_eval():
    net, X, y, _ = case("batch", "cross_entropy", seed=11, m=24)
    bnfast.train(net, X, y, lr=0.05, steps=7, batch_size=8, seed=2)
    stats = [(torch.tensor(mean), torch.tensor(var))
             for mean, var in zip(net.running_mean, net.running_var)]
    expected = torch_forward(net.layers, torch.tensor(net.params), torch.tensor(X),
                             training=False, stats=stats).numpy()
    check("predict batch+group", net.predict(X), expected, RTOL)


# ---------------------------------------------------------------- cross-entropy

@pytest.mark.parametrize("scale", [1e3, 1e100, 1e300])
def test_cross_entropy_is_stable_for_huge_logits(scale):
    """Logits up to 1e300: log-sum-exp after shifting by the row's largest logit gives
    finite, exact losses and gradients where exp(f) alone would overflow."""
    net = Network([Dense(2, 3, bias=False)], loss="cross_entropy_sum")
    net.params = np.array([1.0, 0.0, -1.0, 0.0, 0.0, 0.5]) * scale
    X = np.array([[1.0, 0.0], [0.0, 1.0]])
    y = np.array([1, 0])
    # row 0: logits (s, -s, 0), label 1 -> lse - f_1 = s + s (exp(-s), exp(-2s) vanish)
    # row 1: logits (0, 0, s/2), label 0 -> s/2
    assert net.loss(X, y) == pytest.approx(2 * scale + scale / 2, rel=1e-15)
    g = net.gradient(X, y)
    assert np.all(np.isfinite(g))
    # d loss / d W[0] = sum_i (softmax_i0 - [y_i = 0]) x_i = (1, 0) - (0, 1) = (1, -1)
    np.testing.assert_array_equal(g[:2], [1.0, -1.0])
    t_loss = F.cross_entropy(torch.tensor(net.forward(X)), torch.tensor(y), reduction="sum")
    assert net.loss(X, y) == pytest.approx(t_loss.item(), rel=1e-15)


def test_accuracy_counts_rows_whose_largest_output_is_the_label():
    net = Network([Dense(2, 3, bias=False)], loss="cross_entropy")
    net.params = [1.0, 0.0, 0.0, 1.0, -1.0, -1.0]
    X = np.array([[2.0, 1.0], [1.0, 2.0], [-1.0, -1.0], [3.0, 0.0]])
    assert net.accuracy(X, [0, 1, 2, 1]) == 0.75
    with pytest.raises(ValueError, match="y must have shape"):
        net.accuracy(X, [0, 1])


@pytest.mark.parametrize("bad,exc,match", [
    ([0, 1, 3], ValueError, r"class labels 0\.\.2.*got 3\.0"),
    ([0, 1.5, 2], ValueError, r"class labels 0\.\.2.*got 1\.5"),
    ([0, -1, 2], ValueError, r"class labels"),
    ([0, np.nan, 2], ValueError, r"class labels"),
    (["a", "b", "c"], TypeError, r"y must hold real numbers"),
    ([[0], [1], [2]], ValueError, r"y must be the \(m,\) class labels"),
])
def test_bad_labels_are_refused_by_name(bad, exc, match):
    net = Network([Dense(2, 3)], loss="cross_entropy")
    X = np.ones((3, 2))
    before = net.params
    for call in (lambda: net.loss(X, bad), lambda: net.gradient(X, bad),
                 lambda: bnfast.train(net, X, bad, 0.1, 2)):
        with pytest.raises(exc, match=match):
            call()
    np.testing.assert_array_equal(net.params, before)


# ---------------------------------------------------------------- optimizers

def torch_trajectory(net, X, y, optimizer, kw, lr, steps, batch_size=None, seed=0):
    p = torch.tensor(net.params, requires_grad=True)
    opt = optimizer([p], lr=lr, **kw)
    Xt, yt = torch.tensor(X), torch_targets(y, net.loss_kind)
    m = X.shape[0]
    if batch_size is not None:
        per_epoch = m // batch_size
        perm = np.asarray(bnfast._core.epoch_permutations(m, seed, -(-steps // per_epoch)))
    for k in range(steps):
        if batch_size is None:
            xb, yb = Xt, yt
        else:
            e, j = divmod(k, per_epoch)
            rows = torch.as_tensor(perm[e * m + j * batch_size:e * m + (j + 1) * batch_size])
            xb, yb = Xt[rows], yt[rows]
        opt.zero_grad()
        torch_loss(torch_forward(net.layers, p, xb), yb, net.loss_kind).backward()
        opt.step()
    return p.detach().numpy()


def classifier(norm="batch", seed=0):
    """No bias before a normalization (its gradient is rounding noise: see the module
    docstring), cross-entropy."""
    # GroupNorm(2): 4 features a group (with 2, each normalized pair is +-1 whatever the
    # input, and the gradient through it is rounding noise)
    normalization = {"batch": BatchNorm(), "layer": LayerNorm(), "group": GroupNorm(2)}[norm]
    net = Network([Dense(5, 8, "tanh", bias=False, normalization=normalization),
                   Dense(8, 3)], loss="cross_entropy", seed=seed)
    rng = np.random.default_rng(seed + 100)
    X = rng.standard_normal((24, 5))
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5)
    return net, X, y


OPTIMIZERS = [
    ("sgd-momentum", SGD(momentum=0.9), torch.optim.SGD, dict(momentum=0.9), 0.02),
    ("sgd-nesterov-wd", SGD(momentum=0.8, nesterov=True, weight_decay=1e-3), torch.optim.SGD,
     dict(momentum=0.8, nesterov=True, weight_decay=1e-3), 0.02),
    ("sgd-wd", SGD(weight_decay=1e-2), torch.optim.SGD, dict(weight_decay=1e-2), 0.05),
    ("adam", Adam(), torch.optim.Adam, {}, 2e-3),
    ("adam-wd", Adam(betas=(0.8, 0.99), eps=1e-6, weight_decay=1e-2), torch.optim.Adam,
     dict(betas=(0.8, 0.99), eps=1e-6, weight_decay=1e-2), 2e-3),
]


@pytest.mark.parametrize("batch_size", [None, 8])
@pytest.mark.parametrize("norm", ["batch", "layer", "group"])
@pytest.mark.parametrize("name,ours,theirs,kw,lr", OPTIMIZERS, ids=[o[0] for o in OPTIMIZERS])
def test_300_steps_follow_torch_optim(name, ours, theirs, kw, lr, norm, batch_size):
    net, X, y = classifier(norm)
    expected = torch_trajectory(net, X, y, theirs, kw, lr, 300, batch_size, seed=5)
    result = bnfast.train(net, X, y, lr, 300, batch_size=batch_size, seed=5, optimizer=ours,
                          record_every=100)
    check(f"trajectory {name}", result.params, expected, RTOL_TRAJECTORY)
    assert result.losses[-1] < result.losses[0]


@pytest.mark.parametrize("name,ours,theirs,kw,lr", OPTIMIZERS, ids=[o[0] for o in OPTIMIZERS])
def test_a_run_continued_from_its_optimizer_state_is_one_run(name, ours, theirs, kw, lr):
    net, X, y = classifier("layer")
    whole = bnfast.train(net.__class__(net.layers, net.loss_kind, seed=0), X, y, lr, 50,
                         optimizer=ours)
    first = bnfast.train(net, X, y, lr, 20, optimizer=ours)
    second = bnfast.train(net, X, y, lr, 30, optimizer=ours,
                          optimizer_state=first.optimizer_state)
    np.testing.assert_array_equal(second.params, whole.params)
    assert second.optimizer_state.updates == (0 if ours.spec().buffers == 0 else 50)
    np.testing.assert_array_equal(second.optimizer_state.buffers,
                                  whole.optimizer_state.buffers)


def test_per_step_learning_rates_are_the_runs_of_each_rate():
    net, X, y = classifier("batch")
    twin = pickle.loads(pickle.dumps(net))
    rates = np.r_[np.full(10, 0.05), np.full(15, 0.01)]
    scheduled = bnfast.train(net, X, y, rates, 25, optimizer=SGD(momentum=0.9))
    a = bnfast.train(twin, X, y, 0.05, 10, optimizer=SGD(momentum=0.9))
    b = bnfast.train(twin, X, y, 0.01, 15, optimizer=SGD(momentum=0.9),
                     optimizer_state=a.optimizer_state)
    np.testing.assert_array_equal(scheduled.params, b.params)
    np.testing.assert_array_equal(scheduled.losses, np.r_[a.losses[:-1], b.losses])


def test_plain_sgd_is_the_papers_update_bit_for_bit():
    net, X, y = classifier("group")
    twin = pickle.loads(pickle.dumps(net))
    default = bnfast.train(net, X, y, 0.1, 40)
    explicit = bnfast.train(twin, X, y, np.full(40, 0.1), 40, optimizer=SGD())
    np.testing.assert_array_equal(default.params, explicit.params)
    assert default.optimizer_state.buffers.shape == (0, net.num_params)


@pytest.mark.parametrize("call,exc,match", [
    (lambda: SGD(momentum=-0.1), ValueError, "momentum must be >= 0"),
    (lambda: SGD(nesterov=True), ValueError, "nesterov needs momentum > 0"),
    (lambda: SGD(weight_decay=np.inf), ValueError, "weight_decay must be >= 0 and finite"),
    (lambda: Adam(betas=(0.9, 1.0)), ValueError, r"betas\[1\] must be in \[0, 1\)"),
    (lambda: Adam(betas=0.9), TypeError, "betas must be a pair"),
    (lambda: Adam(eps=0.0), ValueError, "eps must be > 0"),
])
def test_bad_optimizer_arguments_are_named(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(optimizer="adam"), TypeError, "optimizer must be a bnfast.SGD"),
    (dict(lr=np.full(3, 0.1)), ValueError, "at least steps = 5 per-step rates"),
    (dict(lr=np.r_[0.1, 0.1, -0.1, 0.1, 0.1]), ValueError, "finite and > 0"),
    (dict(lr=np.ones((5, 1))), ValueError, "1-D array"),
    (dict(optimizer=Adam(), optimizer_state=bnfast.OptimizerState(np.zeros((1, 3)), 2)),
     ValueError, r"buffers of shape \(1, 3\)"),
    (dict(optimizer_state=(np.zeros((0, 3)), 0)), TypeError, "optimizer_state must be"),
])
def test_bad_training_arguments_change_nothing(kwargs, exc, match):
    net, X, y = classifier("layer")
    before = net.params
    args = dict(lr=0.1, steps=5)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        bnfast.train(net, X, y, **args)
    np.testing.assert_array_equal(net.params, before)


# ---------------------------------------------------------------- layers

def test_group_norm_groups_must_divide_the_layer():
    with pytest.raises(ValueError, match="groups: 4 groups do not divide the layer's 6"):
        Dense(3, 6, normalization=GroupNorm(4))
    with pytest.raises(TypeError, match="give batch_norm or normalization, not both"):
        Dense(3, 6, batch_norm=BatchNorm(), normalization=LayerNorm())
    with pytest.raises(TypeError, match="use normalization= for the other"):
        Dense(3, 6, batch_norm=LayerNorm())
    with pytest.raises(ValueError, match="groups must be >= 1"):
        GroupNorm(0)


@pytest.mark.parametrize("norm", ["layer", "group"])
def test_networks_with_new_ops_pickle_exactly(norm):
    net, X, y = classifier(norm)
    bnfast.train(net, X, y, 0.05, 10, optimizer=SGD(momentum=0.5))
    twin = pickle.loads(pickle.dumps(net))
    assert twin.loss_kind == "cross_entropy"
    np.testing.assert_array_equal(twin.params, net.params)
    np.testing.assert_array_equal(twin.predict(X), net.predict(X))
    np.testing.assert_array_equal(twin.hvp(X, y, net.params), net.hvp(X, y, net.params))
    assert repr(twin) == repr(net)
