"""The residual-identity experiment (De and Smith 2020): the block-wise readout against
the engine's forward of whole residual networks, the closed forms and the exactness of
their conditional expectations (Monte Carlo over weight draws), the rule on crafted
per-seed values, and the quick run."""

import numpy as np
import pytest

from bnfast import Network, Residual
from bnfast.experiments import residual_identity as ri


def _whole_network(architecture, norm, width, blocks, seed, eps=1e-5):
    """The same blocks as ``propagate`` draws them, as one bnfast Network of Residual
    blocks with its flat parameter vector."""
    template = Network(ri.branch_layers(architecture, width, norm, eps))
    rng = np.random.default_rng(seed)
    params = [ri._set_weights(template.params, template.param_layout(),
                              ri.block_weights(architecture, width, rng))
              for _ in range(blocks)]
    net = Network([Residual(ri.branch_layers(architecture, width, norm, eps))
                   for _ in range(blocks)])
    net.params = np.concatenate(params)
    return net


@pytest.mark.parametrize("architecture, width", [("dense", 12), ("conv", 4)])
@pytest.mark.parametrize("norm", ri.NORMS)
def test_blockwise_readout_is_the_engines_residual_network(architecture, width, norm):
    rng = np.random.default_rng(3)
    x0 = (rng.standard_normal((20, width)) if architecture == "dense"
          else rng.standard_normal((20, width, 9)))
    run = ri.propagate(architecture, norm, width, 5, x0, np.random.default_rng(11))
    whole = _whole_network(architecture, norm, width, 5, 11).forward(x0)
    scale = np.abs(whole).max()
    assert np.allclose(run["output"], whole, rtol=0, atol=1e-12 * scale)
    assert np.isclose(run["q"][-1], np.mean(whole ** 2), rtol=1e-12)
    # q_l = q_{l-1} + b_l + 2 <x_{l-1}, f_l>: the recorded numbers are consistent
    assert len(run["q"]) == 6 and len(run["b"]) == 5 and len(run["qplus"]) == 5


def test_branch_is_resnet_v2_bn_relu_w_bn_relu_w():
    """The identity first layer makes the branch BN-ReLU-W1-BN-ReLU-W2 of the input."""
    width, m = 6, 15
    rng = np.random.default_rng(0)
    x = 3.0 + 2.0 * rng.standard_normal((m, width))
    weights = ri.block_weights("dense", width, rng)
    net = Network(ri.branch_layers("dense", width, "bn"))
    net.params = ri._set_weights(net.params, net.param_layout(), weights)

    def bn(z):
        return (z - z.mean(axis=0)) / np.sqrt(z.var(axis=0) + 1e-5)
    expected = np.maximum(bn(np.maximum(bn(x), 0.0) @ weights[1].T), 0.0) @ weights[2].T
    assert np.allclose(net.forward(x), expected, rtol=1e-12, atol=1e-12)
    assert np.array_equal(weights[0], np.eye(width))


def test_he_weights_have_the_stated_variance():
    rng = np.random.default_rng(5)
    _, w1, w2 = ri.block_weights("conv", 40, rng)
    assert w1.shape == (40, 40, 3)
    for w in (w1, w2):
        assert abs(w.var() / (2.0 / 120) - 1.0) < 0.05


def test_averaging_matrix_counts_the_taps_inside_the_signal():
    A = ri.averaging_matrix(6)
    assert np.allclose(A @ np.ones(6), [2 / 3, 1, 1, 1, 1, 2 / 3])
    assert np.allclose(A, A.T)
    # one He conv passes on (A q)(p): a 3-tap zero-padded convolution's second moment
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4000, 1, 6)) * np.arange(1, 7)
    from bnfast import Conv1d
    conv = Network([Conv1d(1, 200, 3, padding=1, bias=False)])
    conv.params = rng.standard_normal(conv.num_params) / np.sqrt(3.0)
    profile = np.mean(conv.forward(x) ** 2, axis=(0, 1))
    assert np.allclose(profile, A @ np.arange(1, 7) ** 2, rtol=0.08)


