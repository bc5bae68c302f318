"""The optimizers of bnfast.reference.train (docs/math/networks.md section 16):
optimizer=None (plain gradient descent, unchanged), {"name": "sgd", ...}
(torch.optim.SGD: momentum, Nesterov, weight decay; dampening 0) and {"name": "adam",
...} (torch.optim.Adam, L2 weight decay, amsgrad False), lr a float or per-step rates,
the optimizer state in TrainResult and its resumption.

Checked against torch.optim on the same network built in torch float64 (torch_twin)
for 300 steps, against hand loops of the documented formulas (the same operations in
the same order, so the same bits), and by splitting runs.

Tolerances. Each step's gradient agrees with torch's autograd to ~1e-15 relative, and
torch's update kernels fuse multiply-adds (FMA) that the reference rounds twice, so
every step adds ~1e-16 relative differences; on the networks below (learning rates
small enough that the 300-step map does not amplify them, checked by measurement)
parameters, losses, running statistics and momentum buffers agree to 1e-12 relative to
their largest entry after 300 steps (measured: below 1e-14; Adam's parameters, whose
per-coordinate scaling magnifies the relative error of small gradient entries, 8e-15).
Adam's moments: 1e-11 (see check_state; measured 5e-13). A larger learning rate makes
these trajectories chaotic (differences grow ~1e3-fold per 50 steps), where no
tolerance would be a check. `pytest -s` prints the largest errors measured.
"""

import math

import numpy as np
import pytest

from bnfast import reference
from bnfast.reference.shuffle import EpochShuffler
from reference_cases import rel_err
from torch_twin import (batch_norm, dense, group_norm, layer_norm, random_params,
                        report_worst, within)


@pytest.fixture(autouse=True, scope="module")
def worst():
    yield from report_worst("optimizers")


def network():
    """BN (momentum None: the cumulative average), GroupNorm in groups of 4, LayerNorm,
    4 -> 8 -> 12 -> 8 -> 3 (no bias before BN: its gradient would be rounding noise,
    which Adam's per-coordinate scaling would turn into steps of size ~lr)."""
    return [dense(4, 8, "tanh", False, batch_norm(eps=1e-5, momentum=None)),
            dense(8, 12, "tanh", True, group_norm(3)),
            dense(12, 8, "sigmoid", True, layer_norm()),
            dense(8, 3, "identity", True, None)]


def data(seed=0, m=24, loss="cross_entropy"):
    rng = np.random.default_rng(seed)
    layers = network()
    params = random_params(layers, rng)
    X = rng.normal(size=(m, 4))
    y = rng.integers(0, 3, m) if loss.startswith("cross") else rng.normal(size=(m, 3))
    return layers, params, X, y


def torch_optimizer(torch, p, opt, lr):
    if opt is None:
        return torch.optim.SGD([p], lr=lr)
    if opt["name"] == "sgd":
        return torch.optim.SGD([p], lr=lr, momentum=opt.get("momentum", 0.0),
                               nesterov=opt.get("nesterov", False),
                               weight_decay=opt.get("weight_decay", 0.0), foreach=False)
    return torch.optim.Adam([p], lr=lr, betas=opt.get("betas", (0.9, 0.999)),
                            eps=opt.get("eps", 1e-8),
                            weight_decay=opt.get("weight_decay", 0.0), foreach=False)


