"""Observation 4.3 of Santurkar et al. (2018): gamma = sigma(W), beta = mu(W) reproduce the
activations, so the minima are preserved only when gamma, beta may depend on W; with
constants, Example 3.2 of Dannemann and Junike (2025) is the witness.

Oracles are independent of bnfast.claims: BN written out in NumPy (mean, biased std),
the BN loss gradient by central differences, and the exact numbers of Example 3.2
typed in by hand (W* = (7, 5), grad L_BN(W*) = (-10, 14) sqrt(78)/507, L(W*) = 3)."""

import math

import numpy as np
import pytest
import sympy
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bnfast.claims import check_observation_4_3, example_3_2

X_EX = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
Y_EX = np.array([8.0, 6.0, 11.0])
W_EX = np.array([7.0, 5.0])
SQRT78 = sympy.sqrt(78)
EPS64 = np.finfo(np.float64).eps


def bn(h, gamma, beta):
    return gamma * (h - h.mean()) / h.std() + beta


def bn_loss(w, gamma=1.0, beta=0.0):
    return float(np.sum((Y_EX - bn(X_EX @ w, gamma, beta)) ** 2))


def fd_gradient(f, w, step=1e-6):
    return np.array([(f(w + e) - f(w - e)) / (2 * step) for e in np.eye(w.size) * step])


# ---- W-dependent gamma, beta: the observation holds ----------------------------------------

def test_w_dependent_choice_reproduces_the_activations():
    for exact in (False, True):
        r = check_observation_4_3(X_EX, W_EX, exact=exact)
        assert r.statement == "Observation 4.3" and r.form == "w-dependent"
        assert r.holds is True and r.rhs == 0
        h = X_EX @ W_EX                                       # (7, 5, 12)
        assert float(r.gamma) == pytest.approx(h.std(), rel=1e-15)
        assert float(r.beta) == pytest.approx(h.mean(), rel=1e-15)
        np.testing.assert_allclose(np.array(r.z, dtype=float), h, rtol=1e-15)
        np.testing.assert_allclose(np.array(r.h, dtype=float), h, rtol=0)
    ex = check_observation_4_3(X_EX, W_EX, exact=True)
    assert ex.lhs == 0 and ex.gap == 0
    assert ex.gamma == sympy.sqrt(78) / 3 and ex.beta == 8     # sigma(W), mu(W) exactly


def test_w_dependent_choice_preserves_the_standard_optimum():
    for exact in (False, True):
        r = check_observation_4_3(X_EX, W_EX, y=Y_EX, exact=exact)
        assert r.holds is True
        np.testing.assert_allclose(np.array(r.w_star, dtype=float), [7, 5], rtol=1e-13)
        assert float(r.loss_std_at_w_star) == pytest.approx(3, rel=1e-12)
        assert float(r.loss_bn_at_w_star) == pytest.approx(3, rel=1e-12)
    ex = check_observation_4_3(X_EX, W_EX, y=Y_EX, exact=True)
    assert ex.loss_std_at_w_star == 3 and ex.loss_bn_at_w_star == 3


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1), factor=st.sampled_from([1.0, 1e-150, 1e150]))
def test_w_dependent_identity_on_random_data_at_any_scale(seed, factor):
    rng = np.random.default_rng(seed)
    m, d = int(rng.integers(2, 8)), int(rng.integers(1, 4))
    X, W = rng.normal(size=(m, d)) * factor, rng.normal(size=d)
    assume(np.ptp(X @ W) > 1e-6 * np.abs(X @ W).max())
    r = check_observation_4_3(X, W)
    assert r.holds is True and abs(r.relative_gap) <= 64 * m * EPS64
    assert check_observation_4_3(X, W * factor).holds is True


# ---- constant gamma, beta: it fails, Example 3.2 is the witness ------------------------------

def test_example_3_2_is_the_witness_with_constants():
    for exact in (False, True):
        r = check_observation_4_3(X_EX, W_EX, y=Y_EX, gamma=1, beta=0, exact=exact)
        assert r.form == "constant" and r.holds is False and r.refutes
        assert r.witness_t == 1
        assert r.w_star_is_bn_critical is False
        assert "not even a critical point" in r.note and "Example 3.2" in r.note
        # BN output at W is (-1/sqrt(78)) (5, 9, -14)... checked against NumPy BN
        h = X_EX @ W_EX
        assert float(r.residual_at_w) == pytest.approx(np.linalg.norm(bn(h, 1, 0) - h),
                                                       rel=1e-13)
        assert float(r.residual_at_2w) == pytest.approx(np.linalg.norm(bn(h, 1, 0) - 2 * h),
                                                        rel=1e-13)
        np.testing.assert_allclose(np.array(r.grad_bn_at_w_star, dtype=float),
                                   fd_gradient(bn_loss, W_EX), rtol=1e-7)
    ex = check_observation_4_3(X_EX, W_EX, y=Y_EX, gamma=1, beta=0, exact=True)
    assert list(ex.w_star) == [7, 5]
    assert list(ex.grad_bn_at_w_star) == [-10 * SQRT78 / 507, 14 * SQRT78 / 507]
    assert sympy.simplify(ex.loss_bn_at_w_star - (224 - 18 * SQRT78 / 13)) == 0
    # the same numbers as the Lemma 4.5 report of the example
    lemma = example_3_2(exact=True, cross_check=False)
    assert list(ex.grad_bn_at_w_star) == list(lemma.grad_bn_at_w_star)


