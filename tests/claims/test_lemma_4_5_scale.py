"""check_lemma_4_5 does not depend on the magnitudes of w0, X and y (float and exact).

The maths (docs/math/lemma_4_5.md, eps = 0): the BN loss does not see the scale of w
nor of X, and inequality (1) compares two squared distances from w0 to the directions
of W* and of the BN ray. So for t, s, r > 0, (X, y, w0) -> (s X, r y, t w0) keeps
premise, holds, w_star_is_bn_critical and every degenerate-instance error, and scales
the reported numbers by a known power: lhs, rhs, gap by t^2, bn_optimum by t,
w_star and bn_direction by r / s, <W0, W*> by t r / s, the BN gradient at W* by s,
the standard loss by r^2 (and the BN losses by r^2 when gamma and beta scale with y).
Chosen behaviour where a number leaves the float64 range (documented in
check_lemma_4_5): the verdict is still computed (in scaled units) and the number
saturates to +-inf or underflows towards 0; nothing raises. The exact path computes
with the exact binary values; only its float64 gradient-descent cross-check needs
inputs within the float64 range (ValueError naming the argument otherwise).

Expected values come from the unscaled instance and exact rational arithmetic
(fractions.Fraction) for the scale factors, never from the code under test at the
same scale. Every warning is an error in this suite (pyproject.toml), so overflow,
underflow and division warnings fail these tests too.
"""

import math
import sys
from fractions import Fraction

import numpy as np
import pytest
import sympy

from bnfast.claims import check_lemma_4_5

X_EX = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
Y_EX = np.array([8.0, 6.0, 11.0])
W0_EX = np.array([7.0, 5.0])

#: The magnitudes of the brief, then powers of two (exact: results must match bit
#: for bit once the power is taken out).
SCALES = [1e-300, 1e-200, 1e-150, 1e-20, 1.0, 1e20, 1e150, 1e200, 1e300]
POWERS = [-1000, -600, -60, 60, 600, 1000]
EXTREME = [1e-300, 1e-150, 1e150, 1e300]

FMAX = Fraction(sys.float_info.max)
TINY = Fraction(2.0 ** -1060)          # absolute slack where a value underflows


# ---- instances ---------------------------------------------------------------------------

def _example(w0=W0_EX, gamma=1.0, beta=0.0):
    return dict(X=X_EX, y=Y_EX, w0=np.asarray(w0, dtype=float), gamma=gamma, beta=beta)


def _random(seed, m, d, gamma=1.0, beta=0.0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(m, d))
    y = X @ rng.normal(size=d) + rng.uniform(1.0, 3.0) + 0.3 * rng.normal(size=m)
    return dict(X=X, y=y, w0=rng.normal(size=d), gamma=gamma, beta=beta)


def _clear_margins(inst):
    """The unscaled verdict is far from every decision boundary (relative 1e-3), so
    the rounding of multiplying by 1e-150 (one ulp) cannot change it."""
    r = check_lemma_4_5(**inst, cross_check=False)
    w0 = inst["w0"]
    n0 = float(w0 @ w0)
    cos_star = abs(r.inner_w0_w_star) / math.sqrt(n0 * float(r.w_star @ r.w_star))
    cos_ray = abs(float(w0 @ r.bn_direction)) / math.sqrt(
        n0 * float(r.bn_direction @ r.bn_direction))
    return r, cos_star > 1e-3 and cos_ray > 1e-3 and abs(r.gap) > 1e-3 * n0


def _pick_random():
    """Random instances: two where (1) holds, two where it fails, one without the
    premise, one with negative gamma and beta != 0 (d = 2 and 3)."""
    want = {True: 2, False: 2, None: 1}
    out = []
    for seed in range(500):
        inst = _random(seed, m=6 + seed % 2, d=2 + seed % 2)
        r, clear = _clear_margins(inst)
        if clear and want[r.holds] > 0:
            want[r.holds] -= 1
            out.append(pytest.param(inst, id=f"random{seed}-{r.holds}"))
        if not any(want.values()):
            break
    assert not any(want.values()), want
    for seed in range(500, 1000):
        inst = _random(seed, m=7, d=3, gamma=-0.5, beta=0.7)
        r, clear = _clear_margins(inst)
        if clear and r.premise:
            out.append(pytest.param(inst, id=f"random{seed}-negative-gamma-{r.holds}"))
            break
    return out