def torch_train(torch, layers, params, X, y, loss, opt, rates, steps, record_every,
                batch_size=None, seed=0):
    """The reference's loop in torch: the same records (full-set loss before steps 0,
    r, 2r, ... and after the last), the same batches (EpochShuffler), BN running
    statistics kept by torch's F.batch_norm; lr set per step."""
    from torch_twin import BatchStats, forward
    from torch_twin import loss as torch_loss
    p = torch.tensor(params, requires_grad=True)
    optim = torch_optimizer(torch, p, opt, rates[0])
    stats = BatchStats(torch, layers)
    m = X.shape[0]
    shuffler, perm, pos = EpochShuffler(m, seed), None, m
    losses = []
    for step in range(steps + 1):
        if step % record_every == 0:
            with torch.no_grad():
                losses.append(torch_loss(torch, forward(torch, layers, p, X), y, loss).item())
        if step == steps:
            break
        rows = np.arange(m)
        if batch_size is not None:
            if pos + batch_size > m:
                perm, pos = shuffler.next_epoch(), 0
            rows, pos = perm[pos:pos + batch_size], pos + batch_size
        for group in optim.param_groups:
            group["lr"] = rates[step]
        optim.zero_grad()
        stats.updates += 1
        torch_loss(torch, forward(torch, layers, p, X[rows], stats), y[rows], loss).backward()
        optim.step()
    return p.detach().numpy(), np.array(losses), stats, optim.state[p]


CONFIGS = {
    # name: (optimizer, lr (float, or (first, last) of a linear schedule), loss)
    "plain-schedule": (None, (0.05, 0.005), "cross_entropy"),
    "sgd-weight-decay": ({"name": "sgd", "weight_decay": 0.05}, 0.02, "cross_entropy"),
    "sgd-momentum": ({"name": "sgd", "momentum": 0.9}, 0.003, "cross_entropy"),
    "sgd-nesterov-decay": ({"name": "sgd", "momentum": 0.8, "nesterov": True,
                            "weight_decay": 0.01}, 0.003, "mean"),
    "adam": ({"name": "adam"}, 3e-4, "cross_entropy"),
    "adam-options": ({"name": "adam", "betas": (0.8, 0.99), "eps": 1e-6,
                      "weight_decay": 0.01}, (3e-4, 1e-4), "cross_entropy_sum"),
}


def rates_of(lr, steps):
    return np.linspace(lr[0], lr[1], steps) if isinstance(lr, tuple) else lr


@pytest.mark.parametrize("name", list(CONFIGS))
def test_300_full_batch_steps_against_torch_optim(name):
    torch = pytest.importorskip("torch")
    opt, lr, loss = CONFIGS[name]
    layers, params, X, y = data(1, loss=loss)
    steps = 300
    lr = rates_of(lr, steps)
    result = reference.train(layers, params, X, y, lr, steps, record_every=50, loss=loss,
                             optimizer=opt)
    rates = lr if isinstance(lr, np.ndarray) else np.full(steps, lr)
    p, losses, stats, state = torch_train(torch, layers, params, X, y, loss, opt, rates,
                                          steps, 50)
    within("300 steps: params", rel_err(result.params, p), 1e-12)
    within("300 steps: recorded losses", rel_err(result.losses, losses), 1e-12)
    assert result.losses[-1] < result.losses[0]
    for ours, theirs in zip(result.running_mean + result.running_var,
                            stats.arrays()[0] + stats.arrays()[1]):
        within("300 steps: running statistics", rel_err(ours, theirs), 1e-12)
    check_state(result.optimizer_state, opt, state, steps)


def check_state(ours, opt, theirs, steps):
    """The reference's optimizer state against torch's optimizer.state[p]."""
    if opt is None:
        assert ours is None
    elif opt["name"] == "sgd":
        assert set(ours) == {"momentum_buffer"}
        if opt.get("momentum", 0.0) == 0:
            assert ours["momentum_buffer"] is None
        else:
            within("300 steps: momentum buffer",
                   rel_err(ours["momentum_buffer"], theirs["momentum_buffer"].numpy()), 1e-12)
    else:
        assert set(ours) == {"step", "exp_avg", "exp_avg_sq"}
        assert ours["step"] == steps == int(theirs["step"].item())
        # the moments follow the gradient, which the params' small difference moves
        # by |Hessian| |dp| ~ 1e-14; late gradients are small (|g| ~ 0.05), so relative
        # to them that is ~5e-13: 1e-11
        within("300 steps: Adam exp_avg", rel_err(ours["exp_avg"],
                                                  theirs["exp_avg"].numpy()), 1e-11)
        within("300 steps: Adam exp_avg_sq", rel_err(ours["exp_avg_sq"],
                                                     theirs["exp_avg_sq"].numpy()), 1e-11)


