"""Theorem 4.4 of Santurkar et al. (2018): the printed bound (g_j^2, a fourth power of
the gradient) fails on some instances; the corrected form (lam^2 times Theorem 4.1's
identity) is an equality.

Oracles are independent of bnfast.claims: ||grad_h Lhat||^2 by central differences in
float64, or in 60-digit mpmath arithmetic for the exact values (a check to ~30
digits); the right sides from fractions.Fraction arithmetic on the definitions; the
maxima over ||X|| <= lam by explicit layers h = X W (random X of operator norm lam,
and the rank-one X that attains the maximum)."""

import math
from fractions import Fraction

import mpmath
import numpy as np
import pytest
import sympy
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bnfast.claims import check_theorem_4_4

EPS64 = np.finfo(np.float64).eps


# ---- independent oracles --------------------------------------------------------------

def grad_norm_sq(h, g, gamma, dps=None):
    """||d/dh <g, gamma (h - mean)/std>||^2 by central differences; in mpmath with dps
    digits when dps is given (then h, g, gamma may be Fractions), else float64."""
    if dps:
        with mpmath.workdps(dps):
            return _grad_norm_sq(h, g, gamma, dps)
    return _grad_norm_sq(h, g, gamma, None)


def _grad_norm_sq(h, g, gamma, dps):
    if dps:
        num = lambda x: mpmath.mpf(x.numerator) / x.denominator  # noqa: E731
        h = [num(Fraction(x)) for x in h]
        g = [num(Fraction(x)) for x in g]
        gamma = num(Fraction(gamma))
        step, sqrt = mpmath.mpf(10) ** (-dps // 2), mpmath.sqrt
    else:
        h, step, sqrt = list(map(float, h)), 1e-6, math.sqrt

    def f(x):
        mean = sum(x) / len(x)
        std = sqrt(sum((e - mean) ** 2 for e in x) / len(x))
        return sum(gi * gamma * (e - mean) / std for gi, e in zip(g, x))

    total = 0
    for i in range(len(h)):
        up = [e + (step if j == i else 0) for j, e in enumerate(h)]
        down = [e - (step if j == i else 0) for j, e in enumerate(h)]
        total += ((f(up) - f(down)) / (2 * step)) ** 2
    return total


def fraction_rhs(h, g, gamma, lam, form):
    """The right side of Theorem 4.4 with Fractions (sigma^2 = mean((h - mu)^2))."""
    h, g = [Fraction(x) for x in h], [Fraction(x) for x in g]
    gamma, lam, m = Fraction(gamma), Fraction(lam), len(h)
    mu = sum(h) / m
    var = sum((x - mu) ** 2 for x in h) / m
    g_hhat_sq = sum(a * (x - mu) for a, x in zip(g, h)) ** 2 / var
    gg, mean_term = sum(x * x for x in g), m * (sum(g) / m) ** 2
    k = gamma ** 2 / var
    if form == "printed":
        return k * ((lam ** 2 * gg) ** 2 - mean_term - lam ** 2 * g_hhat_sq)
    return k * lam ** 2 * (gg - mean_term - g_hhat_sq / m)


def rational(x):
    return sympy.Rational(x.numerator, x.denominator)


H3 = [1, 2, 4]
G3 = [1, -2, Fraction(1, 2)]


# ---- worked instances ------------------------------------------------------------------

@pytest.mark.parametrize("scale, printed_holds", [(1, True), (Fraction(1, 4), False)])
def test_worked_instances_exact(scale, printed_holds):
    g = [x * scale for x in G3]
    true_lhs = grad_norm_sq(H3, g, Fraction(3, 2), dps=60)          # lam = 1
    for form in ("printed", "corrected"):
        r = check_theorem_4_4(H3, g, gamma=Fraction(3, 2), lam=1, form=form, exact=True)
        assert r.statement == "Theorem 4.4" and r.form == form
        with mpmath.workdps(60):
            assert abs(mpmath.mpf(str(sympy.N(r.lhs, 50))) - true_lhs) < mpmath.mpf(10) ** -25
        assert r.rhs == rational(fraction_rhs(H3, g, Fraction(3, 2), 1, form))
        assert r.ghat_j == r.lhs and r.g_j == rational(sum(Fraction(x) ** 2 for x in g))
        assert "treat sigma and hhat as fixed" in r.note
    c = check_theorem_4_4(H3, g, gamma=Fraction(3, 2), form="corrected", exact=True)
    assert c.gap == 0 and c.holds is True
    p = check_theorem_4_4(H3, g, gamma=Fraction(3, 2), form="printed", exact=True)
    assert p.holds is printed_holds
    assert ("fails here" in p.note) is (not printed_holds)


def test_printed_form_is_not_homogeneous_in_g_or_lam():
    # scaling g by t scales ghat_j by t^2 but g_j^2 by t^4: small gradients break it
    h, g = [0.5, -1.0, 2.0, 3.5], [1.0, 0.5, -1.0, 0.25]
    verdicts = [check_theorem_4_4(h, np.array(g) * t, form="printed").holds
                for t in (1e-3, 1e-1, 10, 1e3)]
    assert verdicts == [False, False, True, True]
    verdicts = [check_theorem_4_4(h, g, lam=lam, form="printed").holds
                for lam in (1e-3, 1e-1, 10, 1e3)]
    assert verdicts == [False, False, True, True]
    for t in (1e-3, 1e3):
        assert check_theorem_4_4(h, np.array(g) * t, form="corrected").holds is True


def test_the_maxima_over_the_layer_input():
    """g_j and ghat_j are maxima of ||X^T v||^2 over ||X||_2 <= lam, h = X W held fixed."""
    rng = np.random.default_rng(11)
    m, n, lam = 5, 4, 1.7
    h, g = rng.normal(size=m), rng.normal(size=m)
    r = check_theorem_4_4(h, g, gamma=0.8, lam=lam, form="corrected")
    gt = np.array(r.grad_h)
    assert gt @ gt * lam ** 2 == pytest.approx(r.ghat_j, rel=1e-14)
    assert r.ghat_j == pytest.approx(lam ** 2 * grad_norm_sq(h, g, 0.8), rel=1e-7)
    for _ in range(50):
        X = rng.normal(size=(m, n))
        X *= lam / np.linalg.norm(X, 2)
        assert np.sum((X.T @ gt) ** 2) <= r.ghat_j * (1 + 1e-12)
        assert np.sum((X.T @ g) ** 2) <= r.g_j * (1 + 1e-12)
    u = rng.normal(size=n)
    for v, value in ((gt, r.ghat_j), (g, r.g_j)):
        X = lam * np.outer(v, u) / (np.linalg.norm(v) * np.linalg.norm(u))   # attains it
        assert np.linalg.norm(X, 2) == pytest.approx(lam, rel=1e-14)
        assert np.sum((X.T @ v) ** 2) == pytest.approx(value, rel=1e-13)


# ---- properties --------------------------------------------------------------------------

@settings(max_examples=25, deadline=None)
@given(m=st.integers(2, 5), data=st.data(), lam=st.sampled_from([1, 2, Fraction(1, 3)]),
       gamma=st.sampled_from([1, -3, Fraction(2, 5)]))
def test_exact_verdicts_on_integer_instances(m, data, lam, gamma):
    ints = st.lists(st.integers(-6, 6), min_size=m, max_size=m)
    h, g = data.draw(ints), data.draw(ints)
    assume(len(set(h)) > 1)
    c = check_theorem_4_4(h, g, gamma=gamma, lam=lam, form="corrected", exact=True)
    assert c.gap == 0 and c.holds is True
    assert c.rhs == rational(fraction_rhs(h, g, gamma, lam, "corrected"))
    p = check_theorem_4_4(h, g, gamma=gamma, lam=lam, form="printed", exact=True)
    printed = fraction_rhs(h, g, gamma, lam, "printed")
    assert p.rhs == rational(printed)
    assert p.holds is (fraction_rhs(h, g, gamma, lam, "corrected") <= printed)


finite = st.integers(-10 ** 6, 10 ** 6).map(lambda k: k / 1024)


@settings(max_examples=40, deadline=None)
@given(m=st.integers(2, 7), data=st.data(), factor=st.sampled_from([1e-150, 1e150]))
def test_verdicts_and_float_exact_agreement_under_scaling(m, data, factor):
    h = np.array(data.draw(st.lists(finite, min_size=m, max_size=m)))
    g = np.array(data.draw(st.lists(finite, min_size=m, max_size=m)))
    assume(np.ptp(h) > 0)
    for form in ("printed", "corrected"):
        base = check_theorem_4_4(h, g, lam=0.5, form=form)
        # h: both forms are invariant to its scale
        assert check_theorem_4_4(h * factor, g, lam=0.5, form=form).holds is base.holds
        if form == "corrected":
            assert base.holds is True and abs(base.relative_gap) <= 64 * m * EPS64
            assert check_theorem_4_4(h, g * factor, lam=0.5, form=form).holds is True
        # g: the printed verdict changes with it (fourth power); float must follow exact
        fl = check_theorem_4_4(h, g * factor, lam=0.5, form=form)
        ex = check_theorem_4_4(h, g * factor, lam=0.5, form=form, exact=True)
        if abs(float(ex.relative_gap)) > 64 * m * EPS64:
            assert fl.holds is ex.holds
        else:
            assert fl.holds is True                 # equality up to rounding counts
        assert fl.relative_gap == pytest.approx(float(ex.relative_gap), rel=1e-9, abs=1e-14)


@pytest.mark.parametrize("seed", range(4))
def test_float_and_exact_agree_on_random_instances(seed):
    rng = np.random.default_rng(40 + seed)
    m = int(rng.integers(2, 8))
    h, g = rng.normal(size=m), rng.normal(size=m) * 0.7
    lam, gamma = float(rng.uniform(0.5, 2)), float(rng.uniform(-2, 2))
    for form in ("printed", "corrected"):
        fl = check_theorem_4_4(h, g, gamma=gamma, lam=lam, form=form)
        ex = check_theorem_4_4(h, g, gamma=gamma, lam=lam, form=form, exact=True)
        assert fl.holds is ex.holds
        for name in ("lhs", "rhs", "g_j", "ghat_j", "magnitude"):
            assert getattr(fl, name) == pytest.approx(float(getattr(ex, name)), rel=1e-12)
        assert fl.gap == pytest.approx(float(ex.gap), abs=1e-12 * fl.magnitude)


def test_extreme_lam_float_and_exact_agree():
    h, g = [0.5, -1.0, 2.0, 3.5], [1.0, 0.5, -1.0, 0.25]
    for lam in (1e-150, 1e150):
        for form in ("printed", "corrected"):
            fl = check_theorem_4_4(h, g, lam=lam, form=form)
            ex = check_theorem_4_4(h, g, lam=lam, form=form, exact=True)
            assert fl.holds is ex.holds
            assert fl.relative_gap == pytest.approx(float(ex.relative_gap), rel=1e-12,
                                                    abs=1e-15)


def test_sides_beyond_the_float_range_are_reported_as_the_exact_ones():
    # Issue 23: at lam = 1e200 the float path reported lhs = 0.0 (true ~6e399): each side
    # was scaled back from the unit of the printed rhs (~lam^4), where it underflowed.
    # Now each side is what float() of the exact value gives: inf beyond the range, the
    # value to rounding inside it (lam = 1e150: lhs 6e299 against rhs ~1e600), 0 below.
    h, g = [0.5, -1.0, 2.0, 3.5], [1.0, 0.5, -1.0, 0.25]
    for lam in (1e200, 1e150, 1e-150, 1e-200):
        for form in ("printed", "corrected"):
            fl = check_theorem_4_4(h, g, lam=lam, form=form)
            ex = check_theorem_4_4(h, g, lam=lam, form=form, exact=True)
            assert fl.holds is ex.holds
            for name in ("lhs", "rhs", "g_j", "ghat_j"):
                want = float(getattr(ex, name))
                assert getattr(fl, name) == pytest.approx(want, rel=1e-12, abs=1e-320), \
                    (lam, form, name)
    assert check_theorem_4_4(h, g, lam=1e200).lhs == math.inf


# ---- eps > 0 and bad input ------------------------------------------------------------------

def test_eps_positive_gives_no_verdict():
    for form in ("printed", "corrected"):
        r = check_theorem_4_4([1.0, 2.0, 4.0], [1.0, -2.0, 0.5], form=form, eps=1e-3)
        assert r.holds is None and "eps > 0" in r.note
        s2 = np.var([1.0, 2.0, 4.0]) + 1e-3
        assert r.norm_hhat_sq == pytest.approx(3 * (s2 - 1e-3) / s2, rel=1e-14)


@pytest.mark.parametrize("lam, error, match", [
    (0.0, ValueError, "lam must be > 0"), (-1.0, ValueError, "lam must be > 0"),
    (math.inf, ValueError, "lam must be finite"), (True, TypeError, "lam"),
    ("1", TypeError, "lam"),
])
@pytest.mark.parametrize("exact", [False, True])
def test_bad_lam_raises(lam, error, match, exact):
    with pytest.raises(error, match=match):
        check_theorem_4_4([1.0, 2.0], [1.0, 0.0], lam=lam, exact=exact)


def test_other_bad_input_raises():
    with pytest.raises(ValueError, match="form must be one of"):
        check_theorem_4_4([1.0, 2.0], [1.0, 0.0], form="fourth")
    with pytest.raises(ValueError, match=r"grad must have shape \(2,\)"):
        check_theorem_4_4([1.0, 2.0], [1.0, 0.0, 1.0])
    with pytest.raises(TypeError, match="exact must be a bool"):
        check_theorem_4_4([1.0, 2.0], [1.0, 0.0], exact=0)
