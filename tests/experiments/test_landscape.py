"""The landscape experiment (version 3): its pieces, its rule on crafted inputs (the sign
test over seeds, the pairing of every scheduled step, the curvature controls, the
fragility alternatives, the reported extra), tiny tasks of both optimizers, and the
shared quick run."""

import json
import math

import numpy as np
import pytest

from bnfast.experiments import VERDICTS, derived_seed
from bnfast.experiments import landscape as L
from bnfast.experiments.measures import (gradient_line_measures, measurement_batch,
                                         step_sizes)
from bnfast.experiments.problems import build, recipe_optimizer
from bnfast.nn import train


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


def test_settings_quick_and_full_differ_in_numbers_only():
    full, quick = L.settings(False), L.settings(True)
    assert set(full) == set(quick)
    for problem in L.JUDGED_PROBLEMS + L.EXTRA_PROBLEMS:
        assert set(full[problem]) == set(quick[problem])
        for key, value in L.RULE_PARAMS[problem].items():
            assert full[problem][key] == value            # the single source
        setup = full[problem]
        assert setup["steps"] % setup["every"] == 0
        assert setup["every"] % setup["record_every"] == 0
        assert quick[problem]["steps"] % quick[problem]["every"] == 0
    assert full["seeds"] == L.RULE_PARAMS["seeds"] >= 10
    assert full["problems"] == ["dln", "mnist1d", "digits-images"]
    assert full["extras"] == ["digits"]
    assert full["mnist1d"]["momentum"] == 0.9 and full["dln"]["momentum"] == 0.0
    assert any("VGG" in line for line in full["reduced"])
    assert any("fixed set of 500" in line for line in full["reduced"])
    assert L.threshold_of(full["dln"]) == pytest.approx(2e6)
    assert L.threshold_of(full["mnist1d"]) == pytest.approx(3.8 / 0.05)


#: In a crafted value list: the net diverged before this checkpoint (it and the later
#: ones are missing from its result).
GONE = "gone"
STEPS = [0, 25, 50, 75, 100]          # early = steps <= 50; first quarter = steps <= 25


def _checkpoint(step, value, loss=10.0, hessian=None):
    """A checkpoint whose judged measures are ``value`` (None: overflowed)."""
    return {"step": step, "loss": loss, "grad_norm": 1.0, "loss_min": 1.0,
            "loss_max": None if value is None else 1.0 + value, "loss_range": value,
            "grad_change_min": 0.0, "grad_change_max": value, "beta": value,
            "hessian_max": hessian if hessian is not None else
            (None if value is None else -value),
            "effective_lr": [0.01, 0.03]}


def _per_seed(values, seed):
    """``values``: one list over steps (every seed the same) or a list of such lists,
    one per seed."""
    return values[seed] if values and isinstance(values[0], list) else values


def _results(bn_values, standard_values, seeds=5, problems=None, losses=None,
             hessians=None):
    """``seeds`` paired seeds per problem (the three judged and the extra); the
    checkpoint values as lists over STEPS, one list for every seed or one per seed;
    GONE ends a run's checkpoints there. problems: {problem: (bn_values,
    standard_values)} where a problem differs from the default; losses / hessians:
    {config: list over STEPS} of the checkpoint losses / Hessian eigenvalues."""
    out = []
    for problem in L.JUDGED_PROBLEMS + L.EXTRA_PROBLEMS:
        bn_of, standard_of = (problems or {}).get(problem, (bn_values, standard_values))
        for replicate in range(seeds):
            for config, given in (("standard", standard_of), ("bn", bn_of)):
                values = _per_seed(given, replicate)
                kept = list(values)[:list(values).index(GONE)] if GONE in values else values
                diverged = None if len(kept) == len(STEPS) else STEPS[len(kept)] - 1
                loss = (losses or {}).get(config, [10.0] * 5)
                hessian = (hessians or {}).get(config, [None] * 5)
                out.append({"problem": problem, "config": config,
                            "replicate": replicate, "losses": [3.0, 2.0],
                            "final_loss": 2.0 if diverged is None else None,
                            "diverged_step": diverged, "test_accuracy": 0.9,
                            "checkpoints": [_checkpoint(s, v, l, h) for s, v, l, h
                                            in zip(STEPS, kept, loss, hessian)]})
    setup = {"steps": 100, "every": 25, "lr": 0.01, "momentum": 0.0}
    settings = {"seeds": seeds, "problems": list(L.JUDGED_PROBLEMS),
                "extras": list(L.EXTRA_PROBLEMS),
                **{p: setup for p in L.JUDGED_PROBLEMS + L.EXTRA_PROBLEMS}}
    return settings, out


