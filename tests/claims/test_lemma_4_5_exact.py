"""bnfast.claims in exact arithmetic (sympy): the proof-grade path.

Expected values are the exact forms of docs/math/lemma_4_5.md typed in by hand, or computed in the
test with fractions.Fraction from a known affine relation; exact forms are compared
symbolically (sympy.simplify(a - b) == 0), never as floats."""

import json
import time
from fractions import Fraction

import numpy as np
import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

from bnfast.claims import check_lemma_4_5, example_3_2

S = sympy.sympify
SQRT78 = sympy.sqrt(78)


def same(a, b):
    return sympy.simplify(S(a) - S(b)) == 0


def same_vec(v, expected):
    return len(v) == len(expected) and all(same(x, e) for x, e in zip(v, expected))


def is_exact(x):
    """A sympy number without floating-point atoms."""
    x = S(x)
    return isinstance(x, sympy.Basic) and x.is_number and not x.atoms(sympy.Float)


def frac_dot(a, b):
    return sum((p * q for p, q in zip(a, b)), Fraction(0))


# ---- Example 3.2: the exact numbers of docs/math/lemma_4_5.md----------------------------------

def test_example_3_2_exact_values():
    r = example_3_2(exact=True, cross_check=False)
    assert r.exact
    assert same_vec(r.w_star, [7, 5])
    assert same(r.inner_w0_w_star, 74)
    assert r.premise is True
    assert same_vec(r.bn_direction, [5, 3])
    assert same_vec(r.bn_optimum, [S("125/17"), S("75/17")])
    assert same(r.lhs, S("8/17"))
    assert same(r.rhs, 0)
    assert same(r.gap, S("-8/17"))
    assert r.holds is False
    assert same_vec(r.grad_bn_at_w_star, [-10 * SQRT78 / 507, 14 * SQRT78 / 507])
    assert r.w_star_is_bn_critical is False
    assert same(r.grad_bn_norm ** 2, (100 + 196) * S(78) / 507 ** 2)
    assert same(r.loss_std_at_w_star, 3)
    assert same(r.loss_bn_at_w_star, 224 - 18 * SQRT78 / 13)
    assert same(r.loss_bn_at_w0, 224 - 18 * SQRT78 / 13)
    assert same(r.loss_bn_min, 224 - 2 * sympy.sqrt(38))
    numbers = [*r.w_star, *r.bn_direction, *r.bn_optimum, *r.grad_bn_at_w_star, r.lhs,
               r.rhs, r.inner_w0_w_star, r.loss_bn_at_w_star, r.loss_bn_min, r.grad_bn_norm]
    assert all(is_exact(x) for x in numbers)


def test_example_3_2_exact_forms_are_simplified():
    r = example_3_2(exact=True, cross_check=False)
    # canonical forms as docs/math/lemma_4_5.md writes them (sympy's own ordering of terms)
    assert [str(g) for g in r.grad_bn_at_w_star] == ["-10*sqrt(78)/507", "14*sqrt(78)/507"]
    assert str(r.lhs) == "8/17" and str(r.rhs) == "0"
    assert [str(v) for v in r.bn_optimum] == ["125/17", "75/17"]
    assert str(r.loss_bn_min) == "224 - 2*sqrt(38)"


def test_exact_report_to_dict_carries_forms_and_values():
    r = example_3_2(exact=True, cross_check=False)
    d = json.loads(json.dumps(r.to_dict()))
    assert d["exact"] is True and d["holds"] is False
    forms = d["exact_forms"]
    assert forms["grad_bn_at_w_star"] == ["-10*sqrt(78)/507", "14*sqrt(78)/507"]
    assert forms["lhs"] == "8/17" and forms["bn_optimum"] == ["125/17", "75/17"]
    assert d["grad_bn_at_w_star"] == pytest.approx([-0.1741965, 0.2438751], abs=1e-7)
    assert d["lhs"] == pytest.approx(8 / 17, rel=1e-15)


# ---- float and exact agree ---------------------------------------------------------------

NUMERIC = ["inner_w0_w_star", "lhs", "rhs", "grad_bn_norm", "loss_std_at_w_star",
           "loss_bn_at_w_star", "loss_bn_at_w0", "loss_bn_min"]
VECTORS = ["w_star", "bn_direction", "grad_bn_at_w_star", "w0"]


def assert_agree(fl, ex, rtol=1e-9):
    assert fl.premise == ex.premise and fl.holds is ex.holds
    assert fl.w_star_is_bn_critical == ex.w_star_is_bn_critical
    scale = max(1.0, float(ex.inner_w0_w_star) if ex.inner_w0_w_star else 1.0)
    for name in NUMERIC:
        assert getattr(fl, name) == pytest.approx(float(getattr(ex, name)), rel=rtol,
                                                  abs=rtol * scale), name
    for name in VECTORS:
        np.testing.assert_allclose(getattr(fl, name),
                                   np.array(getattr(ex, name), dtype=float),
                                   rtol=rtol, atol=rtol, err_msg=name)
    if ex.bn_optimum is None:
        assert fl.bn_optimum is None
    else:
        np.testing.assert_allclose(fl.bn_optimum, np.array(ex.bn_optimum, dtype=float),
                                   rtol=rtol)


