"""The ics experiment: internal_covariate_shift against the NumPy reference, the rule on
crafted inputs, one tiny task, and the quick run."""

import json
import math

import numpy as np
import pytest

import bnfast
from bnfast import reference
from bnfast.experiments import ics, measures, problems


def _reference_ics(net, X, y, step):
    """Definition 2.1 from bnfast.reference.network_gradient: per layer i, the W block
    of the gradient at params and at params with layers 1..i-1 moved by step."""
    layers = [layer.to_dict() for layer in net.layers]
    params = net.params
    layout = net.param_layout()
    G = reference.network_gradient(layers, params, X, y, loss=net.loss_kind)
    l2, cos = [], []
    for i, entry in enumerate(layout):
        moved = params.copy()
        for j in range(i):
            for sl, _ in layout[j].values():
                moved[sl] += step[sl]
        G_moved = reference.network_gradient(layers, moved, X, y, loss=net.loss_kind)
        w = entry["W"][0]
        a, b = G[w], G_moved[w]
        l2.append(np.linalg.norm(a - b))
        cos.append(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
    return np.array(l2), np.array(cos)


def _small_nets():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((12, 4))
    y = rng.standard_normal((12, 3))
    linear_bn = bnfast.Network([bnfast.Dense(4, 4, batch_norm=bnfast.BatchNorm()),
                                bnfast.Dense(4, 4, batch_norm=bnfast.BatchNorm()),
                                bnfast.Dense(4, 3)], loss="sum").init("glorot", 1)
    relu = bnfast.Network([bnfast.Dense(4, 6, "relu"), bnfast.Dense(6, 5, "tanh"),
                           bnfast.Dense(5, 3)], loss="mean").init("glorot", 2)
    return X, y, [linear_bn, relu]


@pytest.mark.parametrize("which", [0, 1])
def test_ics_matches_the_reference(which):
    X, y, nets = _small_nets()
    net = nets[which]
    # non-trivial parameters (gamma, beta away from 1, 0) and a random step
    rng = np.random.default_rng(3 + which)
    net.params = net.params + 0.3 * rng.standard_normal(net.num_params)
    step = 0.05 * rng.standard_normal(net.num_params)
    before = net.params
    l2, cos = measures.internal_covariate_shift(net, X, y, step)
    want_l2, want_cos = _reference_ics(net, X, y, step)
    # both are float64 evaluations of the same formulas: rounding-level agreement
    np.testing.assert_allclose(l2, want_l2, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(cos, want_cos, rtol=1e-9, atol=1e-12)
    assert l2[0] == 0.0 and cos[0] == pytest.approx(1.0, abs=1e-15)
    assert np.all(l2[1:] > 0)                 # the step does shift the later layers
    np.testing.assert_array_equal(net.params, before)


def test_ics_zero_step_and_bad_step():
    X, y, nets = _small_nets()
    l2, cos = measures.internal_covariate_shift(nets[0], X, y, np.zeros(nets[0].num_params))
    np.testing.assert_array_equal(l2, 0.0)
    np.testing.assert_allclose(cos, 1.0, atol=1e-14)
    with pytest.raises(ValueError, match="shape"):
        measures.internal_covariate_shift(nets[0], X, y, np.zeros(3))


def test_ics_of_an_overflowing_step_is_undefined_past_the_overflow():
    X, y, nets = _small_nets()
    net = nets[1]
    before = net.params
    step = 0.05 * np.random.default_rng(5).standard_normal(net.num_params)
    slices = net.param_slices
    step[slices[1]] = np.inf              # layer 2's update overflows
    l2, cos = measures.internal_covariate_shift(net, X, y, step)
    # layers 1 and 2 only see layer 1's (finite) move; layer 3's G' is undefined
    want_l2, want_cos = _reference_ics(net, X, y, np.where(np.isfinite(step), step, 0.0))
    np.testing.assert_allclose(l2[:2], want_l2[:2], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(cos[:2], want_cos[:2], rtol=1e-9, atol=1e-12)
    assert np.isnan(l2[2]) and np.isnan(cos[2])
    np.testing.assert_array_equal(net.params, before)
    # an overflow in layer 1's own update leaves layers 2.. undefined
    step[slices[0]] = 1e308
    net.params = before + np.where(np.arange(net.num_params) < slices[0].stop, 1e308, 0.0)
    l2, cos = measures.internal_covariate_shift(net, X, y, step)
    assert np.all(np.isnan(l2[1:])) and np.all(np.isnan(cos[1:]))


def test_run_task_maps_non_finite_ics_to_none(monkeypatch):
    def fake_ics(net, X, y, step):
        k = len(net.param_slices)
        l2 = np.array([0.0, np.inf] + [np.nan] * (k - 2))
        cos = np.array([1.0, 0.5] + [np.nan] * (k - 2))
        return l2, cos

    monkeypatch.setattr(ics, "internal_covariate_shift", fake_ics)
    task = {"problem": "dln", "norm": None, "lr": 1e-7, "steps": 2, "checkpoints": 1,
            "record_every": 1, "batch_size": None, "data_seed": 1, "init_seed": 2,
            "train_seed": 3}
    out = ics.run_task(task)
    assert out["l2"][0][:3] == [0.0, None, None]
    assert out["cosine"][0][:3] == [1.0, 0.5, None]
    curves = ics._curves(out)
    assert curves["median_l2_per_layer"][:3] == [0.0, None, None]
    assert curves["median_cosine_per_layer"][:3] == [1.0, 0.5, None]
    json.dumps(curves, allow_nan=False)   # strict JSON


def test_ics_of_a_two_layer_linear_net_in_closed_form():
    # f(x) = W2 W1 x, L = sum ||y - f||^2: dL/dW2 = -2 R^T (X W1^T), R = Y - X W1^T W2^T
    rng = np.random.default_rng(7)
    X, Y = rng.standard_normal((20, 3)), rng.standard_normal((20, 2))
    net = bnfast.Network([bnfast.Dense(3, 4, bias=False), bnfast.Dense(4, 2, bias=False)])
    W1, W2 = rng.standard_normal((4, 3)), rng.standard_normal((2, 4))
    net.params = np.concatenate([W1.ravel(), W2.ravel()])
    D1 = 0.1 * rng.standard_normal((4, 3))
    step = np.concatenate([D1.ravel(), rng.standard_normal(8)])  # layer 2's part unused

    def grad_W2(W1):
        H = X @ W1.T
        return -2 * (Y - H @ W2.T).T @ H

    G, G_moved = grad_W2(W1), grad_W2(W1 + D1)
    l2, cos = measures.internal_covariate_shift(net, X, Y, step)
    assert l2[1] == pytest.approx(np.linalg.norm(G - G_moved), rel=1e-10)
    assert cos[1] == pytest.approx(np.sum(G * G_moved) / np.linalg.norm(G)
                                   / np.linalg.norm(G_moved), rel=1e-10)


def test_median_cosine_skips_layer_one_and_nan():
    assert measures.median_cosine([[1.0, 0.2, 0.4], [1.0, float("nan"), 0.6]]) == \
        pytest.approx(0.4)
    assert measures.median_cosine([[1.0, float("nan")]]) is None


def _run(cos, final_loss, diverged=None):
    return {"cosine": [[1.0] + [cos] * 3] * 2, "l2": [[0.0] + [1.0] * 3] * 2,
            "checkpoint_steps": [0, 1], "loss_steps": [0, 1], "losses": [10.0, final_loss],
            "diverged_at": diverged}


@pytest.mark.parametrize("standard, bn, outcome", [
    (_run(0.9, 10.0), _run(0.2, 5.0), "supported"),
    (_run(0.9, 10.0), _run(0.2, 9.8), "inconclusive"),      # loss within the 5% margin
    (_run(0.9, 10.0), _run(0.88, 5.0), "inconclusive"),     # cosine within the margin
    (_run(0.5, 10.0), _run(0.9, 5.0), "refuted"),           # BN reduces ICS
    (_run(0.9, 10.0), _run(0.2, 12.0), "refuted"),          # BN trains slower
    (_run(0.9, 10.0), _run(0.2, 5.0, diverged=3), "refuted"),   # BN diverged alone
    (_run(0.9, 10.0, diverged=3), _run(0.2, 5.0), "inconclusive"),
    (_run(0.9, 10.0, diverged=3), _run(0.2, 5.0, diverged=3), "inconclusive"),
])
def test_compare_rule(standard, bn, outcome):
    got, inputs = ics.compare(standard, bn)
    assert got == outcome
    assert inputs["median_cosine_standard"] == pytest.approx(standard["cosine"][0][1])


def test_conclude_needs_every_dln_rate():
    settings = {**ics.settings(True), "seed": 0, "quick": True}
    good = [_run(0.9, 10.0), _run(0.2, 5.0)]
    bad = [_run(0.5, 10.0), _run(0.9, 5.0)]
    # task order: dln lr 1e-6 (standard, BN), dln lr 1e-7 (standard, BN), digits
    verdict, m = ics.conclude(settings, good + good + bad)
    assert verdict == "supported"                       # digits is reported only
    assert m["verdict_inputs"]["digits"]["used_in_verdict"] is False
    mixed = ics.conclude(settings, good + bad + good)[0]
    assert mixed == "mixed"          # version 2: one lr supports, the other refutes
    assert mixed.text == "mixed (supported: dln lr=1e-06; refuted: dln lr=1e-07)"
    tie = [_run(0.9, 10.0), _run(0.88, 5.0)]              # within the cosine margin
    assert ics.conclude(settings, good + tie + good)[0] == "underpowered"
    assert ics.conclude(settings, bad + bad + good)[0] == "refuted"


def test_run_task_tiny():
    task = {"problem": "dln", "norm": "std", "lr": 1e-6, "steps": 4, "checkpoints": 2,
            "record_every": 1, "batch_size": None, "data_seed": 1, "init_seed": 2,
            "train_seed": 3}
    out = ics.run_task(task)
    assert out["checkpoint_steps"] == [0, 2, 4]
    assert np.shape(out["l2"]) == (3, 25) and np.shape(out["cosine"]) == (3, 25)
    assert out["loss_steps"] == [0, 1, 2, 3, 4]
    X, Y = problems.deep_linear_data(1)
    net = problems.deep_linear_network(norm="std", seed=2)
    assert out["losses"][0] == pytest.approx(net.loss(X, Y), rel=1e-12)
    # the first checkpoint is the ICS of the initial network for a GD step of lr
    l2, _ = measures.internal_covariate_shift(net, X, Y, -1e-6 * net.gradient(X, Y))
    np.testing.assert_allclose(out["l2"][0], l2, rtol=1e-12)
    bnfast.train(net, X, Y, 1e-6, 4)
    assert out["losses"][-1] == pytest.approx(net.loss(X, Y), rel=1e-10)


def test_quick_run(quick_result):
    result = quick_result("ics")
    m = result.measurements
    assert set(m["verdict_inputs"]) == {"dln lr=1e-06", "dln lr=1e-07", "digits"}
    for key, runs in m["runs"].items():
        for run in runs.values():
            cos = [c for row in run["cosine"] for c in row if c is not None]
            assert all(-1 - 1e-12 <= c <= 1 + 1e-12 for c in cos)
            assert run["losses"][-1] < run["losses"][0]          # every run trains
            assert run["loss_steps"][-1] == result.settings[
                "dln" if key.startswith("dln") else "digits"]["steps"]
    inputs = m["verdict_inputs"]["dln lr=1e-06"]
    assert inputs["outcome"] == ics.compare(
        {"cosine": m["runs"]["dln lr=1e-06"]["standard"]["cosine"],
         "losses": [inputs["final_loss_standard"]], "diverged_at": None},
        {"cosine": m["runs"]["dln lr=1e-06"]["bn"]["cosine"],
         "losses": [inputs["final_loss_bn"]], "diverged_at": None})[0]
    assert result.settings["reduced"]
    assert not math.isnan(inputs["median_cosine_bn"])