ALL = ("the 25-layer deep linear network and the MNIST-1D Conv1d network and the digits "
       "Conv2d network")
CELLS = {f"{problem}.{measure}" for problem in L.JUDGED_PROBLEMS for measure in L.JUDGED}


def _assert_verdict(got, label, cells):
    """The Verdict's label, setting and conditions (every judged cell, no extra)."""
    assert got.label == label
    assert set(got.conditions) == CELLS
    if isinstance(cells, str):
        cells = {key: cells for key in CELLS}
    assert got.conditions == cells
    if label in ("supported", "refuted"):
        assert got.setting == ALL and not got.reduced
        assert got.text == label
    if label == "underpowered":
        undecided = [k for k, v in got.conditions.items() if v == "undecided"]
        which = (", ".join(undecided) if len(undecided) <= 3
                 else f"the {len(undecided)} undecided cells")
        assert got.decide == f"more seeds for {which}: 9 of 10 seeds of one sign decide"
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
    inputs = measurements["verdict_inputs"]["mnist1d.beta"]
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


def test_geometric_mean_ratio_and_interval():
    """Per-seed ratios BN / standard of 1/2 and 1/8 (5 seeds each): the geometric mean
    1/4, its 95% t interval exp(mean +- t(0.975, 9) se) of the log ratios."""
    bn = [[1] * 5 if seed % 2 else [0.25] * 5 for seed in range(10)]
    settings, results = _results(bn, [2] * 5, seeds=10)
    _, measurements = L.conclude(settings, results)
    inputs = measurements["verdict_inputs"]["dln.loss_range"]
    assert inputs["geometric_mean_ratio"] == pytest.approx(0.25)
    logs = np.log([0.5, 0.125] * 5)
    se = logs.std(ddof=1) / np.sqrt(10)
    low, high = inputs["ratio_interval"]
    assert low == pytest.approx(np.exp(logs.mean() - 2.2621571628 * se), rel=1e-8)
    assert high == pytest.approx(np.exp(logs.mean() + 2.2621571628 * se), rel=1e-8)


def test_conclude_mixed_names_the_conditions():
    """The DLN supports, the CNNs refute: mixed, saying which went which way."""
    smaller, larger = [1] * 5, [3] * 5
    cnn = (larger, [2] * 5)
    settings, results = _results(smaller, [2] * 5,
                                 problems={"mnist1d": cnn, "digits-images": cnn})
    got, _ = L.conclude(settings, results)
    expected = {key: "supported" if key.startswith("dln.") else "refuted" for key in CELLS}
    _assert_verdict(got, "mixed", expected)
    # The six refuting cells' names are long: the text counts them (every name is in
    # the Verdict's conditions, checked above).
    assert got.text == ("mixed (supported: dln.loss_range, dln.grad_change_max, dln.beta; "
                        "refuted: 6 of 9 conditions)")


