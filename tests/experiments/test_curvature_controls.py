"""The curvature controls of version 2 (measures.py; experiments.md item 5): sharpness
against the stability threshold, the effective learning rate of scale-invariant weights,
the largest stable learning rate, comparisons at matched loss."""

import copy
import math

import numpy as np
import pytest

import bnfast
from bnfast.experiments import measures, problems


# ---- (a) edge of stability -----------------------------------------------------------

def _dln_run(depth, lr, steps=1000, sharpness_every=20):
    """A small deep linear network (no BN), full-batch gradient descent."""
    X, y = problems.deep_linear_data(0, samples=100, dim=5)
    net = problems.deep_linear_network(depth, 5, seed=1, loss="mean")
    return bnfast.train(net, X, y, lr, steps, record_every=100,
                        sharpness_every=sharpness_every)


def test_gradient_descent_settles_at_the_edge_of_stability():
    # A depth-4 DLN starts sharper than 2/lr (ratio ~1.7) at lr 0.05: gradient descent
    # cannot converge to a minimum sharper than 2/lr (it would be linearly unstable),
    # so it leaves the sharp region and converges just below the threshold.
    lr = 0.05
    result = _dln_run(4, lr)
    eos = measures.edge_of_stability(result.sharpness, lr)
    assert eos["threshold"] == pytest.approx(2 / lr)
    assert eos["ratios"][0] > 1.2                   # unstable at the start
    assert result.losses[-1] < 1e-6                 # and yet it converged
    assert 0.9 <= eos["final_ratio"] <= 1.0 + 1e-6  # at a minimum with sharpness ~2/lr
    assert eos["fraction_in_band"] > 0.9
    assert eos["first_step_in_band"] == 0
    assert len(eos["steps"]) == len(eos["ratios"]) == 51


def test_a_small_learning_rate_stays_below_the_edge():
    # The same kind of network at a small lr settles far below 2/lr: the measure does
    # not call every run "at the edge".
    lr = 0.02
    result = _dln_run(3, lr)
    eos = measures.edge_of_stability(result.sharpness, lr)
    assert eos["final_ratio"] < 0.6
    assert eos["fraction_in_band"] == 0.0
    assert eos["first_step_in_band"] is None


def test_edge_of_stability_arguments():
    eos = measures.edge_of_stability([1.0, 19.0, 20.0, 21.5], 0.1)
    assert eos["steps"] == [0, 1, 2, 3]
    assert eos["ratios"] == pytest.approx([0.05, 0.95, 1.0, 1.075])
    assert eos["fraction_in_band"] == 0.75 and eos["first_step_in_band"] == 1
    later = measures.edge_of_stability((np.array([0, 10, 20, 30]),
                                        np.array([1.0, 19.0, 20.0, 30.0])), 0.1,
                                       from_step=10)
    assert later["steps"] == [10, 20, 30] and later["fraction_in_band"] == 2 / 3
    assert later["max_ratio"] == pytest.approx(1.5) and later["final_ratio"] == 1.5
    # heavy-ball momentum: the threshold is (2 + 2 beta) / lr; Nesterov's below it
    assert measures.stability_threshold(0.1, 0.9) == pytest.approx(38.0)
    assert measures.stability_threshold(0.1, 0.9, nesterov=True) == pytest.approx(
        3.8 / 0.28)
    with pytest.raises(ValueError):
        measures.stability_threshold(0.0)
    nan = measures.edge_of_stability([math.nan], 1.0)
    assert nan["ratios"] == [None] and nan["final_ratio"] is None


# ---- (b) the effective learning rate of scale-invariant weights ----------------------