INSTANCES = [
    pytest.param(_example(), id="example-3.2"),                        # fails
    pytest.param(_example(w0=[5.0, 3.0]), id="example-w0-on-ray"),      # holds
    pytest.param(_example(w0=[-7.0, -5.0]), id="example-no-premise"),    # None
    pytest.param(_example(gamma=-1.0, beta=0.5), id="example-gamma<0"),  # fails, no What*
    *_pick_random(),
]


def scaled(inst, which, factor):
    out = dict(inst)
    out[which] = inst[which] * factor
    return out


def verdict(**kwargs):
    """What must not depend on magnitudes: the verdicts, or the error and its reason."""
    try:
        r = check_lemma_4_5(**kwargs)
    except ValueError as e:
        return ("ValueError", str(e))
    premise = r.premise.tolist() if isinstance(r.premise, np.ndarray) else r.premise
    return ("report", premise, r.holds, r.w_star_is_bn_critical,
            r.bn_optimum is None if r.n_neurons is None
            else tuple(o is None for o in r.bn_optimum))


# ---- expected numbers at another scale ---------------------------------------------------

def _fraction(x):
    return Fraction(float(x)) if not isinstance(x, Fraction) else x


def assert_scaled(got, ref, factor, unit, rtol=1e-9, name=""):
    """got (float, saturating) ~ ref * factor, factor a Fraction; unit is the
    magnitude the absolute error of ref is measured against (e.g. ||w0||^2 for the
    sides of (1)). A true value beyond the float64 range must be reported as +-inf
    with its sign; one in or below the subnormal range may underflow."""
    got = np.atleast_1d(np.asarray(got, dtype=np.float64))
    ref = np.atleast_1d(np.asarray(ref, dtype=np.float64))
    assert got.shape == ref.shape, name
    factor = _fraction(factor)
    slack = Fraction(1e-12) * _fraction(unit) * factor
    for g, r in zip(got.ravel(), ref.ravel()):
        expected = Fraction(float(r)) * factor
        tol = Fraction(rtol) * abs(expected) + slack + TINY
        if math.isinf(g):
            # allowed where the value, within its rounding, may lie beyond float64
            assert abs(expected) + tol > FMAX, (name, g, float(r))
            if abs(expected) > tol:
                assert (g > 0) == (expected > 0), (name, g, float(r))
        else:
            assert not math.isnan(g), name
            if abs(expected) - tol > FMAX:
                raise AssertionError(f"{name}: {g} should have saturated to inf")
            assert abs(Fraction(g) - expected) <= tol, (name, g, float(expected))


def assert_report_scaled(r, ref, *, t=1, s=1, q=1, loss_std=None, loss_bn=None,
                         grad=None):
    """Every number of report r against the unscaled report ref, for w0 -> t w0,
    X -> s X, y -> q y (factors as Fractions)."""
    t, s, q = Fraction(t), Fraction(s), Fraction(q)
    n0 = float(ref.w0 @ ref.w0)
    for name in ("lhs", "rhs", "gap"):
        assert_scaled(getattr(r, name), getattr(ref, name), t * t, n0, name=name)
    n_star = float(np.linalg.norm(ref.w_star))
    assert_scaled(r.w_star, ref.w_star, q / s, n_star, name="w_star")
    assert_scaled(r.bn_direction, ref.bn_direction, q / s,
                  float(np.linalg.norm(ref.bn_direction)), name="bn_direction")
    assert_scaled(r.inner_w0_w_star, ref.inner_w0_w_star, t * q / s,
                  math.sqrt(n0) * n_star, name="inner")
    if ref.bn_optimum is None:
        assert r.bn_optimum is None
    else:
        assert_scaled(r.bn_optimum, ref.bn_optimum, t, math.sqrt(n0), name="bn_optimum")
    g = s if grad is None else Fraction(grad)
    assert_scaled(r.grad_bn_at_w_star, ref.grad_bn_at_w_star, g, ref.grad_bn_norm,
                  name="grad")
    assert_scaled(r.grad_bn_norm, ref.grad_bn_norm, g, ref.grad_bn_norm, name="grad_norm")
    assert_scaled(r.loss_std_at_w_star, ref.loss_std_at_w_star,
                  q * q if loss_std is None else loss_std, ref.loss_bn_at_w0,
                  name="loss_std")
    if loss_bn is not None:
        for name in ("loss_bn_at_w_star", "loss_bn_at_w0", "loss_bn_min"):
            assert_scaled(getattr(r, name), getattr(ref, name), loss_bn, ref.loss_bn_at_w0,
                          name=name)