def test_a_refutation_only_in_the_cnns_is_never_bare():
    """verdict_of: refuting cells all in the small CNNs read 'refuted in' them; with a
    refuting DLN cell the refutation is the paper's own setting (bare); the CNNs
    refuting while the DLN is undecided is underpowered (result.combine)."""
    cnn_cells = {f"{p}.{m}": "refuted" for p in L.REDUCED for m in L.JUDGED}
    got = L.verdict_of(cnn_cells)
    assert got.label == "refuted" and got.reduced
    assert got.text == f"refuted in {L.REDUCED_SETTING}"
    everything = {key: "refuted" for key in CELLS}
    assert L.verdict_of(everything).text == "refuted"
    dln_undecided = {**cnn_cells, **{f"dln.{m}": "undecided" for m in L.JUDGED}}
    got = L.verdict_of(dln_undecided)
    assert got.label == "underpowered"
    assert got.decide == ("more seeds for dln.loss_range, dln.grad_change_max, dln.beta: "
                          "9 of 10 seeds of one sign decide")
    one = L.verdict_of({**{key: "supported" for key in CELLS}, "dln.beta": "undecided"})
    assert one.text == ("underpowered (would decide: more seeds for dln.beta: 9 of 10 "
                        "seeds of one sign decide)")


def test_the_reported_extra_is_not_judged():
    """The dense digits MLP refuting while every judged cell supports: supported; the
    MLP's comparison is in the measurements, without a verdict input."""
    settings, results = _results([1] * 5, [2] * 5, problems={"digits": ([3] * 5, [2] * 5)})
    got, measurements = L.conclude(settings, results)
    _assert_verdict(got, "supported", "supported")
    assert not any(key.startswith("digits.") for key in measurements["verdict_inputs"])
    block = measurements["problems"]["digits"]
    assert block["judged"] is False
    assert block["comparisons"]["beta"]["outcome"] == "refuted"
    reported = [line for line in L.summary(measurements) if "not judged)" in line
                and not line.startswith("  ")]
    assert len(reported) == 1 and reported[0].startswith(L.SETTINGS["digits"])


@pytest.mark.parametrize("bn, standard, label, ties", [
    # BN diverged before step 25: its missing early checkpoints count as larger
    # (each seed's median is +inf), not dropped (which would leave BN smaller)
    ([1, GONE], [2, 2, 2, 2, 2], "refuted", 0),
    # the standard net diverged before step 25: its missing values count as larger
    ([1, 1, 1, 1, 1], [0.5, GONE], "supported", 0),
    # both overflow at steps 25 and 50: ties left out (the median of the one pair
    # left), not counted against BN
    ([1, None, None, 1, 1], [2, None, None, 2, 2], "supported", 2),
    # both diverged before step 25: missing on both sides is a tie as well
    ([1, GONE], [2, GONE], "supported", 2),
    # one side overflows, the other is missing: both infinite, a tie
    ([1, None, GONE], [2, GONE], "supported", 2),
    # every early pair a tie: no seed has a value, underpowered
    ([None, GONE], [None, None, None, 1, 1], "underpowered", 3),
])
def test_conclude_pairs_every_scheduled_step(bn, standard, label, ties):
    seeds = 5
    settings, results = _results(bn, standard, seeds=seeds)
    got, measurements = L.conclude(settings, results)
    _assert_verdict(got, label, "undecided" if label == "underpowered" else label)
    for key in CELLS:
        cell = measurements["verdict_inputs"][key]
        if ties == 3:
            assert cell["seeds_bn_smaller"] == cell["seeds_bn_larger"] == 0
        else:
            assert cell["seeds_bn_smaller"] + cell["seeds_bn_larger"] == seeds
    assert L.summary(measurements)
    assert L.headline(measurements["verdict_inputs"]).startswith("BN smaller in k/n seeds")
    json.dumps(measurements, allow_nan=False)


def test_seed_log_ratio():
    finite = _checkpoint(0, 2.0)
    pairs = [(finite, _checkpoint(0, 2.0)),      # a finite tie: log 0
             (None, None),                        # both missing: left out
             (_checkpoint(0, None), None),        # overflow vs missing: left out
             (finite, _checkpoint(0, 1.0)),       # BN smaller: log 1/2
             (finite, None)]                      # BN missing: +inf
    assert L.seed_log_ratio(pairs, "beta") == pytest.approx(0.0)   # median of 0, -l2, inf
    assert L.seed_log_ratio(pairs, "beta", "mean") == math.inf
    assert L.seed_log_ratio(pairs[1:3], "beta") is None
    assert L.seed_log_ratio(None, "beta") is None
    assert L.seed_log_ratio([(finite, _checkpoint(0, 1.0))], "beta") == \
        pytest.approx(-math.log(2))


