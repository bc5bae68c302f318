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


def _crafted(metric, shift):
    """Runs with curve metric metric[problem][norm] + seed offsets, shift likewise."""
    results = []
    for problem in ("dln", "digits"):
        for replicate, offset in enumerate((0.0, 0.05, -0.05)):
            for norm in P.NORMS:
                m = metric[problem][norm] + offset + 0.001 * replicate
                results.append({
                    "problem": problem, "config": norm, "replicate": replicate,
                    "losses": [10 ** m] * 3, "curve_metric": m, "final_loss": 10 ** m,
                    "diverged_step": None, "shift": shift[norm] + 0.01 * replicate,
                    "shift_per_layer": [shift[norm]],
                    "checkpoints": [{"step": 0, "loss": 1.0, "grad_norm": 1.0,
                                     "loss_range": 1.0, "grad_change_max": 1.0,
                                     "beta": 1.0}]})
    settings = {"seeds": 3, "dln": {"steps": 10}, "digits": {"steps": 10}}
    return settings, results


def test_conclude_verdicts():
    good = {"none": 1.0, "std": 0.5, "l1": 0.45, "l2": 0.52, "linf": 0.5}
    shift = {"none": 0.1, "std": 0.2, "l1": 0.5, "l2": 0.5, "linf": 0.5}
    settings, results = _crafted({"dln": good, "digits": good}, shift)
    verdict, measurements = P.conclude(settings, results)
    claims = measurements["sub_claims"]
    assert claims["a_comparable_to_bn"]["verdict"] == "supported"
    assert claims["b_l1_beats_bn_on_dln"]["verdict"] == "supported"
    assert claims["c_lp_larger_shift_than_none"]["verdict"] == "supported"
    assert verdict == "supported"
    bad = {**good, "linf": 2.0}                              # far worse than BN
    settings, results = _crafted({"dln": good, "digits": bad}, shift)
    verdict, measurements = P.conclude(settings, results)
    assert measurements["sub_claims"]["a_comparable_to_bn"]["verdict"] == "refuted"
    assert verdict == "refuted"
    tie = {**good, "l1": 0.5}                                # l1 ties BN on the DLN
    settings, results = _crafted({"dln": tie, "digits": good}, shift)
    verdict, measurements = P.conclude(settings, results)
    assert measurements["sub_claims"]["b_l1_beats_bn_on_dln"]["verdict"] == "inconclusive"
    assert verdict == "inconclusive"


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
    claims = result.measurements["sub_claims"]
    assert set(claims) == {"a_comparable_to_bn", "b_l1_beats_bn_on_dln",
                           "c_lp_larger_shift_than_none"}
    assert result.verdict == P._combine([c["verdict"] for c in claims.values()])
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
    assert any(line.startswith("(b)") for line in P.summary(result.measurements))


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
