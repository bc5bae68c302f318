"""The lp-norm experiment (rule version 3): its measures against the NumPy reference,
the dense Hessian and closed forms; the rule's conditions, verdict and fragility line on
crafted per-seed results; tiny tasks of each problem kind; and the shared quick run."""

import json
import math

import numpy as np
import pytest

import bnfast
from bnfast import reference
from bnfast.experiments import VERDICTS, derived_seed
from bnfast.experiments import lp_norm as P
from bnfast.experiments.problems import RECIPES, digits_cnn_layers, pytorch_default_init


# ---- measurements -------------------------------------------------------------------

def test_layer_inputs_match_reference_dense():
    """The output of the first k layers, recomputed by the oracle on the first k layer
    dicts and the matching prefix of the parameters."""
    layers = [bnfast.Dense(3, 5, "relu", batch_norm=bnfast.BatchNorm(norm="l1")),
              bnfast.Dense(5, 4, "tanh", batch_norm=bnfast.BatchNorm(norm="linf")),
              bnfast.Dense(4, 2)]
    net = bnfast.Network(layers).init("glorot", 3)
    X = np.random.default_rng(0).standard_normal((16, 3))
    dicts, params = [layer.to_dict() for layer in layers], net.params
    got = P.layer_inputs(net, X)
    assert [a.shape for a in got] == [(16, 5), (16, 4)]
    for k, out in enumerate(got, start=1):
        count = reference.param_count(dicts[:k])
        expected = reference.network_forward(dicts[:k], params[:count], X)
        np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-14)


def test_layer_inputs_of_a_conv_net_skip_pooling_and_flatten():
    """The digits CNN: the outputs of its two Conv2d layers (after BN and ReLU, before
    pooling), as the oracle computes them; pooling and Flatten add no entry."""
    layers = digits_cnn_layers(norm="l2")
    net = pytorch_default_init(bnfast.Network(layers, loss="cross_entropy"), 4)
    X = np.random.default_rng(1).random((12, 1, 8, 8))
    got = P.layer_inputs(net, X)
    assert [a.shape for a in got] == [(12, 16, 8, 8), (12, 32, 4, 4)]
    dicts, params = [layer.to_dict() for layer in layers], net.params
    for k, out in zip((1, 3), got):
        count = reference.param_count(dicts[:k])
        expected = reference.network_forward(dicts[:k], params[:count], X)
        np.testing.assert_allclose(out, expected, rtol=1e-11, atol=1e-13)


def test_distribution_shift_closed_forms():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((50, 3)) + 2.0
    assert P.distribution_shift([a], [a]) == [0.0]
    # doubling every value doubles each mean and std: distance = the scale itself
    assert P.distribution_shift([a], [2 * a])[0] == pytest.approx(1.0, rel=1e-12)
    # a shift by c of every unit's mean: c / sqrt(mean(mu^2 + sd^2))
    shift = P.distribution_shift([a], [a + 0.5])[0]
    scale = np.sqrt(np.mean(a.mean(0) ** 2 + a.std(0) ** 2))
    assert shift == pytest.approx(0.5 / scale, rel=1e-12)
    assert P.distribution_shift([np.zeros((4, 2))], [a[:4, :2]]) == [float("inf")]
    # a conv output (m, channels, positions): every (channel, position) is a unit
    c = rng.standard_normal((20, 2, 3))
    flat = P.distribution_shift([c.reshape(20, 6)], [3 * c.reshape(20, 6) + 1])
    assert P.distribution_shift([c], [3 * c + 1]) == pytest.approx(flat, rel=1e-12)


def test_curve_metric():
    assert P.curve_metric([10.0, 100.0, 1000.0]) == pytest.approx(2.0)


def _dense_hessian(net, X, y):
    n = net.num_params
    H = np.column_stack([net.hvp(X, y, np.eye(n)[i]) for i in range(n)])
    return (H + H.T) / 2


