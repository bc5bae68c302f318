"""Theorem 4.2 of Santurkar et al. (2018): (a) is an equality at eps = 0, (b) fails on
some instances, also under the formal reading of its hypothesis.

Oracles are independent of bnfast.claims: the loss is the quadratic
L(z) = <g, z - z0> + (z - z0)^T H (z - z0) / 2 (gradient g and Hessian H at z0), and
Lhat(h) = L(gamma * hhat(h) + beta) is differentiated twice by central finite
differences (float64) or by sympy from the BN transform written with symbols (exact)."""

import math
from fractions import Fraction

import numpy as np
import pytest
import sympy
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bnfast.claims import check_theorem_4_2

S = sympy.sympify
EPS64 = np.finfo(np.float64).eps


# ---- independent oracles --------------------------------------------------------------

class QuadraticLoss:
    """Lhat(h) = L(gamma * hhat(h) + beta) for the quadratic L with gradient g and
    Hessian H at the BN output of h0 (float64, eps as given)."""

    def __init__(self, h0, g, H, gamma=1.0, beta=0.0, eps=0.0):
        self.g, self.H, self.gamma, self.beta, self.eps = g, H, gamma, beta, eps
        self.z0 = self.z(np.asarray(h0, dtype=float))
        self.h0 = np.asarray(h0, dtype=float)
        self.step = np.sqrt(self.h0.var() + eps)

    def z(self, h):
        return self.gamma * (h - h.mean()) / np.sqrt(h.var() + self.eps) + self.beta

    def __call__(self, h):
        d = self.z(h) - self.z0
        return float(self.g @ d + d @ self.H @ d / 2)

    def gradient(self):
        a = 1e-6 * self.step
        eye = np.eye(self.h0.size) * a
        return np.array([(self(self.h0 + e) - self(self.h0 - e)) / (2 * a) for e in eye])

    def hessian(self):
        a = 1e-4 * self.step
        m = self.h0.size
        out = np.empty((m, m))
        for i in range(m):
            for j in range(m):
                ei, ej = np.eye(m)[i] * a, np.eye(m)[j] * a
                out[i, j] = (self(self.h0 + ei + ej) - self(self.h0 + ei - ej)
                             - self(self.h0 - ei + ej) + self(self.h0 - ei - ej)) / (4 * a * a)
        return out

    def curvature_along(self, v):
        """d^2/dt^2 Lhat(h0 + t v) at t = 0."""
        t = 1e-4 * self.step / np.linalg.norm(v)
        return (self(self.h0 + t * v) - 2 * self(self.h0) + self(self.h0 - t * v)) / t ** 2


def sympy_hessian(h, g, H, gamma):
    """The exact Hessian of Lhat at h by the chain rule J^T H J + sum_i g_i d^2 z_i,
    with the first and second derivatives of z(v) = gamma * hhat(v) taken by sympy."""
    m = len(h)
    v = sympy.symbols(f"v0:{m}", real=True)
    mean = sum(v) / m
    std = sympy.sqrt(sum((e - mean) ** 2 for e in v) / m)
    z = [S(gamma) * (e - mean) / std for e in v]
    at = {x: S(e) for x, e in zip(v, h)}
    J = sympy.Matrix(m, m, lambda i, j: sympy.diff(z[i], v[j]).subs(at))
    out = J.T * sympy.Matrix(H).applyfunc(S) * J
    for i in range(m):
        out += S(g[i]) * sympy.hessian(z[i], v).subs(at)
    return out.applyfunc(sympy.radsimp)


def same(a, b):
    return sympy.simplify(S(a) - S(b)) == 0


def symmetric(rng, m, psd=False):
    A = rng.normal(size=(m, m))
    return A @ A.T if psd else (A + A.T) / 2


# ---- (a): an equality -------------------------------------------------------------------

H4 = [1, 2, 4, -1]
G4 = [1, -2, Fraction(1, 2), Fraction(1, 4)]
HESS4 = [[2, 1, 0, -1], [1, 0, 3, 1], [0, 3, -2, 0], [-1, 1, 0, 1]]


