"""The explosion experiment (Yang et al. 2019): closed forms, the per-layer gradient
norms against the NumPy reference, the rate fit, the verdict rule on crafted results,
and the quick run."""

import math

import numpy as np
import pytest

from bnfast import reference
from bnfast.experiments import explosion as ex


# ---- closed forms (docs/experiments/explosion.md, "Closed forms") ---------------------

@pytest.mark.parametrize("B, linear, relu", [(4, 2.0, 3.084), (8, 1.2, 1.788),
                                              (16, 14 / 13, 1.590), (64, 62 / 61, 1.493)])
def test_closed_forms_match_the_published_values(B, linear, relu):
    assert ex.lambda_linear(B) == pytest.approx(linear, rel=1e-12)
    # the published ReLU values have 4 significant digits: half a unit of the last one
    assert abs(ex.lambda_relu(B) - relu) <= 5e-4
    assert ex.predicted_rate("linear", B) == ex.lambda_linear(B)
    assert ex.predicted_rate("relu", B) == ex.lambda_relu(B)
    assert ex.predicted_rate("tanh", B) is None


def test_relu_rate_tends_to_pi_over_pi_minus_one_and_decreases():
    assert ex.LAMBDA_RELU_LIMIT == pytest.approx(1.4669, abs=1e-4)
    # the correction is O(1/B): at B = 1e8 it is far below 1e-6
    assert ex.lambda_relu(10**8) == pytest.approx(ex.LAMBDA_RELU_LIMIT, abs=1e-6)
    values = [ex.lambda_relu(B) for B in (4, 5, 8, 16, 64, 256, 4096)]
    assert all(a > b > ex.LAMBDA_RELU_LIMIT for a, b in zip(values, values[1:]))
    # the Wikipedia reading: the NORM grows by sqrt(lambda), 1.211 at large B
    assert math.sqrt(ex.LAMBDA_RELU_LIMIT) == pytest.approx(1.211, abs=5e-4)


@pytest.mark.parametrize("fn", [ex.lambda_linear, ex.lambda_relu])
def test_closed_forms_reject_small_or_non_integer_batches(fn):
    for B in (3, 2, 1, 0, -5):
        with pytest.raises(ValueError, match="batch size B of the closed forms must be >= 4"):
            fn(B)
    for B in (4.0, True, "8"):
        with pytest.raises(TypeError):
            fn(B)
    with pytest.raises(ValueError):
        ex.predicted_rate("sigmoid", 8)


# ---- the measurement ----------------------------------------------------------------

@pytest.mark.parametrize("activation", ["linear", "relu", "tanh"])
@pytest.mark.parametrize("residual", [False, True])
def test_layer_gradient_norms_match_the_numpy_reference(activation, residual):
    net = ex.bn_network(6, 4, activation, residual=residual, seed=3)
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((5, 6)), rng.standard_normal((5, 6))
    got = ex.layer_squared_gradient_norms(net, X, Y)
    layers = [layer.to_dict() for layer in net.layers]
    grad = reference.network_gradient(layers, net.params, X, Y)
    want = [np.sum(grad[sl] ** 2) for sl in net.param_slices[:-1]]
    assert got.shape == (4,)
    np.testing.assert_allclose(got, want, rtol=1e-9)


def test_network_has_eps_zero_constant_gamma_beta_no_bias_and_shared_weights():
    plain = ex.bn_network(8, 3, "relu", residual=False, seed=7)
    resid = ex.bn_network(8, 3, "relu", residual=True, seed=7)
    np.testing.assert_array_equal(plain.params, resid.params)
    assert plain.num_params == 4 * 8 * 8          # only W: no bias, gamma/beta constant
    bn = plain.layers[0].batch_norm
    assert bn.eps == 0.0 and not bn.trainable
    assert float(bn.gamma) == 1.0 and float(bn.beta) == 0.0
    # the engine's default draw W ~ N(0, 1/in): the variance over 4 * 64 entries
    assert np.var(plain.params) * 8 == pytest.approx(1.0, abs=0.3)