# ---- float path: verdicts at every magnitude ---------------------------------------------

@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("which", ["w0", "X", "y"])
@pytest.mark.parametrize("inst", INSTANCES)
def test_float_verdict_does_not_depend_on_magnitudes(inst, which, scale):
    ref = verdict(**inst, cross_check=False)
    assert ref[0] == "report"
    assert verdict(**scaled(inst, which, scale), cross_check=False) == ref


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("inst", INSTANCES)
def test_float_numbers_scale_with_w0(inst, scale):
    ref = check_lemma_4_5(**inst, cross_check=False)
    r = check_lemma_4_5(**scaled(inst, "w0", scale), cross_check=False)
    # the BN losses do not depend on w's scale
    assert_report_scaled(r, ref, t=Fraction(scale), loss_std=1, loss_bn=1, grad=1)


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("inst", INSTANCES)
def test_float_numbers_scale_with_x(inst, scale):
    ref = check_lemma_4_5(**inst, cross_check=False)
    r = check_lemma_4_5(**scaled(inst, "X", scale), cross_check=False)
    # the BN loss does not depend on X's scale; W* -> W* / s, its loss unchanged
    assert_report_scaled(r, ref, s=Fraction(scale), loss_std=1, loss_bn=1)


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("inst", INSTANCES)
def test_float_numbers_scale_with_y(inst, scale):
    ref = check_lemma_4_5(**inst, cross_check=False)
    r = check_lemma_4_5(**scaled(inst, "y", scale), cross_check=False)
    # gamma fixed: the gradient at W* does not change (linear in gamma * y, degree -1
    # in w, and W* scales with y)
    assert_report_scaled(r, ref, q=Fraction(scale), grad=1)


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("inst", INSTANCES)
def test_float_losses_scale_when_y_gamma_beta_scale_together(inst, scale):
    ref = check_lemma_4_5(**inst, cross_check=False)
    joint = dict(inst, y=inst["y"] * scale, gamma=inst["gamma"] * scale,
                 beta=inst["beta"] * scale)
    assert verdict(**joint, cross_check=False) == verdict(**inst, cross_check=False)
    r = check_lemma_4_5(**joint, cross_check=False)
    q = Fraction(scale)
    assert_report_scaled(r, ref, q=q, grad=q, loss_bn=q * q)


def test_out_of_range_numbers_saturate_and_the_verdict_stays():
    """The documented choice: no magnitude error; numbers beyond float64 are +-inf
    (or underflow), the verdict is that of Example 3.2."""
    big = check_lemma_4_5(X_EX, Y_EX, W0_EX * 1e300, cross_check=False)
    assert big.holds is False and big.premise is True
    assert big.lhs == math.inf and big.rhs == math.inf and big.gap == -math.inf
    np.testing.assert_allclose(big.w_star, [7, 5], rtol=1e-13)
    small = check_lemma_4_5(X_EX, Y_EX, W0_EX * 1e-300, cross_check=False)
    assert small.holds is False and small.lhs == 0.0 and small.rhs == 0.0
    loud = check_lemma_4_5(X_EX, Y_EX * 1e300, W0_EX, cross_check=False)
    assert loud.holds is False and loud.premise is True
    assert loud.loss_bn_min == math.inf and loud.loss_std_at_w_star == math.inf
    assert loud.lhs == pytest.approx(8 / 17, rel=1e-12)
    np.testing.assert_allclose(loud.w_star, [7e300, 5e300], rtol=1e-12)
    wide = check_lemma_4_5(X_EX * 1e-300, Y_EX * 1e300, W0_EX, cross_check=False)
    assert wide.holds is False
    assert np.all(np.isinf(wide.w_star)) and np.all(wide.w_star > 0)   # 7e600, 5e600
    assert wide.lhs == pytest.approx(8 / 17, rel=1e-12)