def test_conclude_fragility_alternatives():
    """Smaller at steps 0 and 25, far larger from step 50 on: the pre-registered median
    over the early checkpoints (0, 25, 50) says smaller (supported), as does the first
    quarter (0, 25); the mean over the early ones and the median over every checkpoint
    say larger (refuted). At matched loss BN, whose loss falls later, is compared at
    step 50 for 4 of the 5 levels (losses 6.69 to 2): larger (refuted)."""
    losses = {"standard": [10.0, 5.0, 2.0, 1.0, 0.5], "bn": [10.0, 10.0, 2.0, 1.0, 0.5]}
    settings, results = _results([1, 1, 9, 9, 9], [2, 2, 2, 2, 2], seeds=5,
                                 losses=losses)
    verdict, measurements = L.conclude(settings, results)
    _assert_verdict(verdict, "supported", "supported")
    assert measurements["alternatives"] == {
        "first quarter instead of the first half": "supported",
        "every checkpoint instead of the first half": "refuted",
        "mean instead of median over checkpoints": "refuted",
        "matched loss instead of matched step": "refuted"}
    detail = measurements["problems"]["dln"]["comparisons"]["beta"]["alternatives"]
    assert detail["matched loss instead of matched step"]["positive"] == 5
    assert detail["matched loss instead of matched step"]["geometric_mean_ratio"] == \
        pytest.approx(4.5)


def test_matched_loss_pairs():
    """Levels from the smaller first loss (8) to the larger last one in the window (2):
    8, 5.66, 4, 2.83, 2; each net's first checkpoint at or below each level (standard
    losses 8, 4.2, 2; BN's 9, 3, 1)."""
    def at(losses):
        return {s: _checkpoint(s, float(i), loss) for i, (s, loss)
                in enumerate(zip([0, 10, 20], losses))}

    standard, bn = at([8.0, 4.2, 2.0]), at([9.0, 3.0, 1.0])
    pairs = L.matched_loss_pairs(standard, bn, [0, 10, 20])
    assert [(a["step"], b["step"]) for a, b in pairs] == [
        (0, 10), (10, 10), (20, 10), (20, 20), (20, 20)]
    # BN's last checkpoint missing (diverged): one pair, BN counted larger
    gone = {0: bn[0], 10: bn[10]}
    assert L.matched_loss_pairs(standard, gone, [0, 10, 20]) == [(standard[20], None)]
    assert L.seed_log_ratio([(standard[20], None)], "beta") == math.inf
    # losses that do not fall: no value for the seed
    flat = at([2.0, 2.0, 3.0])
    assert L.matched_loss_pairs(flat, flat, [0, 10, 20]) is None


def test_edge_of_stability_is_flagged_and_does_not_change_the_verdict():
    """BN's sharpness at 0.95 x the threshold 2/lr (= 200) at steps 25 and 50: at the
    edge of stability in every seed; the standard net's at 0.5 x: not. The verdict is
    the same as without the flag; the verdict line names the problem and configuration;
    an overflowed eigenvalue counts as above the edge."""
    hessians = {"bn": [50.0, 190.0, 190.0, 10.0, 10.0],
                "standard": [50.0, 100.0, 100.0, 100.0, 100.0]}
    settings, results = _results([1] * 5, [2] * 5, seeds=5, hessians=hessians)
    got, measurements = L.conclude(settings, results)
    _assert_verdict(got, "supported", "supported")
    controls = measurements["problems"]["dln"]["curvature"]
    assert controls["threshold"] == pytest.approx(200.0)
    assert controls["bn"]["at_edge"] and controls["bn"]["seeds_at_edge"] == 5
    assert controls["bn"]["seed_edge_share"] == [1.0] * 5
    assert controls["bn"]["seed_median_ratio"] == [pytest.approx(0.95)] * 5
    assert not controls["standard"]["at_edge"]
    assert controls["standard"]["seed_median_ratio"] == [pytest.approx(0.5)] * 5
    assert controls["bn"]["median_effective_lr_start"] == pytest.approx(0.02)
    assert measurements["verdict_inputs"]["dln.beta"]["at_edge_of_stability"] == ["bn"]
    line = L.headline(measurements["verdict_inputs"])
    assert "dln 5/5, 5/5, 5/5 (at the edge of stability: BN); mnist1d 5/5" in line
    assert "[" not in line and "{" not in line          # no Python list or dict
    assert any("AT THE EDGE OF STABILITY" in text for text in L.summary(measurements))
    # one early checkpoint after step 0 of two at the edge (1/2 >= 1/2): still at it;
    # none (a sharpness of 0.85 x): not; an overflow (None) counts as above
    run = [_checkpoint(s, 1.0, hessian=h) for s, h in zip(STEPS, [0, 190, 170, 0, 0])]
    assert L.edge_share(run, settings["dln"], 50)[0] == 0.5
    run = [_checkpoint(s, 1.0, hessian=h) for s, h in zip(STEPS, [0, 170, 170, 0, 0])]
    assert L.edge_share(run, settings["dln"], 50)[0] == 0.0
    run[1]["hessian_max"] = None
    assert L.edge_share(run, settings["dln"], 50)[0] == 0.5


