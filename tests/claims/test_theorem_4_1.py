"""Theorem 4.1 of Santurkar et al. (2018): the printed bound (1/sqrt(m)) and the
corrected identity (1/m), in float64 and exactly.

Oracles are independent of bnfast.claims: grad_h Lhat by central finite differences of
Lhat(h) = L(gamma * hhat(h) + beta) with L linear in z (float64), or by sympy's own
differentiation of the BN transform written out with symbols (exact); the other sides
from fractions.Fraction arithmetic on the definitions (mean, biased variance)."""

import dataclasses
import json
import math
from fractions import Fraction

import numpy as np
import pytest
import sympy
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bnfast.claims import StatementReport, check_theorem_4_1

S = sympy.sympify
EPS64 = np.finfo(np.float64).eps


# ---- independent oracles --------------------------------------------------------------

def lhat(h, g, gamma, beta, eps=0.0):
    """L(gamma * hhat(h) + beta) for the linear loss L(z) = <g, z> (gradient g)."""
    hhat = (h - h.mean()) / np.sqrt(h.var() + eps)
    return float(g @ (gamma * hhat + beta))


def fd_grad_h(h, g, gamma=1.0, beta=0.0, eps=0.0):
    h = np.asarray(h, dtype=float)
    step = 1e-6 * np.sqrt(h.var() + eps)
    out = np.empty_like(h)
    for i in range(h.size):
        e = np.zeros_like(h)
        e[i] = step
        out[i] = (lhat(h + e, g, gamma, beta, eps) - lhat(h - e, g, gamma, beta, eps)) / (2 * step)
    return out


def sympy_grad_h(h, g, gamma):
    """d/dh of <g, gamma * hhat(h)> by sympy, at the exact h."""
    v = sympy.symbols(f"v0:{len(h)}", real=True)
    mean = sum(v) / len(v)
    std = sympy.sqrt(sum((x - mean) ** 2 for x in v) / len(v))
    loss = sum(S(gi) * S(gamma) * (x - mean) / std for gi, x in zip(g, v))
    at = {x: S(hi) for x, hi in zip(v, h)}
    return [sympy.radsimp(sympy.diff(loss, x).subs(at)) for x in v]


def fraction_sides(h, g, gamma):
    """k = gamma^2/sigma^2, <g, hhat>^2, ||g||^2, <1, g>^2/m with Fractions."""
    h, g, gamma = [Fraction(x) for x in h], [Fraction(x) for x in g], Fraction(gamma)
    m = len(h)
    mu = sum(h) / m
    c = [x - mu for x in h]
    var = sum(x * x for x in c) / m
    g_hhat_sq = sum(a * b for a, b in zip(g, c)) ** 2 / var
    return gamma ** 2 / var, g_hhat_sq, sum(x * x for x in g), sum(g) ** 2 / m


def same(a, b):
    return sympy.simplify(S(a) - S(b)) == 0


def rat(f):
    return sympy.Rational(f.numerator, f.denominator)


# ---- a worked instance, m = 3 ------------------------------------------------------------

H3, G3, GAMMA3 = [1, 2, 4], [1, -2, Fraction(1, 2)], Fraction(3, 2)