def test_top_hessian_eigenvalue_is_the_top_of_the_spectrum():
    """Lanczos with as many steps as parameters gives the dense Hessian's largest
    eigenvalue (BN layers make the Hessian indefinite); with fewer steps its Ritz value
    is a lower bound, near the top."""
    layers = [bnfast.Dense(3, 4, "tanh", batch_norm=bnfast.BatchNorm(norm="l1")),
              bnfast.Dense(4, 2)]
    net = bnfast.Network(layers).init("glorot", 5)
    rng = np.random.default_rng(2)
    X, y = rng.standard_normal((10, 3)), rng.standard_normal((10, 2))
    eigenvalues = np.linalg.eigvalsh(_dense_hessian(net, X, y))
    assert eigenvalues[0] < 0 < eigenvalues[-1]
    top = P.top_hessian_eigenvalue(net, X, y, steps=net.num_params, seed=0)
    assert top == pytest.approx(eigenvalues[-1], rel=1e-8)
    few = P.top_hessian_eigenvalue(net, X, y, steps=8, seed=0)
    assert eigenvalues[0] < few <= eigenvalues[-1] * (1 + 1e-10)


class _Quadratic:
    """A stand-in with a net's num_params and hvp for a fixed symmetric matrix A."""

    def __init__(self, A):
        self.A, self.num_params = A, len(A)

    def hvp(self, X, y, v):
        return self.A @ v


def test_top_hessian_eigenvalue_when_a_negative_one_dominates():
    """Power iteration would return the eigenvalue of largest magnitude (-10); Lanczos
    gives the largest one (3), exactly with n steps, and from below to 1e-4 with 12 of
    40 (the top gap, 1 in a spread of 13, sets the rate)."""
    rng = np.random.default_rng(3)
    Q, _ = np.linalg.qr(rng.standard_normal((40, 40)))
    spectrum = np.concatenate([[-10.0, -9.0], np.linspace(-1.0, 2.0, 37), [3.0]])
    A = (Q * spectrum) @ Q.T
    assert P.top_hessian_eigenvalue(_Quadratic(A), None, None, 40, seed=0) == \
        pytest.approx(3.0, rel=1e-10)
    few = P.top_hessian_eigenvalue(_Quadratic(A), None, None, 12, seed=0)
    assert 3.0 * (1 - 1e-4) < few <= 3.0 * (1 + 1e-12)
    # an invariant subspace found early (A = 2 I): one step, exact
    assert P.top_hessian_eigenvalue(_Quadratic(2 * np.eye(5)), None, None, 5) == \
        pytest.approx(2.0, rel=1e-14)


# ---- the rule's statistics ----------------------------------------------------------

def test_median_interval_by_order_statistics():
    x = [5.0, 1.0, 9.0, 3.0, 7.0, 2.0, 8.0, 4.0, 6.0, 10.0]
    # n = 10 at 90%: P(B <= 1) = 11/1024 <= 0.05 < P(B <= 2) = 56/1024, so k = 2:
    # [x_(2), x_(9)] with coverage 1 - 22/1024 = 0.979
    out = P.median_interval(x, 0.9)
    assert (out["low"], out["high"], out["median"], out["n"]) == (2.0, 9.0, 5.5, 10)
    assert P.median_interval(x[:4], 0.9)["low"] is None     # 2 * 1/16 > 0.1
    five = P.median_interval(x[:5], 0.9)                     # 2/32 <= 0.1: k = 1
    assert (five["low"], five["high"]) == (1.0, 9.0)
    assert P.median_interval([1.0, math.inf, 2, 3, 4, 5], 0.9)["high"] == math.inf


