"""The rank-collapse experiment (Daneshmand et al. 2020): the layer-wise readout against
the engine's forward of whole networks, the rank measures, the Lyapunov-spectrum
collapse of plain linear networks, the rule on crafted per-seed values, and the quick
run."""

import math

import numpy as np
import pytest

from bnfast import BatchNorm, Dense, Network
from bnfast.experiments import rank_collapse as rc


@pytest.mark.parametrize("activation", rc.ACTIVATIONS)
@pytest.mark.parametrize("norm", rc.NORMS)
def test_layerwise_readout_is_the_engines_network(activation, norm):
    width, depth = 10, 7
    X = rc.inputs(width, 30, np.random.default_rng(2))
    run = rc.propagate(X, activation, norm, depth, np.random.default_rng(9),
                       rc.record_depths(depth, 2), 0.1)
    rng = np.random.default_rng(9)
    weights = [rc.layer_weights(width, activation, rng) for _ in range(depth)]
    act = "relu" if activation == "relu" else "identity"
    bn = {"batch_norm": BatchNorm()} if norm == "bn" else {}
    layers = [Dense(width, width, act, bias=False, **bn) for _ in range(depth)]
    net = Network(layers)
    params = net.params
    for entry, W in zip(net.param_layout(), weights):
        params[entry["W"][0]] = W.ravel()
    net.params = params
    whole = net.forward(X)
    assert np.allclose(run["output"], whole, rtol=1e-12, atol=1e-12 * np.abs(whole).max())
    assert run["depths"] == list(range(1, 8))


def test_spectrum_ranks_of_a_known_spectrum():
    rng = np.random.default_rng(0)
    U, _ = np.linalg.qr(rng.standard_normal((40, 5)))
    V, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    sigma = np.array([4.0, 2.0, 1.0, 0.3, 0.01])
    Z = U @ np.diag(sigma) @ V.T
    stable, soft = rc.spectrum_ranks(Z, 0.1)
    assert math.isclose(stable, float(np.sum(sigma ** 2) / 16.0), rel_tol=1e-10)
    assert soft == 3                     # 4, 2, 1 >= 0.4; 0.3 and 0.01 below
    assert rc.spectrum_ranks(np.zeros((3, 2)), 0.1) == (0.0, 0)
    one = np.outer(rng.standard_normal(9), rng.standard_normal(4))
    assert math.isclose(rc.spectrum_ranks(one, 0.1)[0], 1.0, rel_tol=1e-9)


def test_plain_linear_networks_follow_the_lyapunov_spectrum():
    """Without BN a linear network is a product of N(0, 1/d) matrices, whose Lyapunov
    exponents are (1/2)(log(2/d) + psi((d - k + 1)/2)) (Newman 1986): after l layers,
    sigma_k^2/sigma_1^2 ~ exp(l (psi((d - k + 1)/2) - psi(d/2))), and the stable rank
    tends to the sum of these; with BN the stable rank stays well above it."""
    digamma = pytest.importorskip("scipy.special").digamma
    width, depth, seeds = 16, 32, 12
    X = rc.inputs(width, 64, np.random.default_rng(1))
    plain, normed = [], []
    for seed in range(seeds):
        for norm, out in (("none", plain), ("bn", normed)):
            run = rc.propagate(X, "linear", norm, depth, np.random.default_rng(seed),
                               [depth], 0.1)
            out.append(run["stable"][-1])
    k = np.arange(1, width + 1)
    predicted = np.sum(np.exp(depth * (digamma((width - k + 1) / 2)
                                       - digamma(width / 2))))
    assert abs(np.mean(plain) - predicted) < 3 * np.std(plain) / np.sqrt(seeds) + 0.02
    assert predicted < 1.2 and np.mean(normed) > 2 * np.mean(plain)


def test_record_depths_and_windows():
    assert rc.record_depths(20, 4) == [1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 20]
    row = {"depths": [1, 2, 4, 8], "stable": [5.0, 4.0, 3.0, 2.0]}
    assert rc._window(row, "stable", 2, 4) == 3.5
    assert rc._tail(row, "stable", 8, deepest=True) == 2.0
    assert rc._tail(row, "stable", 8, deepest=False) == 2.5    # layers 4..8


def test_width_exponent():
    widths = [32, 64, 128, 256]
    assert math.isclose(rc.width_exponent(widths, [0.7 * math.sqrt(w) for w in widths]),
                        0.5, rel_tol=1e-12)
    assert math.isclose(rc.width_exponent(widths, [3.0] * 4), 0.0, abs_tol=1e-12)


@pytest.mark.parametrize("values, above, label", [
    ([1.1, 1.2, 1.05, 1.15], False, "supported"),
    ([3.0, 3.2, 2.9, 3.1], False, "refuted"),
    ([1.0, 3.0, 1.5, 2.6], False, "undecided"),
    ([0.55, 0.5, 0.52, 0.49], True, "supported"),
    ([0.2, 0.25, 0.22, 0.21], True, "refuted"),
])
def test_decide(values, above, label):
    threshold = 2.0 if not above else 0.4
    assert rc._decide(values, above, threshold, 0.9, "t")[0] == label