def test_worked_instance_exact():
    k, ghs, gg, one = fraction_sides(H3, G3, GAMMA3)
    assert (k, ghs, gg, one) == (Fraction(81, 56), Fraction(1, 56), Fraction(21, 4),
                                 Fraction(1, 12))
    true_lhs = k * (gg - one - ghs / 3)            # = ||grad_h Lhat||^2, see below
    assert true_lhs == Fraction(23409, 3136)
    grad = sympy_grad_h(H3, G3, GAMMA3)
    assert same(sum(x ** 2 for x in grad), rat(true_lhs))

    c = check_theorem_4_1(H3, G3, gamma=GAMMA3, form="corrected", exact=True)
    assert c.exact and c.statement == "Theorem 4.1" and c.form == "corrected"
    assert all(same(a, b) for a, b in zip(c.grad_h, grad))
    assert same(c.lhs, rat(true_lhs)) and same(c.rhs, rat(true_lhs))
    assert c.gap == 0 and c.holds is True and c.tolerance == 0

    p = check_theorem_4_1(H3, G3, gamma=GAMMA3, form="printed", exact=True)
    assert same(p.lhs, rat(true_lhs))
    expected_rhs = rat(k) * (rat(gg) - rat(one) - rat(ghs) / sympy.sqrt(3))
    assert same(p.rhs, expected_rhs)
    assert same(p.gap, -rat(k) * (1 / sympy.sqrt(3) - S(1) / 3) * rat(ghs))
    assert same(p.deficit, -p.gap)
    assert p.holds is False and p.refutes
    assert str(p.gap) == "27/3136 - 27*sqrt(3)/3136"
    assert same(p.g_dot_hhat, sympy.sqrt(14) / 28)       # <g, c>/sigma = (1/6)/(sqrt(14)/3)
    assert same(p.sigma, sympy.sqrt(14) / 3) and same(p.mu, S(7) / 3)


def test_worked_instance_float_matches_the_finite_difference_gradient():
    h, g = np.array(H3, float), np.array([1.0, -2.0, 0.5])
    for form in ("printed", "corrected"):
        r = check_theorem_4_1(h, g, gamma=1.5, form=form)
        np.testing.assert_allclose(r.grad_h, fd_grad_h(h, g, 1.5), rtol=1e-7)
        assert r.lhs == pytest.approx(23409 / 3136, rel=1e-13)
        assert r.norm_grad_h_sq == pytest.approx(r.lhs, rel=1e-15)
        assert r.hhat @ r.hhat == pytest.approx(3, rel=1e-14)
        assert abs(np.sum(r.hhat)) < 1e-14
    assert check_theorem_4_1(h, g, gamma=1.5).holds is False
    assert check_theorem_4_1(h, g, gamma=1.5, form="corrected").holds is True


def test_m2_the_gradient_vanishes_and_the_printed_bound_is_negative():
    # h = (0, 1): mu = 1/2, sigma = 1/2, hhat = (-1, 1); span(1, hhat) = R^2, so P = 0.
    # g = (1, 3): <g, hhat> = 2, <1, g> = 4, ||g||^2 = 10, gamma^2/sigma^2 = 4.
    # corrected: 4 (10 - 16/2 - 4/2) = 0; printed: 4 (10 - 8 - 4/sqrt(2)) = 8 - 8 sqrt(2).
    p = check_theorem_4_1([0, 1], [1, 3], exact=True)
    assert list(p.grad_h) == [0, 0] and p.lhs == 0
    assert same(p.rhs, 8 - 8 * sympy.sqrt(2)) and p.holds is False
    assert np.all(p.projection == 0)
    c = check_theorem_4_1([0, 1], [1, 3], form="corrected", exact=True)
    assert c.rhs == 0 and c.gap == 0 and c.holds is True
    # the deficit coefficient 1/sqrt(m) - 1/m: 0.2071 at m = 2, 1/4 at m = 4 (its
    # maximum), then decreasing to 0
    coef = [1 / math.sqrt(m) - 1 / m for m in range(2, 200)]
    assert coef[0] == pytest.approx(0.20710678, abs=1e-8)
    assert max(coef) == coef[2] == 0.25
    f = check_theorem_4_1([0.0, 1.0], [1.0, 3.0])
    assert f.holds is False and f.lhs == pytest.approx(0, abs=1e-15)
    assert f.rhs == pytest.approx(8 - 8 * math.sqrt(2), rel=1e-14)


def test_g_orthogonal_to_hhat_makes_the_printed_form_an_equality():
    # h = (0, 1, 2): hhat is proportional to (-1, 0, 1); g = (1, 5, 1) is orthogonal to it
    for exact in (False, True):
        r = check_theorem_4_1([0, 1, 2], [1, 5, 1], gamma=2, exact=exact)
        assert r.holds is True
        assert abs(float(r.relative_gap)) <= 64 * 3 * EPS64
    assert check_theorem_4_1([0, 1, 2], [1, 5, 1], exact=True).gap == 0