@pytest.mark.parametrize("d, tost, outcome", [
    ([0.01, 0.02, 0.0, 0.01], "equivalent", "supported"),      # inside +-0.1
    ([-0.5, -0.6, -0.55, -0.52], "below", "supported"),        # lp better
    ([-0.1, -0.2, 0.0, -0.15, -0.05], "undecided", "supported"),  # straddles -margin
    ([0.05, 0.2, 0.1, 0.15, 0.0], "undecided", "undecided"),   # straddles +margin
    ([0.5, 0.6, 0.55, 0.52], "above", "refuted"),              # lp worse by > margin
    ([math.inf, 0.5, math.inf], "above", "refuted"),           # lp diverged / worse
    ([math.inf, 0.0, 0.01], "undecided", "undecided"),         # no interval
])
def test_equivalence_outcomes(d, tost, outcome):
    out = P.equivalence(d, 0.1, 0.05)
    assert (out["tost"], out["outcome"]) == (tost, outcome)


def test_equivalence_by_medians():
    d = [0.01, -0.02, 0.03, 0.0, 0.02, -0.01, 0.015, 0.005, -0.005, 0.5]   # one outlier
    assert P.equivalence(d, 0.1, 0.05, "median")["outcome"] == "supported"
    assert P.equivalence([0.3 + 0.01 * i for i in range(10)], 0.1, 0.05,
                         "median")["outcome"] == "refuted"
    assert P.equivalence(d[:4], 0.1, 0.05, "median")["outcome"] == "undecided"


# ---- conclude on crafted per-seed results -------------------------------------------

PROBLEMS = ("mnist1d", "digits-images", "dln", "digits")
SEEDS = 10
#: Seed noise of the metric per normalization (a pattern each, so the paired
#: differences have a spread of about 0.01).
_NOISE = {norm: np.random.default_rng(i).normal(0.0, 0.01, SEEDS)
          for i, norm in enumerate(P.NORMS)}
#: BN gains 0.5 decades over no normalization (margin 0.25); l1 0.05 below BN.
GOOD = {"none": 1.0, "std": 0.5, "l1": 0.45, "l2": 0.52, "linf": 0.5}
ACCURACY = {"none": 0.90, "std": 0.94, "l1": 0.94, "l2": 0.935, "linf": 0.94}
SHIFT = {"none": 0.1, "std": 0.2, "l1": 0.5, "l2": 0.5, "linf": 0.5}
STEPS = 100


def _run(problem, norm, replicate, m, accuracy, diverged=False):
    """A run whose loss curve falls linearly in log10 from 10^(m + 1) to 10^(m - 1)
    over STEPS steps (mean log10 = m), recorded every 10 steps; a diverged run's curve
    stops at its second record (None: not finite)."""
    steps = list(range(0, STEPS + 1, 10))
    curve = [10 ** (m + 1 - 2 * s / STEPS) for s in steps]
    if diverged:                      # the curve stops where the loss overflowed
        curve, steps = [curve[0], None], steps[:2]
    run = {"problem": problem, "config": norm, "replicate": replicate, "steps": STEPS,
           "losses": curve, "loss_steps": steps,
           "curve_metric": None if diverged else float(np.mean(np.log10(curve))),
           "final_loss": None if diverged else curve[-1],
           "diverged_step": 5 if diverged else None,
           "shift": SHIFT[norm] + 0.01 * replicate, "shift_per_layer": [SHIFT[norm]],
           "sharpness_threshold": 76.0,
           "checkpoints": [{"step": s, "loss": 1.0, "grad_norm": 1.0, "loss_range": 1.0,
                            "grad_change_max": 1.0, "beta": 1.0, "sharpness": 70.0,
                            "sharpness_ratio": 70 / 76, "effective_lr": 0.01,
                            "test_accuracy": accuracy} for s in (0, STEPS)]}
    if problem != "dln":
        run["test_accuracy"] = None if diverged else accuracy
    return run


