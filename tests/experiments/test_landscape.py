"""The landscape experiment: its pieces, its rule on crafted inputs, a tiny task, and the
shared quick run."""

import math

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


def _per_seed(values, seed):
    """``values``: one list over steps (every seed the same) or a list of such lists,
    one per seed."""
    return values[seed] if values and isinstance(values[0], list) else values


def _results(bn_values, standard_values, seeds=5, steps_total=100, digits=None):
    """``seeds`` paired seeds per problem; the checkpoint values given as lists over
    steps 0, 25, 50, 75, 100 (early = steps <= 50), one list for every seed or one list
    per seed; GONE ends a run's checkpoints there (shorter lists too). ``digits``:
    (bn_values, standard_values) of the digits MLP when it differs from the DLN."""
    steps = [0, 25, 50, 75, 100]
    out = []
    for problem in ("dln", "digits"):
        bn_of, standard_of = (digits if problem == "digits" and digits is not None
                              else (bn_values, standard_values))
        for replicate in range(seeds):
            for config, given in (("standard", standard_of), ("bn", bn_of)):
                values = _per_seed(given, replicate)
                kept = list(values)[:list(values).index(GONE)] if GONE in values else values
                diverged = None if len(kept) == len(steps) else steps[len(kept)] - 1
                out.append({"problem": problem, "config": config, "replicate": replicate,
                            "losses": [3.0, 2.0],
                            "final_loss": 2.0 if diverged is None else None,
                            "diverged_step": diverged,
                            "checkpoints": [_checkpoint(s, v)
                                            for s, v in zip(steps, kept)]})
    settings = {"seeds": seeds, "dln": {"steps": steps_total, "every": 25},
                "digits": {"steps": steps_total, "every": 25}}
    return settings, out


BOTH = "the 25-layer deep linear network and the dense digits MLP (squared loss)"
CELLS = {f"{problem}.{measure}" for problem in ("dln", "digits") for measure in L.JUDGED}


def _assert_verdict(got, label, cells):
    """The Verdict's label, setting and conditions (every judged cell)."""
    assert got.label == label
    assert set(got.conditions) == CELLS
    if isinstance(cells, str):
        cells = {key: cells for key in CELLS}
    assert got.conditions == cells
    if label in ("supported", "refuted"):
        assert got.setting == BOTH and not got.reduced
        assert got.text == label
    if label == "underpowered":
        assert "at least 5 seeds" in got.decide
        assert got.text.startswith("underpowered (would decide: more seeds")


# Per seed, the median over the early checkpoints (steps 0, 25, 50) of log(BN /
# standard); a cell by the exact one-sided sign test over seeds at p < 0.05: n seeds
# of one sign give p = 2^-n, so 5 seeds is the fewest that can decide.
@pytest.mark.parametrize("bn, standard, seeds, label, cell", [
    # smaller early, larger late (the late checkpoints are not judged): 5 of 5 seeds
    ([1, 1, 1, 9, 9], [2, 2, 2, 2, 2], 5, "supported", "supported"),
    # the same with 4 or 3 seeds: p = 1/16, 1/8, significance unreachable
    ([1, 1, 1, 9, 9], [2, 2, 2, 2, 2], 4, "underpowered", "undecided"),
    ([1, 1, 1, 9, 9], [2, 2, 2, 2, 2], 3, "underpowered", "undecided"),
    # larger in 2 of 3 early steps: each seed's median is larger, 5 of 5
    ([3, 3, 1, 1, 1], [2, 2, 2, 2, 2], 5, "refuted", "refuted"),
    # ties are neither: each seed's median log ratio is 0, no untied seed is left
    ([1, 2, 2, 1, 1], [2, 2, 2, 2, 2], 10, "underpowered", "undecided"),
    # None (overflow) is larger, but one early step of three does not move the median
    ([1, 1, None, 1, 1], [2, 2, 2, 2, 2], 5, "supported", "supported"),
    ([1, None, 1, 1, 1], [2, 2, 2, 2, 2], 5, "supported", "supported"),
    # two overflowing early steps of three: the median is larger
    ([None, None, 1, 1, 1], [2, 2, 2, 2, 2], 5, "refuted", "refuted"),
])
def test_conclude_rule(bn, standard, seeds, label, cell):
    settings, results = _results(bn, standard, seeds=seeds)
    got, measurements = L.conclude(settings, results)
    _assert_verdict(got, label, cell)
    inputs = measurements["verdict_inputs"]["dln.beta"]
    assert inputs["early_pairs"] == 3 * seeds
    assert inputs["verdict"] == cell
    assert inputs["significance_reachable"] == (seeds >= 5)
    if cell == "supported":
        assert inputs["seeds_bn_smaller"] == seeds and inputs["seeds_bn_larger"] == 0
        assert inputs["sign_test_p_bn_smaller"] == pytest.approx(0.5 ** seeds)
    if cell == "refuted":
        assert inputs["seeds_bn_larger"] == seeds and inputs["seeds_bn_smaller"] == 0
        assert inputs["sign_test_p_bn_larger"] == pytest.approx(0.5 ** seeds)