@pytest.mark.parametrize("opt", [{"name": "sgd", "momentum": 0.9, "nesterov": True},
                                 {"name": "adam", "betas": (0.5, 0.9)}])
def test_mini_batches_against_torch_optim(opt):
    """60 steps on batches of 8 of 24 rows (the reference's EpochShuffler batches),
    running statistics of the batches."""
    torch = pytest.importorskip("torch")
    layers, params, X, y = data(2)
    lr = 0.002 if opt["name"] == "sgd" else 2e-4
    result = reference.train(layers, params, X, y, lr, 60, batch_size=8, seed=7,
                             record_every=20, loss="cross_entropy", optimizer=opt)
    p, losses, stats, state = torch_train(torch, layers, params, X, y, "cross_entropy",
                                          opt, np.full(60, lr), 60, 20, batch_size=8,
                                          seed=7)
    within("60 mini-batch steps: params", rel_err(result.params, p), 1e-12)
    within("60 mini-batch steps: losses", rel_err(result.losses, losses), 1e-12)
    for ours, theirs in zip(result.running_mean + result.running_var,
                            stats.arrays()[0] + stats.arrays()[1]):
        within("60 mini-batch steps: running statistics", rel_err(ours, theirs), 1e-12)
    check_state(result.optimizer_state, opt, state, 60)


# ---------------------------------------------------------------- the formulas, exactly


def hand_loop(layers, params, X, y, loss, opt, rates, steps):
    """networks.md section 16 written out, operation for operation."""
    p, buf, m, v = params.copy(), None, np.zeros_like(params), np.zeros_like(params)
    for t in range(1, steps + 1):
        lr = rates[t - 1]
        g = reference.network_gradient(layers, p, X, y, loss)
        if opt is None:
            p = p - lr * g
            continue
        if opt.get("weight_decay", 0.0) != 0:
            g = g + opt["weight_decay"] * p
        if opt["name"] == "sgd":
            mu = opt.get("momentum", 0.0)
            if mu != 0:
                buf = g.copy() if buf is None else buf * mu + g
                g = g + mu * buf if opt.get("nesterov", False) else buf
            p = p - lr * g
        else:
            b1, b2 = opt.get("betas", (0.9, 0.999))
            m = m + (1 - b1) * (g - m) if 1 - b1 < 0.5 else g - (g - m) * (1 - (1 - b1))
            v = v * b2 + (1 - b2) * g * g
            step_size = lr / (1 - b1 ** t)
            denom = np.sqrt(v) / (1 - b2 ** t) ** 0.5 + opt.get("eps", 1e-8)
            p = p + -step_size * m / denom
    return p


@pytest.mark.parametrize("name", list(CONFIGS) + ["adam-beta1-small"])
def test_updates_are_the_documented_formulas_bit_for_bit(name):
    opt, lr, loss = CONFIGS.get(name, ({"name": "adam", "betas": (0.3, 0.5)}, 1e-3,
                                       "cross_entropy"))
    layers, params, X, y = data(3, m=10, loss=loss)
    steps = 15
    rates = rates_of(lr, steps)
    result = reference.train(layers, params, X, y, rates, steps, loss=loss, optimizer=opt)
    rates = rates if isinstance(rates, np.ndarray) else np.full(steps, rates)
    np.testing.assert_array_equal(result.params,
                                  hand_loop(layers, params, X, y, loss, opt, rates, steps))


def test_plain_and_default_sgd_are_unchanged():
    """optimizer None keeps today's bits (and state None); {"name": "sgd"} with
    momentum 0 and no weight decay computes the same update."""
    layers, params, X, y = data(4, m=10)
    before = reference.train(layers, params, X, y, 0.05, 20, loss="cross_entropy")
    assert before.optimizer_state is None
    for opt in ({"name": "sgd"}, {"name": "sgd", "momentum": 0.0, "nesterov": False,
                                  "weight_decay": 0.0}):
        r = reference.train(layers, params, X, y, 0.05, 20, loss="cross_entropy",
                            optimizer=opt)
        np.testing.assert_array_equal(r.params, before.params)
        np.testing.assert_array_equal(r.losses, before.losses)
        assert r.optimizer_state == {"momentum_buffer": None}
    # a constant array of rates is the float
    r = reference.train(layers, params, X, y, np.full(25, 0.05), 20, loss="cross_entropy")
    np.testing.assert_array_equal(r.params, before.params)