def test_fit_rate_recovers_a_geometric_profile_and_ignores_the_ends():
    depth, lam = 12, 1.7
    log_sq = (depth - 1 - np.arange(depth)) * math.log(lam)   # x lam per layer going down
    assert ex.fit_rate(log_sq, 0) == pytest.approx(lam, rel=1e-12)
    bent = log_sq.copy()
    bent[:2] += 5.0
    bent[-2:] -= 3.0
    assert ex.fit_rate(bent, 2) == pytest.approx(lam, rel=1e-12)
    assert ex.fit_rate(bent, 0) != pytest.approx(lam, rel=1e-2)
    with pytest.raises(ValueError, match=">= 3 layers"):
        ex.fit_rate(log_sq, 5)


def test_run_task_on_a_tiny_net_gives_the_rate_of_its_profile():
    task = dict(replicate=0, width=16, architecture="plain", activation="relu",
                batch_sizes=[4, 8], depth=8, skip=1, max_batch=8, init_seed=1, data_seed=2)
    out = ex.run_task(task)
    assert [b["batch_size"] for b in out["batches"]] == [4, 8]
    for b in out["batches"]:
        assert len(b["log_squared_norms"]) == 8
        assert b["rate"] == pytest.approx(ex.fit_rate(b["log_squared_norms"], 1))
        assert b["rate"] > 1.0                       # ReLU BN nets explode even here
    assert ex.run_task(task) == out                  # a pure function of the task


# ---- the verdict rule on crafted results --------------------------------------------

def _crafted(settings, plain_rate, residual_rate, seed=0):
    """Results in task order whose profiles are exactly geometric at the given rates
    (functions (activation, B, width, replicate) -> rate)."""
    results = []
    for task in ex.tasks(settings, seed):
        batches = []
        for B in task["batch_sizes"]:
            fn = plain_rate if task["architecture"] == "plain" else residual_rate
            rate = fn(task["activation"], B, task["width"], task["replicate"])
            log_sq = (task["depth"] - 1 - np.arange(task["depth"])) * math.log(rate)
            batches.append({"batch_size": B, "log_squared_norms": log_sq.tolist(),
                            "rate": rate})
        results.append({"batches": batches})
    return results


def _settings():
    return {**ex.settings(True), "seed": 0}


def _theory(act, B, width, r):
    # 1% seed noise around the prediction (tanh: a made-up exploding rate)
    lam = ex.predicted_rate(act, B) or 1.4
    return lam * (1 + 0.01 * (r - 1.5))


def test_exploding_cut_off_is_away_from_every_predicted_rate():
    """Which residual cases are judged must not hang on seed noise: the cut-off is at
    least 5% (in log) from lambda(B) at every B of the quick and full grids."""
    sizes = set(ex.settings(True)["batch_sizes"]) | set(ex.settings(False)["batch_sizes"])
    for act in ("linear", "relu"):
        for B in sizes:
            assert abs(math.log(ex.predicted_rate(act, B) / ex.EXPLODING_RATE)) > 0.05
    assert ex.settings(True)["exploding_rate"] == ex.EXPLODING_RATE
    assert "at the batch sizes with residual runs" in ex.RULE
    assert f">= {ex.EXPLODING_RATE:g}" in ex.RULE


def test_conclude_judges_residuals_by_the_cut_off():
    """Linear B = 8 (lambda 1.2, below the cut-off) is not judged even when its seeds
    scatter around 1.2; linear B = 4 (2) and every ReLU B are."""
    s = _settings()

    def noisy(act, B, width, r):            # 5% seed noise: linear B = 8 spans 1.2
        lam = ex.predicted_rate(act, B) or 1.4
        return lam * (1 + 0.05 * (r - 1.5))
    _, m = ex.conclude(s, _crafted(s, noisy, lambda a, B, w, r: 1.05 + 0.001 * r))
    judged = {(c["activation"], c["batch_size"]) for c in m["residual"] if c["judged"]}
    assert ("linear", 4) in judged and ("linear", 8) not in judged
    assert ("linear", 16) not in judged
    assert {("relu", B) for B in s["residual_batch_sizes"]} <= judged
    assert {(c["activation"], c["batch_size"])
            for c in m["verdict_inputs"]["residual_cases"]} == judged
    assert any("not judged" in line for line in ex.summary(m))


