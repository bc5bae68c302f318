"""The lp-norm experiment: its measures against the NumPy reference and closed forms, the
rule of each sub-claim on crafted inputs, a tiny task, and the shared quick run."""

import numpy as np
import pytest

import bnfast
from bnfast import reference
from bnfast.experiments import VERDICTS, derived_seed
from bnfast.experiments import lp_norm as P


def test_layer_inputs_match_reference():
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


def test_curve_metric_and_seed_spread():
    assert P.curve_metric([10.0, 100.0, 1000.0]) == pytest.approx(2.0)
    spread = P.seed_spread({"x": [1.0, 3.0], "y": [5.0, 5.0, 8.0], "z": [None, 2.0]})
    # squares 2 + 6, degrees of freedom 1 + 2 (z has one finite value)
    assert spread == pytest.approx(np.sqrt(8 / 3))
    assert P.seed_spread({"x": [1.0]}) is None


def test_paired_differences():
    d = P.paired([1.0, 2.0, 4.0], [2.0, 2.5, 4.5])
    assert d["mean"] == pytest.approx(-2 / 3) and d["all_lower"] and d["n"] == 3
    assert d["se"] == pytest.approx(np.std([-1, -0.5, -0.5], ddof=1) / np.sqrt(3))
    worse = P.paired([None, 1.0], [1.0, 1.0])     # a diverged first run is worse
    assert worse["mean"] is None and worse["mean_is"] == "+inf" and worse["se"] is None
    # BN (second) diverged on seed 0, lp slightly worse on seed 1: lp is better overall
    better = P.paired([1.0, 1.1], [None, 1.0])
    assert better["mean_is"] == "-inf" and better["_mean"] == -np.inf
    # each side diverged once: no mean difference, and no verdict from it
    mixed = P.paired([None, 1.0], [1.0, None])
    assert mixed["mean_is"] == "undefined"
    assert P.verdict_beats(mixed) == "inconclusive"
    assert P.verdict_comparable({("dln", "l1"): mixed}, {"dln": 0.1}) == "inconclusive"


def _diff(mean, se, all_lower=None):
    return {"_mean": mean, "se": se, "all_lower": mean < 0 if all_lower is None else all_lower}


def test_verdict_comparable():
    spread = {"dln": 0.1, "digits": 0.2}
    ok = {("dln", "l1"): _diff(0.15, 0.01), ("digits", "l2"): _diff(-1.0, 0.1)}
    assert P.verdict_comparable(ok, spread) == "supported"
    grey = {**ok, ("dln", "linf"): _diff(0.3, 0.01)}        # 2 s < 0.3 <= 4 s
    assert P.verdict_comparable(grey, spread) == "inconclusive"
    bad = {**ok, ("digits", "linf"): _diff(0.9, 0.01)}      # > 4 s
    assert P.verdict_comparable(bad, spread) == "refuted"
    assert P.verdict_comparable(ok, {"dln": None, "digits": 0.2}) == "inconclusive"


def test_verdict_beats():
    assert P.verdict_beats(_diff(-0.1, 0.01)) == "supported"
    assert P.verdict_beats(_diff(-0.1, 0.01, all_lower=False)) == "inconclusive"
    assert P.verdict_beats(_diff(-0.01, 0.01)) == "inconclusive"
    assert P.verdict_beats(_diff(0.1, 0.01)) == "refuted"
    assert P.verdict_beats(_diff(float("inf"), None)) == "refuted"   # l1 diverged


def test_verdict_larger_shift():
    assert P.verdict_larger_shift({1: _diff(0.5, 0.1), 2: _diff(1.0, 0.2)}) == "supported"
    assert P.verdict_larger_shift({1: _diff(0.5, 0.1), 2: _diff(0.1, 0.2)}) == "inconclusive"
    assert P.verdict_larger_shift({1: _diff(0.5, 0.1), 2: _diff(-1.0, 0.2)}) == "refuted"


#: Seed noise of the curve metric, per normalization (a different pattern each, so the
#: paired differences have a spread: sd 0.01 to 0.017 over the 3 seeds).
JITTER = {"none": (0.0, 0.0, 0.0), "std": (0.0, 0.01, -0.01), "l1": (0.01, 0.0, -0.01),
          "l2": (-0.01, 0.01, 0.0), "linf": (0.0, -0.01, 0.01)}


