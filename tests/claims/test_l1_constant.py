"""The l1 constant of Hoffer et al. (2018): E|x - mu| = sigma sqrt(2/pi) exactly, its
finite-batch reading (fails) and the c4(B) correction (exact), the float quadrature
against the exact values, and the Monte Carlo sweep of E[mad_B]/E[std_B].

Oracles independent of bnfast.claims: mpmath's quadrature at 30 digits, the c4 table of
the statistics literature, B = 2 by hand (mad_2 = std_2 = |x_1 - x_2|/2), and plain
NumPy sampling."""

import math
from fractions import Fraction

import mpmath
import numpy as np
import pytest
import sympy

from bnfast.claims import audit as audit_module
from bnfast.claims.counterexample import find_counterexample
from bnfast.claims.l1_constant import (SWEEP_SIZES, c4, check_l1_constant, draw_batch,
                                       l1_ratio_sweep)

ROOT_2_PI = math.sqrt(2 / math.pi)


# ---- exact -------------------------------------------------------------------------------

@pytest.mark.parametrize("sigma, mu", [(1, 0), (3, -2), (Fraction(1, 3), Fraction(5, 7)),
                                       (0.1, 2.5), (sympy.sqrt(2), 1)])
def test_population_constant_is_exact(sigma, mu):
    r = check_l1_constant(sigma, mu, exact=True)
    s = sympy.nsimplify(sigma) if not isinstance(sigma, float) else \
        sympy.Rational(*sigma.as_integer_ratio())
    assert r.holds is True and r.gap == 0 and r.relation == "="
    assert sympy.simplify(r.lhs - s * sympy.sqrt(2 / sympy.pi)) == 0
    # mpmath's quadrature of the definition, at 30 digits
    with mpmath.workdps(30):
        sm, mm = mpmath.mpf(float(sympy.N(s, 40))), mpmath.mpf(float(sympy.N(mu, 40)))
        value = mpmath.quad(lambda x: abs(x - mm) * mpmath.npdf(x, mm, sm),
                            [-mpmath.inf, mm, mpmath.inf])
    assert float(r.lhs) == pytest.approx(float(value), rel=1e-14)


def test_batch_of_two_by_hand():
    # mad_2 = std_2 = |x_1 - x_2| / 2 and x_1 - x_2 ~ N(0, 2 sigma^2): both expectations
    # are sigma / sqrt(pi), so the ratio is exactly 1 and the printed constant is off
    # by sqrt(pi/2)
    r = check_l1_constant(1, 0, 2, form="batch", exact=True)
    assert r.mad == r.std == 1 / sympy.sqrt(sympy.pi) and r.ratio == 1
    assert r.lhs == sympy.sqrt(2) / 2 and r.rhs == 1 / sympy.sqrt(sympy.pi)
    assert r.holds is False and r.c4 == sympy.sqrt(2 / sympy.pi)


@pytest.mark.parametrize("B", range(2, 9))
def test_finite_batch_values_are_exact(B):
    sigma = sympy.Rational(3, 2)
    batch = check_l1_constant(sigma, 1, B, form="batch", exact=True)
    fixed = check_l1_constant(sigma, 1, B, form="corrected", exact=True)
    assert batch.holds is False and fixed.holds is True and fixed.gap == 0
    # E|x_i - xbar| = sigma sqrt(2/pi) sqrt((B-1)/B) and E[std_B] = c4 sigma sqrt((B-1)/B)
    assert sympy.simplify(batch.mad - batch.mad_closed_form) == 0
    spread = sigma * sympy.sqrt(sympy.Rational(B - 1, B))
    assert sympy.simplify(batch.std - c4(B, exact=True) * spread) == 0
    # the printed form's relative gap is 1 - c4(B) = 1/(4B) + O(1/B^2)
    assert float(batch.gap / batch.rhs) == pytest.approx(1 - 1 / c4(B), rel=1e-12)
    # E sqrt(chi^2_{B-1}) against mpmath's quadrature
    with mpmath.workdps(30):
        n = B - 1
        chi = mpmath.quad(lambda t: mpmath.sqrt(t) * t ** (mpmath.mpf(n) / 2 - 1)
                          * mpmath.exp(-t / 2) / (2 ** (mpmath.mpf(n) / 2)
                                                  * mpmath.gamma(mpmath.mpf(n) / 2)),
                          [0, mpmath.inf])
    assert float(batch.std) == pytest.approx(float(sigma) / math.sqrt(B) * float(chi),
                                             rel=1e-14)


def test_c4_against_the_table():
    # c4(n) as tabulated for control charts (ASTM E2587 / Montgomery): n = 2..10, 25
    table = {2: 0.7979, 3: 0.8862, 4: 0.9213, 5: 0.9400, 6: 0.9515, 7: 0.9594,
             8: 0.9650, 9: 0.9693, 10: 0.9727, 25: 0.9896}
    for n, value in table.items():
        assert c4(n) == pytest.approx(value, abs=5e-5)
        assert float(c4(n, exact=True)) == pytest.approx(c4(n), rel=1e-14)
    assert c4(3, exact=True) == sympy.sqrt(sympy.pi) / 2


# ---- float against exact --------------------------------------------------------------

@pytest.mark.parametrize("B", [2, 3, 5, 16, 64])
def test_float_quadrature_agrees_with_exact(B):
    for form in ("population", "batch", "corrected"):
        ex = check_l1_constant(2, -1, B, form=form, exact=True)
        fl = check_l1_constant(2.0, -1.0, B, form=form)
        assert fl.holds is ex.holds
        assert fl.lhs == pytest.approx(float(ex.lhs), rel=1e-13)
        assert fl.rhs == pytest.approx(float(ex.rhs), rel=1e-13)
        assert abs(fl.lhs - float(ex.lhs)) <= fl.tolerance
        for name in ("mad", "std", "c4", "ratio"):
            assert getattr(fl, name) == pytest.approx(float(getattr(ex, name)), rel=1e-13)