def test_edge_of_stability_needs_half_the_seeds():
    hessians = {"bn": [50.0, 190.0, 190.0, 10.0, 10.0]}
    settings, results = _results([1] * 5, [2] * 5, seeds=4, hessians=hessians)
    for r in results:       # two of four seeds' BN nets stay below the edge
        if r["config"] == "bn" and r["replicate"] >= 2:
            for c in r["checkpoints"]:
                c["hessian_max"] = 10.0
    _, measurements = L.conclude(settings, results)
    assert measurements["problems"]["mnist1d"]["curvature"]["bn"]["at_edge"]
    for r in results:
        if r["config"] == "bn" and r["replicate"] == 1:
            for c in r["checkpoints"]:
                c["hessian_max"] = 10.0
    _, measurements = L.conclude(settings, results)
    assert not measurements["problems"]["mnist1d"]["curvature"]["bn"]["at_edge"]


def _tiny_task(norm, config, problem="dln"):
    if problem == "dln":
        setup = {"depth": 3, "width": 4, "samples": 40, "loss": "sum", "lr": 1e-3,
                 "momentum": 0.0, "steps": 4, "every": 2, "batch_size": None,
                 "record_every": 1, "multipliers": [0.01, 30], "spacing": "log",
                 "measure_rows": None}
    else:
        setup = {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.0, "batch_size": 50,
                 "steps": 4, "every": 2, "record_every": 2, "multipliers": [0.5, 4],
                 "spacing": "linear", "measure_rows": 30}
    return {"problem": problem, "config": config, "norm": norm, "replicate": 0,
            "seed": derived_seed(7, 0), "setup": setup, "line_points": 3,
            "power_iterations": 5}


def test_run_task_tiny():
    """The step-0 checkpoint equals the measures taken directly on the built net, and
    its loss is the first recorded training loss (same net, same full batch); the
    effective learning rates are those of the two BN'd layers."""
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
    W = net.unflatten()
    expected = [1e-3 / (np.sum(W[i]["W"] ** 2) + np.sum(W[i]["b"] ** 2)) for i in (0, 1)]
    np.testing.assert_allclose(first["effective_lr"], expected, rtol=1e-12)
    assert L.run_task(_tiny_task(None, "standard"))["checkpoints"][0]["effective_lr"] == []