def _conclude(metric=None, accuracy=None, diverged=()):
    """conclude on crafted runs: metric[problem][norm] + seed noise (default GOOD on
    every problem), test accuracy likewise; (problem, norm) in ``diverged``: every
    seed of that net diverged."""
    metric = {p: (metric or {}).get(p, GOOD) for p in PROBLEMS}
    accuracy = {p: (accuracy or {}).get(p, ACCURACY) for p in PROBLEMS}
    results = [_run(problem, norm, r, metric[problem][norm] + _NOISE[norm][r],
                    accuracy[problem][norm] + _NOISE[norm][r] / 10,
                    (problem, norm) in diverged)
               for problem in PROBLEMS for r in range(SEEDS) for norm in P.NORMS]
    settings = {"problems": list(PROBLEMS), "judged": list(P.JUDGED),
                "extra": list(P.EXTRA), "seeds": SEEDS,
                **{p: {"steps": STEPS} for p in PROBLEMS}}
    verdict, measurements = P.conclude(settings, results)
    outcomes = {name: c["outcome"] for name, c in measurements["conditions"].items()}
    assert verdict.conditions == outcomes
    json.dumps(measurements, allow_nan=False)
    return verdict, outcomes, measurements


JUDGED_CONDITIONS = [f"comparable {problem} {p}" for problem in P.JUDGED for p in P.LP]


def test_conclude_supported():
    verdict, outcomes, m = _conclude()
    assert list(outcomes) == JUDGED_CONDITIONS
    assert verdict.label == "supported" and not verdict.reduced
    assert verdict.setting == ("the 25-layer deep linear network and the MNIST-1D Conv1d "
                               "network and the digits Conv2d network")
    for name in JUDGED_CONDITIONS:
        c = m["conditions"][name]
        assert c["bn_gain_over_none"] == pytest.approx(0.5, abs=0.02)
        assert c["margin"] == pytest.approx(c["bn_gain_over_none"] / 2)
        assert c["n"] == SEEDS and c["high"] < c["margin"]
    # the extra (the digits MLP) is reported with its own conditions, not judged
    assert list(m["extra_conditions"]) == [f"comparable digits {p}" for p in P.LP]
    assert all(c["outcome"] == "supported" for c in m["extra_conditions"].values())
    # the remark: l1 0.05 below BN on the DLN, reported as a sub-claim
    beats = m["sub_claims"]["l1 beats BN on the DLN"]
    assert beats["outcome"] == "supported" and beats["mean"] == pytest.approx(0.05, abs=0.02)
    assert "l1 beats BN on the DLN" not in outcomes
    assert m["sub_claims"]["lp inputs shift more than unnormalized"]["verdict"] == "supported"
    assert m["alternatives"] == {name: "supported" for name in P.ALTERNATIVES}
    assert set(m["alternative_conditions"]) == set(P.ALTERNATIVES)


@pytest.mark.parametrize("worse, outcome", [
    (0.2, "supported"),        # lp keeps 60% of BN's gain: comparable
    (0.3, "refuted"),          # lp keeps 40% of it: the interval lies above the margin
])
def test_the_margin_is_half_of_bns_gain(worse, outcome):
    """linf on the MNIST-1D CNN worse than BN by 0.2 or 0.3 decades against a margin of
    0.25 (BN's gain 0.5): the margin decides, not the seed spread (0.01)."""
    verdict, outcomes, _ = _conclude({"mnist1d": {**GOOD, "linf": 0.5 + worse}})
    assert outcomes["comparable mnist1d linf"] == outcome
    assert {k for k, v in outcomes.items() if v != "supported"} == (
        set() if outcome == "supported" else {"comparable mnist1d linf"})
    assert verdict.label == ("supported" if outcome == "supported" else "mixed")


def test_mixed_names_what_went_which_way():
    """linf far worse than BN on the digits CNN's loss curve but as accurate: mixed by
    the rule, supported by the test-accuracy alternative (one flip of six)."""
    verdict, outcomes, m = _conclude({"digits-images": {**GOOD, "linf": 2.0}})
    assert verdict.label == "mixed"
    assert verdict.text.endswith("; refuted: comparable digits-images linf)")
    flips = {name for name, label in m["alternatives"].items() if label != "mixed"}
    assert flips == {"test accuracy instead of the loss curve (CNNs)"}
    assert m["alternatives"]["test accuracy instead of the loss curve (CNNs)"] == "supported"


