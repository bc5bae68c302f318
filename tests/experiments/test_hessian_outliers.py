"""The hessian-outliers experiment (Ghorbani et al. 2019): the measures against a dense
Hessian, the rule on crafted per-seed values, the figure, and the quick run."""

import math

import numpy as np
import pytest

from bnfast import BatchNorm, Dense, Network, curvature
from bnfast.experiments import hessian_outliers as ho


def _tiny(norm):
    bn = {"batch_norm": BatchNorm()} if norm else {}
    net = Network([Dense(5, 8, "relu", **bn), Dense(8, 8, "relu", **bn), Dense(8, 4)],
                  loss="cross_entropy", seed=3)
    rng = np.random.default_rng(1)
    return net, rng.standard_normal((40, 5)), rng.integers(0, 4, 40)


@pytest.mark.parametrize("norm", [False, True])
def test_measures_match_the_dense_hessian(norm):
    net, X, y = _tiny(norm)
    if norm:      # population statistics that differ from the batch's
        from bnfast import train
        train(net, X, y, 0.1, 5, batch_size=10)
    k = 3
    for mode in (("train", "eval") if norm else ("train",)):
        H = curvature.hessian(net, X, y, mode=mode, progress=False)
        values, vectors = np.linalg.eigh(H)
        values, vectors = values[::-1], vectors[:, ::-1]
        got = ho.hessian_measures(net, X, y, k, mode, 1e-10, 0)
        scale = abs(values[0])
        assert np.allclose(got["eigenvalues"], values[:k + 1], atol=1e-7 * scale)
        assert math.isclose(got["outlier_ratio"], values[0] / values[k], rel_tol=1e-6)
        assert math.isclose(got["gap_ratio"], values[k - 1] / values[k], rel_tol=1e-6)
        _, g = net.loss_and_gradient(X, y, mode=mode)
        c = vectors[:, :k].T @ g
        assert math.isclose(got["share"], float(c @ c / (g @ g)), rel_tol=1e-6)
        assert math.isclose(got["share"], curvature.gradient_overlap(
            net, X, y, k, mode=mode, tol=1e-10, progress=False), rel_tol=1e-6)


def _settings(**change):
    settings = {"level": 0.9, "share_level": 0.5, "outlier_level": 3.0,
                "share_factor": 1.5, "outlier_factor": 2.0}
    settings.update(change)
    return settings


def _record(step, share, ratio, rng, noise):
    jitter = math.exp(noise * rng.standard_normal())
    return {"eigenvalues": [ratio * jitter] + [1.0] * 10,
            "outlier_ratio": ratio * jitter, "gap_ratio": ratio * jitter / 2,
            "share": min(1.0, share * jitter), "products": 50}


def _results(plain=(0.9, 10.0), bn=(0.2, 1.5), bn_eval=(0.8, 8.0), seeds=6, noise=0.03):
    """Task results with (share, outlier ratio) per network and mode at every trained
    checkpoint; step 0 holds unrelated values."""
    out = []
    for r in range(seeds):
        rng = np.random.default_rng(r)
        for problem in ho.PROBLEMS:
            for norm in ho.NORMS:
                records = [{"step": 0, "accuracy": 0.1,
                            "train": _record(0, 0.5, 1.0, rng, 0.0)}]
                for step in (10, 20):
                    record = {"step": step, "accuracy": 0.9}
                    if norm == "none":
                        record["train"] = _record(step, *plain, rng, noise)
                    else:
                        record["train"] = _record(step, *bn, rng, noise)
                        record["eval"] = _record(step, *bn_eval, rng, noise)
                    records.append(record)
                out.append({"replicate": r, "problem": problem, "norm": norm,
                            "num_params": 10, "records": records, "slq": None})
    return out