def test_conclude_supported_when_rates_match_and_residuals_are_lower():
    s = _settings()
    verdict, m = ex.conclude(s, _crafted(s, _theory, lambda a, B, w, r: 1.05 + 0.001 * r))
    assert verdict == "supported"
    assert m["verdict_inputs"]["rate_cases_failed"] == 0
    assert {tuple(sorted(r)) for r in m["rates"]} == {
        ("activation", "batch_size", "measured", "predicted")}
    assert [r["predicted"] is None for r in m["rates"]] == [
        a == "tanh" for a in s["activations"] for _ in s["batch_sizes"]]
    wiki = m["wikipedia_reading"]
    assert wiki["squared_reading_agrees"] == len(wiki["cases"])
    assert wiki["norm_reading_agrees"] < len(wiki["cases"])


def test_conclude_refuted_when_the_rates_are_far_from_lambda():
    s = _settings()

    def off(act, B, width, r):
        return _theory(act, B, width, r) ** 1.5   # the same at both widths: no drift
    verdict, m = ex.conclude(s, _crafted(s, off, lambda a, B, w, r: 1.05 + 0.001 * r))
    # version 2: every rate case refutes, the residual cases support: mixed
    assert verdict == "mixed"
    assert all(o == "refuted" for k, o in verdict.conditions.items() if k.startswith("rate"))
    assert m["verdict_inputs"]["rate_cases_failed"] == len(
        m["verdict_inputs"]["rate_cases"])


def _residual_failing(failing):
    """Residual rates: 1.05 (relieved) except for the (activation, B) in ``failing``,
    where the residual net is 10% above its plain net (not relieved)."""
    def rate(act, B, width, r):
        return _theory(act, B, width, r) * 1.1 if (act, B) in failing else 1.05 + 0.001 * r
    return rate


#: The residual cases the quick grid judges (plain rate >= 1.3): linear B = 4 (lambda
#: 2), ReLU and tanh (made-up 1.4) at every B; 7 in all.
JUDGED_RESIDUAL = {("linear", 4)} | {(a, B) for a in ("relu", "tanh") for B in (4, 8, 16)}


def _conditions(verdict, prefix):
    return {k: v for k, v in verdict.conditions.items() if k.startswith(prefix)}


def test_conclude_mixed_when_residual_blocks_do_not_relieve():
    """Every judged residual case fails (7 of 7, more than half): they refute; every
    rate case agrees with lambda(B): they support. Version 2: mixed."""
    s = _settings()
    verdict, m = ex.conclude(s, _crafted(s, _theory, _residual_failing(JUDGED_RESIDUAL)))
    assert {(c["activation"], c["batch_size"])
            for c in m["verdict_inputs"]["residual_cases"]} == JUDGED_RESIDUAL
    assert m["verdict_inputs"]["residual_cases_failed"] == 7
    assert m["verdict_inputs"]["rate_cases_failed"] == 0
    assert verdict.label == "mixed"
    assert set(_conditions(verdict, "rate").values()) == {"supported"}
    assert len(_conditions(verdict, "rate")) == 6          # linear, ReLU at B <= 256/8
    assert _conditions(verdict, "residual") == {
        f"residual {a} B={B}": "refuted" for a, B in JUDGED_RESIDUAL}
    assert verdict.setting == ex.SETTING and verdict.reduced