def test_refuted_everywhere_is_bare_with_the_dln_and_reduced_without_it():
    """Every lp far worse than BN on every problem: refuted; the DLN is the paper's own
    set-up, so bare. The same conditions of the CNNs alone (reduced stand-ins for VGG)
    read 'refuted in' them."""
    bad = {**GOOD, "l1": 2.0, "l2": 2.0, "linf": 2.0}
    verdict, outcomes, m = _conclude({p: bad for p in PROBLEMS})
    assert verdict.text == "refuted" and set(outcomes.values()) == {"refuted"}
    cnn = {k: v for k, v in m["conditions"].items() if " dln " not in k}
    reduced = P.verdict_of(cnn)
    assert reduced.reduced and reduced.text == (
        "refuted in the MNIST-1D Conv1d network and the digits Conv2d network")


def test_no_gain_leaves_a_problem_undecided():
    """BN trains no further than no normalization on the digits CNN: no margin, its
    conditions are undecided and the verdict underpowered, saying why."""
    verdict, outcomes, m = _conclude({"digits-images": {**GOOD, "none": 0.4}})
    for p in P.LP:
        c = m["conditions"][f"comparable digits-images {p}"]
        assert c["outcome"] == "undecided" and "no gain" in c["reason"]
    assert verdict.label == "underpowered"
    assert "digits-images: no gain" in verdict.decide


def test_a_diverged_lp_net_is_worse():
    """linf diverged on every seed of the DLN: d = +inf, wholly above the margin. The
    measurements stay strict JSON (_conclude checks): infinities become None."""
    verdict, outcomes, m = _conclude(diverged={("dln", "linf")})
    assert outcomes["comparable dln linf"] == "refuted"
    assert m["conditions"]["comparable dln linf"]["tost"] == "above"
    assert verdict.label == "mixed"
    assert m["problems"]["dln"]["linf"]["curve_metric"] == [None] * SEEDS
    # l1 diverged too: the remark's interval is undefined, its mean +inf reads None
    _, outcomes, m = _conclude(diverged={("dln", "linf"), ("dln", "l1")})
    beats = m["sub_claims"]["l1 beats BN on the DLN"]
    assert beats["outcome"] == "undecided" and beats["mean"] is None
    assert outcomes["comparable dln l1"] == "refuted"


def test_test_accuracy_is_the_first_alternative():
    """linf keeps BN's loss curve on the MNIST-1D CNN but not its test accuracy (0.905
    against BN's 0.94 and none's 0.90): the rule supports, the accuracy alternative
    refutes that condition and flips the verdict to mixed."""
    verdict, outcomes, m = _conclude(accuracy={"mnist1d": {**ACCURACY, "linf": 0.905}})
    assert verdict.label == "supported"
    name = "test accuracy instead of the loss curve (CNNs)"
    assert m["alternative_conditions"][name]["comparable mnist1d linf"] == "refuted"
    assert m["alternatives"][name] == "mixed"
    assert m["alternative_conditions"][name]["comparable dln linf"] == "supported"


def test_matched_loss_metric():
    """The fraction of the run until a curve first reaches the unnormalized net's final
    loss; never reaching it counts +inf."""
    none = _run("dln", "none", 0, 1.0, None)          # ends at 10^0 = 1
    bn = _run("dln", "std", 0, 0.5, None)             # 10^(1.5 - 2 s/100) <= 1 at s = 75
    worse = _run("dln", "l1", 0, 1.5, None)           # ends at 10^0.5 > 1: never
    level = none["final_loss"]
    assert P._metric(none, "matched_loss", level) == pytest.approx(1.0)
    assert P._metric(bn, "matched_loss", level) == pytest.approx(0.8)   # recorded at 80
    assert P._metric(worse, "matched_loss", level) == math.inf
    assert P._metric(bn, "matched_loss", None) is None


