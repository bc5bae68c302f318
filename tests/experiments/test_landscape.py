"""The landscape experiment: its pieces, its rule on crafted inputs, a tiny task, and the
shared quick run."""

import numpy as np
import pytest

from bnfast.experiments import VERDICTS, derived_seed
from bnfast.experiments import landscape as L
from bnfast.experiments.measures import (gradient_line_measures, measurement_batch,
                                         step_sizes)
from bnfast.experiments.problems import build


def test_step_sizes_spacing():
    log = step_sizes({"lr": 1e-6, "multipliers": [0.01, 30], "spacing": "log"}, 5)
    np.testing.assert_allclose(log[[0, -1]], [1e-8, 3e-5], rtol=1e-12)
    np.testing.assert_allclose(np.diff(np.log(log)), np.log(3000) / 4, rtol=1e-10)
    lin = step_sizes({"lr": 0.1, "multipliers": [0.5, 4], "spacing": "linear"}, 8)
    np.testing.assert_allclose(lin, 0.1 * np.linspace(0.5, 4, 8), rtol=1e-12)


def test_measurement_batch_shared_and_distinct():
    X, y = np.arange(40.0).reshape(20, 2), np.arange(20.0)
    assert measurement_batch(X, y, None, 1, 5)[0] is X
    a, ya = measurement_batch(X, y, 8, 1, 5)
    b, _ = measurement_batch(X, y, 8, 1, 5)
    c, _ = measurement_batch(X, y, 8, 1, 10)
    np.testing.assert_array_equal(a, b)                 # the compared nets share it
    assert len(np.unique(a[:, 0])) == 8                 # without replacement
    np.testing.assert_array_equal(ya, a[:, 0] / 2)      # rows stay paired
    assert not np.array_equal(a, c)


#: In a crafted value list: the net diverged before this checkpoint (it and the later
#: ones are missing from its result).
GONE = "gone"


def _checkpoint(step, value, loss=10.0):
    """A checkpoint whose judged measures are ``value`` (None: overflowed)."""
    return {"step": step, "loss": loss, "grad_norm": 1.0, "loss_min": 1.0,
            "loss_max": None if value is None else 1.0 + value, "loss_range": value,
            "grad_change_min": 0.0, "grad_change_max": value, "beta": value,
            "hessian_max": None if value is None else -value}


def _results(bn_values, standard_values, steps_total=100):
    """Two seeds per problem; the checkpoint values given as lists over steps
    0, 25, 50, 75, 100 (early = steps <= 50); GONE ends a run's checkpoints there
    (shorter lists too)."""
    steps = [0, 25, 50, 75, 100]
    out = []
    for problem in ("dln", "digits"):
        for replicate in range(2):
            for config, values in (("standard", standard_values), ("bn", bn_values)):
                kept = list(values)[:list(values).index(GONE)] if GONE in values else values
                diverged = None if len(kept) == len(steps) else steps[len(kept)] - 1
                out.append({"problem": problem, "config": config, "replicate": replicate,
                            "losses": [3.0, 2.0],
                            "final_loss": 2.0 if diverged is None else None,
                            "diverged_step": diverged,
                            "checkpoints": [_checkpoint(s, v)
                                            for s, v in zip(steps, kept)]})
    settings = {"seeds": 2, "dln": {"steps": steps_total, "every": 25},
                "digits": {"steps": steps_total, "every": 25}}
    return settings, out


@pytest.mark.parametrize("bn, standard, verdict", [
    ([1, 1, 1, 9, 9], [2, 2, 2, 2, 2], "supported"),   # smaller early, larger late
    ([3, 3, 1, 1, 1], [2, 2, 2, 2, 2], "refuted"),     # larger in 2 of 3 early steps
    ([1, 2, 2, 1, 1], [2, 2, 2, 2, 2], "refuted"),     # ties are not "smaller": 1/3
    ([1, 1, None, 1, 1], [2, 2, 2, 2, 2], "supported"),  # None (overflow) is larger
    ([1, None, 1, 1, 1], [2, 2, 2, 2, 2], "supported"),  # 2/3
    ([None, None, 1, 1, 1], [2, 2, 2, 2, 2], "refuted"),  # 1/3
])
def test_conclude_rule(bn, standard, verdict):
    settings, results = _results(bn, standard)
    got, measurements = L.conclude(settings, results)
    assert got == verdict
    assert measurements["verdict_inputs"]["dln.beta"]["early_pairs"] == 6
    assert measurements["verdict_inputs"]["dln.beta"]["early_pairs_both_infinite"] == 0


