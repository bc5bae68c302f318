"""The precise-bn experiment (Wu and Johnson 2021): the EMA momentum leaves the training
trajectory alone, the statistics gap, the rule on crafted per-seed values, the figure,
and the quick run."""

import copy
import math

import numpy as np
import pytest

from bnfast.experiments import precise_bn as pb
from bnfast.experiments.problems import mnist1d_cnn, mnist1d_data, recipe, train_recipe


def test_momentum_changes_only_the_running_statistics():
    X, y, _, _ = mnist1d_data()
    X, y = X[:400], y[:400]
    setup = {**recipe("mnist1d", True), "steps": 12}
    nets = [pb.network(m, 7) for m in (0.01, 0.1, 0.5)]
    reference = mnist1d_cnn(norm="std", seed=7)          # PyTorch's momentum 0.1
    assert np.array_equal(nets[1].params, reference.params)
    for net in nets + [reference]:
        train_recipe(net, X, y, setup, 3)
    for net in nets:
        assert np.array_equal(net.params, nets[0].params)
    assert np.array_equal(nets[1].running_mean[0], reference.running_mean[0])
    assert not np.allclose(nets[0].running_var[1], nets[2].running_var[1])


def test_statistics_gap():
    mean, var = [np.array([0.0, 1.0])], [np.array([4.0, 1.0])]
    assert pb.statistics_gap(mean, var, mean, var) == [0.0]
    # EMA mean off by one exact sigma in channel 0, exact variance: gap sqrt(1/2) rms
    shifted = [np.array([2.0, 1.0])]
    got = pb.statistics_gap(shifted, var, mean, var, eps=0.0)
    assert math.isclose(got[0], math.sqrt(0.5), rel_tol=1e-12)
    # EMA variance a quarter of the exact one: sigma/sigma_e = 2 in every channel
    got = pb.statistics_gap(mean, [v / 4 for v in var], mean, var, eps=0.0)
    assert math.isclose(got[0], 1.0, rel_tol=1e-12)


def test_recalibrated_statistics_are_the_populations():
    """Recalibrating twice changes nothing (the gap of precise BN to itself is 0), and
    after a few steps the EMA is measurably off the exact statistics."""
    X, y, _, _ = mnist1d_data()
    X = X[:300]
    net = pb.network(0.1, 1)
    train_recipe(net, X, y[:300], {**recipe("mnist1d", True), "steps": 5}, 0)
    precise = copy.deepcopy(net).recalibrate(X)
    again = copy.deepcopy(precise).recalibrate(X)
    gaps = pb.statistics_gap(precise.running_mean, precise.running_var,
                             again.running_mean, again.running_var)
    assert max(gaps) < 1e-10
    assert max(pb.statistics_gap(net.running_mean, net.running_var,
                                 precise.running_mean, precise.running_var)) > 1e-3


def _settings(**change):
    settings = {"far": 0.1, "non_inferiority_margin": 0.005, "gain": 0.01, "level": 0.9}
    settings.update(change)
    return settings


def _results(gap=lambda m, step: 0.5 / step * (0.1 / m), gain=lambda g: 0.2 * g,
             seeds=6, noise=0.003):
    out = []
    for r in range(seeds):
        rng = np.random.default_rng(r)
        for lr in (0.05, 0.2):
            for m in (0.01, 0.1):
                records = []
                for step in (1, 10):
                    g = gap(m, step)
                    base = 0.8
                    records.append({"step": step, "gaps": [g / 2, g],
                                    "ema_accuracy": base,
                                    "precise_accuracy": base + gain(g)
                                    + noise * rng.standard_normal(),
                                    "params_norm": 1.0})
                out.append({"replicate": r, "lr": lr, "momentum": m, "records": records})
    return out


def test_rule_on_crafted_results():
    verdict, rows, worst = pb.verdict_of(_results(), _settings())
    assert verdict == "supported" and len(rows) == 1 + 4 + 1
    assert worst["momentum"] == 0.01 and worst["step"] == 1
    # EMA always close to the exact statistics: "far" refutes, the gain refutes
    close, _, _ = pb.verdict_of(_results(gap=lambda m, s: 0.01), _settings())
    assert close.conditions["EMA far off in some configuration"] == "refuted"
    assert close == "mixed"
    # precise BN worse by 2 points everywhere: the non-inferiority conditions refute
    worse, rows, _ = pb.verdict_of(_results(gain=lambda g: -0.02), _settings())
    assert all(r["outcome"] == "refuted" for r in rows if r["kind"] == "not worse")
    # noisy accuracy differences: undecided
    noisy, _, _ = pb.verdict_of(_results(gain=lambda g: 0.0, noise=0.05), _settings())
    assert any(v == "undecided" for v in noisy.conditions.values())


def test_conclude_and_report():
    verdict, m = pb.conclude(_settings(), _results())
    assert verdict == "supported"
    assert set(m["alternatives"]) == set(pb.ALTERNATIVES)
    assert len(m["curves"]) == 2 * 2 * 2
    assert "conditions supported" in pb.headline(m["verdict_inputs"])
    assert pb.summary(m)


def test_tasks_share_seeds_across_momenta():
    settings = pb.settings(True)
    tasks = pb.tasks(settings, 0)
    assert len(tasks) == settings["seeds"] * 2 * 3
    for r in range(settings["seeds"]):
        assert len({t["seed"] for t in tasks if t["replicate"] == r}) == 1


def test_full_settings_are_the_rules():
    full = pb.settings(False)
    for key in ("seeds", "momenta", "lrs", "checkpoints", "far",
                "non_inferiority_margin", "gain", "level"):
        assert full[key] == pb.RULE_PARAMS[key]
    assert full["seeds"] >= 10 and 0.1 in full["momenta"]


def test_quick_run(quick_result, tmp_path):
    result = quick_result("precise-bn")
    m = result.measurements
    assert len(m["conditions"]) == 8
    # precise BN's accuracy does not depend on the EMA momentum (same weights)
    for lr in result.settings["lrs"]:
        for step in result.settings["checkpoints"]:
            values = {c["precise_accuracy"] for c in m["curves"]
                      if c["lr"] == lr and c["step"] == step}
            assert len(values) == 1
    # the slowest EMA lags most early in training
    first = [c for c in m["curves"] if c["step"] == result.settings["checkpoints"][0]]
    slow = max(c["gap"] for c in first if c["momentum"] == 0.01)
    fast = max(c["gap"] for c in first if c["momentum"] == 0.5)
    assert slow > fast
    pytest.importorskip("matplotlib")
    from bnfast.plot.experiments import plot_experiment
    path = plot_experiment(result, tmp_path / "precise_bn.png")
    assert path.stat().st_size > 10_000