# ---- powers of two: bit for bit --------------------------------------------------------

FIELDS_T2 = ("lhs", "rhs", "gap", "tolerance")


@pytest.mark.parametrize("p", POWERS)
@pytest.mark.parametrize("inst", INSTANCES)
def test_powers_of_two_change_no_bit(inst, p):
    ref = check_lemma_4_5(**inst, cross_check=False)
    f = 2.0 ** p

    def same(got, want, e):
        # want * 2**e: exact where normal, inf beyond float64 (as the report saturates)
        with np.errstate(over="ignore", under="ignore"):
            want = np.ldexp(np.asarray(want, dtype=np.float64), e)
        normal = np.abs(want) >= sys.float_info.min     # exact unless it underflows
        np.testing.assert_array_equal(np.asarray(got)[normal], want[normal])

    r = check_lemma_4_5(**scaled(inst, "w0", f), cross_check=False)
    assert verdict(**scaled(inst, "w0", f), cross_check=False) == verdict(**inst,
                                                                         cross_check=False)
    for name in FIELDS_T2:
        same(getattr(r, name), getattr(ref, name), 2 * p)
    for name in ("w_star", "bn_direction", "grad_bn_at_w_star", "loss_bn_at_w0"):
        same(getattr(r, name), getattr(ref, name), 0)

    r = check_lemma_4_5(**scaled(inst, "X", f), cross_check=False)
    for name in ("lhs", "rhs", "gap", "loss_bn_min", "loss_std_at_w_star"):
        same(getattr(r, name), getattr(ref, name), 0)
    same(r.w_star, ref.w_star, -p)
    same(r.grad_bn_at_w_star, ref.grad_bn_at_w_star, p)

    r = check_lemma_4_5(**scaled(inst, "y", f), cross_check=False)
    for name in ("lhs", "rhs", "gap", "grad_bn_norm"):
        same(getattr(r, name), getattr(ref, name), 0)
    same(r.w_star, ref.w_star, p)
    same(r.loss_std_at_w_star, ref.loss_std_at_w_star, 2 * p)


# ---- degenerate instances: the same reason at every magnitude ------------------------------

DEGENERATE = [
    pytest.param(dict(X=X_EX, y=np.array([1.0, 1.0, -1.0]), w0=W0_EX), r"W\* = 0",
                 id="w-star-zero"),
    pytest.param(dict(X=np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]]),
                      y=np.array([1.0, 1.0, -1.0, -1.0]), w0=W0_EX), "uncorrelated",
                 id="uncorrelated"),
    pytest.param(dict(X=X_EX, y=np.array([4.0, 4.0, 4.0]), w0=W0_EX), "constant",
                 id="constant-y"),
    pytest.param(dict(X=np.array([[1.0, 2.0], [2.0, 4.0], [3.0, 6.0], [4.0, 8.0]]),
                      y=np.array([1.0, 2.0, 4.0, 3.0]), w0=W0_EX), "rank 1 < d = 2",
                 id="rank-deficient"),
]


@pytest.mark.parametrize("exact", [False, True], ids=["float", "exact"])
@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("which", ["w0", "X", "y"])
@pytest.mark.parametrize("inst, reason", DEGENERATE)
def test_degenerate_reason_does_not_depend_on_magnitudes(inst, reason, which, scale, exact):
    with pytest.raises(ValueError, match=reason) as unscaled:
        check_lemma_4_5(**inst, exact=exact, cross_check=False)
    with pytest.raises(ValueError) as got:
        check_lemma_4_5(**scaled(inst, which, scale), exact=exact, cross_check=False)
    assert str(got.value) == str(unscaled.value)