def test_paired_differences_of_infinite_values():
    """None (diverged) counts +inf; equal values, infinite ones included, differ by 0
    (both diverged, or both never reached a matched loss); no NaN reaches the tests."""
    values = {"a": [None, math.inf, 1.0, -math.inf, None, 2.0],
              "b": [None, math.inf, 3.0, -math.inf, 1.0, math.inf]}
    assert P.paired_differences(values, "a", "b") == [0.0, 0.0, -2.0, 0.0, math.inf,
                                                      -math.inf]


def test_conclude_when_no_net_reaches_the_matched_loss():
    """The unnormalized DLN ends below every normalized net: at matched loss BN and the
    lp nets never reach its final loss (+inf each, d = 0), BN has no gain there, and the
    DLN conditions of that alternative are undecided (the full run of c96b012 stopped
    on inf - inf = NaN here)."""
    verdict, outcomes, m = _conclude({"dln": {"none": 0.0, "std": 0.5, "l1": 0.5,
                                              "l2": 0.5, "linf": 0.5}})
    name = "matched loss (steps to the unnormalized net's final loss) instead of matched steps"
    matched = m["alternative_conditions"][name]
    assert [matched[f"comparable dln {p}"] for p in P.LP] == ["undecided"] * 3
    assert outcomes["comparable dln l1"] == "undecided"      # no gain in M either
    assert verdict.label == "underpowered"


def test_conclude_when_bn_and_an_lp_net_both_diverge():
    """BN and l1 diverged on every seed of the MNIST-1D CNN: their differences are 0,
    BN's gain over no normalization is -inf on every seed (none finite: no margin), so
    that problem's conditions are undecided, in every alternative too."""
    verdict, outcomes, m = _conclude(diverged={("mnist1d", "std"), ("mnist1d", "l1")})
    assert [outcomes[f"comparable mnist1d {p}"] for p in P.LP] == ["undecided"] * 3
    assert verdict.label == "underpowered"
    for conditions in m["alternative_conditions"].values():
        assert conditions["comparable mnist1d l1"] == "undecided"


# ---- the set-up and the tasks -------------------------------------------------------

def test_settings_quick_and_full_differ_in_numbers_only():
    full, quick = P.settings(False), P.settings(True)
    assert full["seeds"] == P.RULE_PARAMS["seeds"] >= 10
    assert set(full) == set(quick)
    for problem in P.TASK_ORDER:
        for setup in (full[problem], quick[problem]):
            assert setup["steps"] % setup["every"] == 0
            assert setup["every"] % setup["record_every"] == 0
        assert set(full[problem]) == set(quick[problem])
        assert full[problem]["steps"] == P.RULE_PARAMS["steps"][problem]
    assert full["mnist1d"]["momentum"] == RECIPES["mnist1d"]["full"]["momentum"]
    assert any("10 seeds" in line for line in full["reduced"])


def test_settings_refuse_a_changed_recipe(monkeypatch):
    changed = {**RECIPES["digits-images"]["full"], "lr": 0.1}
    monkeypatch.setitem(RECIPES, "digits-images", {**RECIPES["digits-images"],
                                                   "full": changed})
    with pytest.raises(ValueError, match="register a new rule version"):
        P.settings(False)


def test_tasks_pair_the_normalizations_of_a_seed():
    settings = {**P.settings(True), "seeds": 2}
    tasks = P.tasks(settings, 0)
    assert len(tasks) == 4 * 2 * 5
    assert [t["problem"] for t in tasks[::10]] == list(P.TASK_ORDER)
    for i in range(0, len(tasks), 5):
        group = tasks[i:i + 5]
        assert {t["seed"] for t in group} == {group[0]["seed"]}
        assert [t["config"] for t in group] == list(P.NORMS)


def _tiny(problem, norm, lr=None):
    settings = P.settings(True)
    setup = {**settings[problem], "steps": 4, "every": 2, "record_every": 2}
    if lr is not None:
        setup["lr"] = lr
    return {"problem": problem, "config": norm, "norm": P.NORMS[norm], "replicate": 0,
            "seed": derived_seed(9, 0), "setup": setup, "line_points": 3,
            "lanczos_steps": 4}


