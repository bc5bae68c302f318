"""The edge-of-stability experiment (Cohen et al. 2021): the sharpness records against
an independent power iteration and the 2/lr threshold on a quadratic, the per-seed
number and the rule on crafted records, and the quick run."""

import numpy as np
import pytest

from bnfast import train
from bnfast.experiments import edge_of_stability as eos
from bnfast.experiments import measures


def _task(network="mlp", norm="none", lr=0.05, rows=60, steps=40, seed=3):
    return {"replicate": 0, "network": network, "norm": norm, "lr": lr, "rows": rows,
            "steps": steps, "sharpness_every": 20, "cnn_channels": 4, "loss": "mean",
            "band": [0.8, 1.25], "seed": seed}


@pytest.mark.parametrize("network", eos.NETWORKS)
@pytest.mark.parametrize("norm", eos.NORMS)
def test_problem_shapes_and_shared_start(network, norm):
    net, X, Y = eos.problem(_task(network, norm))
    assert X.shape[0] == Y.shape[0] == 60 and Y.shape[1] == 10
    assert np.allclose(Y.sum(axis=1), 1.0)
    other, X2, _ = eos.problem(_task(network, "none" if norm == "bn" else "bn"))
    assert np.array_equal(X, X2)                 # the two norms share the rows
    assert not np.array_equal(X, eos.problem(_task(network, norm, seed=4))[1])


def test_recorded_sharpness_is_the_hessians_top_eigenvalue_over_two_over_lr():
    """The run's first record equals an independent power iteration on exact
    Hessian-vector products at the initial parameters, divided by 2/lr."""
    task = _task("mlp", "bn", lr=0.02, steps=20)
    net, X, Y = eos.problem(task)
    top = measures.largest_hessian_eigenvalue(net, X, Y, iterations=300, rtol=1e-10)
    out = eos.run_task(task)
    assert out["steps"] == [0, 20] and out["diverged_step"] is None
    assert out["ratios"][0] == pytest.approx(top / (2 / 0.02), rel=1e-3)
    assert out["threshold"] == pytest.approx(100.0)


def test_gradient_descent_on_a_quadratic_is_stable_below_two_over_lr_only():
    """The threshold the rule compares with: on a quadratic loss (a linear layer, squared
    loss) of sharpness h, GD converges for lr h < 2 and diverges above."""
    from bnfast import Dense, Network, TrainingDiverged
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((30, 3)), rng.standard_normal((30, 1))
    net = Network([Dense(3, 1, bias=False)], loss="mean")
    net.params = rng.standard_normal(3)
    h = measures.largest_hessian_eigenvalue(net, X, Y, iterations=500, rtol=1e-12)
    start = net.loss(X, Y)
    low = Network([Dense(3, 1, bias=False)], loss="mean")
    low.params = net.params
    assert train(low, X, Y, 0.95 * 2 / h, 400).losses[-1] < start
    high = Network([Dense(3, 1, bias=False)], loss="mean")
    high.params = net.params
    try:
        grew = train(high, X, Y, 1.05 * 2 / h, 400).losses[-1] > 1e3 * start
    except TrainingDiverged:
        grew = True
    assert grew
    assert measures.stability_threshold(0.5) == 4.0


def test_hover_value_windows():
    row = {"steps": [0, 20, 40, 60, 80, 100],
           "ratios": [0.2, 0.5, 0.85, 1.4, 1.0, 1.1]}
    assert eos.hover_value(row, 0.8) == pytest.approx(np.median([0.85, 1.4, 1.0, 1.1]))
    assert eos.hover_value(row, 0.8, statistic="mean") == pytest.approx(1.0875)
    assert eos.hover_value(row, 0.8, window="half") == pytest.approx(1.1)
    assert eos.hover_value({"steps": [0, 20], "ratios": [0.1, 0.2]}, 0.8) is None
    assert eos.hover_value({"steps": [0, 20], "ratios": [0.1, 0.2]}, 0.8,
                           window="half") == pytest.approx(0.2)


def _rows(level, network="mlp", norm="bn", lr=0.05, seeds=10, spread=0.02, reach=True):
    """Crafted records: ``level`` (a number, or one per seed) plus noise after two
    records below the band."""
    rng = np.random.default_rng(0)
    levels = np.broadcast_to(level, (seeds,))
    out = []
    for r in range(seeds):
        tail = levels[r] + spread * rng.standard_normal(5)
        ratios = ([0.3, 0.6] + list(tail)) if reach else [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
        out.append({"replicate": r, "network": network, "norm": norm, "lr": lr,
                    "diverged_step": None, "steps": list(range(0, 140, 20)),
                    "ratios": ratios, "losses": [1.0] * 7})
    return out


SETTINGS = {"band": [0.8, 1.25], "reach_share": 0.8, "level": 0.9}


def test_rule_on_crafted_records():
    verdict, rows = eos.verdict_of(_rows(1.0), SETTINGS)
    assert verdict.label == "supported" and rows[0]["reached"] == 10
    assert eos.verdict_of(_rows(0.3 + 0.0), SETTINGS)[0].label == "underpowered"
    assert eos.verdict_of(_rows(1.6), SETTINGS)[0].label == "refuted"
    straddle = _rows([1.1, 1.4] * 5)                       # mean 1.25: on the band's end
    assert eos.verdict_of(straddle, SETTINGS)[0].label == "underpowered"
    mixed = _rows(1.0) + _rows(1.6, norm="none")
    assert eos.verdict_of(mixed, SETTINGS)[0].label == "mixed"
    # not reached by enough seeds: undecided whatever the reaching seeds say
    few = _rows(1.0, seeds=7) + _rows(1.0, seeds=3, reach=False)
    for r, row in enumerate(few):
        row["replicate"] = r
    verdict, rows = eos.verdict_of(few, SETTINGS)
    assert rows[0]["reached"] == 7 and verdict.label == "underpowered"
    diverged = _rows(1.0)
    diverged[0].update(diverged_step=5, steps=[], ratios=[])
    assert eos.verdict_of(diverged, SETTINGS)[0].label == "underpowered"


def test_quick_run(quick_result):
    result = quick_result("edge-of-stability")
    m = result.measurements
    assert result.verdict.label in ("supported", "refuted", "mixed", "underpowered")
    assert len(m["conditions"]) == 8 and len(m["curves"]) == 8
    assert set(m["alternatives"]) == set(eos.ALTERNATIVES)
    for row in m["conditions"]:
        assert row["outcome"] in ("supported", "refuted", "undecided")
    # the run's numbers are sharpness/(2/lr): every curve starts below 5 (a sane scale)
    assert all(c["mean"][0] is None or 0 < c["mean"][0] < 5 for c in m["curves"])
    assert result.settings["seeds"] == 2
