"""The noisy-bn experiment (rule version 3): the activation moments of the CNNs and the
MLP against the NumPy reference, the noise of the drift measurement per sample and
channel, the noise draw against Algorithm 1, the rule and the control's reading on
crafted per-seed numbers, the verdict over the problems, a tiny task per problem and
network, the settings' pinned recipes, the quick run and its figure."""

import json

import numpy as np
import pytest

from bnfast import reference
from bnfast.experiments import noisy_bn, problems

NOISE = noisy_bn.NOISE


def _perturbed(net, seed=0):
    rng = np.random.default_rng(seed)
    net.params = net.params + 0.2 * rng.standard_normal(net.num_params)
    return net, rng


def _nets():
    """(name, net, X): the digits CNN as each of the four networks, the MNIST-1D CNN
    with noisy BN, a small MLP with the control's noise."""
    rng = np.random.default_rng(7)
    images, signals = rng.uniform(0, 1, (12, 1, 8, 8)), rng.normal(size=(12, 1, 40))
    out = []
    for config, (norm, noisy) in noisy_bn.NETWORKS.items():
        out.append((f"digits-{config}", problems.digits_cnn(norm=norm, noise=NOISE if noisy
                                                            else None, seed=1), images))
    out.append(("mnist1d-noisy", problems.mnist1d_cnn(norm="std", noise=NOISE, seed=2,
                                                      channels=6), signals))
    out.append(("mlp-control", problems.digits_mlp((7, 5), noise=NOISE, seed=3),
                rng.uniform(0, 1, (30, 64))))
    return out