@pytest.mark.parametrize("bn, standard, verdict, fraction, ties", [
    # BN diverged before step 25: its missing early checkpoints count as larger
    # (1 of 3 smaller), not dropped (which would leave 1 of 1)
    ([1, GONE], [2, 2, 2, 2, 2], "refuted", 1 / 3, 0),
    # the standard net diverged before step 25: its missing values count as larger
    ([1, 1, 1, 1, 1], [0.5, GONE], "supported", 2 / 3, 0),
    # both overflow at steps 25 and 50: ties left out (1 of 1), not counted against BN
    ([1, None, None, 1, 1], [2, None, None, 2, 2], "supported", 1.0, 2),
    # both diverged before step 25: missing on both sides is a tie as well
    ([1, GONE], [2, GONE], "supported", 1.0, 2),
    # one side overflows, the other is missing: both infinite, a tie
    ([1, None, GONE], [2, GONE], "supported", 1.0, 2),
    # every early pair a tie: no fraction, inconclusive
    ([None, GONE], [None, None, None, 1, 1], "inconclusive", None, 3),
])
def test_conclude_pairs_every_scheduled_step(bn, standard, verdict, fraction, ties):
    settings, results = _results(bn, standard)
    got, measurements = L.conclude(settings, results)
    assert got == verdict
    for problem in ("dln", "digits"):
        for measure in L.JUDGED:
            cell = measurements["verdict_inputs"][f"{problem}.{measure}"]
            assert cell["early_pairs"] == 6                  # 3 early steps x 2 seeds
            assert cell["early_pairs_both_infinite"] == 2 * ties
            if fraction is None:
                assert cell["bn_smaller_fraction_early"] is None
            else:
                assert cell["bn_smaller_fraction_early"] == pytest.approx(fraction)
    # every scheduled step is paired over the whole run too
    assert measurements["problems"]["dln"]["comparisons"]["beta"]["all"]["pairs"] == 10
    assert L.summary(measurements)


def test_compare_excludes_only_infinite_ties():
    finite = _checkpoint(0, 2.0)
    got = L.compare([(finite, _checkpoint(0, 2.0)),      # a finite tie: not smaller
                     (None, None),                        # both missing: left out
                     (_checkpoint(0, None), None),        # overflow vs missing: left out
                     (finite, _checkpoint(0, 1.0)),       # BN smaller
                     (finite, None)], "beta")             # BN missing: larger
    assert got["pairs"] == 5 and got["both_infinite"] == 2
    assert got["bn_smaller_fraction"] == pytest.approx(1 / 3)
    assert got["median_ratio"] == pytest.approx(0.75)     # of 1.0 and 0.5


def test_conclude_inconclusive_half():
    """BN smaller at half the early pairs: neither most (2/3) nor at most 1/3."""
    settings, results = _results([1, 1, 1, 1, 1], [2, 2, 2, 2, 2])
    for r in results:
        if r["config"] == "bn" and r["replicate"] == 1:
            for c in r["checkpoints"]:
                for key in L.JUDGED:
                    c[key] = 5.0
    # seed 0: 3/3 smaller, seed 1: 0/3 -> 1/2
    verdict, measurements = L.conclude(settings, results)
    assert verdict == "inconclusive"
    assert measurements["verdict_inputs"]["digits.loss_range"]["bn_smaller_fraction_early"] == 0.5


def test_cell_verdict_and_decide():
    assert L.cell_verdict(2 / 3) == "supported"
    assert L.cell_verdict(1 / 3) == "refuted"
    assert L.cell_verdict(0.5) == "inconclusive"
    assert L.cell_verdict(None) == "inconclusive"
    assert L.decide(["supported"] * 6) == "supported"
    assert L.decide(["supported", "refuted", "inconclusive"]) == "refuted"
    assert L.decide(["supported", "inconclusive"]) == "inconclusive"


def _tiny_task(norm, config):
    setup = {"depth": 3, "width": 4, "samples": 40, "loss": "sum", "lr": 1e-3, "steps": 4,
             "every": 2, "batch_size": None, "record_every": 1, "multipliers": [0.01, 30],
             "spacing": "log", "init": "glorot"}
    return {"problem": "dln", "config": config, "norm": norm, "replicate": 0,
            "seed": derived_seed(7, 0), "setup": setup, "line_points": 3,
            "power_iterations": 5}