# ---- exact path, and float against exact ---------------------------------------------------

_CACHE = {}


def cached(key, **kwargs):
    """The unscaled reports and verdicts, computed once per instance."""
    if key not in _CACHE:
        _CACHE[key] = check_lemma_4_5(**kwargs)
    return _CACHE[key]


def exact_fraction(x):
    """A sympy number as a Fraction, to 40 significant digits."""
    return Fraction(str(sympy.N(sympy.sympify(x), 40)))


def assert_float_is_exact(got, exact_value, unit, name):
    """got (float) ~ the exact sympy number: relative 1e-9, absolute 1e-12 * unit (a
    Fraction), +-inf where the exact value lies beyond float64."""
    want = exact_fraction(exact_value)
    tol = Fraction(1e-9) * abs(want) + Fraction(1e-12) * unit + TINY
    if math.isinf(got):
        assert abs(want) + tol > FMAX, (name, got, float(want))
        if abs(want) > tol:
            assert (got > 0) == (want > 0), (name, got)
    else:
        assert abs(want) - tol <= FMAX, (name, got, "should be inf")
        assert abs(Fraction(got) - want) <= tol, (name, got, float(want))


def exact_norm(v):
    return exact_fraction(sympy.sqrt(sum(sympy.sympify(e) ** 2 for e in np.ravel(v))))


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("which", ["w0", "X", "y"])
def test_exact_example_3_2_at_every_magnitude_agrees_with_float(which, scale):
    inst = _example()
    ref = verdict(**inst, exact=True, cross_check=False)
    assert ref == verdict(**inst, cross_check=False)
    data = scaled(inst, which, scale)
    ex = check_lemma_4_5(**data, exact=True, cross_check=False)
    fl = check_lemma_4_5(**data, cross_check=False)
    assert verdict(**data, exact=True, cross_check=False) == ref
    assert (fl.premise, fl.holds, fl.w_star_is_bn_critical) == \
        (ex.premise, ex.holds, ex.w_star_is_bn_critical)
    # the float numbers are the exact ones, rounded (or saturated)
    n0 = exact_norm(ex.w0) ** 2
    n_star = exact_norm(ex.w_star)
    g = exact_norm(ex.grad_bn_at_w_star)
    units = dict(lhs=n0, rhs=n0, gap=n0, inner_w0_w_star=n_star * exact_norm(ex.w0),
                 grad_bn_norm=g, loss_std_at_w_star=exact_fraction(ex.loss_bn_at_w0),
                 loss_bn_at_w_star=exact_fraction(ex.loss_bn_at_w0),
                 loss_bn_at_w0=exact_fraction(ex.loss_bn_at_w0),
                 loss_bn_min=exact_fraction(ex.loss_bn_at_w0))
    for name, unit in units.items():
        assert_float_is_exact(getattr(fl, name), getattr(ex, name), unit, name)
    for name, unit in (("w_star", n_star), ("bn_direction", exact_norm(ex.bn_direction)),
                       ("grad_bn_at_w_star", g), ("bn_optimum", exact_norm(ex.w0))):
        for got, want in zip(getattr(fl, name), getattr(ex, name)):
            assert_float_is_exact(got, want, unit, name)


@pytest.mark.parametrize("scale", EXTREME)
@pytest.mark.parametrize("which", ["w0", "X", "y"])
@pytest.mark.parametrize("inst", INSTANCES[1:])
def test_exact_verdicts_at_extreme_magnitudes(inst, which, scale):
    """The other instances (Example 3.2 is above) in exact arithmetic: the same
    verdict as the unscaled float and exact checks, and the float check agrees."""
    ref = verdict(**inst, cross_check=False)
    key = ("exact verdict", id(inst))
    if key not in _CACHE:
        _CACHE[key] = verdict(**inst, exact=True, cross_check=False)
    assert _CACHE[key] == ref
    data = scaled(inst, which, scale)
    assert verdict(**data, exact=True, cross_check=False) == ref
    assert verdict(**data, cross_check=False) == ref