@pytest.mark.parametrize("name,net,X", _nets(), ids=[n for n, _, _ in _nets()])
def test_moments_match_the_reference_prefixes(name, net, X):
    """Noise free: z of hidden layer l is the output of the network cut after layer l
    with its activation replaced by the identity (the reference's own forward pass, BN
    with the batch statistics of X); per channel over rows and positions."""
    net, _ = _perturbed(net)
    moments, output = noisy_bn.activation_moments(net, X)
    np.testing.assert_allclose(output, net.forward(X), rtol=1e-10, atol=1e-12)
    dicts = [layer.to_dict() for layer in net.layers]
    hidden = [i for i, d in enumerate(dicts[:-1]) if "activation" in d]
    assert len(moments) == len(hidden)
    for (mean, var), index in zip(moments, hidden):
        prefix = dicts[:index + 1]
        prefix[-1] = {**prefix[-1], "activation": "identity"}
        Z = reference.network_forward(prefix, net.params[:net.param_slices[index].stop], X)
        axes = (0,) + tuple(range(2, Z.ndim))
        assert mean.shape == (Z.shape[1],)
        np.testing.assert_allclose(mean, Z.mean(axis=axes), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(var, Z.var(axis=axes), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("config", ["noisy_bn", "control"])
def test_noisy_moments_draw_per_sample_and_channel(config):
    """The first conv layer's noisy z is s z + m with one draw of the same generator
    per (row, channel), shared by the channel's positions; the next layer sees the noisy
    activations."""
    norm, _ = noisy_bn.NETWORKS[config]
    net, _ = _perturbed(problems.digits_cnn(norm=norm, noise=NOISE, seed=4))
    X = np.random.default_rng(1).uniform(0, 1, (10, 1, 8, 8))
    clean = noisy_bn.activation_moments(net, X)[0]
    noisy = noisy_bn.activation_moments(net, X, np.random.default_rng(5))[0]
    scale, shift = noisy_bn.draw_noise(np.random.default_rng(5), 10, 16, NOISE)
    first = [layer.to_dict() for layer in net.layers][:1]
    first[0] = {**first[0], "activation": "identity"}
    first[0].pop("noise", None)
    Z = reference.network_forward(first, net.params[:net.param_slices[0].stop], X)
    Z = scale[:, :, None, None] * Z + shift[:, :, None, None]
    np.testing.assert_allclose(noisy[0][0], Z.mean(axis=(0, 2, 3)), rtol=1e-10)
    np.testing.assert_allclose(noisy[0][1], Z.var(axis=(0, 2, 3)), rtol=1e-10)
    assert np.max(np.abs(noisy[1][0] - clean[1][0])) > 1e-3
    # a network without noise ignores the generator
    plain = problems.digits_cnn(norm=norm, seed=4)
    a = noisy_bn.activation_moments(plain, X)[0][1][0]
    b = noisy_bn.activation_moments(plain, X, np.random.default_rng(5))[0][1][0]
    np.testing.assert_array_equal(a, b)


def test_draw_noise_follows_algorithm_1():
    scale, shift = noisy_bn.draw_noise(np.random.default_rng(2), 20000, 50, NOISE)
    centre = 0.5 * (shift.max(0) + shift.min(0))          # estimates mu_j
    assert np.all(np.abs(centre) <= NOISE.n_mu + 1e-3)
    np.testing.assert_allclose(shift.max(0) - shift.min(0), 2 * NOISE.r_mu, atol=1e-3)
    s0 = scale.mean(0)
    # s0_j in [1, 1.25]; the mean of 20000 N(s0, 0.1^2) is within 5 sigma/sqrt(n)
    assert np.all((s0 > 1 - 5 * 0.1 / 141) & (s0 < 1.25 + 5 * 0.1 / 141))
    np.testing.assert_allclose(scale.std(0), NOISE.r_sigma, rtol=0.05)
    assert s0.std() > 0.03                                # s0 varies across units


def test_checkpoints_and_summaries():
    assert noisy_bn.checkpoint_steps(1000, 16)[:4] == [0, 62, 125, 187]
    assert noisy_bn.checkpoint_steps(300, 4) == [0, 75, 150, 225, 300]
    record = {"test_accuracy": [0.1, 0.5, 0.7, 0.8, 0.9], "train_loss": [2, 1, 0.1, 0.01, 1e-3],
              "diverged_at": None}
    s = noisy_bn.summaries(record)
    assert s["mean_accuracy"] == pytest.approx(0.725)
    assert s["final_accuracy"] == 0.9 and s["early_accuracy"] == pytest.approx(0.6)
    assert s["neg_log_loss"] == pytest.approx(1.5)
    assert set(noisy_bn.summaries({**record, "diverged_at": 3}).values()) == {None}


def _scores(standard, bn, noisy, control=None):
    control = standard if control is None else control
    return {"standard": standard, "bn": bn, "noisy_bn": noisy, "control": control}


BN3 = [0.90, 0.88, 0.89]
#: 3 and 10 seeds of BN - noisy BN with mean 0.07 and sd 0.02.
SPREAD3 = [0.05, 0.07, 0.09]
SPREAD10 = SPREAD3 * 3 + [0.07]
BN10 = BN3 * 3 + [0.9]


def _minus(base, by):
    return [round(b - d, 12) for b, d in zip(base, by)]


# A: higher is better. BN's gain g = mean(A_BN - A_standard); the margin is half of it.
# Noisy BN keeps BN's performance when the 90% t interval of (noisy - BN) lies inside
# +-g/2 (or wholly above +g/2); a net beats the standard net when the 90% t interval of
# (net - standard) lies above 0.
@pytest.mark.parametrize("scores, outcome", [
    # g = 0.2, margin 0.1: noisy - BN = -0.0067, interval [-0.016, 0.003]; both beat
    (_scores([0.70, 0.68, 0.69], BN3, [0.89, 0.88, 0.88]), "supported"),
    # noisy BN gives up 42% of BN's gain (interval [-0.093, -0.074] inside -0.1)
    (_scores([0.70, 0.68, 0.69], BN3, [0.82, 0.79, 0.81]), "supported"),
    # it gives up 77% (interval [-0.163, -0.144] below -0.1): refuted
    (_scores([0.70, 0.68, 0.69], BN3, [0.75, 0.72, 0.74]), "refuted"),
    # noisy - BN = -0.10 on the margin: undecided
    (_scores([0.70, 0.68, 0.69], BN3, [0.80, 0.79, 0.78]), "undecided"),
    # noisy - BN = -0.07 +- 0.02: 3 seeds cannot put the interval inside the margin
    # (lower end -0.104), 10 seeds can (-0.080)
    (_scores(_minus(BN3, [0.2] * 3), BN3, _minus(BN3, SPREAD3)), "undecided"),
    (_scores(_minus(BN10, [0.2] * 10), BN10, _minus(BN10, SPREAD10)), "supported"),
    # noisy BN better than BN by more than the margin: keeps it (wholly above)
    (_scores([0.50, 0.48, 0.49], [0.70, 0.68, 0.69], [0.90, 0.87, 0.89]), "supported"),
    # BN worse than standard: no gain (g <= 0) refutes
    (_scores([0.95, 0.94, 0.95], BN3, [0.89, 0.88, 0.88]), "refuted"),
    # noisy BN keeps BN's (tiny) gain but neither beats the standard net clearly
    (_scores([0.89, 0.86, 0.91], BN3, [0.89, 0.88, 0.88]), "undecided"),
    # a BN or noisy-BN run diverged: refuted
    (_scores([0.70, 0.68, 0.69], [0.90, None, 0.89], [0.89, 0.88, 0.88]), "refuted"),
    (_scores([0.70, 0.68, 0.69], BN3, [None, 0.88, 0.88]), "refuted"),
    # a standard run diverged: BN's gain, the margin, is undefined
    (_scores([0.70, None, 0.69], BN3, [0.89, 0.88, 0.88]), "undecided"),
])
def test_judge_rule(scores, outcome):
    got, inputs = noisy_bn.judge(scores)
    assert got == outcome
    if "tost_noisy_minus_bn" in inputs:
        std, bn = np.asarray(scores["standard"]), np.asarray(scores["bn"])
        gain = float(np.mean(bn - std))
        assert inputs["bn_gain"] == pytest.approx(gain)
        tost = inputs["tost_noisy_minus_bn"]
        assert tost["margin"] == pytest.approx(0.5 * gain)        # half of BN's gain
        assert tost["n"] == len(bn)
        assert inputs["noisy_keeps_bn"] == (tost["outcome"] in ("equivalent", "above"))
        if outcome == "supported":
            assert inputs["noisy_keeps_bn"] and all(inputs["beats_standard"].values())


def test_the_margin_is_half_of_bns_gain():
    """The same noisy - BN differences (-0.07 +- 0.02, 10 seeds) keep BN's performance
    when BN's gain is 0.2 (margin 0.1) and do not when it is 0.1 (margin 0.05)."""
    noisy = _minus(BN10, SPREAD10)
    assert noisy_bn.judge(_scores(_minus(BN10, [0.2] * 10), BN10, noisy))[0] == "supported"
    got, inputs = noisy_bn.judge(_scores(_minus(BN10, [0.1] * 10), BN10, noisy))
    assert got == "refuted"
    assert inputs["tost_noisy_minus_bn"]["outcome"] == "below"
    assert inputs["tost_noisy_minus_bn"]["margin"] == pytest.approx(0.05)


@pytest.mark.parametrize("control, reading", [
    # the noise costs the standard net 0.2 and the BN net 0.0067
    ([0.50, 0.48, 0.50], "more on the standard net"),
    # it costs both about the same (0.01 +- 0.01 vs 0.0067)
    ([0.69, 0.66, 0.68], "no difference detected"),
    # it helps the standard net
    ([0.90, 0.87, 0.89], "more on the BN net"),
])
def test_noise_effect_reading(control, reading):
    effect = noisy_bn.noise_effect(_scores([0.70, 0.68, 0.69], BN3, [0.89, 0.88, 0.88],
                                           control))
    assert effect["reading"] == reading
    assert effect["cost_on_bn"] == pytest.approx(np.mean(np.subtract(BN3, [0.89, 0.88, 0.88])))
    assert effect["seeds"] == 3 and effect["control_diverged"] == 0


def test_noise_effect_counts_diverged_controls_and_uses_the_other_seeds():
    effect = noisy_bn.noise_effect(_scores([0.70, 0.68, 0.69], BN3, [0.89, 0.88, 0.88],
                                           [0.5, None, 0.49]))
    assert effect["control_diverged"] == 1 and effect["seeds"] == 2
    assert effect["cost_on_standard"] == pytest.approx(0.2)


@pytest.mark.parametrize("outcomes, label", [
    ({"mnist1d": "supported", "digits-images": "supported"}, "supported"),
    ({"mnist1d": "supported", "digits-images": "refuted"}, "mixed"),
    ({"mnist1d": "refuted", "digits-images": "refuted"}, "refuted"),
    ({"mnist1d": "supported", "digits-images": "undecided"}, "underpowered"),
])
def test_verdict_over_the_problems(outcomes, label):
    """combine over the two CNNs; they are reduced stand-ins for the paper's VGG, so a
    refutation reads "refuted in" them."""
    verdict = noisy_bn.verdict_of(outcomes)
    assert verdict.label == label
    assert verdict.conditions == {noisy_bn.CONDITIONS[p]: o if o != "undecided" else o
                                  for p, o in outcomes.items()}
    assert verdict.reduced and "reduced stand-ins for the paper's VGG" in verdict.setting
    if label == "refuted":
        assert verdict.text == f"refuted in {noisy_bn.SETTING}"
    if label == "mixed":
        assert verdict.text == "mixed (supported: MNIST-1D CNN; refuted: digits CNN)"
    if label == "underpowered":
        assert "half of BN's gain" in verdict.decide


def test_settings_quick_and_full_share_the_set_up_and_pin_the_recipes(monkeypatch):
    quick, full = noisy_bn.settings(True), noisy_bn.settings(False)
    assert full["seeds"] == noisy_bn.RULE_PARAMS["seeds"] >= 10
    for problem in noisy_bn.PROBLEMS:
        registered = noisy_bn.RULE_PARAMS["recipes"][problem]
        assert {k: full[problem][k] for k in registered} == registered
        assert full[problem]["checkpoints"] == noisy_bn.RULE_PARAMS["checkpoints"]
        assert quick[problem]["lr"] == full[problem]["lr"]
        assert quick[problem]["steps"] < full[problem]["steps"]
    assert full["digits"]["steps"] == noisy_bn.RULE_PARAMS["extra"]["steps"]
    changed = {**problems.RECIPES["mnist1d"], "full": {**problems.RECIPES["mnist1d"]["full"],
                                                       "lr": 0.1}}
    monkeypatch.setitem(problems.RECIPES, "mnist1d", changed)
    with pytest.raises(RuntimeError, match="new rule version"):
        noisy_bn.settings(False)


def _tiny_settings():
    settings = noisy_bn.settings(True)
    for problem in (*noisy_bn.PROBLEMS, noisy_bn.EXTRA):
        settings[problem] = {**settings[problem], "steps": 6, "checkpoints": 3,
                             "probe_rows": 32, "batch_size": 20}
    return {**settings, "seeds": 1, "quick": True, "seed": 0}


def test_tasks_pair_the_four_networks_of_a_seed():
    settings = _tiny_settings()
    tasks = noisy_bn.tasks(settings, 0)
    assert [t["problem"] for t in tasks[::4]] == ["mnist1d", "digits-images", "digits"]
    for problem in ("mnist1d", "digits-images", "digits"):
        group = [t for t in tasks if t["problem"] == problem]
        assert [t["config"] for t in group] == list(noisy_bn.CONFIGS)
        assert len({t["seed"] for t in group}) == 1
        assert [t["noise"] is not None for t in group] == [False, False, True, True]
        assert [t["norm"] for t in group] == [None, "std", "std", None]


@pytest.mark.parametrize("problem", ["digits-images", "digits"])
def test_run_task_tiny(problem):
    settings = _tiny_settings()
    tasks = [t for t in noisy_bn.tasks(settings, 0) if t["problem"] == problem]
    outs = [noisy_bn.run_task(t) for t in tasks]
    layers = 2
    for task, out in zip(tasks, outs):
        assert out["diverged_at"] is None
        assert out["checkpoint_steps"] == [0, 2, 4, 6]
        assert len(out["test_accuracy"]) == len(out["train_loss"]) == 4
        assert out["drift_steps"] == [0, 4]        # quick: every 2nd checkpoint
        assert np.shape(out["mean_drift"]) == np.shape(out["var_drift"]) == (2, layers)
        net, X, y, (X_test, y_test) = problems.build(task)
        assert out["train_loss"][0] == pytest.approx(net.loss(X, y), rel=1e-12)
        assert out["test_accuracy"][0] == np.mean(net.predict(X_test).argmax(1) == y_test)
    # paired: the same initial network function for standard and control, BN and noisy
    assert outs[0]["train_loss"][0] == outs[3]["train_loss"][0]
    assert outs[1]["train_loss"][0] == outs[2]["train_loss"][0]
    # the noise moves the noisy nets' activation means by more than training does
    for noisy, plain in ((2, 1), (3, 0)):
        assert np.all(np.asarray(outs[noisy]["mean_drift"])
                      > 2 * np.asarray(outs[plain]["mean_drift"]))


def test_a_diverged_run_is_recorded_and_refutes():
    settings = _tiny_settings()
    task = [t for t in noisy_bn.tasks(settings, 0)
            if t["problem"] == "digits" and t["config"] == "noisy_bn"][0]
    out = noisy_bn.run_task({**task, "setup": {**task["setup"], "lr": 1e6}})
    assert out["diverged_at"] is not None and out["train_loss"] == []
    assert noisy_bn.summaries(out)["mean_accuracy"] is None


def test_quick_run(quick_result):
    result = quick_result("noisy-bn")
    m = result.measurements
    assert set(m["verdict_inputs"]) == set(m["outcomes"]) == set(noisy_bn.PROBLEMS)
    assert result.verdict == noisy_bn.verdict_of(m["outcomes"])
    assert set(m["alternatives"]) == set(noisy_bn.ALTERNATIVES)
    assert set(m["extra"]) == {"digits"} and set(m["runs"]) == {*noisy_bn.PROBLEMS, "digits"}
    seeds = result.settings["seeds"]
    for problem in noisy_bn.PROBLEMS:
        runs, inputs = m["runs"][problem], m["verdict_inputs"][problem]
        scores = {c: runs[c]["mean_accuracy"] for c in noisy_bn.CONFIGS}
        assert inputs["outcome"] == m["outcomes"][problem] == noisy_bn.judge(scores)[0]
        assert m["control"][problem] == noisy_bn.noise_effect(scores)
        for config in noisy_bn.CONFIGS:
            assert len(runs[config]["mean_accuracy"]) == seeds
        # BN trains: its accuracy curve ends far above chance (0.1)
        assert runs["bn"]["test_accuracy_mean"][-1] > 0.8
        # Figure 7's premise: the injected noise moves noisy BN's activation means the
        # most, in every layer (Algorithm 1 redraws shifts of up to +-0.5 per step)
        noisy = runs["noisy_bn"]["mean_drift_per_layer"]
        for config in ("standard", "bn"):
            assert all(a > 2 * b for a, b in zip(noisy, runs[config]["mean_drift_per_layer"]))
        assert m["drift_premise"][problem] == {"seeds": seeds, "noisy_drifts_more": seeds}
    text = "\n".join(noisy_bn.summary(m))
    assert "digits (reported extra)" in text and "control: the noise costs" in text


def test_quick_run_figure(quick_result, tmp_path):
    """Drawn from the JSON alone (a result read back from a file plots the same)."""
    pytest.importorskip("matplotlib")
    from bnfast.plot.experiments import plot_experiment

    result = json.loads(json.dumps(quick_result("noisy-bn").to_dict()))
    path = plot_experiment(result, tmp_path / "noisy-bn.png")
    assert path.stat().st_size > 10_000