def test_effective_learning_rate_closed_form():
    net = problems.mnist1d_cnn(norm="std", seed=0)
    groups = measures.scale_invariant_groups(net)
    assert [index for index, _ in groups] == [0, 1, 2]     # the three BN'd convs
    params = np.zeros(net.num_params)
    layout = net.param_layout()
    for index, value in ((0, 1.0), (1, 0.5), (2, 2.0)):
        where, shape = layout[index]["W"]
        params[where] = value                                # ||W||^2 = value^2 size
    lr = 0.1
    out = measures.effective_learning_rates(net, lr, params)
    sizes = [25 * 5, 25 * 25 * 3, 25 * 25 * 3]
    expected_sq = [1.0 * sizes[0], 0.25 * sizes[1], 4.0 * sizes[2]]
    assert out["layers"] == [0, 1, 2]
    assert out["sq_norms"] == pytest.approx(expected_sq, rel=1e-15)
    assert out["effective_lr"] == pytest.approx([lr / s for s in expected_sq], rel=1e-15)
    # the Dense head (no BN) and a plain net have none
    assert measures.effective_learning_rates(problems.mnist1d_cnn(seed=0), lr)["layers"] == []
    # W and b together by default; W alone on request
    with_bias = measures.effective_learning_rates(net, lr)
    alone = measures.effective_learning_rates(net, lr, include_bias=False)
    p = net.params
    for k, index in enumerate(alone["layers"]):
        W, b = layout[index]["W"][0], layout[index]["b"][0]
        assert alone["sq_norms"][k] == pytest.approx(p[W] @ p[W], rel=1e-14)
        assert with_bias["sq_norms"][k] == pytest.approx(p[W] @ p[W] + p[b] @ p[b],
                                                         rel=1e-14)


def test_effective_learning_rate_is_what_a_step_does():
    # Scale invariance (Arora et al. 2019): with W and b of a BN'd layer multiplied by
    # c, the gradient there is 1/c times as large, so a gradient step of lr c^2 moves
    # them to exactly c times where a step of lr moves the unscaled ones: the same
    # direction, the same effective lr lr/||W||^2 (up to BN's eps).
    X, y = problems.deep_linear_data(3, samples=64, dim=6)
    layers = [bnfast.Dense(6, 6, "tanh", batch_norm=bnfast.BatchNorm(eps=1e-12)),
              bnfast.Dense(6, 6)]
    net = bnfast.Network(layers, loss="mean").init("glorot", 4)
    c, lr = 3.0, 0.05
    scaled = copy.deepcopy(net)
    group = measures.scale_invariant_groups(scaled)[0][1]
    params = scaled.params
    for s in group:
        params[s] *= c
    scaled.params = params
    g = net.gradient(X, y)
    W = net.param_layout()[0]["W"][0]
    w = net.params[W]                                               # w . grad_w = 0
    assert abs(w @ g[W]) <= 1e-10 * np.linalg.norm(w) * np.linalg.norm(g[W])
    rate = measures.effective_learning_rates(net, lr)["effective_lr"][0]
    rate_scaled = measures.effective_learning_rates(scaled, lr * c ** 2)["effective_lr"][0]
    assert rate_scaled == pytest.approx(rate, rel=1e-14)
    bnfast.train(net, X, y, lr, 1)
    bnfast.train(scaled, X, y, lr * c ** 2, 1)
    for s in group:
        np.testing.assert_allclose(scaled.params[s], c * net.params[s], rtol=1e-9,
                                   atol=1e-12)


# ---- (c) the largest stable learning rate --------------------------------------------