def test_part_a_exact_equality_and_the_hessian_against_sympy():
    r = check_theorem_4_2(H4, G4, HESS4, gamma=Fraction(3, 2), part="a", exact=True)
    assert r.statement == "Theorem 4.2(a)" and r.form == "printed"
    assert r.gap == 0 and r.holds is True and r.hypothesis_met is None
    oracle = sympy_hessian(H4, G4, HESS4, Fraction(3, 2))
    assert all(same(a, b) for a, b in zip(np.ravel(r.hessian_bn), oracle))
    gt = sympy.Matrix(list(r.grad_h))
    assert same(r.lhs, (gt.T * oracle * gt)[0])
    # the right side from the definitions: sigma^2 = mean((h - mu)^2), <g, hhat>
    mu = Fraction(sum(H4), 4)
    var = sum((Fraction(x) - mu) ** 2 for x in H4) / 4
    g_hhat = sum(Fraction(g) * (x - mu) for g, x in zip(G4, H4)) / sympy.sqrt(S(var))
    k = S(Fraction(9, 4) / var)
    H = sympy.Matrix(HESS4)
    rhs = k * (gt.T * H * gt)[0] - S(Fraction(3, 2)) / (4 * S(var)) * g_hhat * (gt.T * gt)[0]
    assert same(r.rhs, rhs)


def test_part_a_float_against_finite_differences():
    h, g = np.array(H4, float), np.array([1.0, -2.0, 0.5, 0.25])
    H = np.array(HESS4, float)
    r = check_theorem_4_2(h, g, H, gamma=1.5)
    loss = QuadraticLoss(h, g, H, gamma=1.5)
    np.testing.assert_allclose(r.grad_h, loss.gradient(), rtol=1e-7)
    np.testing.assert_allclose(r.hessian_bn, loss.hessian(), rtol=1e-5, atol=1e-5)
    assert r.lhs == pytest.approx(loss.curvature_along(loss.gradient()), rel=1e-5)
    assert r.holds is True and abs(r.gap) <= r.tolerance


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1), m=st.integers(2, 8),
       gamma=st.sampled_from([1.0, -0.5, 3.0, 1e-3]))
def test_part_a_gap_is_zero_to_rounding(seed, m, gamma):
    rng = np.random.default_rng(seed)
    h = rng.normal(size=m) * rng.uniform(0.1, 10) + rng.normal() * 100
    g, H = rng.normal(size=m), symmetric(rng, m)
    r = check_theorem_4_2(h, g, H, gamma=gamma, part="a")
    assert r.holds is True
    assert abs(r.relative_gap) <= 64 * m * EPS64
    if m > 2:   # (at m = 2, gt = 0) against the second derivative along gt
        loss = QuadraticLoss(h, g, H, gamma=gamma)
        assert abs(r.lhs - loss.curvature_along(r.grad_h)) <= 1e-5 * r.magnitude


@settings(max_examples=15, deadline=None)
@given(m=st.integers(2, 4), data=st.data())
def test_part_a_exact_gap_is_zero_on_integer_instances(m, data):
    ints = st.lists(st.integers(-5, 5), min_size=m, max_size=m)
    h, g = data.draw(ints), data.draw(ints)
    assume(len(set(h)) > 1)
    H = [[0] * m for _ in range(m)]
    for i in range(m):
        for j in range(i, m):
            H[i][j] = H[j][i] = data.draw(st.integers(-4, 4))
    r = check_theorem_4_2(h, g, H, gamma=data.draw(st.sampled_from([1, -2, Fraction(1, 3)])),
                          exact=True)
    assert r.gap == 0 and r.holds is True


# ---- (b): fails, also under its hypothesis ----------------------------------------------

def test_part_b_reduces_to_comparing_the_two_quadratic_forms():
    rng = np.random.default_rng(7)
    verdicts = set()
    for _ in range(30):
        m = int(rng.integers(3, 7))
        h, g, H = rng.normal(size=m), rng.normal(size=m), symmetric(rng, m, psd=True)
        r = check_theorem_4_2(h, g, H, gamma=1.0, part="b")
        gt = QuadraticLoss(h, g, H).gradient()
        assert r.holds is bool(gt @ H @ gt <= g @ H @ g)
        assert r.quad_grad_h == pytest.approx(gt @ H @ gt, rel=1e-6)
        assert r.quad_g == pytest.approx(g @ H @ g, rel=1e-12)
        assert r.hypothesis_met is False                 # generic H
        assert r.refutes is False
        verdicts.add(r.holds)
    assert verdicts == {True, False}                     # (b) fails on some PSD instances