def test_decide_by_sign_test():
    assert rc._decide([1.0] * 5, False, 2.0, 0.9, "sign")[0] == "supported"
    assert rc._decide([1.0] * 4, False, 2.0, 0.9, "sign")[0] == "undecided"  # p = 1/16
    assert rc._decide([3.0] * 6, False, 2.0, 0.9, "sign")[0] == "refuted"


def _settings(**change):
    settings = {"depth": 16, "widths": [16, 64], "level": 0.9, "collapse_threshold": 2.0,
                "exponent": 0.5, "exponent_margin": 0.1, "decay_floor": 0.8}
    settings.update(change)
    return settings


def _fake(width, activation, norm, replicate, level, trend=0.0, noise=0.0):
    """A task result whose stable rank is ``level`` (times 1 + trend over depth), with a
    little noise."""
    depths = rc.record_depths(16, 4)
    rng = np.random.default_rng(replicate * 1000 + width)
    stable = [level * (1 + trend * l / 16) * (1 + noise * rng.standard_normal())
              for l in depths]
    return {"replicate": replicate, "width": width, "activation": activation,
            "norm": norm, "depths": depths, "stable": stable, "soft": stable,
            "stable_post": stable, "input_stable": 5.0, "input_soft": 5}


def _results(bn_level=lambda d: 0.6 * math.sqrt(d), plain_level=1.1, trend=0.0,
             seeds=6, noise=0.02):
    out = []
    for r in range(seeds):
        for width in (16, 64):
            for activation in rc.ACTIVATIONS:
                out.append(_fake(width, activation, "bn", r, bn_level(width), trend,
                                 noise))
                out.append(_fake(width, activation, "none", r, plain_level, 0.0, noise))
    return out


def test_rule_on_crafted_results():
    verdict, rows = rc.verdict_of(_results(), _settings())
    assert verdict == "supported" and len(rows) == 2 * 2 * 2 + 2
    # plain networks that keep their rank: the collapse conditions refute -> mixed
    mixed, _ = rc.verdict_of(_results(plain_level=4.0), _settings())
    assert mixed == "mixed"
    assert mixed.conditions["no BN relu d=64: collapse"] == "refuted"
    # a BN rank that does not grow with the width: the sqrt(d) conditions refute
    flat, _ = rc.verdict_of(_results(bn_level=lambda d: 3.0), _settings())
    assert flat.conditions["BN linear: rank grows like sqrt(d)"] == "refuted"
    # a BN rank that keeps falling with depth: the no-decay conditions refute
    falling, _ = rc.verdict_of(_results(trend=-0.9), _settings())
    assert falling.conditions["BN linear d=16: no decay"] == "refuted"
    # noisy seeds around the threshold: undecided -> underpowered
    noisy, _ = rc.verdict_of(_results(plain_level=2.0, noise=0.5), _settings())
    assert noisy == "underpowered"


def test_conclude_compares_with_sqrt_width():
    verdict, measurements = rc.conclude(_settings(), _results())
    assert verdict == "supported"
    inputs = measurements["verdict_inputs"]
    assert abs(inputs["width_exponent"]["linear"][0] - 0.5) < 0.05
    assert abs(inputs["smallest_bn_rank_over_sqrt_width"]["relu"] - 0.6) < 0.05
    assert all(b["bn_tail_soft_rank"] > 0 for b in measurements["bound"])
    assert set(measurements["alternatives"]) == set(rc.ALTERNATIVES)
    assert rc.summary(measurements) and "conditions supported" in rc.headline(inputs)


def test_tasks_share_draws_across_the_four_networks():
    settings = rc.settings(True)
    tasks = rc.tasks(settings, 0)
    assert len(tasks) == settings["seeds"] * len(settings["widths"]) * 4
    for r in range(settings["seeds"]):
        for width in settings["widths"]:
            assert len({t["seed"] for t in tasks
                        if t["replicate"] == r and t["width"] == width}) == 1


def test_full_settings_are_the_rules():
    full = rc.settings(False)
    for key in ("seeds", "widths", "batch", "depth", "collapse_threshold", "level"):
        assert full[key] == rc.RULE_PARAMS[key]
    assert full["seeds"] >= 10 and min(full["widths"]) <= full["batch"]


def test_quick_run(quick_result):
    result = quick_result("rank-collapse")
    measurements = result.measurements
    rows = {r["condition"]: r for r in measurements["conditions"]}
    assert len(rows) == 3 * 2 * 2 + 2
    # plain ReLU networks collapse to rank ~1 within 64 layers at every width
    for width in (16, 32, 64):
        assert rows[f"no BN relu d={width}: collapse"]["outcome"] == "supported"
        assert rows[f"no BN relu d={width}: collapse"]["mean"] < 1.2
    # BN keeps the rank above the plain network's at every width
    for b in measurements["bound"]:
        assert b["bn_tail_stable_rank"] > 2 * b["plain_last_stable_rank"]
    assert set(measurements["alternatives"]) == set(rc.ALTERNATIVES)
    assert len(measurements["curves"]) == 3 * 2 * 2