@pytest.mark.parametrize("larger, label", [
    # 10 seeds: 9 smaller and 1 larger give p = 11/1024 < 0.05 (one seed the other
    # way is tolerated); 8 and 2 give p = 56/1024 > 0.05
    (1, "supported"),
    (2, "underpowered"),
    # 5 and 5: no side is significant
    (5, "underpowered"),
])
def test_conclude_sign_test_over_ten_seeds(larger, label):
    smaller_run, larger_run = [1, 1, 1, 1, 1], [5, 5, 5, 5, 5]
    bn = [larger_run if seed < larger else smaller_run for seed in range(10)]
    settings, results = _results(bn, [2, 2, 2, 2, 2], seeds=10)
    got, measurements = L.conclude(settings, results)
    _assert_verdict(got, label, "supported" if label == "supported" else "undecided")
    for key in CELLS:
        inputs = measurements["verdict_inputs"][key]
        assert (inputs["seeds_bn_smaller"], inputs["seeds_bn_larger"]) == (
            10 - larger, larger)
        p = sum(math.comb(10, i) for i in range(10 - larger, 11)) / 1024
        assert inputs["sign_test_p_bn_smaller"] == pytest.approx(p)


def test_conclude_mixed_and_digits_only_refutation():
    """The DLN supports and the digits MLP refutes: mixed, saying which went which way;
    a digits refutation with the DLN undecided (here BN ties the standard net on the
    DLN) is underpowered, never a bare refutation."""
    smaller, larger = [1, 1, 1, 1, 1], [3, 3, 3, 3, 3]
    settings, results = _results(smaller, [2] * 5, digits=(larger, [2] * 5))
    got, _ = L.conclude(settings, results)
    expected = {key: "supported" if key.startswith("dln.") else "refuted" for key in CELLS}
    _assert_verdict(got, "mixed", expected)
    assert got.text.startswith("mixed (supported: dln.")
    assert "refuted: digits.loss_range, digits.grad_change_max, digits.beta" in got.text
    settings, results = _results([2] * 5, [2] * 5, digits=(larger, [2] * 5))
    got, _ = L.conclude(settings, results)
    expected = {key: "undecided" if key.startswith("dln.") else "refuted" for key in CELLS}
    _assert_verdict(got, "underpowered", expected)