# ---- a planted wrong form is caught ----------------------------------------------------

@pytest.mark.parametrize("wrong", ["no sqrt((B-1)/B)", "unbiased c4 on the biased std"])
def test_a_planted_wrong_form_is_caught(wrong):
    def check(instance, exact):
        r = check_l1_constant(**instance, form="corrected", exact=exact)
        one = sympy.Integer(1) if exact else 1.0
        sigma = r.abs_moment / (sympy.sqrt(2 / sympy.pi) if exact else ROOT_2_PI)
        if wrong == "no sqrt((B-1)/B)":
            a, b = r.mad, sigma * (sympy.sqrt(2 / sympy.pi) if exact else ROOT_2_PI)
        else:
            a, b = r.std, r.c4 * sigma * one
        return (sympy.simplify(a - b) == 0) if exact else bool(abs(a - b) <= 1e-12 * abs(b))

    ce = find_counterexample(check, draw_batch, tries=5, seed=0)
    assert ce is not None and ce.m == 2 and int(ce.instance["B"]) == 2
    assert check(ce.instance, exact=True) is False


def test_the_audit_rows():
    rows = audit_module.audit(["l1-constant"], seed=3)
    assert [(r.form, r.verdict) for r in rows] == [("population", "identity"),
                                                  ("batch B", "fails"),
                                                  ("corrected", "identity")]
    ce = rows[1].counterexample.to_dict()
    assert ce["instance"] == {"B": 2, "sigma": 1, "mu": 0}     # minimal under the shrink
    assert rows[1].report.exact and rows[1].to_dict()["exact_forms"]["lhs"] == "sqrt(2)/2"
    sweep = rows[2].extra["monte_carlo"]
    assert sweep["sizes"] == list(SWEEP_SIZES) and all(sweep["covered"])
    assert any("Bonferroni" in line for line in rows[2].notes)
    assert [r.to_dict() for r in audit_module.audit(["l1-constant"], seed=3)] == \
        [r.to_dict() for r in rows]


# ---- the Monte Carlo sweep ---------------------------------------------------------------

def test_sweep_covers_the_exact_values_and_converges():
    s = l1_ratio_sweep()
    assert s.ratio[0] == pytest.approx(1.0, abs=1e-12)       # mad_2 = std_2 per batch
    assert np.all(s.covered) and np.all(s.mad_covered)
    np.testing.assert_allclose(s.exact, ROOT_2_PI / np.array([c4(B) for B in s.sizes]),
                               rtol=1e-14)
    assert np.all(np.diff(s.exact) < 0) and s.exact[-1] - ROOT_2_PI < 2e-3
    # 10,000 batches tell the finite-B value from the limit even at B = 256
    assert np.all(s.limit_excluded)
    assert s.limit == pytest.approx(0.7978845608, abs=1e-10)


def test_sweep_reproducible_per_seed_and_a_wrong_value_is_excluded():
    a = l1_ratio_sweep(sizes=(3, 8, 50), batches=4000, seed=11)
    b = l1_ratio_sweep(sizes=(3, 8, 50), batches=4000, seed=11)
    c = l1_ratio_sweep(sizes=(3, 8, 50), batches=4000, seed=12)
    assert a.to_dict() == b.to_dict() and a.to_dict() != c.to_dict()
    # the interval, as the sweep computes it, excludes a planted wrong exact value
    half = a.z * a.se
    assert np.all(np.abs(a.ratio - a.exact) <= half + 1e-9)
    wrong = a.exact * 1.02
    assert np.all(np.abs(a.ratio - wrong) > half)


def test_sweep_coverage_over_seeds():
    # simultaneous 95% intervals: all sizes covered on (nearly) every seed
    covered = [bool(np.all(l1_ratio_sweep(sizes=(2, 5, 20), batches=3000, seed=s).covered))
               for s in range(12)]
    assert sum(covered) >= 10


def test_sweep_agrees_with_plain_numpy_sampling():
    s = l1_ratio_sweep(sizes=(7,), batches=2000, seed=4, sigma=2.5)
    x = np.random.default_rng(4).normal(0.0, 2.5, size=(2000, 7))
    c = x - x.mean(axis=1, keepdims=True)
    assert s.mad[0] == pytest.approx(np.abs(c).mean(), rel=1e-12)
    assert s.ratio[0] == pytest.approx(np.abs(c).mean(axis=1).mean()
                                       / np.sqrt((c * c).mean(axis=1)).mean(), rel=1e-12)


# ---- bad input ---------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, error, match", [
    (dict(sigma=0), ValueError, "sigma must be > 0"),
    (dict(sigma=-1), ValueError, "sigma must be > 0"),
    (dict(sigma=1, B=1, form="batch"), ValueError, "B must be >= 2"),
    (dict(sigma=1, B=2.5, form="batch"), TypeError, "B must be an int"),
    (dict(sigma=1, form="corrected"), ValueError, "needs the batch size B"),
    (dict(sigma=1, form="printed"), ValueError, "form"),
    (dict(sigma="1"), TypeError, "sigma"),
])
def test_bad_input_raises(kwargs, error, match):
    for exact in (False, True):
        with pytest.raises(error, match=match):
            check_l1_constant(**kwargs, exact=exact)
    with pytest.raises(ValueError, match="level"):
        l1_ratio_sweep(level=1.0)
    with pytest.raises(ValueError, match="sizes"):
        l1_ratio_sweep(sizes=())