# ---- properties ------------------------------------------------------------------------

small = st.integers(-6, 6)


@settings(max_examples=30, deadline=None)
@given(m=st.integers(2, 5), data=st.data(),
       gamma=st.sampled_from([1, -1, 2, Fraction(1, 3), Fraction(-5, 2)]))
def test_exact_verdicts_on_integer_instances(m, data, gamma):
    h = data.draw(st.lists(small, min_size=m, max_size=m))
    assume(len(set(h)) > 1)
    g = data.draw(st.lists(small, min_size=m, max_size=m))
    k, ghs, gg, one = fraction_sides(h, g, gamma)
    c = check_theorem_4_1(h, g, gamma=gamma, form="corrected", exact=True)
    assert c.gap == 0 and c.holds is True
    assert same(c.lhs, rat(k * (gg - one - ghs / m)))
    p = check_theorem_4_1(h, g, gamma=gamma, form="printed", exact=True)
    assert p.holds is (ghs == 0)                       # fails iff <g, hhat> != 0
    assert same(p.gap, -rat(k * ghs) * (1 / sympy.sqrt(m) - S(1) / m))


finite = st.integers(-10 ** 6, 10 ** 6).map(lambda k: k / 1024)


def vectors(m):
    return st.lists(finite, min_size=m, max_size=m).map(np.array)


@settings(max_examples=60, deadline=None)
@given(m=st.integers(2, 9), data=st.data(),
       gamma=st.floats(0.01, 100).map(lambda x: x * (1 if x > 5 else -1)))
def test_corrected_gap_is_zero_to_rounding_and_the_gradient_is_right(m, data, gamma):
    h, g = data.draw(vectors(m)), data.draw(vectors(m))
    assume(np.ptp(h) > 0)
    r = check_theorem_4_1(h, g, gamma=gamma, form="corrected")
    assert r.holds is True
    assert abs(r.relative_gap) <= 64 * m * EPS64
    assert abs(r.gap) <= r.tolerance
    # ||grad_h Lhat||^2 against finite differences (not for a vanishing gradient)
    fd = fd_grad_h(h, g, gamma)
    scale = abs(gamma) / np.sqrt(h.var()) * np.linalg.norm(g)
    np.testing.assert_allclose(r.grad_h, fd, rtol=0, atol=1e-6 * scale + 1e-300)


@settings(max_examples=40, deadline=None)
@given(m=st.integers(2, 7), data=st.data(),
       factor=st.sampled_from([1e-150, 1e150]), which=st.sampled_from(["h", "grad"]))
def test_verdicts_do_not_depend_on_the_scale_of_h_or_grad(m, data, factor, which):
    h, g = data.draw(vectors(m)), data.draw(vectors(m))
    assume(np.ptp(h) > 0)
    for form in ("printed", "corrected"):
        base = check_theorem_4_1(h, g, gamma=0.75, form=form)
        hs, gs = (h * factor, g) if which == "h" else (h, g * factor)
        scaled = check_theorem_4_1(hs, gs, gamma=0.75, form=form)
        assert scaled.holds is base.holds
        assert scaled.relative_gap == pytest.approx(base.relative_gap, rel=1e-9, abs=1e-14)
        # reported values stay in the original scale
        expected = base.lhs * (factor ** -2 if which == "h" else factor ** 2)
        if math.isfinite(expected) and expected > 1e-290 and math.isfinite(scaled.tolerance):
            assert scaled.lhs == pytest.approx(expected, rel=1e-9, abs=scaled.tolerance)