def test_run_task_tiny_dln():
    result = P.run_task(_tiny("dln", "l1"))
    assert result["diverged_step"] is None
    assert len(result["shift_per_layer"]) == 24          # inputs of layers 2..25
    assert result["loss_steps"] == [0, 2, 4]
    assert [c["step"] for c in result["checkpoints"]] == [0, 2, 4]
    threshold = 2 / 1e-6
    assert result["sharpness_threshold"] == pytest.approx(threshold)
    for c in result["checkpoints"]:
        assert c["sharpness_ratio"] == pytest.approx(c["sharpness"] / threshold)
        assert c["effective_lr"] > 0 and c["test_accuracy"] is None
    assert "test_accuracy" not in result
    json.dumps(result, allow_nan=False)


@pytest.mark.parametrize("norm", ["none", "linf"])
def test_run_task_tiny_cnn(norm):
    """The digits CNN with momentum SGD: the threshold is (2 + 2 momentum)/lr; the
    unnormalized net has no scale-invariant layer (no effective lr)."""
    result = P.run_task(_tiny("digits-images", norm))
    assert result["diverged_step"] is None
    assert len(result["shift_per_layer"]) == 2           # the two Conv2d outputs
    assert result["sharpness_threshold"] == pytest.approx((2 + 2 * 0.9) / 0.05)
    assert 0 <= result["test_accuracy"] <= 1
    assert result["test_accuracy"] == result["checkpoints"][-1]["test_accuracy"]
    rates = [c["effective_lr"] for c in result["checkpoints"]]
    assert (rates == [None] * 3) == (norm == "none")
    json.dumps(result, allow_nan=False)


def test_run_task_diverged_is_strict_json():
    result = P.run_task(_tiny("dln", "none", lr=1e6))
    assert result["diverged_step"] is not None
    assert result["curve_metric"] is None and result["shift"] is None
    json.dumps(result, allow_nan=False)


# ---- the quick run ------------------------------------------------------------------

def test_quick_run(quick_result):
    result = quick_result("lp-norm")
    assert result.quick and result.verdict in VERDICTS and result.rule_version == 3
    conditions = result.measurements["conditions"]
    assert list(conditions) == JUDGED_CONDITIONS
    assert result.verdict == P.verdict_of(conditions)
    assert list(result.measurements["extra_conditions"]) == [
        f"comparable digits {p}" for p in P.LP]
    assert set(result.measurements["alternatives"]) == set(P.ALTERNATIVES)
    assert result.fragility["of"] == len(P.ALTERNATIVES)
    seeds = result.settings["seeds"]
    for problem in P.TASK_ORDER:
        block = result.measurements["problems"][problem]
        for norm in P.NORMS:
            assert len(block[norm]["curve_metric"]) == seeds
        if problem != "dln":
            # BN trains the CNNs and the MLP to a test accuracy above chance (10 classes)
            assert min(block["std"]["test_accuracy"]) > 0.5
    # BN keeps each DLN layer input's per-unit mean and std near beta = 0, gamma = 1
    # while the affine parameters move little: its shift is far below the plain net's.
    dln = result.measurements["problems"]["dln"]
    assert np.median(dln["std"]["shift"]) < np.median(dln["none"]["shift"])
    lines = P.summary(result.measurements)
    assert any(line.startswith("l1 beats BN on the DLN (reported)") for line in lines)
    assert any(line.startswith("comparable mnist1d linf:") for line in lines)
    assert P.headline(result.measurements["verdict_inputs"]).startswith(
        "M_lp - M_BN (margin): dln (")


def test_quick_run_figure(quick_result, tmp_path):
    pytest.importorskip("matplotlib")
    from bnfast.plot.experiments import plot_experiment

    result = quick_result("lp-norm")
    path = plot_experiment(json.loads(json.dumps(result.to_dict())), tmp_path / "lp.png")
    assert path.stat().st_size > 10_000