def test_largest_stable_learning_rate_of_a_quadratic():
    # A single linear layer with the mean squared loss is a quadratic: gradient descent
    # is stable exactly below 2 / lambda_max of its Hessian (the loss still falls at
    # any lr < 2/lambda_max; at larger lr the top mode grows geometrically).
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 4)) * np.array([3.0, 1.0, 0.5, 0.2])
    y = rng.standard_normal((50, 1))
    net = bnfast.Network([bnfast.Dense(4, 1, bias=False)], loss="mean").init("glorot", 0)
    start = net.params
    sharpness = bnfast.curvature.top_eigenvalues(net, X, y, progress=False).eigenvalues[0]
    edge = 2 / sharpness
    out = measures.largest_stable_lr(net, X, y, steps=200, low=edge / 10, high=edge * 10,
                                     points=41)
    assert out["lr"] < edge <= out["next_lr"] * (1 + 1e-12)
    assert out["next_lr"] / out["lr"] == pytest.approx(100 ** (1 / 40))
    assert len(out["tried"]) <= 9
    np.testing.assert_array_equal(net.params, start)            # net untouched
    again = measures.largest_stable_lr(net, X, y, steps=200, low=edge / 10,
                                       high=edge * 10, points=41)
    assert again == out                                          # deterministic
    # the ends of the grid
    low_fails = measures.largest_stable_lr(net, X, y, 200, edge * 2, edge * 4, points=3)
    assert low_fails["lr"] is None and low_fails["next_lr"] == pytest.approx(edge * 2)
    high_ok = measures.largest_stable_lr(net, X, y, 200, edge / 8, edge / 2, points=3)
    assert high_ok["lr"] == pytest.approx(edge / 2) and high_ok["next_lr"] is None


def test_largest_stable_learning_rate_with_bn_and_momentum():
    # A BN MLP on the digits with mini-batch momentum SGD: a finite answer inside the
    # grid, the same for the same seed.
    X, y, *_ = problems.digits_data(0)
    net = problems.digits_mlp((32,), norm="std", seed=0)
    kwargs = dict(steps=30, low=1e-3, high=1e3, points=13, batch_size=64,
                  optimizer=bnfast.SGD(momentum=0.9), seed=5)
    out = measures.largest_stable_lr(net, X, y, **kwargs)
    assert out["lr"] is not None and out["next_lr"] is not None
    assert all(t["stable"] == (t["lr"] <= out["lr"]) for t in out["tried"])
    assert measures.largest_stable_lr(net, X, y, **kwargs) == out


# ---- (d) matched loss ---------------------------------------------------------------

def test_first_reach_and_matched_loss():
    a = np.array([4.0, 2.0, 1.0, 0.5, 0.25])
    b = np.array([4.0, 3.0, 2.5, 2.0, 1.0, 0.9, np.nan])
    assert measures.first_reach_steps(a, [2.0, 0.3, 0.1], record_every=10) == [10, 40, None]
    out = measures.matched_loss(a, b, levels=[2.0, 1.0], record_every=10,
                                checkpoints_a=(np.array([0, 20, 40]),
                                               np.array([1.0, 2.0, 3.0])),
                                checkpoints_b=(np.array([0, 25, 50]),
                                               np.array([[1.0, 1.5], [2.0, 2.5],
                                                         [3.0, 3.5]])))
    assert out["steps_a"] == [10, 20] and out["steps_b"] == [30, 40]
    # nearest checkpoint, the earlier on a tie (a: step 10 between 0 and 20 -> 0)
    assert out["at_a"] == [{"step": 0, "value": 1.0}, {"step": 20, "value": 2.0}]
    assert out["at_b"] == [{"step": 25, "value": [2.0, 2.5]},
                           {"step": 50, "value": [3.0, 3.5]}]
    # default levels: from the smaller start down to the larger best; both reach all
    auto = measures.matched_loss(a, b, count=4)
    assert auto["levels"][0] == 4.0 and auto["levels"][-1] == 0.9
    assert None not in auto["steps_a"] and None not in auto["steps_b"]
    assert auto["steps_b"][-1] == 5 and auto["steps_a"][-1] == 3


def test_matched_loss_with_sharpness_records():
    # The use it is made for: two runs' sharpness compared where they reach the same
    # loss (not the same step).
    lr = 0.05
    fast, slow = _dln_run(4, lr, steps=200), _dln_run(4, lr / 2, steps=200)
    out = measures.matched_loss(fast.losses, slow.losses, count=3, record_every=100,
                                checkpoints_a=fast.sharpness, checkpoints_b=slow.sharpness)
    assert len(out["at_a"]) == 3 and all(v is not None for v in out["at_a"])
    assert all(isinstance(v["value"], float) for v in out["at_b"])