def test_exact_and_float_agree_at_extreme_scales():
    h, g = np.array([0.5, -1.25, 2.0, 3.0]), np.array([1.0, 0.25, -2.0, 0.5])
    for factor in (1e-150, 1e150):
        for form in ("printed", "corrected"):
            for hs, gs in ((h * factor, g), (h, g * factor)):
                fl = check_theorem_4_1(hs, gs, form=form)
                ex = check_theorem_4_1(hs, gs, form=form, exact=True)
                assert fl.holds is ex.holds
                assert fl.relative_gap == pytest.approx(float(ex.relative_gap), rel=1e-12,
                                                        abs=1e-15)
                assert fl.lhs == pytest.approx(float(ex.lhs), rel=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_float_and_exact_agree_on_random_instances(seed):
    rng = np.random.default_rng(seed)
    m = int(rng.integers(2, 8))
    h, g = rng.normal(size=m) * 3 + 10, rng.normal(size=m)
    gamma, beta = float(rng.uniform(0.2, 3)), float(rng.normal())
    for form in ("printed", "corrected"):
        fl = check_theorem_4_1(h, g, gamma=gamma, beta=beta, form=form)
        ex = check_theorem_4_1(h, g, gamma=gamma, beta=beta, form=form, exact=True)
        assert fl.holds is ex.holds
        for name in ("lhs", "rhs", "magnitude"):
            assert getattr(fl, name) == pytest.approx(float(getattr(ex, name)), rel=1e-12)
        assert fl.gap == pytest.approx(float(ex.gap), abs=1e-12 * fl.magnitude)
        for name in ("grad_h", "hhat", "z"):
            np.testing.assert_allclose(getattr(fl, name),
                                       np.array(getattr(ex, name), dtype=float),
                                       rtol=1e-12, atol=1e-12)
        assert fl.mu == pytest.approx(float(ex.mu), rel=1e-14)
        assert fl.sigma == pytest.approx(float(ex.sigma), rel=1e-13)


def test_large_mean_small_spread_is_centred_accurately():
    # mean 1e8, spread ~1: naive centring would lose 8 digits
    h = 1e8 + np.array([0.25, -1.5, 0.75, 2.0, -0.5])
    g = np.array([0.5, 1.0, -1.0, 0.25, 2.0])
    fl = check_theorem_4_1(h, g, form="printed")
    ex = check_theorem_4_1(h, g, form="printed", exact=True)
    assert fl.holds is ex.holds is False
    assert fl.gap == pytest.approx(float(ex.gap), rel=1e-12)
    np.testing.assert_allclose(fl.hhat, np.array(ex.hhat, dtype=float), rtol=1e-14, atol=1e-15)


# ---- eps > 0 ----------------------------------------------------------------------------

def test_eps_positive_gives_no_verdict_and_the_true_gradient():
    h, g, eps = np.array([1.0, 2.0, 4.0, 0.0]), np.array([1.0, -2.0, 0.5, 0.25]), 0.3
    for form in ("printed", "corrected"):
        r = check_theorem_4_1(h, g, gamma=1.5, form=form, eps=eps)
        assert r.holds is None and r.refutes is False
        assert "eps > 0" in r.note and "do not apply" in r.note
        assert r.norm_hhat_sq == pytest.approx(4 * h.var() / (h.var() + eps), rel=1e-14)
        assert r.s == pytest.approx(math.sqrt(h.var() + eps), rel=1e-15)
        np.testing.assert_allclose(r.grad_h, fd_grad_h(h, g, 1.5, eps=eps), rtol=1e-7)
    ex = check_theorem_4_1(h, g, gamma=1.5, form="corrected", eps=0.3, exact=True)
    assert ex.holds is None and ex.gap != 0      # the eps = 0 identity really breaks
    # a constant h is a valid input when eps > 0 (hhat = 0, the gradient is (gamma/s) P0 g)
    r = check_theorem_4_1([2.0, 2.0, 2.0], [1.0, 0.0, -2.0], eps=1e-5)
    assert r.holds is None and np.all(r.hhat == 0)
    np.testing.assert_allclose(r.grad_h, (np.array([1.0, 0.0, -2.0]) + 1 / 3) / math.sqrt(1e-5))


# ---- bad input -----------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, error, match", [
    (dict(h=[1.0, 2.0, 3.0], grad=[1.0, 2.0]), ValueError, r"grad must have shape \(3,\)"),
    (dict(h=[1.0], grad=[1.0]), ValueError, "m >= 2"),
    (dict(h=[[1.0, 2.0]], grad=[1.0, 2.0]), ValueError, "h must be a vector"),
    (dict(h=[2.0, 2.0, 2.0], grad=[1.0, 2.0, 3.0]), ValueError, "h is constant"),
    (dict(h=[1.0, np.nan], grad=[1.0, 2.0]), ValueError, "h must be finite"),
    (dict(h=[1.0, 2.0], grad=[np.inf, 2.0]), ValueError, "grad must be finite"),
    (dict(h=[1.0, 2.0], grad=[1.0, 2.0], gamma=0.0), ValueError, "gamma must be nonzero"),
    (dict(h=[1.0, 2.0], grad=[1.0, 2.0], gamma=math.inf), ValueError, "gamma must be finite"),
    (dict(h=[1.0, 2.0], grad=[1.0, 2.0], eps=-1e-5), ValueError, "eps must be"),
    (dict(h=[1.0, 2.0], grad=[1.0, 2.0], form="sqrt"), ValueError, "form must be one of"),
    (dict(h=[1.0, 2.0], grad=[1.0, 2.0], form=1), TypeError, "form must be one of"),
    (dict(h=[1.0, 2.0], grad=[1.0, 2.0], exact=1), TypeError, "exact must be a bool"),
    (dict(h=[1.0, 2.0], grad=[1.0, 2.0], exact="yes"), TypeError, "exact must be a bool"),
    (dict(h=[1.0, 2.0], grad=[1.0, 2.0], gamma=True), TypeError, "gamma"),
    (dict(h=[1.0, 2.0], grad=[1.0, 2.0], beta="0"), TypeError, "beta"),
    (dict(h="12", grad=[1.0, 2.0]), TypeError, "h must be"),
    (dict(h=[True, False], grad=[1.0, 2.0]), TypeError, "h must hold real numbers"),
])
@pytest.mark.parametrize("exact", [False, True])
def test_bad_input_raises(kwargs, error, match, exact):
    kwargs = dict(kwargs)
    kwargs.setdefault("exact", exact)
    with pytest.raises(error, match=match):
        check_theorem_4_1(**kwargs)