def _crafted(metric, shift, diverged=()):
    """Runs with curve metric metric[problem][norm] + a seed offset (shared by the
    normalizations of a seed) + JITTER; shift likewise. (problem, norm) in ``diverged``:
    every seed of that net diverged."""
    results = []
    for problem in ("dln", "digits"):
        for replicate, offset in enumerate((0.0, 0.05, -0.05)):
            for norm in P.NORMS:
                m = metric[problem][norm] + offset + JITTER[norm][replicate]
                gone = (problem, norm) in diverged
                results.append({
                    "problem": problem, "config": norm, "replicate": replicate,
                    "losses": [10 ** m] * 3, "curve_metric": None if gone else m,
                    "final_loss": None if gone else 10 ** m,
                    "diverged_step": 2 if gone else None,
                    "shift": shift[norm] + 0.01 * replicate,
                    "shift_per_layer": [shift[norm]],
                    "checkpoints": [{"step": 0, "loss": 1.0, "grad_norm": 1.0,
                                     "loss_range": 1.0, "grad_change_max": 1.0,
                                     "beta": 1.0}]})
    settings = {"seeds": 3, "dln": {"steps": 10}, "digits": {"steps": 10}}
    return settings, results


#: BN's gain over no normalization 0.5 decades (margin 0.25); l1 0.05 below BN.
GOOD = {"none": 1.0, "std": 0.5, "l1": 0.45, "l2": 0.52, "linf": 0.5}
SHIFT = {"none": 0.1, "std": 0.2, "l1": 0.5, "l2": 0.5, "linf": 0.5}
COMPARABLE = [f"comparable {problem} {p}" for problem in ("dln", "digits")
              for p in ("l1", "l2", "linf")]
BEATS = "l1 beats BN on the DLN"
BOTH = "the 25-layer deep linear network and the dense digits MLP (squared loss)"


def _conclude(dln, digits, diverged=()):
    settings, results = _crafted({"dln": dln, "digits": digits}, SHIFT, diverged)
    verdict, measurements = P.conclude(settings, results)
    outcomes = {name: c["outcome"] for name, c in measurements["conditions"].items()}
    assert list(outcomes) == COMPARABLE + [BEATS]
    assert verdict.conditions == outcomes
    assert measurements["verdict_inputs"]["conditions"] is measurements["conditions"]
    return verdict, outcomes, measurements


def test_conclude_supported():
    verdict, outcomes, m = _conclude(GOOD, GOOD)
    assert verdict.label == "supported" and set(outcomes.values()) == {"supported"}
    assert verdict.setting == BOTH and not verdict.reduced
    for name in COMPARABLE:
        c = m["conditions"][name]
        assert c["bn_gain_over_none"] == pytest.approx(0.5)
        assert c["margin"] == pytest.approx(0.25)                 # half of BN's gain
        assert c["outcome"] == "supported" and c["n"] == 3
        assert -0.25 < c["low"] < c["high"] < 0.25
    assert m["conditions"][BEATS]["high"] < 0
    # sub-claim (c) is reported, not judged
    assert m["sub_claims"]["c_lp_larger_shift_than_none"]["verdict"] == "supported"
    assert m["alternatives"] == {name: "supported" for name in P.ALTERNATIVES}


@pytest.mark.parametrize("worse, outcome", [
    (0.2, "supported"),        # lp keeps 60% of BN's gain: comparable
    (0.3, "refuted"),          # lp keeps 40% of it: the interval lies above the margin
])
def test_conclude_margin_is_half_of_bns_gain(worse, outcome):
    """linf on the digits MLP worse than BN by 0.2 or 0.3 decades against a margin of
    0.25 (BN's gain 0.5): the margin decides, not the seed spread (0.01)."""
    verdict, outcomes, m = _conclude(GOOD, {**GOOD, "linf": 0.5 + worse})
    assert outcomes["comparable digits linf"] == outcome
    assert {k: v for k, v in outcomes.items() if k != "comparable digits linf"} == {
        k: "supported" for k in outcomes if k != "comparable digits linf"}
    assert verdict.label == ("supported" if outcome == "supported" else "mixed")


def test_conclude_mixed_when_an_lp_is_far_worse():
    """linf far worse than BN on the digits MLP (1.5 decades against a margin of 0.25),
    every other condition supported: mixed, naming which went which way."""
    verdict, outcomes, _ = _conclude(GOOD, {**GOOD, "linf": 2.0})
    assert verdict.label == "mixed"
    assert [k for k, v in outcomes.items() if v == "refuted"] == ["comparable digits linf"]
    assert verdict.text == (
        "mixed (supported: comparable dln l1, comparable dln l2, comparable dln linf, "
        "comparable digits l1, comparable digits l2, l1 beats BN on the DLN; "
        "refuted: comparable digits linf)")


def test_conclude_refuted_on_both_problems():
    """Every lp far worse than BN on both problems (l1 too, so it does not beat BN on
    the DLN): every condition refutes; the DLN is the paper's own set-up, so the
    refutation is bare."""
    bad = {**GOOD, "l1": 2.0, "l2": 2.0, "linf": 2.0}
    verdict, outcomes, _ = _conclude(bad, bad)
    assert verdict.label == "refuted" and set(outcomes.values()) == {"refuted"}
    assert verdict.setting == BOTH and not verdict.reduced
    assert verdict.text == "refuted"


