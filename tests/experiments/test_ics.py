"""The ics experiment (version 3): internal_covariate_shift against the NumPy reference
and in closed form, the optimizer's update it is measured for, the per-seed summaries,
the rule on crafted seeds (the t interval over seeds, the sub-claims, the mapping to a
verdict, "refuted in the small CNNs"), the curvature control, the fragility
alternatives, tiny tasks of both optimizers, and the shared quick run."""

import json
import math

import numpy as np
import pytest

import bnfast
from bnfast import reference
from bnfast.experiments import ics, measures, problems


def _reference_ics(net, X, y, step):
    """Definition 2.1 from bnfast.reference.network_gradient: per layer i, the W block
    of the gradient at params and at params with layers 1..i-1 moved by step."""
    layers = [layer.to_dict() for layer in net.layers]
    params = net.params
    layout = net.param_layout()
    G = reference.network_gradient(layers, params, X, y, loss=net.loss_kind)
    l2, cos = [], []
    for i, entry in enumerate(layout):
        moved = params.copy()
        for j in range(i):
            for sl, _ in layout[j].values():
                moved[sl] += step[sl]
        G_moved = reference.network_gradient(layers, moved, X, y, loss=net.loss_kind)
        w = entry["W"][0]
        a, b = G[w], G_moved[w]
        l2.append(np.linalg.norm(a - b))
        cos.append(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
    return np.array(l2), np.array(cos)


def _small_nets():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((12, 4))
    y = rng.standard_normal((12, 3))
    linear_bn = bnfast.Network([bnfast.Dense(4, 4, batch_norm=bnfast.BatchNorm()),
                                bnfast.Dense(4, 4, batch_norm=bnfast.BatchNorm()),
                                bnfast.Dense(4, 3)], loss="sum").init("glorot", 1)
    relu = bnfast.Network([bnfast.Dense(4, 6, "relu"), bnfast.Dense(6, 5, "tanh"),
                           bnfast.Dense(5, 3)], loss="mean").init("glorot", 2)
    return X, y, [linear_bn, relu]


@pytest.mark.parametrize("which", [0, 1])
def test_ics_matches_the_reference(which):
    X, y, nets = _small_nets()
    net = nets[which]
    # non-trivial parameters (gamma, beta away from 1, 0) and a random step
    rng = np.random.default_rng(3 + which)
    net.params = net.params + 0.3 * rng.standard_normal(net.num_params)
    step = 0.05 * rng.standard_normal(net.num_params)
    before = net.params
    l2, cos = measures.internal_covariate_shift(net, X, y, step)
    want_l2, want_cos = _reference_ics(net, X, y, step)
    # both are float64 evaluations of the same formulas: rounding-level agreement
    np.testing.assert_allclose(l2, want_l2, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(cos, want_cos, rtol=1e-9, atol=1e-12)
    assert l2[0] == 0.0 and cos[0] == pytest.approx(1.0, abs=1e-15)
    assert np.all(l2[1:] > 0)                 # the step does shift the later layers
    np.testing.assert_array_equal(net.params, before)


def test_ics_zero_step_and_bad_step():
    X, y, nets = _small_nets()
    l2, cos = measures.internal_covariate_shift(nets[0], X, y, np.zeros(nets[0].num_params))
    np.testing.assert_array_equal(l2, 0.0)
    np.testing.assert_allclose(cos, 1.0, atol=1e-14)
    with pytest.raises(ValueError, match="shape"):
        measures.internal_covariate_shift(nets[0], X, y, np.zeros(3))


def test_ics_of_an_overflowing_step_is_undefined_past_the_overflow():
    X, y, nets = _small_nets()
    net = nets[1]
    before = net.params
    step = 0.05 * np.random.default_rng(5).standard_normal(net.num_params)
    slices = net.param_slices
    step[slices[1]] = np.inf              # layer 2's update overflows
    l2, cos = measures.internal_covariate_shift(net, X, y, step)
    # layers 1 and 2 only see layer 1's (finite) move; layer 3's G' is undefined
    want_l2, want_cos = _reference_ics(net, X, y, np.where(np.isfinite(step), step, 0.0))
    np.testing.assert_allclose(l2[:2], want_l2[:2], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(cos[:2], want_cos[:2], rtol=1e-9, atol=1e-12)
    assert np.isnan(l2[2]) and np.isnan(cos[2])
    np.testing.assert_array_equal(net.params, before)
    # an overflow in layer 1's own update leaves layers 2.. undefined
    step[slices[0]] = 1e308
    net.params = before + np.where(np.arange(net.num_params) < slices[0].stop, 1e308, 0.0)
    l2, cos = measures.internal_covariate_shift(net, X, y, step)
    assert np.all(np.isnan(l2[1:])) and np.all(np.isnan(cos[1:]))


def test_ics_of_a_two_layer_linear_net_in_closed_form():
    # f(x) = W2 W1 x, L = sum ||y - f||^2: dL/dW2 = -2 R^T (X W1^T), R = Y - X W1^T W2^T
    rng = np.random.default_rng(7)
    X, Y = rng.standard_normal((20, 3)), rng.standard_normal((20, 2))
    net = bnfast.Network([bnfast.Dense(3, 4, bias=False), bnfast.Dense(4, 2, bias=False)])
    W1, W2 = rng.standard_normal((4, 3)), rng.standard_normal((2, 4))
    net.params = np.concatenate([W1.ravel(), W2.ravel()])
    D1 = 0.1 * rng.standard_normal((4, 3))
    step = np.concatenate([D1.ravel(), rng.standard_normal(8)])  # layer 2's part unused

    def grad_W2(W1):
        H = X @ W1.T
        return -2 * (Y - H @ W2.T).T @ H

    G, G_moved = grad_W2(W1), grad_W2(W1 + D1)
    l2, cos = measures.internal_covariate_shift(net, X, Y, step)
    assert l2[1] == pytest.approx(np.linalg.norm(G - G_moved), rel=1e-10)
    assert cos[1] == pytest.approx(np.sum(G * G_moved) / np.linalg.norm(G)
                                   / np.linalg.norm(G_moved), rel=1e-10)


def test_median_cosine_skips_layer_one_and_nan():
    assert measures.median_cosine([[1.0, 0.2, 0.4], [1.0, float("nan"), 0.6]]) == \
        pytest.approx(0.4)
    assert measures.median_cosine([[1.0, float("nan")]]) is None


# --------------------------------------------------------------------------- set-up

def test_settings_quick_and_full_differ_in_numbers_only():
    full, quick = ics.settings(False), ics.settings(True)
    assert set(full) == set(quick)
    for problem in ics.JUDGED_PROBLEMS:
        assert set(full[problem]) == set(quick[problem])
        for key, value in ics.RULE_PARAMS[problem].items():
            assert full[problem][key] == value               # the single source
        for setup in (full[problem], quick[problem]):
            assert setup["steps"] % setup["every"] == 0
            assert setup["every"] % setup["record_every"] == 0
            assert setup["sharpness_every"] % setup["every"] == 0
    for problem in ("mnist1d", "digits-images"):              # the papers' recipes
        for key in ("lr", "momentum", "weight_decay", "batch_size", "steps"):
            assert full[problem][key] == problems.recipe(problem)[key]
        assert quick[problem]["steps"] == problems.recipe(problem, quick=True)["steps"]
    assert full["seeds"] == ics.RULE_PARAMS["seeds"] >= 10
    assert full["dln"]["steps"] == 10_000 and full["dln"]["learning_rates"] == [1e-6, 1e-7]
    assert any("VGG" in line for line in full["reduced"])
    assert any("10 seeds" in line for line in full["reduced"])
    assert any(line.startswith("quick") for line in quick["reduced"])
    assert list(ics.conditions(full)) == ["dln lr=1e-06", "dln lr=1e-07", "mnist1d",
                                          "digits-images"]


def test_tasks_pair_the_configurations_and_the_learning_rates():
    settings = {**ics.settings(True), "seed": 0, "quick": True}
    tasks = ics.tasks(settings, 0)
    assert len(tasks) == 4 * settings["seeds"] * 2
    assert [t["problem"] for t in tasks[:4 * settings["seeds"]]] == ["dln"] * 12  # longest first
    seeds = {}
    for t in tasks:
        seeds.setdefault((t["condition"], t["replicate"]), set()).add(t["seed"])
        assert t["lr"] == (t["setup"]["lr"] if t["problem"] != "dln" else
                           float(t["condition"].split("=")[1]))
    assert all(len(s) == 1 for s in seeds.values())          # BN and standard share it
    for r in range(settings["seeds"]):                        # both DLN rates share data
        assert seeds[("dln lr=1e-06", r)] == seeds[("dln lr=1e-07", r)]
    assert len({next(iter(seeds[("mnist1d", r)])) for r in range(3)}) == 3


@pytest.mark.parametrize("momentum, decay, steps_before", [
    (0.0, 0.0, 3), (0.9, 0.0, 0), (0.9, 0.0, 3), (0.9, 1e-3, 2)])
def test_optimizer_step_is_the_update_train_makes(momentum, decay, steps_before):
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((16, 3)), rng.standard_normal((16, 2))
    net = bnfast.Network([bnfast.Dense(3, 5, "tanh", batch_norm=bnfast.BatchNorm()),
                          bnfast.Dense(5, 2)], loss="mean").init("glorot", 3)
    optimizer = bnfast.SGD(momentum=momentum, weight_decay=decay)
    state = None
    if steps_before:
        state = bnfast.train(net, X, y, 0.1, steps_before, optimizer=optimizer,
                             record_every=steps_before).optimizer_state
    before = net.params
    predicted = ics.optimizer_step(net, X, y, 0.1, optimizer, state)
    bnfast.train(net, X, y, 0.1, 1, optimizer=optimizer, optimizer_state=state)
    np.testing.assert_allclose(net.params - before, predicted, rtol=1e-10, atol=1e-14)


def test_sharpness_is_the_largest_eigenvalue_not_the_largest_magnitude():
    from bnfast import curvature
    rng = np.random.default_rng(2)
    X, y = rng.standard_normal((8, 3)), rng.standard_normal((8, 2))
    net = bnfast.Network([bnfast.Dense(3, 4, "tanh", batch_norm=bnfast.BatchNorm()),
                          bnfast.Dense(4, 2)], loss="sum").init("glorot", 2)
    eigenvalues = np.linalg.eigvalsh(curvature.hessian(net, X, y, progress=False))
    assert -eigenvalues[0] > eigenvalues[-1] > 0        # a dominant negative eigenvalue
    # to Lanczos' tolerance, 1e-3 x ||H|| (the error is about residual^2 / gap)
    assert ics.sharpness(net, X, y, 40, 0) == pytest.approx(eigenvalues[-1], rel=1e-4)


def test_sharpness_of_an_overflow_is_none(monkeypatch):
    rng = np.random.default_rng(2)
    X, y = rng.standard_normal((8, 3)), rng.standard_normal((8, 2))
    net = bnfast.Network([bnfast.Dense(3, 2)]).init("glorot", 0)

    def overflow(*args, **kwargs):
        raise ValueError("v must be finite")
    monkeypatch.setattr(ics, "top_eigenvalues", overflow)
    assert ics.sharpness(net, X, y, 5, 0) is None

    def other(*args, **kwargs):
        raise ValueError("k must be >= 1")
    monkeypatch.setattr(ics, "top_eigenvalues", other)
    with pytest.raises(ValueError, match="k must"):
        ics.sharpness(net, X, y, 5, 0)


# --------------------------------------------------------------------------- per seed

def _run(setup, cosine, loss=1.0, diverged=None, sharpness=0.1, layers=3, threshold=1.0):
    """A run_task result on ``setup``'s schedule: cos(G, G') of layers 2..k
    cosine(step) (a number: constant), the loss 100 * exp(-step / steps) * loss for
    step > 0 (100 at step 0), sharpness x threshold at the sharpness steps; cut at
    ``diverged``."""
    steps, every, record = setup["steps"], setup["every"], setup["record_every"]
    cos = cosine if callable(cosine) else (lambda s, c=cosine: c)
    end = steps if diverged is None else diverged - 1
    marks = [s for s in range(0, steps + 1, every) if s <= end]
    loss_steps = [s for s in range(0, steps + 1, record) if s <= end]
    sharp_steps = [s for s in marks if s % setup["sharpness_every"] == 0]
    return {"checkpoint_steps": marks,
            "cosine": [[1.0] + [cos(s)] * (layers - 1) for s in marks],
            "l2": [[0.0] + [1.0] * (layers - 1) for s in marks],
            "sharpness_steps": sharp_steps,
            "sharpness": [(sharpness(s) if callable(sharpness) else sharpness) * threshold
                          for s in sharp_steps],
            "loss_steps": loss_steps,
            "losses": [100.0 * (math.exp(-s / steps) * loss if s else 1.0)
                       for s in loss_steps],
            "diverged_at": diverged}


SETUP = {"steps": 100, "every": 25, "record_every": 5, "sharpness_every": 25}


def test_seed_cosine_windows_and_statistics():
    run = _run(SETUP, lambda s: {0: 0.0, 25: 0.2, 50: 0.4, 75: 0.9, 100: 1.0}[s])
    run["cosine"][2][2] = None                          # a non-finite value is skipped
    assert ics.seed_cosine(run, 100) == pytest.approx(0.4)       # layer 1 left out
    assert ics.seed_cosine(run, 100, "early") == pytest.approx(0.2)
    assert ics.seed_cosine(run, 100, "late") == pytest.approx(0.9)
    values = [0.0, 0.0, 0.2, 0.2, 0.4, 0.9, 0.9, 1.0, 1.0]
    assert ics.seed_cosine(run, 100, "all", "mean") == pytest.approx(np.mean(values))
    assert ics.seed_cosine(_run(SETUP, None), 100) is None


def test_seed_speed_and_divergence():
    standard, bn = _run(SETUP, 0.5), _run(SETUP, 0.5, loss=0.5)
    assert ics.seed_speed(standard, bn, 100) == pytest.approx(math.log(0.5))
    bn["losses"][-1] *= 4                               # only the last record changes
    early = ics.seed_speed(standard, bn, 100, "early")
    assert early == pytest.approx(math.log(0.5))
    assert ics.seed_speed(standard, bn, 100, "late") > early
    assert ics.seed_speed(standard, _run(SETUP, 0.5, diverged=40), 100) == math.inf
    assert ics.seed_speed(_run(SETUP, 0.5, diverged=40), bn, 100) == -math.inf
    assert ics.seed_speed(_run(SETUP, 0.5, diverged=40),
                          _run(SETUP, 0.5, diverged=60), 100) is None


def test_seed_matched_compares_where_the_losses_meet():
    setup = {"steps": 2000, "every": 100, "record_every": 1, "sharpness_every": 100}
    standard, bn = _run(setup, lambda s: s / 2000), _run(setup, -0.5)
    standard["losses"] = [math.exp(-s / 1000) for s in standard["loss_steps"]]
    bn["losses"] = [math.exp(-s / 500) for s in bn["loss_steps"]]   # twice as fast
    c_std, c_bn, r = ics.seed_matched(standard, bn, 1)
    assert r == pytest.approx(math.log(0.5), abs=0.01)
    # levels exp(0, -0.5, ..., -2): the standard net reaches them at steps 0, 500, ...,
    # 2000 (checkpoints 0, 500, ..., 2000: cosines 0, 0.25, ..., 1; median 0.5)
    assert c_std == pytest.approx(0.5, abs=0.03) and c_bn == -0.5
    assert ics.seed_matched(standard, _run(setup, 0.0, diverged=50), 1)[2] == math.inf
    flat = _run(setup, 0.0)
    flat["losses"] = [2.0] * len(flat["losses"])        # never falls below the start
    assert ics.seed_matched(flat, bn, 1) == (None, None, None)


# --------------------------------------------------------------------------- the rule

def test_side_is_the_one_sided_t_test_over_seeds():
    from bnfast.experiments import stats
    values = [0.01, 0.03, -0.02, 0.02, 0.0, 0.01, 0.04, -0.01, 0.02, 0.03]
    t = stats.t_interval(values, 0.90)
    assert ics.side(values, t["high"] + 1e-9) == "below"
    assert ics.side(values, t["high"] - 1e-9) == "undecided"
    assert ics.side(values, t["low"] - 1e-9) == "above"
    assert ics.side(values + [None], t["low"] - 1e-9) == "above"    # None left out
    assert ics.side([0.3], 0.0) == "undecided"                       # one seed
    assert ics.side([-math.inf, -1.0, -2.0], 0.0) == "below"
    assert ics.side([math.inf, -1.0, 2.0], 0.0) == "undecided"
    assert ics.side([1.0] * 9 + [-1.0], 0.0, test="sign") == "above"   # p = 0.011
    assert ics.side([1.0] * 8 + [-1.0] * 2, 0.0, test="sign") == "undecided"  # 0.055


def _seeds(center, spread=0.01, n=10):
    return list(center + spread * np.linspace(-1, 1, n))


@pytest.mark.parametrize("d, r, outcome, a, b", [
    (_seeds(-0.5), _seeds(-0.5), "supported", "supported", "supported"),
    (_seeds(0.02), _seeds(-0.5), "supported", "supported", "supported"),  # similar ICS
    (_seeds(0.3), _seeds(-0.5), "refuted", "refuted", "supported"),       # BN reduces it
    (_seeds(-0.5), _seeds(0.0), "refuted", "supported", "refuted"),       # not faster
    (_seeds(-0.5), _seeds(-0.04), "refuted", "supported", "refuted"),     # < 5% faster
    (_seeds(0.05, 0.2), _seeds(-0.5), "undecided", "undecided", "supported"),
    (_seeds(-0.5), _seeds(-0.0513, 0.1), "undecided", "supported", "undecided"),
    (_seeds(0.3), _seeds(-0.05, 0.5), "refuted", "refuted", "undecided"),
    (_seeds(-0.5)[:9] + [None], [math.inf] + [-1.0] * 9, "undecided", "supported",
     "undecided"),
    (_seeds(-0.5), [-math.inf] * 2 + [-1.0] * 8, "supported", "supported", "supported"),
])
def test_judge_condition(d, r, outcome, a, b):
    assert ics.judge_condition(d, r) == (outcome, a, b)


CONDITIONS = ("dln lr=1e-06", "dln lr=1e-07", "mnist1d", "digits-images")


@pytest.mark.parametrize("outcomes, text", [
    ("SSSS", "supported"),
    ("RRRR", "refuted"),
    ("URRR", None),                    # a DLN condition refutes: not "in the CNNs"
    ("SRSS", "mixed (supported: dln lr=1e-06, mnist1d, digits-images; refuted: "
             "dln lr=1e-07)"),
    ("UURR", "refuted in the small CNNs (MNIST-1D Conv1d, digits Conv2d; cross-entropy, "
             "momentum SGD)"),
    ("SURR", "mixed (supported: dln lr=1e-06; refuted: mnist1d, digits-images)"),
    ("UUUR", None),
    ("RRUU", None),
])
def test_verdict_of(outcomes, text):
    names = {"S": "supported", "R": "refuted", "U": "undecided"}
    verdict = ics.verdict_of({c: names[o] for c, o in zip(CONDITIONS, outcomes)},
                             at_edge=["dln lr=1e-06"])
    if text is None:
        assert verdict.label == "underpowered"
        undecided = [c for c, o in zip(CONDITIONS, outcomes) if o == "U"]
        named = [f"{c} (at the edge of stability)" if c == "dln lr=1e-06" else c
                 for c in undecided]
        assert verdict.decide == f"more seeds at {', '.join(named)}"
    else:
        assert verdict.text == text
    if outcomes == "UURR":
        assert verdict.reduced and verdict.conditions["dln lr=1e-06"] == "undecided"
    if outcomes == "RRRR":
        assert not verdict.reduced                # the DLN is the paper's own set-up


def _settings(seeds=10):
    settings = {**ics.settings(True), "seed": 0, "quick": True, "seeds": seeds}
    for problem in ics.JUDGED_PROBLEMS:
        settings[problem] = {**settings[problem], **SETUP}
    return settings


def _results(settings, make):
    """Every task's crafted result: make(condition, replicate, config) -> run."""
    out = []
    for task in ics.tasks(settings, 0):
        run = make(task["condition"], task["replicate"], task["config"])
        out.append({**run, "condition": task["condition"], "problem": task["problem"],
                    "config": task["config"], "replicate": task["replicate"]})
    return out


def test_conclude_on_crafted_seeds_and_the_fragility_line():
    settings = _settings()

    def make(condition, replicate, config):
        jitter = 0.01 * replicate
        if condition == "dln lr=1e-06":
            # the standard net's cosine collapses from step 50 on (an oscillation), BN's
            # stays 0.5: over the first half (steps 0, 25, 50) BN is lower (supports),
            # over the whole run and the second half higher (refutes)
            cos = (lambda s: 0.5 + jitter) if config == "bn" else \
                (lambda s: 0.95 if s < 50 else -0.9)
        else:
            cos = 0.3 + jitter if config == "bn" else 0.9
        threshold = ics.stability_threshold(0.05 if "lr" not in condition else
                                            float(condition.split("=")[1]),
                                            0.9 if "lr" not in condition else 0.0)
        return _run(SETUP, cos, loss=0.5 - jitter if config == "bn" else 1.0,
                    sharpness=1.0 if condition == "dln lr=1e-06" else 0.1,
                    threshold=threshold)

    verdict, m = ics.conclude(settings, _results(settings, make))
    inputs = m["verdict_inputs"]
    assert m["outcomes"] == {"dln lr=1e-06": "refuted", "dln lr=1e-07": "supported",
                             "mnist1d": "supported", "digits-images": "supported"}
    assert verdict.text == ("mixed (supported: dln lr=1e-07, mnist1d, digits-images; "
                            "refuted: dln lr=1e-06)")
    first = inputs["dln lr=1e-06"]
    # whole run: standard checkpoints 0.95, 0.95, -0.9, -0.9, -0.9 -> median -0.9
    assert first["per_seed_cosine_standard"] == [pytest.approx(-0.9)] * 10
    assert first["per_seed_cosine_difference"][0] == pytest.approx(0.5 + 0.9)
    assert (first["ics_outcome"], first["speed_outcome"]) == ("refuted", "supported")
    assert first["median_cosine_bn"] == pytest.approx(0.545)
    assert first["at_edge_of_stability"] == ["standard", "bn"]
    assert inputs["mnist1d"]["at_edge_of_stability"] == []
    assert first["log_loss_ratio"]["mean"] == pytest.approx(
        np.mean([ics.seed_speed(_run(SETUP, 0), _run(SETUP, 0, loss=0.5 - 0.01 * r), 100)
                 for r in range(10)]))
    alternatives = m["alternatives"]
    assert alternatives["conditions at the edge of stability left out"] == "supported"
    assert alternatives["early window (first half of the run)"] == "supported"
    assert alternatives["late window (second half of the run)"] == "mixed"
    assert m["alternative_outcomes"]["conditions at the edge of stability left out"] == {
        "dln lr=1e-07": "supported", "mnist1d": "supported", "digits-images": "supported"}
    json.dumps(m, allow_nan=False)                       # strict JSON
    assert ics.headline(inputs).startswith("d, r: dln 1e-06 1.45, -0.789 refuted; ")
    assert ics.headline(inputs).endswith("; at the edge of stability: dln 1e-06")
    assert any("AT THE EDGE OF STABILITY" in line for line in ics.summary(m))


def test_conclude_divergence_and_too_few_seeds():
    settings = _settings(seeds=3)

    def make(condition, replicate, config):
        diverged = 60 if (config == "bn" and condition == "mnist1d") else None
        return _run(SETUP, 0.3 if config == "bn" else 0.9,
                    loss=0.5 if config == "bn" else 1.0, diverged=diverged)

    verdict, m = ics.conclude(settings, _results(settings, make))
    assert m["outcomes"]["mnist1d"] == "refuted"            # BN diverged in every seed
    assert m["verdict_inputs"]["mnist1d"]["seeds_diverged"] == {"standard": 0, "bn": 3}
    assert m["verdict_inputs"]["mnist1d"]["log_loss_ratio"]["mean"] is None
    assert m["outcomes"]["dln lr=1e-06"] == "supported"     # 3 tight seeds do decide
    assert verdict.label == "mixed"
    json.dumps(m, allow_nan=False)


@pytest.mark.parametrize("seeds_at_edge, flagged", [(4, False), (5, True), (10, True)])
def test_edge_of_stability_needs_half_the_seeds_and_half_the_records(seeds_at_edge,
                                                                     flagged):
    setup = {**SETUP, "sharpness_every": 25, "momentum": 0.9}
    threshold = ics.stability_threshold(0.05, 0.9)
    edge = [_run(setup, 0.5, sharpness=lambda s: 0.95 if s >= 50 else 0.1,
                 threshold=threshold)] * seeds_at_edge      # 3 of 4 records after 0
    below = [_run(setup, 0.5, sharpness=lambda s: 0.95 if s == 100 else 0.1,
                  threshold=threshold)] * (10 - seeds_at_edge)   # 1 of 4
    status = ics.edge_status({"standard": edge + below, "bn": below + edge}, setup, 0.05)
    assert status["threshold"] == pytest.approx(76.0)
    assert status["standard"]["seeds_at_edge"] == seeds_at_edge
    assert status["standard"]["at_edge"] is flagged and status["bn"]["at_edge"] is flagged
    assert status["standard"]["seed_edge_share"][0] == (0.75 if seeds_at_edge else 0.25)
    assert status["standard"]["seed_max_ratio"][0] == pytest.approx(0.95)


# --------------------------------------------------------------------------- tasks

def _task(problem, norm, lr, **setup):
    settings = ics.settings(True)
    return {"problem": problem, "config": "bn" if norm else "standard", "norm": norm,
            "replicate": 0, "seed": 11, "condition": problem, "lr": lr,
            "lanczos_steps": 10, "setup": {**settings[problem], **setup}}


def test_run_task_dln_is_one_gradient_descent_run():
    task = _task("dln", "std", 1e-6, steps=6, every=3, record_every=1, sharpness_every=3)
    out = ics.run_task(task)
    assert out["checkpoint_steps"] == [0, 3, 6] and out["sharpness_steps"] == [0, 3, 6]
    assert np.shape(out["l2"]) == (3, 25) and np.shape(out["cosine"]) == (3, 25)
    assert out["loss_steps"] == list(range(7)) and out["diverged_at"] is None
    net, X, Y, _ = problems.build(task)
    # checkpoint 0: the ICS of the initial net for a gradient-descent step of lr
    l2, cos = measures.internal_covariate_shift(net, X, Y, -1e-6 * net.gradient(X, Y))
    np.testing.assert_allclose(out["l2"][0], l2, rtol=1e-10)
    assert out["sharpness"][0] == pytest.approx(
        ics.sharpness(net, X, Y, 10, bnfast.experiments.derived_seed(11, 5, 0)), rel=1e-9)
    # full batch: the segments are one unbroken run (their shuffle seeds do not matter)
    losses = bnfast.train(net, X, Y, 1e-6, 6).losses
    np.testing.assert_allclose(out["losses"], losses, rtol=1e-10)


def test_run_task_cnn_measures_the_momentum_update_on_a_fresh_batch():
    task = _task("digits-images", "std", 0.05, steps=4, every=2, record_every=1,
                 sharpness_every=4, sharpness_rows=16, batch_size=8)
    out = ics.run_task(task)
    assert out["checkpoint_steps"] == [0, 2, 4] and out["sharpness_steps"] == [0, 4]
    assert np.shape(out["cosine"]) == (3, 3)              # 2 conv layers and the Dense
    derived = bnfast.experiments.derived_seed
    net, X, y, _ = problems.build(task)
    setup = task["setup"]
    optimizer = problems.recipe_optimizer(setup)
    state = bnfast.train(net, X, y, 0.05, 2, batch_size=8, seed=derived(11, 6, 0),
                         optimizer=optimizer).optimizer_state
    rows = np.random.default_rng(derived(11, 4, 2)).choice(len(X), 8, replace=False)
    step = ics.optimizer_step(net, X[rows], y[rows], 0.05, optimizer, state)
    assert np.any(np.abs(step + 0.05 * net.gradient(X[rows], y[rows])) > 1e-8)  # momentum
    l2, cos = measures.internal_covariate_shift(net, X[rows], y[rows], step)
    np.testing.assert_allclose(out["l2"][1], l2, rtol=1e-9)
    np.testing.assert_allclose(out["cosine"][1], cos, rtol=1e-9)
    assert out["losses"][2] == pytest.approx(net.loss(X, y), rel=1e-10)


def test_run_task_diverged_is_strict_json():
    out = ics.run_task(_task("dln", None, 1e-3, steps=20, every=10, record_every=5,
                             sharpness_every=10))
    assert out["diverged_at"] is not None and out["diverged_at"] <= 10
    assert out["checkpoint_steps"] == [0]
    json.dumps(out, allow_nan=False)


# --------------------------------------------------------------------------- quick run

def test_quick_run(quick_result):
    result = quick_result("ics")
    m = result.measurements
    assert result.quick and result.rule_version == 3
    assert list(m["verdict_inputs"]) == list(CONDITIONS)
    assert set(m["alternatives"]) == set(ics.ALTERNATIVES)
    assert result.fragility["of"] == len(ics.ALTERNATIVES)
    for condition, v in m["verdict_inputs"].items():
        assert len(v["per_seed_cosine_difference"]) == result.settings["seeds"]
        # the outcome follows from the stored per-seed numbers
        assert ics.judge_condition(v["per_seed_cosine_difference"],
                                   v["per_seed_log_loss_ratio"])[0] == v["outcome"]
        block = m["conditions"][condition]
        for config, curves in block["curves"].items():
            assert curves["loss_median"][-1] < curves["loss_median"][0]   # it trains
            assert curves["loss_steps"][-1] == block["steps"]
            cos = [c for row in curves["cosine_median"] for c in row if c is not None]
            assert all(-1 - 1e-12 <= c <= 1 + 1e-12 for c in cos)
            assert all(r is not None and r > 0 for row in curves["sharpness_ratio"]
                       for r in row[1:])
    assert result.verdict == ics.verdict_of(
        m["outcomes"], [c for c, v in m["verdict_inputs"].items()
                        if v["at_edge_of_stability"]])
    json.dumps(result.to_dict(), allow_nan=False)


def test_quick_run_figure(quick_result, monkeypatch, tmp_path):
    pytest.importorskip("matplotlib")
    import bnfast.plot.experiments as figures
    caught = {}
    monkeypatch.setattr(figures, "save_and_close",
                        lambda fig, path: caught.setdefault("fig", fig))
    figures.plot_experiment(quick_result("ics").to_dict(), tmp_path / "ics.png")
    fig = caught["fig"]
    assert len(fig.axes) == 4 * len(CONDITIONS)
    title = fig._suptitle.get_text()
    assert "Fig. 5" in title and "rule v3" in title
    assert any("AT THE EDGE" in ax.get_title() or "stability threshold" in ax.get_title()
               for ax in fig.axes)