def test_closed_forms():
    bn = ri.closed_forms("dense", "bn", 1.5, 4)
    assert np.allclose(bn["skip"], [2.5, 3.5, 4.5, 5.5])
    assert np.allclose(bn["ratio"], 1 / np.array([2.5, 3.5, 4.5, 5.5]))
    assert np.allclose(bn["growth"], 1.0)
    plain = ri.closed_forms("dense", "none", 2.0, 3)
    assert np.allclose(plain["skip"], [4, 8, 16]) and np.allclose(plain["ratio"], 0.5)
    assert np.allclose(plain["growth"], 2.0)
    # the zero-padded conv: (I + A^2)^l q_0, below 2^l q_0 because the ends lose taps
    profile = np.ones(10)
    conv = ri.closed_forms("conv", "none", 1.0, 3, profile, [profile] * 3)
    A = ri.averaging_matrix(10)
    assert np.isclose(conv["skip"][0], np.mean(profile + A @ A @ profile))
    assert np.all(conv["skip"] < 2.0 ** np.arange(1, 4))
    assert np.all(conv["ratio"] < 0.5) and np.all(conv["growth"] < 2.0)
    assert np.allclose(conv["growth"], 1 + conv["ratio"] / (1 - conv["ratio"]))
    plain_conv = ri.closed_forms("conv", "none", 1.0, 3, profile, [profile] * 3,
                                 padding_aware=False)
    assert np.allclose(plain_conv["skip"], [2, 4, 8])


def test_branch_second_moment_conditional_expectations():
    """Over many weight draws for one fixed input x: with BN, E q(f) = 1 (up to eps);
    without BN, E q(f) = 2 mean(relu(x)^2), exactly (the derivation of the closed
    forms); and the cross term E <x, f> = 0."""
    width, m, draws = 16, 24, 600
    rng = np.random.default_rng(7)
    x = rng.standard_normal((m, width)) * 1.7 + 0.3
    nets = {norm: Network(ri.branch_layers("dense", width, norm)) for norm in ri.NORMS}
    b = {norm: [] for norm in ri.NORMS}
    cross = []
    for _ in range(draws):
        weights = ri.block_weights("dense", width, rng)
        for norm, net in nets.items():
            net.params = ri._set_weights(net.params, net.param_layout(), weights)
            f = net.forward(x)
            b[norm].append(np.mean(f * f))
            if norm == "none":
                cross.append(np.mean(x * f))
    for norm, expected in (("bn", 1.0), ("none", 2 * np.mean(np.maximum(x, 0) ** 2))):
        values = np.array(b[norm])
        se = values.std() / np.sqrt(draws)
        assert abs(values.mean() - expected) < 4 * se, (norm, values.mean(), expected)
    assert abs(np.mean(cross)) < 4 * np.std(cross) / np.sqrt(draws)


def _fake_rows(architecture, norm, values_skip, values_ratio, blocks=4):
    """Task results whose per-seed R equals the given values at every checkpoint:
    growth and ratio scaled from their closed forms."""
    rows = []
    for r, (skip, ratio) in enumerate(zip(values_skip, values_ratio)):
        flat = np.ones(8)            # a conv's second-moment profile over positions
        closed = ri.closed_forms(architecture, norm, 1.0, blocks, flat, [flat] * blocks)
        q = [1.0]
        for g in closed["growth"] * skip:
            q.append(q[-1] + g if norm == "bn" else q[-1] * g)
        rows.append({"replicate": r, "architecture": architecture, "norm": norm,
                     "q": q, "growth": (closed["growth"] * skip).tolist(),
                     "ratio": (closed["ratio"] * ratio).tolist(),
                     "closed_form": {k: v.tolist() for k, v in closed.items()},
                     "plain_closed_form": {k: v.tolist() for k, v in closed.items()}})
    return rows


def test_per_seed_ratios_are_one_number_per_seed():
    rows = _fake_rows("dense", "none", [1.0, 1.1, 0.9], [1.0, 1.2, 0.8])
    assert np.allclose(ri.per_seed_ratios(rows, "skip", 4), [1.0, 1.1, 0.9])
    assert np.allclose(ri.per_seed_ratios(rows, "ratio", 4), [1.0, 1.2, 0.8])
    assert np.allclose(ri.per_seed_ratios(rows, "ratio", 1, single_block=True),
                       [1.0, 1.2, 0.8])
    assert np.allclose(ri.per_seed_ratios(rows, "skip", 4, cumulative=True),
                       [1.0, 1.1 ** 4, 0.9 ** 4])


@pytest.mark.parametrize("values, label", [
    ([1.0, 1.02, 0.98, 1.01, 0.99], "supported"),
    ([2.0, 2.1, 1.9, 2.05, 1.95], "refuted"),
    ([0.5, 0.45, 0.55, 0.5, 0.52], "refuted"),
    ([1.0, 1.6, 0.5, 1.3, 0.8], "undecided"),        # straddles the tolerance
    ([1.2, 1.24, 1.22, 1.26, 1.23], "undecided"),    # on the edge
    ([1.0], "undecided"),                            # one seed: no interval
])
def test_outcome(values, label):
    assert ri.outcome(values, 1.25, 0.9)[0] == label


