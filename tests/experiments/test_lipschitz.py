"""The lipschitz experiment (Su 2019): Hessian-vector products against finite
differences and closed forms, the bisection, the rule on crafted inputs, the quick run."""

import numpy as np
import pytest

from bnfast.experiments import lipschitz as lip
from bnfast.experiments.problems import digits_data


@pytest.fixture(scope="module")
def data():
    X, Y, *_ = digits_data(0)
    return X[:300], Y[:300]


def test_preprocessing(data):
    X = data[0]
    centred = lip.preprocess(X, "centred")
    standard = lip.preprocess(X, "standardised")
    assert np.allclose(centred.mean(axis=0), 0.0, atol=1e-12)
    constant = X.std(axis=0) == 0
    assert constant.any()     # digits has pixels that are always 0
    assert np.all(standard[:, constant] == 0.0)
    assert np.allclose(standard[:, ~constant].std(axis=0), 1.0)
    with pytest.raises(ValueError):
        lip.preprocess(X, "whitened")


def test_mse_hvp_power_iteration_matches_the_closed_form(data):
    """bnfast's hvp for Dense(64, 10, bias=False), mean loss: H = 2 X^T X/m (x) I."""
    X, Y = data
    X = lip.preprocess(X, "centred")
    net = lip._mse_net()
    net.params = np.random.default_rng(0).standard_normal(net.num_params)
    v = np.random.default_rng(1).standard_normal(net.num_params)
    H_v = (2 * v.reshape(10, 64) @ (X.T @ X) / len(X)).ravel()
    assert np.allclose(net.hvp(X, Y, v), H_v, rtol=1e-10, atol=1e-12)
    L, _ = lip.power_iteration(lambda w: net.hvp(X, Y, w), net.num_params, 2000, 0)
    closed = 2 * np.linalg.eigvalsh(X.T @ X / len(X))[-1]
    assert np.isclose(L, closed, rtol=1e-8)


def test_logistic_gradient_and_hvp_against_finite_differences(data):
    X, Y = data
    labels = Y.argmax(axis=1)
    rng = np.random.default_rng(2)
    W, V = 0.3 * rng.standard_normal((10, 64)), rng.standard_normal((10, 64))
    h = 1e-5
    loss_plus, grad_plus = lip.logistic_loss_and_gradient(W + h * V, X, labels)
    loss_minus, grad_minus = lip.logistic_loss_and_gradient(W - h * V, X, labels)
    _, grad = lip.logistic_loss_and_gradient(W, X, labels)
    # central differences: O(h^2) ~ 1e-10 truncation against values of order 1
    assert np.isclose((loss_plus - loss_minus) / (2 * h), np.sum(grad * V), rtol=1e-7)
    assert np.allclose((grad_plus - grad_minus) / (2 * h), lip.logistic_hvp(W, X, V),
                       rtol=1e-6, atol=1e-9)


def test_logistic_hessian_at_zero_closed_form(data):
    """At W = 0, p = 1/10 for all classes: H = (I/10 - 11^T/100) (x) E[x x^T], whose top
    eigenvalue is lambda_max(E x x^T)/10; and c = 1/2 bounds it."""
    X = lip.preprocess(data[0], "raw")
    top = lip.lanczos_max(lambda v: lip.logistic_hvp(np.zeros((10, 64)), X,
                                                     v.reshape(10, 64)).ravel(), 640, 0)
    second = np.linalg.eigvalsh(X.T @ X / len(X))[-1]
    assert np.isclose(top, second / 10, rtol=1e-8)
    assert top <= 0.5 * np.sum(X * X) / len(X)


def test_largest_stable_lr_bisection():
    found = lip.largest_stable_lr(lambda lr: lr <= 0.37, 0.2)
    assert 0.37 / (1 + lip.BISECTION_RESOLUTION) <= found <= 0.37
    assert lip.largest_stable_lr(lambda lr: lr <= 0.01, 1.0) <= 0.01