def test_run_task_tiny():
    """The step-0 checkpoint equals the measures taken directly on the built net, and
    its loss is the first recorded training loss (same net, same full batch)."""
    task = _tiny_task("std", "bn")
    result = L.run_task(task)
    assert [c["step"] for c in result["checkpoints"]] == [0, 2, 4]
    assert len(result["losses"]) == 5 and result["diverged_step"] is None
    net, X, y, _ = build(task)
    direct = gradient_line_measures(net, X, y, step_sizes(task["setup"], 3))
    first = result["checkpoints"][0]
    for key in ("loss", "loss_range", "grad_change_max", "beta"):
        assert first[key] == pytest.approx(direct[key], rel=1e-12)
    assert first["loss"] == pytest.approx(result["losses"][0], rel=1e-12)
    assert first["hessian_max"] is not None and np.isfinite(first["hessian_max"])


def test_paired_tasks_share_seeds():
    settings = L.settings(True)
    tasks = L.tasks(settings, 3)
    assert len(tasks) == 2 * settings["seeds"] * 2
    for problem in ("dln", "digits"):
        seeds = {t["config"]: t["seed"] for t in tasks if t["problem"] == problem}
        assert seeds["standard"] == seeds["bn"]
    bn_net = build(tasks[1])[0]
    plain = build(tasks[0])[0]
    # same Dense weights: the BN net's first W equals the standard net's
    np.testing.assert_array_equal(bn_net.unflatten()[0]["W"], plain.unflatten()[0]["W"])


def test_quick_run(quick_result):
    result = quick_result("landscape")
    assert result.verdict in VERDICTS
    inputs = result.measurements["verdict_inputs"]
    cells = [v for v in inputs.values() if isinstance(v, dict)]
    assert len(cells) == 6
    verdicts = [c["verdict"] for c in cells]
    assert result.verdict == L.decide(verdicts)
    for cell in cells:
        assert 0.0 <= cell["bn_smaller_fraction_early"] <= 1.0
        assert cell["verdict"] == L.cell_verdict(cell["bn_smaller_fraction_early"])
    for problem in ("dln", "digits"):
        block = result.measurements["problems"][problem]
        setup = result.settings[problem]
        for run in block["runs"]["standard"] + block["runs"]["bn"]:
            # the full-batch DLN's first checkpoint loss is its first training loss
            if problem == "dln":
                assert run["loss"][0] == pytest.approx(run["losses"][0], rel=1e-12)
            assert run["steps"][0] == 0 and run["steps"][-1] == setup["steps"]
            for lo, hi in zip(run["loss_min"], run["loss_max"]):
                assert lo is None or hi is None or lo <= hi
    lines = L.summary(result.measurements)
    assert any("effective beta-smoothness" in line for line in lines)


def test_run_task_diverged_is_strict_json():
    """A run that diverges stops there; its result stays valid JSON (no inf or NaN)."""
    import json
    task = _tiny_task(None, "standard")
    task["setup"] = {**task["setup"], "lr": 1e6}
    result = L.run_task(task)
    assert result["diverged_step"] is not None and result["final_loss"] is None
    json.dumps(result, allow_nan=False)
    assert result["checkpoints"][-1]["step"] <= result["diverged_step"]


@pytest.mark.parametrize("outcome", [np.inf, np.nan, -np.inf, "raise"])
def test_run_task_overflowing_hessian_is_none(monkeypatch, outcome):
    """An overflowing Hessian-vector product gives an inf/NaN estimate, or a non-finite
    iterate that net.hvp refuses: hessian_max is None and the result strict JSON."""
    import json

    def overflowing(net, X, y, iterations=30, seed=0, rtol=1e-4):
        if outcome == "raise":
            net.hvp(X, y, np.full(net.num_params, np.nan))
        return outcome

    monkeypatch.setattr(L, "largest_hessian_eigenvalue", overflowing)
    result = L.run_task(_tiny_task("std", "bn"))
    assert [c["hessian_max"] for c in result["checkpoints"]] == [None] * 3
    json.dumps(result, allow_nan=False)


def test_hessian_max_passes_other_errors(monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("X must have 4 columns")

    monkeypatch.setattr(L, "largest_hessian_eigenvalue", broken)
    with pytest.raises(ValueError, match="columns"):
        L.hessian_max(None, None, None, 3, 0)