def test_run_task_cnn_trains_with_momentum_on_fixed_rows():
    """The digits CNN's step-2 checkpoint equals the measures on the net trained
    directly by momentum SGD for 2 steps (the recipe's optimizer, the segment's
    shuffle seed), on the fixed measurement rows of the seed; its test accuracy is
    reported."""
    task = _tiny_task("std", "bn", problem="digits-images")
    result = L.run_task(task)
    net, X, y, _ = build(task)
    setup = task["setup"]
    Xm, ym = measurement_batch(X, y, setup["measure_rows"], task["seed"], 0)
    assert Xm.shape == (30, 1, 8, 8)
    train(net, X, y, setup["lr"], 2, batch_size=setup["batch_size"],
          seed=derived_seed(derived_seed(task["seed"], 4), 0),
          optimizer=recipe_optimizer(setup), record_every=2)
    direct = gradient_line_measures(net, Xm, ym, step_sizes(setup, 3))
    second = result["checkpoints"][1]
    assert second["step"] == 2
    for key in ("loss", "loss_range", "grad_change_max", "beta"):
        assert second[key] == pytest.approx(direct[key], rel=1e-10)
    assert len(second["effective_lr"]) == 2          # the two BN'd conv layers
    assert 0.0 <= result["test_accuracy"] <= 1.0
    json.dumps(result, allow_nan=False)


def test_paired_tasks_share_seeds():
    settings = L.settings(True)
    tasks = L.tasks(settings, 3)
    assert len(tasks) == 4 * settings["seeds"] * 2
    for problem in L.JUDGED_PROBLEMS + L.EXTRA_PROBLEMS:
        seeds = {}
        for t in tasks:
            if t["problem"] == problem:
                seeds.setdefault(t["replicate"], set()).add(t["seed"])
        assert all(len(s) == 1 for s in seeds.values())
        assert len(seeds) == settings["seeds"]
    bn_net = build(tasks[1])[0]
    plain = build(tasks[0])[0]
    # same Dense weights: the BN net's first W equals the standard net's
    np.testing.assert_array_equal(bn_net.unflatten()[0]["W"], plain.unflatten()[0]["W"])


def test_quick_run(quick_result):
    result = quick_result("landscape")
    assert result.verdict in VERDICTS
    inputs = result.measurements["verdict_inputs"]
    cells = {k: v for k, v in inputs.items() if isinstance(v, dict)}
    assert set(cells) == CELLS
    # the quick run has two seeds: the sign test cannot reach p < 0.05 (p >= 1/4), every
    # cell is undecided and the verdict underpowered
    assert result.settings["seeds"] == 2
    assert result.verdict == L.verdict_of({k: v["verdict"] for k, v in cells.items()})
    assert result.verdict == "underpowered"
    for cell in cells.values():
        assert cell["verdict"] == "undecided" and not cell["significance_reachable"]
        assert cell["seeds_bn_smaller"] + cell["seeds_bn_larger"] <= 2
    assert set(result.measurements["alternatives"]) == set(L.ALTERNATIVES)
    for problem in L.JUDGED_PROBLEMS + L.EXTRA_PROBLEMS:
        block = result.measurements["problems"][problem]
        setup = result.settings[problem]
        threshold = block["curvature"]["threshold"]
        assert threshold == pytest.approx((2 + 2 * setup["momentum"]) / setup["lr"])
        for config in L.CONFIGS:
            for run in block["runs"][config]:
                # the full-batch DLN's first checkpoint loss is its first training loss
                if problem == "dln":
                    assert run["loss"][0] == pytest.approx(run["losses"][0], rel=1e-12)
                else:
                    assert 0.0 <= run["test_accuracy"] <= 1.0
                assert run["steps"] == list(range(0, setup["steps"] + 1, setup["every"]))
                for lo, hi in zip(run["loss_min"], run["loss_max"]):
                    assert lo is None or hi is None or lo <= hi
                for h, ratio in zip(run["hessian_max"], run["sharpness_ratio"]):
                    assert h is None or ratio == pytest.approx(h / threshold)
                # the effective lr exists for the BN nets only
                assert all((v is not None) == (config == "bn") for v in run["effective_lr"])
    json.dumps(result.to_dict(), allow_nan=False)
    lines = L.summary(result.measurements)
    assert any("effective beta-smoothness" in line for line in lines)
    assert any("at matched loss" in line for line in lines)
    assert len(L.headline(inputs)) < 200


def test_run_task_diverged_is_strict_json():
    """A run that diverges stops there; its result stays valid JSON (no inf or NaN)."""
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