def test_outcome_geometric():
    assert ri.outcome([1.0, 1.05, 0.95, 1.0], 1.25, 0.9, geometric=True)[0] == "supported"
    assert ri.outcome([1.0, 0.0, 1.0], 1.25, 0.9, geometric=True)[0] == "undecided"


def _results(good=True, wide=False):
    rng = np.random.default_rng(0)
    out = []
    for architecture in ri.ARCHITECTURES:
        for norm in ri.NORMS:
            spread = 0.6 if wide and norm == "none" else 0.03
            centre = 1.0 if good or norm == "bn" else 1.8
            skip = centre + spread * rng.standard_normal(10)
            ratio = 1.0 + spread * rng.standard_normal(10)
            out += _fake_rows(architecture, norm, np.abs(skip), np.abs(ratio))
    return out


def test_rule_combines_the_conditions():
    verdict, rows = ri.verdict_of(_results(), [1, 4], 1.25, 0.9)
    assert verdict == "supported" and len(rows) == 4 * 2 * 2
    mixed, _ = ri.verdict_of(_results(good=False), [1, 4], 1.25, 0.9)
    assert mixed == "mixed"
    assert mixed.conditions["dense no BN skip l=4"] == "refuted"
    assert mixed.conditions["dense BN skip l=4"] == "supported"
    weak, _ = ri.verdict_of(_results(wide=True), [1, 4], 1.25, 0.9)
    assert weak == "underpowered" and "more seeds" in weak.decide
    bad = [r for r in _results(good=False) if r["norm"] == "none"]
    refuted, _ = ri.verdict_of([{**r, "ratio": [2 * v for v in r["ratio"]]} for r in bad],
                               [1, 4], 1.25, 0.9)
    assert refuted == "refuted" and refuted.text.startswith("refuted in ")


def test_conclude_reports_alternatives_and_checks():
    settings = {"checkpoints": [1, 4], "tolerance": 1.25, "level": 0.9}
    results = _results()
    for r in results:
        r["b"] = [1.0] * 4
        r["variance"] = r["squared_mean"] = [1.0] * 5
        r["conditional_branch"] = [1.0] * 4
    verdict, measurements = ri.conclude(settings, results)
    assert verdict == "supported"
    assert set(measurements["alternatives"]) == set(ri.ALTERNATIVES)
    assert measurements["verdict_inputs"]["conditions"] == 16
    assert set(measurements["networks"]) == {"dense BN", "dense no BN", "conv BN",
                                             "conv no BN"}
    assert ri.summary(measurements) and "16 conditions" in ri.headline(
        measurements["verdict_inputs"])


def test_tasks_pair_the_bn_and_plain_networks():
    settings = ri.settings(True)
    tasks = ri.tasks(settings, 0)
    assert len(tasks) == settings["seeds"] * 4
    for r in range(settings["seeds"]):
        for architecture in ri.ARCHITECTURES:
            seeds = {t["seed"] for t in tasks
                     if t["replicate"] == r and t["architecture"] == architecture}
            assert len(seeds) == 1
    assert len({t["seed"] for t in tasks}) == settings["seeds"] * 2


def test_full_settings_are_the_rules():
    full = ri.settings(False)
    for key in ("seeds", "blocks", "checkpoints", "dense_width", "conv_channels",
                "batch", "tolerance", "level"):
        assert full[key] == ri.RULE_PARAMS[key]
    assert full["seeds"] >= 10 and any("ResNet" in line for line in full["reduced"])


def test_quick_run(quick_result):
    result = quick_result("residual-identity")
    measurements = result.measurements
    rows = measurements["conditions"]
    assert len(rows) == 4 * 2 * 3 and all(r["seeds"] == 4 for r in rows)
    # the dense BN network follows its closed forms tightly even at 4 seeds
    assert all(r["outcome"] == "supported" for r in rows if r["network"] == "dense BN")
    nets = measurements["networks"]
    assert abs(nets["dense BN"]["branch_second_moment"] - 1.0) < 0.05
    assert 0.8 < nets["dense no BN"]["branch_over_conditional_expectation"] < 1.2
    assert 0.8 < nets["dense BN"]["growth"]["mean_increment"] < 1.2
    assert 1.6 < nets["dense no BN"]["growth"]["mean_block_factor"] < 2.4
    assert set(measurements["alternatives"]) == set(ri.ALTERNATIVES)
    assert len(nets["conv BN"]["curves"]["q"]["mean"]) == 17