def test_first_steps():
    """SGD momentum: the first buffer is the gradient, so step 1 is a plain step. Adam:
    m = (1 - b1) g, v = (1 - b2) g^2 and the bias corrections cancel them, so step 1
    moves every parameter by lr g / (|g| + eps) (~lr sign(g))."""
    layers, params, X, y = data(5, m=10)
    g = reference.network_gradient(layers, params, X, y, "cross_entropy")
    r = reference.train(layers, params, X, y, 0.1, 1, loss="cross_entropy",
                        optimizer={"name": "sgd", "momentum": 0.9})
    np.testing.assert_array_equal(r.params, params - 0.1 * g)
    np.testing.assert_array_equal(r.optimizer_state["momentum_buffer"], g)
    r = reference.train(layers, params, X, y, 1e-3, 1, loss="cross_entropy",
                        optimizer={"name": "adam", "eps": 1e-8})
    # params ~ 1 move by ~1e-3: compare the new params (a difference would lose 3 digits)
    assert rel_err(r.params, params - 1e-3 * g / (np.abs(g) + 1e-8)) <= 1e-15
    assert r.optimizer_state["step"] == 1
    assert rel_err(r.optimizer_state["exp_avg"], 0.1 * g) <= 1e-15
    assert rel_err(r.optimizer_state["exp_avg_sq"], 0.001 * g * g) <= 1e-15


# ---------------------------------------------------------------- resumption


@pytest.mark.parametrize("opt", [None, {"name": "sgd", "momentum": 0.9},
                                 {"name": "sgd", "momentum": 0.5, "nesterov": True,
                                  "weight_decay": 0.1},
                                 {"name": "adam", "weight_decay": 0.01}])
def test_a_split_run_is_the_whole_run(opt):
    """120 + 180 steps (the second from the first's params, running statistics,
    batches_seen, optimizer state and the rest of the rates) = 300 steps, bit for bit;
    the state passed in is not modified."""
    layers, params, X, y = data(6, m=12)
    rates = np.geomspace(0.01, 0.001, 300) * (0.1 if opt and opt["name"] == "adam" else 1)
    whole = reference.train(layers, params, X, y, rates, 300, record_every=30,
                            loss="cross_entropy", optimizer=opt)
    first = reference.train(layers, params, X, y, rates[:120], 120, record_every=30,
                            loss="cross_entropy", optimizer=opt)
    kept = None if first.optimizer_state is None else {
        k: (v.copy() if isinstance(v, np.ndarray) else v)
        for k, v in first.optimizer_state.items()}
    second = reference.train(layers, first.params, X, y, rates[120:], 180, record_every=30,
                             loss="cross_entropy", running_mean=first.running_mean,
                             running_var=first.running_var,
                             batches_seen=first.batches_seen, optimizer=opt,
                             optimizer_state=first.optimizer_state)
    np.testing.assert_array_equal(second.params, whole.params)
    np.testing.assert_array_equal(np.concatenate([first.losses[:-1], second.losses]),
                                  whole.losses)
    for a, b in zip(second.running_mean + second.running_var,
                    whole.running_mean + whole.running_var):
        np.testing.assert_array_equal(a, b)
    assert second.batches_seen == whole.batches_seen == 300
    if opt is None:
        assert second.optimizer_state is None and whole.optimizer_state is None
    else:
        assert second.optimizer_state.keys() == whole.optimizer_state.keys()
        for key, value in whole.optimizer_state.items():
            np.testing.assert_array_equal(second.optimizer_state[key], value)
        for key, value in kept.items():  # the state passed in is left as it was
            np.testing.assert_array_equal(first.optimizer_state[key], value)