@pytest.mark.parametrize("bn, standard, label, fraction, ties", [
    # BN diverged before step 25: its missing early checkpoints count as larger
    # (each seed's median is +inf), not dropped (which would leave BN smaller)
    ([1, GONE], [2, 2, 2, 2, 2], "refuted", 1 / 3, 0),
    # the standard net diverged before step 25: its missing values count as larger
    ([1, 1, 1, 1, 1], [0.5, GONE], "supported", 2 / 3, 0),
    # both overflow at steps 25 and 50: ties left out (the median of the one pair
    # left), not counted against BN
    ([1, None, None, 1, 1], [2, None, None, 2, 2], "supported", 1.0, 2),
    # both diverged before step 25: missing on both sides is a tie as well
    ([1, GONE], [2, GONE], "supported", 1.0, 2),
    # one side overflows, the other is missing: both infinite, a tie
    ([1, None, GONE], [2, GONE], "supported", 1.0, 2),
    # every early pair a tie: no seed has a value, underpowered
    ([None, GONE], [None, None, None, 1, 1], "underpowered", None, 3),
])
def test_conclude_pairs_every_scheduled_step(bn, standard, label, fraction, ties):
    seeds = 5
    settings, results = _results(bn, standard, seeds=seeds)
    got, measurements = L.conclude(settings, results)
    _assert_verdict(got, label, "undecided" if label == "underpowered" else label)
    for problem in ("dln", "digits"):
        for measure in L.JUDGED:
            cell = measurements["verdict_inputs"][f"{problem}.{measure}"]
            assert cell["early_pairs"] == 3 * seeds          # 3 early steps x 5 seeds
            early = measurements["problems"][problem]["comparisons"][measure]["early"]
            assert early["both_infinite"] == seeds * ties
            if fraction is None:
                assert cell["bn_smaller_fraction_early"] is None
                assert cell["seeds_bn_smaller"] == cell["seeds_bn_larger"] == 0
            else:
                assert cell["bn_smaller_fraction_early"] == pytest.approx(fraction)
    # every scheduled step is paired over the whole run too
    assert measurements["problems"]["dln"]["comparisons"]["beta"]["all"]["pairs"] == 5 * seeds
    assert L.summary(measurements)
    assert L.headline(measurements["verdict_inputs"]).startswith("seeds with BN smaller")


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


def test_conclude_underpowered_when_the_seeds_split():
    """BN smaller in half the seeds (10 seeds: 5 and 5): the sign test decides neither
    way, underpowered; version 1's pooled fraction (1/2) is the fragility line's third
    alternative, undecided as well."""
    settings, results = _results([1, 1, 1, 1, 1], [2, 2, 2, 2, 2], seeds=10)
    for r in results:
        if r["config"] == "bn" and r["replicate"] % 2:
            for c in r["checkpoints"]:
                for key in L.JUDGED:
                    c[key] = 5.0
    verdict, measurements = L.conclude(settings, results)
    _assert_verdict(verdict, "underpowered", "undecided")
    inputs = measurements["verdict_inputs"]["digits.loss_range"]
    assert inputs["bn_smaller_fraction_early"] == 0.5
    assert (inputs["seeds_bn_smaller"], inputs["seeds_bn_larger"]) == (5, 5)
    assert inputs["sign_test_p_bn_smaller"] == pytest.approx(638 / 1024)
    assert measurements["alternatives"] == {name: "underpowered" for name in L.ALTERNATIVES}


def test_conclude_fragility_alternatives():
    """Smaller at steps 0 and 25, far larger from step 50 on: the pre-registered median
    over the early checkpoints says smaller (supported); the mean over them and the
    median over every checkpoint say larger (refuted); version 1's pooled fraction (2/3
    smaller) says supported."""
    settings, results = _results([1, 1, 9, 9, 9], [2, 2, 2, 2, 2], seeds=5)
    verdict, measurements = L.conclude(settings, results)
    _assert_verdict(verdict, "supported", "supported")
    assert measurements["alternatives"] == {
        "mean instead of median over checkpoints": "refuted",
        "every checkpoint instead of the first half": "refuted",
        "checkpoints pooled over seeds, BN smaller in >= 2/3 (version 1)": "supported"}


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
    # the quick run has one seed: the sign test cannot reach p < 0.05 (p >= 1/2), every
    # cell is undecided and the verdict underpowered
    assert result.settings["seeds"] == 1
    assert result.verdict == L.verdict_of(
        {k: v["verdict"] for k, v in inputs.items() if isinstance(v, dict)})
    assert result.verdict == "underpowered"
    for cell in cells:
        assert 0.0 <= cell["bn_smaller_fraction_early"] <= 1.0
        assert cell["verdict"] == "undecided" and not cell["significance_reachable"]
        assert cell["seeds_bn_smaller"] + cell["seeds_bn_larger"] <= 1
    assert set(result.measurements["alternatives"]) == set(L.ALTERNATIVES)
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