def test_float_and_exact_agree_on_example_3_2():
    assert_agree(example_3_2(cross_check=False), example_3_2(exact=True, cross_check=False))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("gamma", [1.0, -0.75])
def test_float_and_exact_agree_on_random_float_data(seed, gamma):
    rng = np.random.default_rng(1000 + seed)
    X = rng.normal(size=(6, 3))
    y = X @ rng.normal(size=3) + 1.5 + 0.1 * rng.normal(size=6)   # noisy: not affine
    w0 = rng.normal(size=3)
    fl = check_lemma_4_5(X, y, w0, gamma=gamma, beta=0.3, cross_check=False)
    ex = check_lemma_4_5(X, y, w0, gamma=gamma, beta=0.3, exact=True, cross_check=False)
    assert_agree(fl, ex)


def test_float_inputs_are_converted_at_their_exact_binary_value():
    # y has 0.1, which is not 1/10: W* must be the exact solution for the float's value
    X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    y = [0.1, 0.2, 0.5]
    r = check_lemma_4_5(X, y, [1.0, 1.0], exact=True, cross_check=False)
    fy = [Fraction(v) for v in y]               # exact binary values
    # normal equations [[2, 1], [1, 2]] w = (y1 + y3, y2 + y3), solved by Cramer's rule
    b1, b2 = fy[0] + fy[2], fy[1] + fy[2]
    w1, w2 = (2 * b1 - b2) / 3, (2 * b2 - b1) / 3
    assert r.w_star[0] == sympy.Rational(w1.numerator, w1.denominator)
    assert r.w_star[1] == sympy.Rational(w2.numerator, w2.denominator)
    assert r.w_star[0] != sympy.Rational(1, 10) + sympy.Rational(1, 10)  # not the decimal
    # exact sympy input is taken as it is
    r = check_lemma_4_5(X, [S(1) / 10, S(2) / 10, S(5) / 10], [1, 1], exact=True,
                        cross_check=False)
    assert same_vec(r.w_star, [S("1/6"), S("4/15")])    # (2*0.6-0.7)/3, (2*0.7-0.6)/3


# ---- exact instances of the family never seen before -----------------------------------

def integer_affine_instance(seed, m=6, d=3):
    rng = np.random.default_rng(seed)
    while True:
        X = rng.integers(-5, 6, size=(m, d))
        Xc = X - X.mean(axis=0)
        if np.linalg.matrix_rank(Xc) == d:
            break
    a = [Fraction(int(v), int(q)) for v, q in zip(rng.integers(-6, 7, size=d),
                                                   rng.integers(1, 4, size=d))]
    if all(v == 0 for v in a):
        a[0] = Fraction(1)
    c = Fraction(int(rng.integers(1, 5)), int(rng.integers(1, 4)))
    y = [frac_dot(row, a) + c for row in X.tolist()]
    w0 = [Fraction(int(v)) for v in rng.integers(-4, 5, size=d)]
    return X, y, a, w0


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("gamma", [1, -2])
def test_exact_random_affine_instance(seed, gamma):
    X, y, a, w0 = integer_affine_instance(seed)
    if all(v == 0 for v in w0):
        w0[0] = Fraction(1)
    r = check_lemma_4_5(X, y, w0, gamma=gamma, beta=Fraction(1, 2), exact=True,
                        cross_check=False)
    sign = 1 if gamma > 0 else -1
    v = [sign * e for e in a]
    # the BN optimum ray is exactly the ray of sign(gamma) * a
    assert all(sympy.Rational(e.numerator, e.denominator) == d
               for e, d in zip(v, r.bn_direction))
    # the closest optimum and lhs, computed with Fractions
    t = frac_dot(w0, v) / frac_dot(v, v)
    if t > 0:
        opt = [t * e for e in v]
        lhs = frac_dot([p - q for p, q in zip(w0, opt)], [p - q for p, q in zip(w0, opt)])
        assert same_vec(r.bn_optimum, [S(f"{e}") for e in opt])
    else:
        lhs = frac_dot(w0, w0)
        assert r.bn_optimum is None
    assert same(r.lhs, S(f"{lhs}"))
    # holds decided exactly from the exact sides
    if r.premise:
        assert r.holds is bool(S(r.lhs) <= S(r.rhs))
    else:
        assert r.holds is None
    assert all(is_exact(g) for g in r.grad_bn_at_w_star)
    # the exact gradient is the symbolic gradient of the BN loss from its definition
    w = sympy.symbols("w0:3", real=True)
    Xs = sympy.Matrix(X.tolist())
    h = Xs * sympy.Matrix(w)
    mean = sum(h) / len(h)
    std = sympy.sqrt(sum((e - mean) ** 2 for e in h) / len(h))
    loss = sum((S(f"{t_}") - gamma * (e - mean) / std - S(1) / 2) ** 2 for t_, e in zip(y, h))
    at = dict(zip(w, r.w_star))
    for i in range(3):
        assert same(sympy.diff(loss, w[i]).subs(at), r.grad_bn_at_w_star[i])
    assert same(loss.subs(at), r.loss_bn_at_w_star)