def test_constants_equal_to_the_statistics_at_w_fail_along_the_ray():
    # gamma = sigma(W), beta = mu(W) as constants: reproduced at W, not at 2W
    h = X_EX @ W_EX
    r = check_observation_4_3(X_EX, W_EX, gamma=sympy.sqrt(78) / 3, beta=8, exact=True)
    assert r.residual_at_w == 0 and r.witness_t == 2 and r.holds is False
    assert r.residual_at_2w == sympy.sqrt(int(h @ h))           # ||h - 2h|| = ||h||
    assert list(r.witness_w) == [14, 10]
    f = check_observation_4_3(X_EX, W_EX, gamma=h.std(), beta=h.mean())
    assert f.witness_t == 2 and f.holds is False
    assert f.residual_at_2w == pytest.approx(np.linalg.norm(h), rel=1e-14)
    # the BN output is constant along the ray while X t W is not (NumPy oracle)
    np.testing.assert_allclose(bn(X_EX @ (3 * W_EX), 1, 0), bn(h, 1, 0), rtol=1e-14)


def test_constants_with_w_star_on_the_bn_ray():
    # y = X a without intercept: W* = a lies on the BN ray, so W* is BN-critical, but
    # constant gamma, beta still do not reproduce the activations
    y = X_EX @ np.array([2.0, 1.0])
    r = check_observation_4_3(X_EX, W_EX, y=y, gamma=1.0, beta=0.0)
    assert r.w_star_is_bn_critical is True and r.holds is False
    assert "happens to be a critical point" in r.note
    assert np.linalg.norm(fd_gradient(
        lambda w: float(np.sum((y - bn(X_EX @ w, 1, 0)) ** 2)), np.array([2.0, 1.0]))) < 1e-6


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1), factor=st.sampled_from([1.0, 1e-150, 1e150]),
       which=st.sampled_from(["X", "W"]))
def test_constant_verdict_at_any_scale(seed, factor, which):
    rng = np.random.default_rng(seed)
    m, d = int(rng.integers(2, 7)), int(rng.integers(1, 4))
    X, W = rng.normal(size=(m, d)), rng.normal(size=d)
    assume(np.ptp(X @ W) > 1e-6 * np.abs(X @ W).max())
    Xs, Ws = (X * factor, W) if which == "X" else (X, W * factor)
    r = check_observation_4_3(Xs, Ws, gamma=float(rng.uniform(0.5, 2)), beta=float(rng.normal()))
    assert r.holds is False and r.relative_gap < -0.01


@pytest.mark.parametrize("seed", range(3))
def test_float_and_exact_agree(seed):
    rng = np.random.default_rng(seed)
    X, W, y = rng.normal(size=(5, 2)), rng.normal(size=2), rng.normal(size=5)
    for kwargs in ({}, {"gamma": 1.5, "beta": -0.5}):
        fl = check_observation_4_3(X, W, y=y, **kwargs)
        ex = check_observation_4_3(X, W, y=y, exact=True, **kwargs)
        assert fl.holds is ex.holds
        assert fl.lhs == pytest.approx(float(ex.lhs), rel=1e-12, abs=fl.tolerance)
        for name in ("w_star", "hhat", "z"):
            np.testing.assert_allclose(np.array(getattr(fl, name), dtype=float),
                                       np.array(getattr(ex, name), dtype=float), rtol=1e-11)
        assert fl.loss_bn_at_w_star == pytest.approx(float(ex.loss_bn_at_w_star), rel=1e-11)


# ---- eps > 0 and bad input ---------------------------------------------------------------

def test_eps_positive_gives_no_verdict():
    r = check_observation_4_3(X_EX, W_EX, eps=1e-3)
    h = X_EX @ W_EX
    assert r.holds is None and "eps > 0" in r.note
    expected = np.linalg.norm(h.std() * (h - h.mean()) / math.sqrt(h.var() + 1e-3) + h.mean() - h)
    assert r.lhs == pytest.approx(expected, rel=1e-9)
    assert check_observation_4_3(X_EX, W_EX, gamma=1.0, beta=0.0, eps=1e-3).holds is None


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(X=X_EX, W=[1.0, 2.0, 3.0]), ValueError, r"W must have shape \(2,\)"),
    (dict(X=X_EX[0], W=W_EX), ValueError, r"X must be an \(m, d\) matrix"),
    (dict(X=X_EX[:1], W=W_EX), ValueError, "m >= 2"),
    (dict(X=X_EX, W=[0.0, 0.0]), ValueError, "X W is constant"),
    (dict(X=[[1.0, 1.0], [2.0, 2.0]], W=[1.0, -1.0]), ValueError, "X W is constant"),
    (dict(X=X_EX, W=W_EX, y=[1.0, 2.0]), ValueError, r"y must have shape \(3,\)"),
    (dict(X=X_EX, W=W_EX, gamma=1.0), ValueError, "must both be None"),
    (dict(X=X_EX, W=W_EX, beta=0.0), ValueError, "must both be None"),
    (dict(X=X_EX, W=W_EX, gamma=0.0, beta=0.0), ValueError, "gamma must be nonzero"),
    (dict(X=X_EX, W=[np.nan, 1.0]), ValueError, "W must be finite"),
    (dict(X=X_EX, W=W_EX, exact="no"), TypeError, "exact must be a bool"),
    (dict(X=X_EX, W=W_EX, gamma="1", beta=0.0), TypeError, "gamma"),
    (dict(X=[[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]], W=[1.0, 1.0], y=[1.0, 2.0, 4.0]),
     ValueError, "rank 1 < d"),
])
def test_bad_input_raises(kwargs, error, match):
    with pytest.raises(error, match=match):
        check_observation_4_3(**kwargs)