def test_part_b_fails_under_the_formal_hypothesis():
    # H = c I: every vector has the Rayleigh quotient c, so the hypothesis is met;
    # (b) then reads c (||gt||^2 - ||g||^2) <= 0, false when gamma/sigma is large.
    g4 = [1, -2, 0.5, 0.25]                              # G4, readable by both paths
    for exact in (False, True):
        r = check_theorem_4_2(H4, g4, np.eye(4) * 2, gamma=10, part="b", exact=exact)
        assert r.hypothesis_met is True and r.holds is False and r.refutes
        assert "counterexample to the formal reading" in r.note
        assert float(r.rayleigh_g) == pytest.approx(2)
        assert float(r.rayleigh_grad_h) == pytest.approx(2)
        assert float(r.norm_grad_h_sq) > float(r.norm_g_sq)
        small = check_theorem_4_2(H4, g4, np.eye(4) * 2, gamma=0.125, part="b", exact=exact)
        assert small.hypothesis_met is True and small.holds is True
    # the gap is exactly (gamma^2/sigma^2) c (||g||^2 - ||gt||^2)
    r = check_theorem_4_2(H4, G4, np.eye(4) * 2, gamma=10, part="b", exact=True)
    mu = Fraction(sum(H4), 4)
    var = sum((Fraction(x) - mu) ** 2 for x in H4) / 4
    gt = np.array([sympy.nsimplify(x) for x in r.grad_h])
    gg = sum(Fraction(x) ** 2 for x in G4)
    assert same(r.gap, S(100 / var) * 2 * (S(gg) - sum(x ** 2 for x in gt)))


def test_part_b_hypothesis_undefined_when_the_gradient_vanishes():
    # m = 2: P = 0 so gt = 0
    r = check_theorem_4_2([0, 1], [1, 3], [[1, 0], [0, 2]], part="b", exact=True)
    assert r.hypothesis_met is None and r.lhs == 0 and "cannot be read" in r.note
    assert r.holds is True                               # g^T H g = 19 >= 0
    r = check_theorem_4_2([0.0, 1.0], [1.0, 3.0], [[-1.0, 0.0], [0.0, -2.0]], part="b")
    assert r.hypothesis_met is None and r.holds is False  # g^T H g < 0 = gt^T H gt


def test_part_b_verdict_scales_with_g_and_h_but_not_with_gamma_over_sigma():
    rng = np.random.default_rng(3)
    h, g, H = rng.normal(size=5), rng.normal(size=5), symmetric(rng, 5, psd=True)
    base = check_theorem_4_2(h, g, H, part="b")
    for factor in (1e-150, 1e150):
        assert check_theorem_4_2(h, g * factor, H, part="b").holds is base.holds
        assert check_theorem_4_2(h, g, H * factor, part="b").holds is base.holds
        # scaling h and gamma together keeps gamma/sigma, hence the verdict
        assert check_theorem_4_2(h * factor, g, H, gamma=factor, part="b").holds is base.holds
        # scaling h alone changes gamma/sigma: then float and exact must still agree
        for part in ("a", "b"):
            fl = check_theorem_4_2(h * factor, g, H, part=part)
            ex = check_theorem_4_2(h * factor, g, H, part=part, exact=True)
            assert fl.holds is ex.holds and fl.hypothesis_met is ex.hypothesis_met
            assert fl.relative_gap == pytest.approx(float(ex.relative_gap), rel=1e-9,
                                                    abs=1e-15)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1), factor=st.sampled_from([1e-150, 1e150]),
       which=st.sampled_from(["h", "grad"]))
