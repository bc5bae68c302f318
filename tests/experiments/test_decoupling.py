"""The decoupling experiment (Kohler et al. 2019): its computations checked independently,
the rule on crafted inputs, and the quick run."""

import numpy as np
import pytest

from bnfast import BatchNorm, Dense, Network
from bnfast.experiments import decoupling as dec


@pytest.fixture(scope="module")
def problem():
    return dec.least_squares_problem(dim=6, samples=40, kappa=50.0, seed=3)


def test_problem_has_the_prescribed_covariance(problem):
    X, S = problem["X"], problem["S"]
    assert np.allclose(X.mean(axis=0), 0.0, atol=1e-12)
    assert np.allclose(X.T @ X / len(X), S, atol=1e-10)
    assert np.allclose(np.linalg.eigvalsh(S), np.geomspace(1, 50, 6), rtol=1e-10)
    assert np.isclose(problem["w0"] @ S @ problem["w0"], 1.0)


def test_rho_gap_matches_the_direct_formula(problem):
    u, S = problem["u"], problem["S"]
    rho_star = u @ np.linalg.solve(S, u)
    w = np.random.default_rng(0).standard_normal(6)
    gap, star = dec.rho_gap(w, u, problem["eigenvalues"], problem["eigenvectors"])
    assert np.isclose(star, rho_star, rtol=1e-12)
    assert np.isclose(gap, rho_star - dec.rho(w, u, S), rtol=1e-9)
    # at w* the gap vanishes (to rounding, relative to rho*)
    gap_star, _ = dec.rho_gap(np.linalg.solve(S, u), u, problem["eigenvalues"],
                              problem["eigenvectors"])
    assert gap_star < 1e-28 * rho_star


def test_bn_network_loss_is_the_reduced_objective(problem):
    """bnfast's BN neuron (eps = 0) on the data: loss = E y^2 - 2 g u^T w/||w||_S + g^2
    + beta^2, the paper's eq. (11) with its sign convention for u."""
    X, y, u, S = problem["X"], problem["y"], problem["u"], problem["S"]
    net = Network([Dense(6, 1, bias=False, batch_norm=BatchNorm(eps=0.0))], loss="mean")
    rng = np.random.default_rng(1)
    w, g, beta = rng.standard_normal(6), 1.7, 0.3
    net.params = np.concatenate([w, [g, beta]])
    expected = y @ y / len(y) - 2 * g * (u @ w) / np.sqrt(w @ S @ w) + g ** 2 + beta ** 2
    assert np.isclose(net.loss(X, y), expected, rtol=1e-12)


def test_gdnp_gradient_is_minus_the_rayleigh_gradient(problem):
    """With the bisected g = g*(w), grad_w f = -grad rho (finite differences)."""
    u, S = problem["u"], problem["S"]
    w = np.random.default_rng(2).standard_normal(6)
    bound = np.linalg.norm(u) / np.sqrt(problem["eigenvalues"][0])
    g = dec._bisect_length(w, u, S, bound, 60)
    assert np.isclose(g, u @ w / np.sqrt(w @ S @ w), rtol=1e-12)
    norm = np.sqrt(w @ S @ w)
    grad_f = -2 * g * (u / norm - (u @ w) * (S @ w) / norm ** 3)
    h = 1e-6
    fd = np.array([(dec.rho(w + h * e, u, S) - dec.rho(w - h * e, u, S)) / (2 * h)
                   for e in np.eye(6)])
    assert np.allclose(grad_f, -fd, rtol=1e-6, atol=1e-8 * np.abs(fd).max())


def test_gdnp_meets_the_bound_on_a_small_problem(problem):
    gaps, _, rho_star = dec.gdnp(problem["u"], problem["S"], problem["eigenvalues"],
                                 problem["eigenvectors"], problem["w0"], 200, 60)
    rate = (1 - 1 / 50.0) ** (2 * np.arange(201))
    assert np.all(gaps <= rate * gaps[0] + dec.SLACK * rho_star)
    assert gaps[-1] < 1e-5 * gaps[0]     # and it converges (the bound: 3e-4)


def test_run_task_on_a_tiny_task():
    out = dec.run_task({"kappa": 10.0, "replicate": 0, "dim": 5, "samples": 30,
                        "steps": 50, "bisection_steps": 60,
                        "bn_learning_rates": [0.1, 0.3], "seed": 7})
    assert out["violations"] == 0 and out["steps_tested"] == 50    # every t >= 1
    assert 0 < out["steps_bound_above_slack"] <= 50
    assert out["gdnp_relative_gap"][0] == 1.0 and out["bound_relative"][0] == 1.0
    assert out["bn_lr"] in (0.1, 0.3)
    assert out["gd_relative_excess"][-1] < 1e-3


def test_run_task_checks_every_step_even_below_the_slack(monkeypatch):
    """kappa = 2 for 2000 steps: the bound 0.25^t gap_0 falls below the slack after a few
    dozen steps (and underflows to 0); those steps are still checked, as gap <= slack."""
    task = {"kappa": 2.0, "replicate": 0, "dim": 5, "samples": 30, "steps": 2000,
            "bisection_steps": 60, "bn_learning_rates": [0.3], "seed": 7}
    out = dec.run_task(task)
    assert out["steps_tested"] == 2000
    assert 0 < out["steps_bound_above_slack"] < 100
    assert out["violations"] == 0
    # a gap that stalls just above the slack late in the run, where the bound is ~0:
    # the old check (only steps with bound > slack) would miss it
    real_gdnp = dec.gdnp

    def stalled(*args, **kwargs):
        gaps, lengths, rho_star = real_gdnp(*args, **kwargs)
        gaps = gaps.copy()
        gaps[-1] = 2 * dec.SLACK * rho_star
        return gaps, lengths, rho_star

    monkeypatch.setattr(dec, "gdnp", stalled)
    out = dec.run_task(task)
    assert out["violations"] == 1 and out["steps_tested"] == 2000


def _result(violations, tested, ratio, informative=None):
    return {"kappa": 10.0, "violations": violations, "steps_tested": tested,
            "steps_bound_above_slack": tested if informative is None else informative,
            "max_ratio": ratio, "bn_lr": 0.1,
            "steps_to_1e-6": {"gdnp": 5, "gd": 6, "bn_gd": None}}


@pytest.mark.parametrize("results, verdict", [
    ([_result(0, 40, 0.5), _result(0, 30, 0.9)], "supported"),
    ([_result(0, 40, 0.5, 10), _result(0, 30, 0.9, 0)], "supported"),
    ([_result(0, 40, 0.5), _result(2, 30, 1.3)], "refuted"),
    ([_result(0, 0, None)], "underpowered"),
    ([_result(0, 40, None, 0)], "underpowered"),    # checked, but never informative
    ([_result(1, 40, None, 0)], "refuted"),         # a gap above the slack, bound ~0
])
def test_conclude_rule(results, verdict):
    got, measurements = dec.conclude({"condition_numbers": [10.0]}, results)
    assert got == verdict
    assert measurements["verdict_inputs"]["violations"] == sum(r["violations"]
                                                               for r in results)


def test_quick_run(quick_result):
    result = quick_result("decoupling")
    assert result.verdict == "supported"
    inputs = result.measurements["verdict_inputs"]
    assert inputs["violations"] == 0 and inputs["steps_tested"] == 4 * 600
    assert 100 < inputs["steps_bound_above_slack"] <= inputs["steps_tested"]
    assert 0 < inputs["max_ratio_gap_to_bound"] <= 1.0
    assert len(result.measurements["problems"]) == 4
    assert dec.summary(result.measurements)