@settings(max_examples=40, deadline=None)
@given(a1=st.integers(-9, 9), a2=st.integers(-9, 9), c=st.integers(1, 9),
       w=st.tuples(st.integers(-9, 9), st.integers(-9, 9)))
def test_exact_family_on_example_3_2_inputs(a1, a2, c, w):
    """y = a1 x1 + a2 x2 + c on the inputs of Example 3.2: the BN ray is (a1, a2)."""
    if (a1, a2) == (0, 0) or w == (0, 0):
        return
    X = [[1, 0], [0, 1], [1, 1]]
    y = [a1 + c, a2 + c, a1 + a2 + c]
    # W* = (X^T X)^-1 X^T y with X^T X = [[2, 1], [1, 2]] and X^T y = X^T X (a1, a2) +
    # (2c, 2c): the fit without intercept is (a1 + 2c/3, a2 + 2c/3) ((7, 5) for the example)
    w_star = [a1 + 2 * S(c) / 3, a2 + 2 * S(c) / 3]
    if w_star == [0, 0]:
        with pytest.raises(ValueError, match=r"W\* = 0"):
            check_lemma_4_5(X, y, list(w), exact=True, cross_check=False)
        return
    r = check_lemma_4_5(X, y, list(w), exact=True, cross_check=False)
    assert list(r.bn_direction) == [a1, a2]
    assert same_vec(r.w_star, w_star)
    # W* is a BN critical point exactly when it is parallel to a, i.e. when a1 = a2
    assert r.w_star_is_bn_critical is (a1 == a2)
    assert r.premise is bool(w[0] * w_star[0] + w[1] * w_star[1] > 0)


# ---- degenerate instances, decided exactly ---------------------------------------------

def test_exact_degenerate_instances_raise():
    third = S(1) / 3
    X = [[third, 2 * third], [1, 2], [2 * third, 4 * third]]       # exactly dependent
    with pytest.raises(ValueError, match="rank 1 < d = 2"):
        check_lemma_4_5(X, [1, 2, 4], [1, 1], exact=True, cross_check=False)
    with pytest.raises(ValueError, match="constant"):
        check_lemma_4_5([[1, 0], [0, 1], [1, 1]], [third] * 3, [1, 1], exact=True,
                        cross_check=False)
    with pytest.raises(ValueError, match="gamma = 0"):
        check_lemma_4_5([[1, 0], [0, 1], [1, 1]], [8, 6, 11], [7, 5], gamma=S(0),
                        exact=True, cross_check=False)
    with pytest.raises(ValueError, match="w0 must have shape"):
        check_lemma_4_5([[1, 0], [0, 1], [1, 1]], [8, 6, 11], [7, 5, 1], exact=True,
                        cross_check=False)
    with pytest.raises(TypeError):
        check_lemma_4_5([[1, 0], [0, 1], [1, 1]], [8, 6, "x"], [7, 5], exact=True,
                        cross_check=False)


def test_exact_layer():
    Y = [[8, 16], [6, 12], [11, 22]]        # the example and twice the example
    W0 = [[7, 5], [5, 3]]                   # column 0: W0 = W*; column 1: on the BN ray
    r = check_lemma_4_5([[1, 0], [0, 1], [1, 1]], Y, W0, exact=True, cross_check=False)
    assert r.n_neurons == 2 and r.w_star.shape == (2, 2)
    assert same_vec(r.w_star[:, 0], [7, 5]) and same_vec(r.w_star[:, 1], [14, 10])
    assert same_vec(r.grad_bn_at_w_star[:, 0], [-10 * SQRT78 / 507, 14 * SQRT78 / 507])
    # scaling y by 2 scales the BN loss gradient by 2 at the same direction (W* scales too:
    # the gradient is homogeneous of degree -1 in w): 2 * g / 2 = g
    assert same_vec(r.grad_bn_at_w_star[:, 1], [-10 * SQRT78 / 507, 14 * SQRT78 / 507])
    assert same(r.lhs[0], S("8/17")) and same(r.lhs[1], 0)
    assert [c.holds for c in r.columns] == [False, True] and r.holds is False
    # column 1: S = ||2 y||^2 + m gamma^2 = 4 * 221 + 3, and the correlation term doubles
    assert same(r.loss_bn_min, (224 - 2 * sympy.sqrt(38)) + (4 * 221 + 3 - 4 * sympy.sqrt(38)))


def test_exact_path_is_fast_enough_for_the_command_line():
    start = time.perf_counter()
    example_3_2(exact=True, cross_check=False)
    elapsed = time.perf_counter() - start
    # measured ~0.15 s; a generous bound that still catches a blow-up (e.g. a full
    # sympy.simplify of every intermediate)
    assert elapsed < 5.0, elapsed


def test_margin_is_the_deprecated_name_of_gap():
    # one name per idea: rhs - lhs is `gap` in every report; the old name still reads
    r = example_3_2(exact=True)
    with pytest.warns(DeprecationWarning, match="gap"):
        assert same(r.margin, r.gap)
    assert "gap" in r.to_dict() and "margin" not in r.to_dict()