def test_part_a_verdict_does_not_depend_on_scale(seed, factor, which):
    rng = np.random.default_rng(seed)
    m = int(rng.integers(2, 7))
    h, g, H = rng.normal(size=m), rng.normal(size=m), symmetric(rng, m)
    hs, gs = (h * factor, g) if which == "h" else (h, g * factor)
    r = check_theorem_4_2(hs, gs, H, part="a")
    assert r.holds is True and abs(r.relative_gap) <= 64 * m * EPS64


# ---- float and exact agree ----------------------------------------------------------------

@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("part", ["a", "b"])
def test_float_and_exact_agree_on_random_instances(seed, part):
    rng = np.random.default_rng(100 + seed)
    m = int(rng.integers(2, 6))
    h, g, H = rng.normal(size=m) + 5, rng.normal(size=m), symmetric(rng, m, psd=seed % 2 == 0)
    gamma = float(rng.uniform(0.3, 4)) * (-1) ** seed
    fl = check_theorem_4_2(h, g, H, gamma=gamma, part=part)
    ex = check_theorem_4_2(h, g, H, gamma=gamma, part=part, exact=True)
    assert fl.holds is ex.holds and fl.hypothesis_met is ex.hypothesis_met
    for name in ("lhs", "rhs", "magnitude", "quad_g", "curvature_term"):
        assert getattr(fl, name) == pytest.approx(float(getattr(ex, name)), rel=1e-11,
                                                  abs=1e-12 * fl.magnitude), name
    assert fl.gap == pytest.approx(float(ex.gap), abs=1e-12 * fl.magnitude)
    np.testing.assert_allclose(fl.hessian_bn, np.array(ex.hessian_bn, dtype=float),
                               rtol=1e-11, atol=1e-12 * np.abs(fl.hessian_bn).max())


# ---- eps > 0 and bad input -------------------------------------------------------------------

def test_eps_positive_gives_no_verdict_and_the_true_hessian():
    h, g = np.array([1.0, 2.0, 4.0, -1.0]), np.array([1.0, -2.0, 0.5, 0.25])
    H = np.array(HESS4, float)
    for part in ("a", "b"):
        r = check_theorem_4_2(h, g, H, gamma=1.5, part=part, eps=0.5)
        assert r.holds is None and "eps > 0" in r.note
        loss = QuadraticLoss(h, g, H, gamma=1.5, eps=0.5)
        np.testing.assert_allclose(r.hessian_bn, loss.hessian(), rtol=1e-5, atol=1e-5)
    ex = check_theorem_4_2(H4, G4, HESS4, gamma=Fraction(3, 2), eps=Fraction(1, 2), exact=True)
    assert ex.holds is None and ex.gap != 0


@pytest.mark.parametrize("hessian, part, error, match", [
    ([[1.0, 0.0], [0.0, 1.0]], "a", ValueError, r"square \(3, 3\)"),
    ([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], "a", ValueError, r"square \(3, 3\)"),
    ([[1.0, 2.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], "a", ValueError, "symmetric"),
    ([[1.0, 0.0, 0.0], [0.0, np.nan, 0.0], [0.0, 0.0, 1.0]], "a", ValueError, "finite"),
    (np.eye(3), "c", ValueError, "part must be one of"),
    (np.eye(3), None, TypeError, "part must be one of"),
    ("eye", "a", TypeError, "hessian"),
])
@pytest.mark.parametrize("exact", [False, True])
def test_bad_input_raises(hessian, part, error, match, exact):
    with pytest.raises(error, match=match):
        check_theorem_4_2([1.0, 2.0, 4.0], [1.0, 0.0, -1.0], hessian, part=part, exact=exact)


def test_bad_common_input_raises():
    with pytest.raises(ValueError, match="h is constant"):
        check_theorem_4_2([1.0, 1.0], [1.0, 0.0], np.eye(2))
    with pytest.raises(ValueError, match="gamma must be nonzero"):
        check_theorem_4_2([1.0, 2.0], [1.0, 0.0], np.eye(2), gamma=0)
    with pytest.raises(TypeError, match="exact must be a bool"):
        check_theorem_4_2([1.0, 2.0], [1.0, 0.0], np.eye(2), exact=None)
    assert math.isfinite(check_theorem_4_2([1.0, 2.0], [1.0, 0.0], np.eye(2)).rhs)
