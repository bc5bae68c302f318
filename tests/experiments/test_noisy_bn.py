"""The noisy-bn experiment: the activation moments against the NumPy reference, the
noise draw against Algorithm 1, the rule on crafted inputs, one tiny task, the quick
run."""

import numpy as np
import pytest

import bnfast
from bnfast import reference
from bnfast.experiments import noisy_bn, problems


def _net(config, seed=1):
    return noisy_bn._network({"config": config, "hidden": [7, 5], "activation": "relu",
                              "loss": "mean", "noise": noisy_bn.NOISE.to_dict(),
                              "init_seed": seed})


@pytest.mark.parametrize("config", noisy_bn.CONFIGS)
def test_moments_match_the_reference_prefixes(config):
    net = _net(config)
    rng = np.random.default_rng(0)
    net.params = net.params + 0.2 * rng.standard_normal(net.num_params)
    X = rng.uniform(0, 1, (30, 64))
    moments, output = noisy_bn.activation_moments(net, X)        # no rng: noise free
    np.testing.assert_allclose(output, net.forward(X), rtol=1e-10, atol=1e-12)
    # z of hidden layer l = the output of the network cut after layer l with its
    # activation replaced by the identity (the reference's own forward pass)
    dicts = [layer.to_dict() for layer in net.layers]
    stop = 0
    for l, (mean, var) in enumerate(moments):
        stop = net.param_slices[l].stop
        prefix = dicts[:l + 1]
        prefix[-1] = {**prefix[-1], "activation": "identity"}
        Z = reference.network_forward(prefix, net.params[:stop], X)
        np.testing.assert_allclose(mean, Z.mean(0), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(var, Z.var(0), rtol=1e-10, atol=1e-12)
    assert len(moments) == 2


def test_noisy_moments_apply_algorithm_1():
    net = _net("noisy_bn")
    X = np.random.default_rng(1).uniform(0, 1, (40, 64))
    clean_mean, _ = noisy_bn.activation_moments(net, X)[0][0]
    noisy_mean, noisy_var = noisy_bn.activation_moments(net, X, np.random.default_rng(5))[0][0]
    # the first draw of the same generator is the first layer's noise
    scale, shift = noisy_bn.draw_noise(np.random.default_rng(5), 40, 7, noisy_bn.NOISE)
    W = net.unflatten()[0]
    H = X @ W["W"].T + W["b"]
    Z = W["gamma"] * (H - H.mean(0)) / np.sqrt(H.var(0) + 1e-5) + W["beta"]
    np.testing.assert_allclose(clean_mean, Z.mean(0), atol=1e-12)
    np.testing.assert_allclose(noisy_mean, (scale * Z + shift).mean(0), rtol=1e-10)
    np.testing.assert_allclose(noisy_var, (scale * Z + shift).var(0), rtol=1e-10)
    # the standard and BN nets ignore the generator
    plain = _net("bn")
    a = noisy_bn.activation_moments(plain, X)[0][0][0]
    b = noisy_bn.activation_moments(plain, X, np.random.default_rng(5))[0][0][0]
    np.testing.assert_array_equal(a, b)


def test_draw_noise_follows_algorithm_1():
    noise = bnfast.BNNoise()
    scale, shift = noisy_bn.draw_noise(np.random.default_rng(2), 20000, 50, noise)
    centre = 0.5 * (shift.max(0) + shift.min(0))          # estimates mu_j
    assert np.all(np.abs(centre) <= noise.n_mu + 1e-3)
    np.testing.assert_allclose(shift.max(0) - shift.min(0), 2 * noise.r_mu, atol=1e-3)
    s0 = scale.mean(0)
    # s0_j in [1, 1.25]; the mean of 20000 N(s0, 0.1^2) is within 5 sigma/sqrt(n)
    assert np.all((s0 > 1 - 5 * 0.1 / 141) & (s0 < 1.25 + 5 * 0.1 / 141))
    np.testing.assert_allclose(scale.std(0), noise.r_sigma, rtol=0.05)
    assert s0.std() > 0.03                                # s0 varies across units


def _losses(standard, bn, noisy):
    return {"standard": standard, "bn": bn, "noisy_bn": noisy}


@pytest.mark.parametrize("losses, outcome", [
    (_losses([0.30, 0.32, 0.31], [0.10, 0.12, 0.11], [0.11, 0.12, 0.12]), "supported"),
    # noisy BN worse than BN by far more than 2 x BN's seed spread (0.01)
    (_losses([0.30, 0.32, 0.31], [0.10, 0.12, 0.11], [0.20, 0.21, 0.22]), "refuted"),
    # BN and noisy BN worse than standard
    (_losses([0.05, 0.06, 0.05], [0.10, 0.12, 0.11], [0.11, 0.12, 0.12]), "refuted"),
    # differences to standard within 2 standard errors
    (_losses([0.11, 0.14, 0.09], [0.10, 0.12, 0.11], [0.11, 0.12, 0.12]), "inconclusive"),
    (_losses([0.30, 0.32, 0.31], [0.10, None, 0.11], [0.11, 0.12, 0.12]), "refuted"),
    (_losses([0.30, None, 0.31], [0.10, 0.12, 0.11], [0.11, 0.12, 0.12]), "inconclusive"),
    # a standard run diverged, and noisy BN does not match BN: the mismatch refutes
    (_losses([0.30, None, 0.31], [0.10, 0.12, 0.11], [0.20, 0.21, 0.22]), "refuted"),
])
def test_judge_rule(losses, outcome):
    got, inputs = noisy_bn.judge(losses)
    assert got == outcome
    if "bn_seed_std" in inputs:
        assert inputs["bn_seed_std"] == pytest.approx(np.std(losses["bn"], ddof=1))


def test_run_task_tiny():
    settings = {**noisy_bn.settings(True), "steps": 4, "checkpoints": 2, "record_every": 1}
    task = [t for t in noisy_bn.tasks(settings, 0) if t["config"] == "noisy_bn"][0]
    out = noisy_bn.run_task(task)
    assert out["checkpoint_steps"] == [0, 2, 4]
    assert out["loss_steps"] == [0, 1, 2, 3, 4]
    assert np.shape(out["mean_drift"]) == (2, 2) and np.shape(out["ics_l2"]) == (3, 3)
    X, Y, _, _, _ = problems.digits_data(task["data_seed"])
    net = noisy_bn._network(task)
    assert out["losses"][0] == pytest.approx(net.loss(X, Y), rel=1e-12)
    assert out["final_loss"] == pytest.approx(out["losses"][-1], rel=1e-12)
    assert np.all(np.asarray(out["mean_drift"]) > 0)
    # the three networks of a seed share data, initial weights and batch order
    same = [t for t in noisy_bn.tasks(settings, 0) if t["replicate"] == task["replicate"]]
    assert len({(t["data_seed"], t["init_seed"], t["train_seed"]) for t in same}) == 1


def test_quick_run(quick_result):
    result = quick_result("noisy-bn")
    m = result.measurements
    assert set(m["verdict_inputs"]) == {f"{lr:g}" for lr in result.settings["learning_rates"]}
    for lr, runs in m["runs"].items():
        inputs = m["verdict_inputs"][lr]
        assert inputs["outcome"] == noisy_bn.judge(
            {c: runs[c]["final_loss"] for c in noisy_bn.CONFIGS})[0]
        for config in noisy_bn.CONFIGS:
            assert len(runs[config]["final_loss"]) == result.settings["seeds"]
        # the injected noise makes noisy BN's activation means move the most, in every
        # layer (Algorithm 1 redraws shifts of up to +-0.5 per step; trained nets move
        # their pre-activation means by far less per step)
        noisy = runs["noisy_bn"]["mean_drift_per_layer"]
        for config in ("standard", "bn"):
            assert all(a > 2 * b for a, b in zip(noisy, runs[config]["mean_drift_per_layer"]))