def test_rule_on_crafted_results():
    verdict, rows = ho.verdict_of(_results(), _settings())
    assert verdict == "supported" and len(rows) == 12
    # BN in train mode with the same outliers and share as without: those refute
    same, _ = ho.verdict_of(_results(bn=(0.9, 10.0)), _settings())
    assert same == "mixed"
    assert same.conditions["CNN BN outliers"] == "refuted"
    assert same.conditions["MLP BN share"] == "refuted"
    assert same.conditions["CNN share"] == "supported"
    # no outliers anywhere: everything about outliers refutes
    flat, _ = ho.verdict_of(_results(plain=(0.1, 1.2), bn=(0.1, 1.2),
                                     bn_eval=(0.1, 1.2)), _settings())
    assert flat == "refuted" and "refuted in" in flat.text
    # noisy seeds around the bars: undecided -> underpowered
    noisy, _ = ho.verdict_of(_results(plain=(0.5, 3.0), bn=(0.5, 3.0 / 2),
                                      bn_eval=(0.75, 3.0), noise=0.5), _settings())
    assert noisy.label in ("underpowered", "mixed")
    assert any(v == "undecided" for v in noisy.conditions.values())


def test_alternatives_change_what_they_say():
    results = _results(bn=(0.5, 6.0))        # BN smaller but not by the factors
    base, _ = ho.verdict_of(results, _settings())
    assert base.conditions["CNN BN outliers"] == "refuted"
    ones, _ = ho.verdict_of(results, _settings(), factors=(1.0, 1.0))
    assert ones.conditions["CNN BN outliers"] == "supported"
    # the last checkpoint vs the mean over trained ones: step 0 never counts
    mean, _ = ho.verdict_of(results, _settings(), trained_mean=True)
    assert mean.conditions == base.conditions


def test_conclude_and_report():
    settings = _settings()
    verdict, m = ho.conclude(settings, _results())
    assert verdict == "supported"
    assert set(m["alternatives"]) == set(ho.ALTERNATIVES)
    inputs = m["verdict_inputs"]
    assert inputs["supported"] == 12
    assert math.isclose(inputs["means"]["CNN share"], 0.9, rel_tol=0.05)
    assert ho.headline(inputs).startswith("12/12 supported; no-BN share 0.9")
    assert ho.summary(m)
    eval_rows = [r for r in m["table"] if r["mode"] == "eval"]
    assert eval_rows and all(r["step"] > 0 for r in eval_rows)


def test_tasks_pair_the_norms():
    settings = ho.settings(True)
    tasks = ho.tasks(settings, 0)
    assert len(tasks) == settings["seeds"] * 2 * 2
    for r in range(settings["seeds"]):
        for problem in ho.PROBLEMS:
            assert len({t["seed"] for t in tasks
                        if t["replicate"] == r and t["problem"] == problem}) == 1
    assert all((t["slq"] is not None) == (t["replicate"] == 0) for t in tasks)


def test_full_settings_are_the_rules():
    full = ho.settings(False)
    for key in ("seeds", "k", "measure_rows", "tol", "checkpoints", "share_level",
                "outlier_level", "share_factor", "outlier_factor", "level"):
        assert full[key] == ho.RULE_PARAMS[key]
    assert full["seeds"] >= 10 and full["k"] == 10


def test_quick_run(quick_result, tmp_path):
    result = quick_result("hessian-outliers")
    m = result.measurements
    assert len(m["conditions"]) == 12
    for row in m["table"]:
        assert 0.0 <= row["share"] <= 1.0 and row["outlier_ratio"] >= 1.0
    # trained networks without BN concentrate their gradient in the top-k space
    rows = {r["condition"]: r for r in m["conditions"]}
    assert rows["MLP share"]["mean"] > 0.5
    assert {(d["norm"], d["mode"]) for d in m["densities"]} == {
        ("none", "train"), ("std", "train"), ("std", "eval")}
    pytest.importorskip("matplotlib")
    from bnfast.plot.experiments import plot_experiment
    path = plot_experiment(result, tmp_path / "hessian_outliers.png")
    assert path.stat().st_size > 10_000