def test_conclude_underpowered_when_l1_ties_bn():
    """l1 ties BN on the DLN (0.5 +- seed noise): the t interval of M_l1 - M_BN
    straddles 0, undecided; everything else supports: underpowered."""
    verdict, outcomes, m = _conclude({**GOOD, "l1": 0.5}, GOOD)
    assert outcomes[BEATS] == "undecided"
    assert m["conditions"][BEATS]["low"] < 0 < m["conditions"][BEATS]["high"]
    assert {k: v for k, v in outcomes.items() if k != BEATS} == {
        k: "supported" for k in COMPARABLE}
    assert verdict.label == "underpowered"
    assert verdict.decide.startswith("more seeds")


def test_conclude_no_gain_leaves_comparable_undecided():
    """BN trains no further than no normalization on the digits MLP: no margin, the
    digits conditions are undecided (underpowered)."""
    verdict, outcomes, m = _conclude(GOOD, {**GOOD, "none": 0.4})
    for p in ("l1", "l2", "linf"):
        c = m["conditions"][f"comparable digits {p}"]
        assert c["outcome"] == "undecided" and "no gain" in c["reason"]
        assert c["bn_gain_over_none"] == pytest.approx(-0.1)
    assert verdict.label == "underpowered"


def test_conclude_a_diverged_lp_net_is_worse():
    """linf diverged in every seed on the digits MLP: its metric counts as +inf, wholly
    above the margin: refuted (the other conditions support: mixed)."""
    verdict, outcomes, m = _conclude(GOOD, GOOD, diverged={("digits", "linf")})
    assert outcomes["comparable digits linf"] == "refuted"
    assert m["conditions"]["comparable digits linf"]["outcome"] == "refuted"
    assert verdict.label == "mixed"


def test_run_task_tiny():
    setup = {"depth": 3, "width": 4, "samples": 40, "loss": "sum", "lr": 1e-3, "steps": 4,
             "every": 2, "batch_size": None, "record_every": 1, "multipliers": [0.01, 30],
             "spacing": "log", "init": "glorot"}
    task = {"problem": "dln", "config": "l1", "norm": "l1", "replicate": 0,
            "seed": derived_seed(9, 0), "setup": setup, "line_points": 3}
    result = P.run_task(task)
    assert result["diverged_step"] is None
    assert len(result["shift_per_layer"]) == 2          # inputs of layers 2 and 3
    assert result["shift"] == pytest.approx(np.mean(result["shift_per_layer"]))
    assert result["curve_metric"] == pytest.approx(np.mean(np.log10(result["losses"])))
    assert [c["step"] for c in result["checkpoints"]] == [0, 2, 4]


def test_quick_run(quick_result):
    result = quick_result("lp-norm")
    assert result.verdict in VERDICTS
    # version 2: the conditions decide; sub-claim (c) is reported
    assert set(result.measurements["sub_claims"]) == {"c_lp_larger_shift_than_none"}
    conditions = result.measurements["conditions"]
    assert list(conditions) == COMPARABLE + [BEATS]
    assert result.verdict == P.verdict_of(conditions)
    assert set(result.measurements["alternatives"]) == set(P.ALTERNATIVES)
    seeds = result.settings["seeds"]
    for problem in ("dln", "digits"):
        for norm, block in result.measurements["problems"][problem].items():
            assert len(block["curve_metric"]) == seeds
            if all(d is None for d in block["diverged_step"]):
                # the curve metric is the mean log10 of the recorded (<= 200) losses
                assert len(block["losses"][0]) <= 200
                assert all(s >= 0 for s in block["shift"])
    # BN keeps each layer input's per-unit mean and std near beta = 0, gamma = 1 when
    # the affine parameters move little: its DLN shift is far below the plain net's.
    dln = result.measurements["problems"]["dln"]
    assert np.median(dln["std"]["shift"]) < np.median(dln["none"]["shift"])
    lines = P.summary(result.measurements)
    assert any(line.startswith("(c)") for line in lines)
    assert any(line.startswith(f"{BEATS}:") for line in lines)
    assert P.headline(result.measurements["verdict_inputs"]).startswith(
        "M_lp - M_BN / margin:")


def test_run_task_diverged_is_strict_json():
    import json
    setup = {"depth": 3, "width": 4, "samples": 40, "loss": "sum", "lr": 1e6, "steps": 4,
             "every": 2, "batch_size": None, "record_every": 1, "multipliers": [0.01, 30],
             "spacing": "log", "init": "glorot"}
    task = {"problem": "dln", "config": "none", "norm": None, "replicate": 0,
            "seed": derived_seed(9, 0), "setup": setup, "line_points": 3}
    result = P.run_task(task)
    assert result["diverged_step"] is not None
    assert result["curve_metric"] is None and result["shift"] is None
    json.dumps(result, allow_nan=False)