# ---- the report ----------------------------------------------------------------------------

def test_report_is_frozen_serializable_and_exposes_quantities():
    r = check_theorem_4_1(H3, [1.0, -2.0, 0.5], gamma=1.5)
    assert isinstance(r, StatementReport)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.holds = True
    with pytest.raises(ValueError):
        r.grad_h[0] = 0.0                          # read-only arrays
    with pytest.raises(TypeError):
        r.quantities["mu"] = 0.0                   # read-only mapping
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        r.nonsense
    assert r.mu == r.quantities["mu"]
    d = json.loads(json.dumps(r.to_dict()))
    assert d["statement"] == "Theorem 4.1" and d["form"] == "printed"
    assert d["holds"] is False and d["exact"] is False and "exact_forms" not in d
    assert d["gap"] == pytest.approx(r.gap) and len(d["quantities"]["grad_h"]) == 3
    assert np.array(d["quantities"]["projection"]).shape == (3, 3)
    e = check_theorem_4_1(H3, G3, gamma=GAMMA3, exact=True).to_dict()
    e = json.loads(json.dumps(e))
    assert e["exact_forms"]["gap"] == "27/3136 - 27*sqrt(3)/3136"
    assert e["exact_forms"]["quantities"]["sigma"] == "sqrt(14)/3"
    assert e["gap"] == pytest.approx(27 / 3136 * (1 - math.sqrt(3)), rel=1e-15)
    # values beyond the float64 range are None in JSON, the verdict survives
    big = check_theorem_4_1(np.array(H3) * 1e-300, np.array([1.0, -2.0, 0.5]) * 1e300)
    assert big.lhs == math.inf and big.holds is False
    assert json.loads(json.dumps(big.to_dict()))["lhs"] is None