def test_zero_steps_return_the_state_given():
    layers, params, X, y = data(7, m=8)
    state = {"step": 4, "exp_avg": np.full(params.size, 0.5),
             "exp_avg_sq": np.full(params.size, 0.25)}
    r = reference.train(layers, params, X, y, 0.1, 0, loss="cross_entropy",
                        optimizer={"name": "adam"}, optimizer_state=state)
    assert r.optimizer_state["step"] == 4
    np.testing.assert_array_equal(r.optimizer_state["exp_avg"], state["exp_avg"])
    assert r.optimizer_state["exp_avg"] is not state["exp_avg"]  # a copy
    r = reference.train(layers, params, X, y, 0.1, 0, optimizer={"name": "adam"},
                        loss="cross_entropy")
    assert r.optimizer_state["step"] == 0 and not np.any(r.optimizer_state["exp_avg"])


# ---------------------------------------------------------------- argument checks


def _bad(**kw):
    return kw


OPTIMIZER_ERRORS = [
    (_bad(optimizer="adam"), TypeError, "optimizer must be None or a dict, got str"),
    (_bad(optimizer={"momentum": 0.9}), ValueError,
     r"optimizer must have the key 'name' \('sgd' or 'adam'\)"),
    (_bad(optimizer={"name": "rmsprop"}), ValueError,
     r"optimizer\['name'\]: unknown optimizer 'rmsprop'; expected one of sgd, adam"),
    (_bad(optimizer={"name": "SGD"}), ValueError, "unknown optimizer 'SGD'"),
    (_bad(optimizer={"name": "sgd", "betas": (0.9, 0.99)}), ValueError,
     r"optimizer must have the keys name \(optional: momentum, nesterov, weight_decay\); "
     r"missing \[\], unknown \['betas'\]"),
    (_bad(optimizer={"name": "adam", "momentum": 0.9}), ValueError,
     r"\(optional: betas, eps, weight_decay\); missing \[\], unknown \['momentum'\]"),
    (_bad(optimizer={"name": "sgd", "momentum": -0.1}), ValueError,
     r"optimizer\['momentum'\] must be a finite number >= 0, got -0.1"),
    (_bad(optimizer={"name": "sgd", "momentum": math.nan}), ValueError,
     r"optimizer\['momentum'\] must be a finite number >= 0"),
    (_bad(optimizer={"name": "sgd", "momentum": "0.9"}), TypeError,
     r"optimizer\['momentum'\] must be a real number"),
    (_bad(optimizer={"name": "sgd", "nesterov": True}), ValueError,
     r"optimizer\['nesterov'\] needs optimizer\['momentum'\] > 0"),
    (_bad(optimizer={"name": "sgd", "momentum": 0.9, "nesterov": 1}), TypeError,
     r"optimizer\['nesterov'\] must be a bool"),
    (_bad(optimizer={"name": "sgd", "weight_decay": -1e-4}), ValueError,
     r"optimizer\['weight_decay'\] must be a finite number >= 0"),
    (_bad(optimizer={"name": "adam", "weight_decay": math.inf}), ValueError,
     r"optimizer\['weight_decay'\] must be a finite number >= 0"),
    (_bad(optimizer={"name": "adam", "betas": (0.9, 1.0)}), ValueError,
     r"optimizer\['betas'\]\[1\] must be in \[0, 1\), got 1.0"),
    (_bad(optimizer={"name": "adam", "betas": (-0.1, 0.9)}), ValueError,
     r"optimizer\['betas'\]\[0\] must be in \[0, 1\)"),
    (_bad(optimizer={"name": "adam", "betas": 0.9}), TypeError,
     r"optimizer\['betas'\] must be a pair \(beta1, beta2\)"),
    (_bad(optimizer={"name": "adam", "betas": (0.9, 0.99, 0.999)}), TypeError,
     r"optimizer\['betas'\] must be a pair"),
    (_bad(optimizer={"name": "adam", "betas": (0.9, None)}), TypeError,
     r"optimizer\['betas'\]\[1\] must be a real number"),
    (_bad(optimizer={"name": "adam", "eps": 0.0}), ValueError,
     r"optimizer\['eps'\] must be a finite number > 0, got 0.0"),
    (_bad(optimizer={"name": "adam", "eps": -1e-8}), ValueError,
     r"optimizer\['eps'\] must be a finite number > 0"),
    (_bad(optimizer_state={"momentum_buffer": None}), ValueError,
     "optimizer_state must be None without an optimizer"),
    (_bad(optimizer={"name": "sgd", "momentum": 0.9}, optimizer_state={"step": 0}),
     ValueError, r"optimizer_state must have the keys momentum_buffer; "
                 r"missing \['momentum_buffer'\], unknown \['step'\]"),
    (_bad(optimizer={"name": "sgd", "momentum": 0.9},
          optimizer_state={"momentum_buffer": np.zeros(3)}),
     ValueError, r"optimizer_state\['momentum_buffer'\] must have shape \(5,\)"),
    (_bad(optimizer={"name": "sgd", "momentum": 0.9},
          optimizer_state={"momentum_buffer": np.full(5, np.nan)}),
     ValueError, r"optimizer_state\['momentum_buffer'\] must be finite"),
    (_bad(optimizer={"name": "adam"}, optimizer_state={"momentum_buffer": None}),
     ValueError, r"optimizer_state must have the keys step, exp_avg, exp_avg_sq"),
    (_bad(optimizer={"name": "adam"}, optimizer_state={
        "step": -1, "exp_avg": np.zeros(5), "exp_avg_sq": np.zeros(5)}),
     ValueError, r"optimizer_state\['step'\] must be >= 0"),
    (_bad(optimizer={"name": "adam"}, optimizer_state={
        "step": 1.0, "exp_avg": np.zeros(5), "exp_avg_sq": np.zeros(5)}),
     TypeError, r"optimizer_state\['step'\] must be an int"),
    (_bad(optimizer={"name": "adam"}, optimizer_state={
        "step": 1, "exp_avg": np.zeros(5), "exp_avg_sq": -np.ones(5)}),
     ValueError, r"optimizer_state\['exp_avg_sq'\] must be finite and >= 0"),
    (_bad(optimizer={"name": "adam"}, optimizer_state={
        "step": 1, "exp_avg": np.zeros(5, complex), "exp_avg_sq": np.zeros(5)}),
     TypeError, r"optimizer_state\['exp_avg'\] must hold real numbers"),
    (_bad(optimizer={"name": "adam"}, optimizer_state=[0, 0, 0]), TypeError,
     "optimizer_state must be a dict"),
    (_bad(lr=np.full(2, 0.1)), ValueError,
     r"lr has 2 per-step rates but steps is 3 \(one rate per update\)"),
    (_bad(lr=[0.1, 0.0, 0.1]), ValueError,
     r"lr must be finite numbers > 0, got lr\[1\] = 0.0"),
    (_bad(lr=[0.1, 0.1, math.nan]), ValueError, r"got lr\[2\] = nan"),
    (_bad(lr=np.full((3, 1), 0.1)), ValueError,
     r"lr must be a real number or a 1-D array of per-step rates, got shape \(3, 1\)"),
    (_bad(lr=np.array(0.1)), ValueError, r"got shape \(\)"),
    (_bad(lr=["0.1"] * 3), TypeError, "lr must be a real number or a 1-D array of real "
                                      "per-step rates, got dtype <U3"),
    (_bad(lr=np.ones(3, bool)), TypeError, "got dtype bool"),
]


@pytest.mark.parametrize("kwargs,exc,match", OPTIMIZER_ERRORS)
def test_optimizer_argument_errors(kwargs, exc, match):
    layers = [dense(1, 1, "identity", True, layer_norm(eps=1e-3)), dense(1, 1, "identity",
                                                                         False)]
    args = dict(layers=layers, params=np.ones(5), X=np.array([[1.0], [2.0], [4.0]]),
                y=np.array([0.0, 1.0, 0.5]), lr=0.1, steps=3)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        reference.train(**args)