def test_mse_gd_descends_below_two_over_L_and_not_far_above(data):
    X, Y = data
    X = lip.preprocess(X, "raw")
    L = 2 * np.linalg.eigvalsh(X.T @ X / len(X))[-1]
    assert lip._descends(lip._mse_losses(X, Y, 0.99 * 2 / L, 200))
    assert not lip._descends(lip._mse_losses(X, Y, 1.5 * 2 / L, 200))


def test_run_task_on_a_tiny_task():
    task = {"split": 0, "data_seed": 5, "loss": "mse", "preprocessing": "centred",
            "rows": 200, "stability_steps": 30, "power_iterations": 500,
            "trajectory_checkpoints": 2, "trajectory_steps": 10}
    out = lip.run_task(task)
    # the verdict's L is the exact closed form; power iteration is the cross-check
    assert out["L"] == out["closed_form"] and out["two_over_L"] == 2 / out["L"]
    assert np.isclose(out["L_power_iteration"], out["closed_form"], rtol=1e-6)
    assert out["L_power_iteration_relative_difference"] <= 1e-6
    assert out["L"] <= out["bound"]
    assert np.isclose(out["mean_sq_norm"], out["mean_norm_sq"] + out["trace_cov"])
    assert out["largest_stable_lr"] >= (1 - 2e-3) * out["two_over_L"]


def test_mse_L_does_not_hang_on_power_iteration(monkeypatch):
    """A power iteration stopped early (here: 10% low) would put 2/L 10% too high and
    refute (b); the verdict's L is the closed form, the power value only reported."""
    task = {"split": 0, "data_seed": 5, "loss": "mse", "preprocessing": "standardised",
            "rows": 200, "stability_steps": 30, "power_iterations": 500,
            "trajectory_checkpoints": 2, "trajectory_steps": 10}
    exact = lip.run_task(task)
    real = lip.power_iteration

    def early(matvec, dim, iterations, seed, tol=1e-12):
        value, _ = real(matvec, dim, iterations, seed, tol)
        return 0.9 * value, 3

    monkeypatch.setattr(lip, "power_iteration", early)
    out = lip.run_task(task)
    assert out["L"] == exact["L"] == out["closed_form"]
    assert out["largest_stable_lr"] == exact["largest_stable_lr"]
    assert out["largest_stable_lr"] >= (1 - 2e-3) * out["two_over_L"]
    assert out["L_power_iteration_relative_difference"] == pytest.approx(0.1, rel=1e-6)


def test_closed_form_is_lambda_max_of_the_whole_second_moment():
    task = {"split": 0, "data_seed": 5, "loss": "mse", "preprocessing": "raw",
            "rows": 200, "stability_steps": 5, "power_iterations": 500,
            "trajectory_checkpoints": 2, "trajectory_steps": 10}
    out = lip.run_task(task)
    X = digits_data(5)[0][:200]
    assert out["closed_form"] == pytest.approx(
        2 * np.linalg.eigvalsh(X.T @ X / len(X))[-1], rel=1e-12)


def _crafted(L_raw, L_centred, kappa_std, kappa_centred, stable_ratio=1.0, bound=100.0):
    rows = []
    for loss in lip.LOSSES:
        for prep, L, kappa in (("raw", L_raw, 1e6), ("centred", L_centred, kappa_centred),
                               ("standardised", 5.0, kappa_std)):
            rows.append({"split": 0, "loss": loss, "preprocessing": prep, "L": L,
                         "bound": bound if prep != "centred" else bound / 2,
                         "closed_form": L, "mean_norm_sq": 1.0, "trace_cov": 1.0,
                         "two_over_L": 2 / L, "largest_stable_lr": stable_ratio * 2 / L,
                         "kappa_variable": kappa, "constant_pixels": 3})
    return rows


SUB_CLAIMS = ("centring_lowers_L", "gd_descends_below_2_over_L", "scaling_preconditions")


def _split(rows, split):
    for r in rows:
        r["split"] = split
    return rows