@pytest.mark.parametrize("failing, label, outcome", [
    # 3 of 7 residual cases fail (not more than half): undecided, the others support
    ({("tanh", B) for B in (4, 8, 16)}, "underpowered", "undecided"),
    # 4 of 7 fail: more than half, they refute; the rate cases support
    ({("tanh", B) for B in (4, 8, 16)} | {("linear", 4)}, "mixed", "refuted"),
])
def test_conclude_residual_failures_refute_only_past_half(failing, label, outcome):
    s = _settings()
    verdict, m = ex.conclude(s, _crafted(s, _theory, _residual_failing(failing)))
    assert m["verdict_inputs"]["residual_cases_failed"] == len(failing)
    assert verdict.label == label
    assert _conditions(verdict, "residual") == {
        f"residual {a} B={B}": outcome if (a, B) in failing else "supported"
        for a, B in JUDGED_RESIDUAL}
    assert set(_conditions(verdict, "rate").values()) == {"supported"}
    if label == "underpowered":
        assert verdict.decide.startswith("the rates extrapolated in width")


def test_conclude_refuted_in_the_finite_width_setting():
    """Every rate case far from lambda(B) and every judged residual case not relieved:
    every condition refutes; the set-up is finite-width (the claim is an infinite-width
    theorem), so the verdict reads "refuted in" it, never bare."""
    s = _settings()

    def off(act, B, width, r):
        return _theory(act, B, width, r) ** 1.5
    verdict, m = ex.conclude(s, _crafted(s, off, lambda a, B, w, r: off(a, B, w, r) * 1.1))
    assert m["verdict_inputs"]["rate_cases_failed"] == len(m["verdict_inputs"]["rate_cases"])
    assert m["verdict_inputs"]["residual_cases_failed"] == len(
        m["verdict_inputs"]["residual_cases"]) > 0
    assert verdict.label == "refuted"
    assert set(verdict.conditions.values()) == {"refuted"}
    assert verdict.reduced and verdict.setting == ex.SETTING
    assert verdict.text == f"refuted in {ex.SETTING}"


def test_conclude_inconclusive_when_one_case_is_off():
    s = _settings()

    def one_off(act, B, width, r):
        rate = _theory(act, B, width, r)
        return rate * 1.5 if (act, B) == ("linear", 8) else rate
    verdict, m = ex.conclude(s, _crafted(s, one_off, lambda a, B, w, r: 1.05 + 0.001 * r))
    assert verdict == "underpowered"
    assert m["verdict_inputs"]["rate_cases_failed"] == 1


def test_the_drift_between_widths_widens_the_tolerance():
    s = _settings()

    def drifting(act, B, width, r):   # 20% lower at the small width only
        return _theory(act, B, width, r) * (0.8 if width == s["drift_width"] else 1.0)
    _, m = ex.conclude(s, _crafted(s, drifting, lambda a, B, w, r: 1.05))
    case = next(c for c in m["cases"] if c["activation"] == "relu")
    assert case["drift"] == pytest.approx(-math.log(0.8), rel=1e-9)
    assert case["tolerance"] >= s["drift_factor"] * -math.log(0.8)


# ---- the quick run ------------------------------------------------------------------

def test_quick_run_supports_the_claim(quick_result):
    r = quick_result("explosion")
    assert r.verdict == "supported"
    m = r.measurements
    s = r.settings
    assert len(m["rates"]) == len(s["activations"]) * len(s["batch_sizes"])
    for case in m["verdict_inputs"]["rate_cases"]:
        assert abs(case["deviation"]) <= case["tolerance"]
    # ReLU BN nets explode at every B (rate well above 1), residual nets much less
    for c in m["residual"]:
        if c["activation"] == "relu":
            assert c["plain"] > 1.4 and c["residual"] < c["plain"] - 0.2
    for w in m["wikipedia_reading"]["cases"]:
        assert w["norm_rate"] == pytest.approx(math.sqrt(w["squared_norm_rate"]))
    assert all(len(p["log_squared_norm"]) == s["depth"] for p in m["profiles"])