def test_exact_inputs_beyond_float64():
    """Exact inputs need no float range (10**400 * w0); only the float64
    gradient-descent cross-check does, and it says so."""
    big = [sympy.Integer(10) ** 400 * v for v in (7, 5)]
    r = check_lemma_4_5(X_EX, Y_EX, big, exact=True, cross_check=False)
    assert r.holds is False and r.premise is True
    assert sympy.simplify(r.lhs - sympy.Rational(8, 17) * sympy.Integer(10) ** 800) == 0
    with pytest.raises(ValueError, match="w0 is outside the float64 range.*cross_check"):
        check_lemma_4_5(X_EX, Y_EX, big, exact=True)


# ---- a layer whose columns have different magnitudes -------------------------------------

def test_layer_columns_at_different_magnitudes():
    Y = np.stack([Y_EX * 1e-300, Y_EX * 1e300, Y_EX, Y_EX], axis=1)
    W0 = np.stack([W0_EX * 1e300, W0_EX * 1e-300, np.array([5.0, 3.0]) * 1e-200,
                   -W0_EX * 1e250], axis=1)
    for exact in (False, True):
        r = check_lemma_4_5(X_EX, Y, W0, exact=exact, cross_check=False)
        assert [c.holds for c in r.columns] == [False, False, True, None]
        assert r.premise.tolist() == [True, True, True, False]
        assert r.holds is False
        # the Frobenius norm of the gradient: four copies of Example 3.2's
        assert float(r.grad_bn_norm) == pytest.approx(2 * 4 * math.sqrt(1443) / 507,
                                                      rel=1e-12)


# ---- the gradient-descent cross-check ------------------------------------------------------

@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("which", ["w0", "X", "y"])
def test_gd_cross_check_at_every_magnitude(which, scale):
    ref = cached("example gd", X=X_EX, y=Y_EX, w0=W0_EX).gd
    data = scaled(_example(), which, scale)
    r = check_lemma_4_5(**data)
    gd = r.gd
    assert gd.agrees and gd.angle < 1e-6, gd
    assert r.holds is False
    np.testing.assert_allclose(gd.end_direction, ref.end_direction, rtol=0, atol=1e-9)
    f = Fraction(scale)
    t = f if which == "w0" else 1
    q = f if which == "y" else 1
    # GD from t w0 with t^2 lr is t times GD from w0; y -> q y divides lr by q
    assert_scaled(gd.lr, ref.lr, t * t / q, ref.lr, rtol=1e-9, name="lr")
    assert_scaled(gd.end_point, ref.end_point, t, np.linalg.norm(ref.end_point),
                  rtol=1e-6, name="end_point")
    if which != "y":                    # the BN loss does not see w's or X's scale
        assert gd.loss_start == pytest.approx(ref.loss_start, rel=1e-12)
        assert gd.loss_end == pytest.approx(ref.loss_end, rel=1e-9)
    else:                               # ||q y||^2 + m - 2 q sqrt(m) <y_c, hhat>
        m = 3
        for got, loss in ((gd.loss_start, ref.loss_start), (gd.loss_end, ref.loss_end)):
            corr = Fraction(float(Y_EX @ Y_EX) + m - loss)        # gamma = 1, beta = 0
            want = q * q * int(Y_EX @ Y_EX) + m - q * corr
            if want > FMAX:
                assert got == math.inf
            else:
                assert abs(Fraction(got) - want) <= Fraction(1e-9) * want, (got, float(want))


def test_gd_override_learning_rate_is_kept_at_every_magnitude():
    for scale in (1e-100, 1.0, 1e100):
        r = check_lemma_4_5(X_EX, Y_EX, W0_EX * scale, gd_lr=0.5 * scale ** 2, gd_steps=10)
        assert r.gd.lr == 0.5 * scale ** 2 and r.gd.steps == 10