# The three sub-claims are the conditions (a sub-claim neither supported nor refuted is
# undecided); combine: all support (refute) -> supported (refuted), one supports and
# another refutes -> mixed, else underpowered.
@pytest.mark.parametrize("rows, label, sub", [
    (_crafted(10.0, 2.0, 100.0, 1e4), "supported", ("supported",) * 3),
    # centring raises L (a): mixed, (b) and (c) support
    (_crafted(10.0, 20.0, 100.0, 1e4), "mixed", ("refuted", "supported", "supported")),
    # GD diverges below 2/L (b)
    (_crafted(10.0, 2.0, 100.0, 1e4, stable_ratio=0.9), "mixed",
     ("supported", "refuted", "supported")),
    # scaling worsens kappa (c)
    (_crafted(10.0, 2.0, 1e5, 1e4), "mixed", ("supported", "supported", "refuted")),
    # all three fail: refuted (the set-up is the project's own, not reduced)
    (_crafted(10.0, 20.0, 1e5, 1e4, stable_ratio=0.9), "refuted", ("refuted",) * 3),
    # the largest stable lr a bisection step short of 2/L still counts as 2/L
    (_crafted(10.0, 2.0, 100.0, 1e4, stable_ratio=1 - 1.5e-3), "supported",
     ("supported",) * 3),
])
def test_conclude_rule(rows, label, sub):
    got, measurements = lip.conclude({}, rows)
    expected = dict(zip(SUB_CLAIMS, sub))
    assert got.label == label
    assert got.conditions == expected
    assert measurements["sub_claims"] == expected
    assert got.setting == lip.SETTING and not got.reduced
    assert got.text == (label if label != "mixed" else
                        "mixed (supported: " + ", ".join(
                            k for k, v in expected.items() if v == "supported")
                        + "; refuted: " + ", ".join(
                            k for k, v in expected.items() if v == "refuted") + ")")
    assert measurements["alternatives"] == {}


def test_conclude_underpowered_when_splits_disagree():
    """Standardising lowers kappa in one split and raises it in the other: (c) is
    inconclusive (undecided), (a) and (b) support: underpowered, more splits decide."""
    rows = _crafted(10.0, 2.0, 100.0, 1e4) + _split(_crafted(10.0, 2.0, 1e5, 1e4), 1)
    got, measurements = lip.conclude({}, rows)
    assert measurements["sub_claims"]["scaling_preconditions"] == "inconclusive"
    assert got.label == "underpowered"
    assert got.conditions == {"centring_lowers_L": "supported",
                              "gd_descends_below_2_over_L": "supported",
                              "scaling_preconditions": "undecided"}
    assert got.decide == "more splits: the splits disagree"
    assert got.text == "underpowered (would decide: more splits: the splits disagree)"


def test_conclude_mixed_with_an_undecided_sub_claim():
    """(a) undecided (centring lowers L for MSE but not for the logistic loss, which does
    not refute it), (b) refuted, (c) supported: one supports and one refutes, mixed."""
    rows = _crafted(10.0, 2.0, 100.0, 1e4, stable_ratio=0.9)
    for r in rows:
        if r["loss"] == "logistic" and r["preprocessing"] == "centred":
            r["L"] = 12.0
    got, measurements = lip.conclude({}, rows)
    assert measurements["sub_claims"]["centring_lowers_L"] == "inconclusive"
    assert got.label == "mixed"
    assert got.conditions == {"centring_lowers_L": "undecided",
                              "gd_descends_below_2_over_L": "refuted",
                              "scaling_preconditions": "supported"}
    assert got.text == ("mixed (supported: scaling_preconditions; "
                        "refuted: gd_descends_below_2_over_L)")


def test_quick_run(quick_result):
    result = quick_result("lipschitz")
    m = result.measurements
    assert set(m["sub_claims"]) == {"centring_lowers_L", "gd_descends_below_2_over_L",
                                    "scaling_preconditions"}
    for task in m["tasks"]:
        assert task["L"] <= task["bound"] * (1 + 1e-9)
        if task["loss"] == "mse":
            assert task["L"] == task["closed_form"]
            assert np.isclose(task["L_power_iteration"], task["closed_form"], rtol=1e-6)
    assert m["mse_power_iteration_max_relative_difference"] <= 1e-6
    assert m["verdict_inputs"]["min_stable_lr_over_two_over_L"] >= 1 - 2e-3
    assert result.verdict == "supported"
