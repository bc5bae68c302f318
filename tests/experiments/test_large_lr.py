"""The large-lr experiment (Bjorck et al. 2018): the problems, one task end to end (the
stability probe agrees with the grid's divergences), the best-lr choice, the rule on
crafted per-seed results, and the quick run."""

import math

import numpy as np
import pytest

from bnfast.experiments import large_lr as ll


def _task(network="mlp", norm="none", steps=20, lrs=(0.01, 100.0)):
    return {"replicate": 0, "network": network, "norm": norm, "steps": steps,
            "probe_steps": 10, "lrs": list(lrs), "batch_size": 100, "momentum": 0.9,
            "probe_low": 0.001, "probe_high": 100.0, "probe_points": 11,
            "cnn_channels": 4, "seed": 5}


@pytest.mark.parametrize("network", ll.NETWORKS)
def test_problem_shares_weights_and_data_across_norms(network):
    net, X, y, X_test, y_test = ll.problem(_task(network, "none"))
    other, X2, y2, _, _ = ll.problem(_task(network, "bn"))
    assert np.array_equal(X, X2) and np.array_equal(y, y2)
    assert y.ndim == 1 and y.dtype.kind == "i" and set(np.unique(y)) <= set(range(10))
    assert len(X_test) == len(y_test)
    W = net.param_layout()[0]["W"][0]
    W2 = other.param_layout()[0]["W"][0]
    assert np.array_equal(net.params[W], other.params[W2])   # the same initial weights


def test_one_task_end_to_end():
    out = ll.run_task(_task("mlp", "none"))
    assert [g["lr"] for g in out["grid"]] == [0.01, 100.0]
    small, huge = out["grid"]
    assert not small["diverged"] and 0.1 < small["test_accuracy"] <= 1.0
    # lr 100 with momentum 0.9 on a plain MLP diverges (or learns nothing): scored at chance
    assert huge["diverged"] or huge["test_accuracy"] < 0.3
    if huge["diverged"]:
        assert huge["test_accuracy"] == ll.CHANCE and huge["train_loss"] is None
    stable = out["largest_stable_lr"]
    assert stable is not None and 0.001 <= stable < 100.0
    assert out["next_lr"] > stable
    assert out["probes"] >= 3


def _result(network, norm, r, stable, accuracies, lrs=(0.001, 0.01, 0.1, 1.0)):
    return {"replicate": r, "network": network, "norm": norm,
            "largest_stable_lr": stable, "next_lr": None, "probes": 5,
            "grid": [{"lr": lr, "diverged": False, "train_loss": 0.1,
                      "test_accuracy": a} for lr, a in zip(lrs, accuracies)]}


SETTINGS = {"level": 0.9, "factor": 2.0, "accuracy_margin": 0.03, "matched_lr": 0.01,
            "probe_low": 0.001}


def _crafted(bn_stable, plain_stable, bn_acc, plain_acc, seeds=10, network="mlp",
             jitter=0.005):
    rng = np.random.default_rng(1)
    out = []
    for r in range(seeds):
        noise = jitter * rng.standard_normal(4)
        out.append(_result(network, "bn", r, bn_stable * (1 + 0.01 * r),
                           list(np.asarray(bn_acc) + noise)))
        out.append(_result(network, "none", r, plain_stable,
                           list(np.asarray(plain_acc) - noise)))
    return out


def test_best_lr_index_is_the_best_mean():
    rows = [_result("mlp", "bn", r, 1.0, acc) for r, acc in
            enumerate([[0.5, 0.9, 0.8, 0.1], [0.5, 0.7, 0.95, 0.1]])]
    assert ll.best_lr_index(rows) == 2          # means 0.8 vs 0.875


def test_rule_on_crafted_results():
    claim = _crafted(1.0, 0.1, [0.6, 0.8, 0.95, 0.9], [0.6, 0.8, 0.85, 0.1])
    verdict, rows = ll.verdict_of(claim, SETTINGS)
    assert verdict.label == "supported", rows
    assert rows[0]["mean"] == pytest.approx(math.log2(10.0) + np.mean(
        [math.log2(1 + 0.01 * r) for r in range(10)]))
    assert rows[2]["best_lrs"] == {"bn": 0.1, "none": 0.1}
    against = _crafted(0.1, 0.1, [0.6, 0.9, 0.85, 0.1], [0.6, 0.8, 0.9, 0.1])
    verdict, rows = ll.verdict_of(against, SETTINGS)
    assert verdict.label == "refuted", rows         # same lr, BN ahead at 0.01, no gain
    mixed = _crafted(1.0, 0.1, [0.6, 0.9, 0.85, 0.8], [0.6, 0.8, 0.85, 0.1])
    assert ll.verdict_of(mixed, SETTINGS)[0].label == "mixed"
    # a gap at the matched lr on the margin: undecided
    edge = _crafted(1.0, 0.1, [0.6, 0.83, 0.95, 0.9], [0.6, 0.8, 0.85, 0.1],
                    jitter=0.02)
    _, rows = ll.verdict_of(edge, SETTINGS)
    assert rows[1]["outcome"] == "undecided"
    # a network without a matched lr in its grid: that condition is undecided
    off_grid = [_result("mlp", n, r, 1.0, [0.5, 0.6, 0.7, 0.8], lrs=(0.002, 0.02, 0.2, 2))
                for r in range(5) for n in ("bn", "none")]
    _, rows = ll.verdict_of(off_grid, SETTINGS)
    assert rows[1]["outcome"] == "undecided"


def test_a_probe_that_fails_at_the_lowest_lr_counts_below_the_grid():
    claim = _crafted(1.0, 0.1, [0.6, 0.8, 0.95, 0.9], [0.6, 0.8, 0.85, 0.1])
    for row in claim:
        if row["norm"] == "none":
            row["largest_stable_lr"] = None
    _, rows = ll.verdict_of(claim, SETTINGS)
    assert rows[0]["values"][0] == pytest.approx(0.0 - (math.log2(0.001) - 1.0))


def test_quick_run(quick_result):
    result = quick_result("large-lr")
    m = result.measurements
    assert result.verdict.label in ("supported", "refuted", "mixed", "underpowered")
    assert len(m["conditions"]) == 6 and len(m["curves"]) == 4
    assert set(m["alternatives"]) == set(ll.ALTERNATIVES)
    for curve in m["curves"]:
        assert curve["lrs"] == result.settings["lrs"]
        assert all(0.0 <= a <= 1.0 for a in curve["accuracy_mean"])
        assert all(lr is None or result.settings["probe_low"] <= lr
                   <= result.settings["probe_high"] for lr in curve["largest_stable_lr"])
    assert result.settings["seeds"] == 2
