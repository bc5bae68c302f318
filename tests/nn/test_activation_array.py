"""The vectorised activations of csrc/core/nn/activation_isa.cpp (bnfast._core._activate_array).

docs/math/activations.md derives the error bounds; this module
 (a) recomputes the constants of that derivation from the coefficients in the C++ source
     and checks the bounds it states, then measures the error against mpmath (60 digits)
     and against the scalar libm path on millions of points, and enforces the bounds;
 (b) checks the special values (signed zeros, subnormals, infinities, NaN);
 (c) checks that an element's result does not depend on its position, the length, the
     alignment, in-place use or the instruction-set variant;
 (d) checks that identity and relu equal the scalar activate() bit for bit.
"""

import math
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

from bnfast import _core

mpmath = pytest.importorskip("mpmath")

U = 2.0**-53  # unit roundoff

# The proven bounds (docs/math/activations.md section 3), in ulps of the exact result.
TANH_BOUND = 1.46
SIGMOID_POS_BOUND = 1.5  # x >= 0
SIGMOID_NEG_BOUND = 3.01  # x < 0

SOURCE = pathlib.Path(__file__).resolve().parents[2] / "csrc" / "core" / "nn" / "activation_isa.cpp"


def vec(name, z, out=None):
    return _core._activate_array(name, np.ascontiguousarray(z, dtype=np.float64), out)


def scalar(name, z):
    return _core._activate_scalar(name, np.ascontiguousarray(z, dtype=np.float64))


def bits(a):
    return np.ascontiguousarray(a, dtype=np.float64).view(np.uint64)


# ---------------------------------------------------------------------------------------
# Exact references and ulp errors

def _mp_tanh(x):
    return mpmath.tanh(x)


def _mp_sigmoid(x):
    return 1 / (1 + mpmath.exp(-x))


REFERENCE = {"tanh": _mp_tanh, "sigmoid": _mp_sigmoid}


def ulp_errors(name, x, y):
    """|y - phi(x)| in ulps of the exact phi(x) (ulp of a value in [2^k, 2^k+1) is
    2^(k-52), at least 2^-1074), phi at 60 digits. NaN where y is not finite."""
    f = REFERENCE[name]
    out = np.empty(len(x))
    with mpmath.workdps(60):
        for i, (xi, yi) in enumerate(zip(x.tolist(), y.tolist())):
            if not math.isfinite(yi):
                out[i] = math.nan
                continue
            t = f(mpmath.mpf(xi))
            if t == 0:
                out[i] = abs(yi) / 2.0**-1074
                continue
            _, e = mpmath.frexp(t)  # t = m 2^e, 0.5 <= |m| < 1
            ulp = mpmath.ldexp(1, max(int(e) - 53, -1074))
            out[i] = float(abs(mpmath.mpf(yi) - t) / ulp)
    return out


# ---------------------------------------------------------------------------------------
# (a) The constants of the proof, from the coefficients in the source

def _coefficients(name):
    text = SOURCE.read_text()
    body = re.search(name + r"\[\] = \{([^}]*)\}", text).group(1)
    return [float.fromhex(c) for c in body.replace("\n", " ").split(",") if c.strip()]


def _horner_bound(coeffs, v):
    """Value and running error bound (in units of u) of the Horner evaluation in double."""
    h, err = coeffs[-1], 0.0
    for c in reversed(coeffs[:-1]):
        m = h * v
        err = abs(v) * err + abs(m)
        h = m + c
        err += abs(h)
    return h, err


def _half_ulp(x):
    """Half an ulp of any value of magnitude up to |x| (a rounding's largest error)."""
    return 0.5 * math.ulp(abs(x) * (1 + 1e-9)) if x != 0 else 0.0


def _approx_error(coeffs, f, lo, hi, weight, n=2000):
    """max |weight(x) (poly(x) - f(x))| at 60 digits on n + 1 points of [lo, hi]."""
    cs = [mpmath.mpf(c) for c in coeffs]
    worst = mpmath.mpf(0)
    with mpmath.workdps(60):
        for i in range(n + 1):
            x = mpmath.mpf(lo) + (mpmath.mpf(hi) - lo) * i / n
            p = mpmath.mpf(0)
            for c in reversed(cs):
                p = p * x + c
            worst = max(worst, abs(weight(x) * (p - f(x))))
    return float(worst)


R_MAX = 0.34695  # |r| after the reduction: ln2/2 plus the rounding of n, with margin
TANH_CUT = 0.55


def _exp_q(r):
    return mpmath.mpf(1) / 2 + r / 6 if abs(r) < 1e-30 else (mpmath.exp(r) - 1 - r) / (r * r)


W_MAX = TANH_CUT**2  # the polynomials' argument w = v^2: a^2 < 0.3025, r^2 < 0.1204


def _constant(name):
    text = SOURCE.read_text()
    return float.fromhex(re.search(name + r" = (0x[0-9a-fA-Fp.+-]+);", text).group(1))


def _cosh_p(w):
    """(cosh v - 1) / v^2, w = v^2."""
    return mpmath.mpf(1) / 2 if w == 0 else (mpmath.cosh(mpmath.sqrt(w)) - 1) / w


def _diff_p(w):
    """(cosh v - sinh(v) / v) / v^2, w = v^2: tanh v = v - v w D / (1 + w C)."""
    if w == 0:
        return mpmath.mpf(1) / 3
    v = mpmath.sqrt(w)
    return (mpmath.cosh(v) - mpmath.sinh(v) / v) / w


def _half_ulps(x):
    """_half_ulp of each element."""
    x = np.abs(np.asarray(x, dtype=float)) * (1 + 1e-9)
    return np.where(x > 0, 0.5 * np.spacing(x), 0.0)


class _Cells:
    """One intermediate value of the C++ evaluation over many cells of the input at once
    (docs section 3.2): its values at the two ends of each cell (it is monotone within a
    cell: no cell crosses 0 or a turning point) and a bound on its absolute error against
    the exact value it stands for. The operations follow the C++ expression, each with its rounding
    (half an ulp of the largest magnitude in the cell) and first-order propagation of the
    errors of its operands (products of two errors are dropped)."""

    def __init__(self, v0, v1, err=0.0):
        self.v0 = np.asarray(v0, dtype=float)
        self.v1 = np.asarray(v1, dtype=float)
        self.err = np.asarray(err, dtype=float) + 0.0 * self.v0

    @staticmethod
    def lift(x):
        return x if isinstance(x, _Cells) else _Cells(x, x)

    @property
    def mag(self):  # the largest |value| in each cell
        return np.maximum(np.abs(self.v0), np.abs(self.v1))

    @property
    def least(self):  # the smallest |value| in each cell
        return np.minimum(np.abs(self.v0), np.abs(self.v1))

    def plus_error(self, e):
        return _Cells(self.v0, self.v1, self.err + e)

    def _rounded(self, v0, v1, err):
        out = _Cells(v0, v1, err)
        out.err = out.err + _half_ulps(out.mag)
        return out

    def __add__(self, o):
        o = _Cells.lift(o)
        return self._rounded(self.v0 + o.v0, self.v1 + o.v1, self.err + o.err)

    __radd__ = __add__

    def __sub__(self, o):
        o = _Cells.lift(o)
        return self._rounded(self.v0 - o.v0, self.v1 - o.v1, self.err + o.err)

    def __rsub__(self, o):
        return _Cells.lift(o) - self

    def __mul__(self, o):
        o = _Cells.lift(o)
        return self._rounded(self.v0 * o.v0, self.v1 * o.v1,
                             self.mag * o.err + o.mag * self.err)

    __rmul__ = __mul__

    def __truediv__(self, o):
        o = _Cells.lift(o)
        q0, q1 = self.v0 / o.v0, self.v1 / o.v1
        return self._rounded(q0, q1, (self.err + np.maximum(np.abs(q0), np.abs(q1)) * o.err)
                             / o.least)

    def __rtruediv__(self, o):
        return _Cells.lift(o) / self


def _estrin5(c, w, w2, w4):
    """As estrin5() in the C++ source, operation for operation."""
    return ((c[0] + w * c[1]) + w2 * (c[2] + w * c[3])) + w4 * (c[4] + w * c[5])


def _tanh_small_bound(kcosh, kdiff, eps_c, eps_d):
    """|x| < 0.55 (section 3.3): t = a - ns / ds, ns = (a w) D, ds = 1 + w C. Returns the
    bound in ulps of tanh(a), its argument, and the error before the last rounding."""
    grid = np.geomspace(2.0**-30, TANH_CUT, 200001)
    # cells end where tanh crosses a power of 2: one ulp(tanh a) per cell (the lower end's)
    edges = [math.atanh(2.0**-k) for k in range(1, 32)]
    grid = np.unique(np.concatenate([grid, [e for e in edges if grid[0] < e < TANH_CUT]]))
    a = _Cells(grid[:-1], grid[1:])  # exact
    w = a * a
    w2 = w * w
    w4, vw = w2 * w2, a * w
    c = _estrin5(kcosh, w, w2, w4).plus_error(eps_c)
    d = _estrin5(kdiff, w, w2, w4).plus_error(eps_d)
    q = (vw * d) / (1.0 + w * c)  # against a - tanh(a)
    pre = q.err / np.spacing(np.tanh(grid[:-1]))
    i = int(np.argmax(pre))
    return 0.5 + pre[i], grid[i], pre[i]


def _tanh_large_bound(kcosh, kdiff, eps_c, eps_d):
    """0.55 <= |x| < 20 (section 3.4): 2a = n ln2 + r, t = 1 - 2^(1-n) / dl,
    dl = fl(H + fl(fl(w C + (v w) (C - D)) - lo)), H = 1 + 2^-n + hi exact. The errors that
    depend on r are bounded on cells of r, then combined for each n in [2, 58]. Returns
    the bound in ulps (ulp(tanh a) = u for a >= 0.55) and the n where it is reached."""
    l1, l2 = _constant("kLn2Hi"), _constant("kLn2Lo")
    with mpmath.workdps(60):
        assert abs(mpmath.log(2) - mpmath.mpf(l1) - mpmath.mpf(l2)) < 2.0**-102
    grid = np.unique(np.concatenate([np.linspace(-R_MAX, R_MAX, 40001), [0.0]]))
    r0, r1 = grid[:-1], grid[1:]
    # r = fl(hi - lo) against r* = 2a - n ln2: its rounding, plus |hi - lo - r*| <=
    # n |ln2 - L1 - L2| + half an ulp of n L2 < 58 * 2^-102 + 2^-92 < 2^-90.
    r = _Cells(r0, r1, _half_ulps(np.maximum(abs(r0), abs(r1))) + 2.0**-90)
    w = r * r
    w2 = w * w
    w4, vw = w2 * w2, r * w
    c = _estrin5(kcosh, w, w2, w4).plus_error(eps_c)
    d = _estrin5(kdiff, w, w2, w4).plus_error(eps_d)
    x = w * c + vw * (c - d)  # against e^r* - 1 - r*
    worst, worst_n = 0.0, None
    for n in range(2, 59):
        lo = _Cells(np.full_like(r0, n * l2), np.full_like(r0, n * l2), 2.0**-90)
        y = x - lo
        # H = 1 + 2^-n + hi, exact for n <= 52 (multiples of 2^-52 in [0.65, 1.6]);
        # for n >= 53, 1 + 2^-n rounds to 1. hi = r* + n (ln2 - L1), within 2^-38 of r.
        h = _Cells(1 + 2.0**-n + r0, 1 + 2.0**-n + r1, 2.0**-n if n >= 53 else 0.0)
        q = 2.0 ** (1 - n) / (h + y)  # against 2^(1-n) / (e^r* + 2^-n) = 1 - tanh(a)
        reach = np.ones(len(r0), dtype=bool)  # the r that a in [0.55, 20] gives with this n
        if n == 2:
            reach = r1 >= 2 * TANH_CUT - 2 * math.log(2)
        if n == 58:
            reach = r0 <= 40 - 58 * math.log(2)
        bound = 0.5 + q.err[reach].max() / U
        if bound > worst:
            worst, worst_n = bound, n
    return worst, worst_n


@pytest.fixture(scope="module")
def proof_constants():
    if not SOURCE.exists():
        pytest.skip("the C++ source is not beside the tests")
    expq = _coefficients("kExpQ")
    kcosh, kdiff = _coefficients("kCoshP"), _coefficients("kDiffP")
    c = {}
    # Approximation errors: exp's relative to e^r; tanh's C and D absolute.
    c["exp_approx"] = _approx_error(expq, _exp_q, -R_MAX, R_MAX,
                                    lambda r: r * r / mpmath.exp(r))
    c["cosh_approx"] = _approx_error(kcosh, _cosh_p, 0, W_MAX, lambda w: 1, n=4000)
    c["diff_approx"] = _approx_error(kdiff, _diff_p, 0, W_MAX, lambda w: 1, n=4000)

    # exp: the relative error of e = p 2^n, max over cells of r (section 3.1).
    eps = 0.0
    grid = np.linspace(-R_MAX, R_MAX, 20001)
    for r0, r1 in zip(grid[:-1], grid[1:]):
        terms = []
        for r in (r0, r1):
            q, qerr = _horner_bound(expq, r)
            s = r * r * q
            z2 = math.expm1(r)
            terms.append((abs(s), qerr / abs(q), abs(z2), abs(r * z2), math.exp(r)))
        s, kq, z2, dr, p = (max(t[i] for t in terms) for i in range(5))
        pmin = min(t[4] for t in terms)
        a_p = (_half_ulp(p) + _half_ulp(z2) + _half_ulp(s + 2.0**-33)
               + (s * (2 + kq) + dr) * U + c["exp_approx"] * p)
        eps = max(eps, a_p / pmin)
    c["exp_rel"] = eps / U  # in units of u

    # tanh (sections 3.2 to 3.4)
    eps = (c["cosh_approx"], c["diff_approx"])
    c["tanh_small"], c["tanh_small_at"], c["tanh_small_pre"] = _tanh_small_bound(
        kcosh, kdiff, *eps)
    c["tanh_large"], c["tanh_large_n"] = _tanh_large_bound(kcosh, kdiff, *eps)
    # |x| >= 20: the result is 1, and 1 - tanh(20) < 2 e^-40 < 0.08 u (0.08 ulp).
    assert 2 * math.exp(-40) < 0.08 * U

    # sigmoid (section 3.4): e = e^-|x| in (0, 1], d = fl(1 + e).
    pos = neg = 0.0
    for e in np.concatenate([np.geomspace(1e-320, 1, 4000), [1.0]]):
        e = float(e)
        dd = min(e, _half_ulp(1 + e))  # the rounding of 1 + e
        d = 1 + e
        # x >= 0: r = 1/d in [0.5, 1), ulp u
        pos = max(pos, 0.5 + (dd / d**2 + c["exp_rel"] * U * e / d**2) / U)
        # x < 0: r = e/d; relative errors count at most 1/u ulps
        neg = max(neg, 0.5 + (dd / d + c["exp_rel"] * U / d) / U)
    c["sigmoid_pos"], c["sigmoid_neg"] = pos, neg
    return c


def test_proof_constants(proof_constants):
    c = proof_constants
    # the numbers docs/math/activations.md quotes
    assert c["exp_approx"] < 2.0**-61
    assert c["cosh_approx"] < 2.0**-56.6
    assert c["diff_approx"] < 2.0**-55.5  # the rounding of 1/3, D's first coefficient
    assert c["exp_rel"] < 1.51
    # below 1 ulp before the last rounding, which then adds at most half an ulp
    assert c["tanh_small_pre"] < 1.0
    assert c["tanh_small"] < 1.19
    assert c["tanh_large"] < 1.454 and c["tanh_large_n"] == 2  # at a = 0.55
    assert c["tanh_large"] - 0.5 < 1.0
    assert max(c["tanh_small"], c["tanh_large"]) <= TANH_BOUND
    assert c["sigmoid_pos"] <= SIGMOID_POS_BOUND
    assert c["sigmoid_neg"] <= SIGMOID_NEG_BOUND


# ---------------------------------------------------------------------------------------
# (a) Measured errors

def _sample_points(name, rng):
    """~150,000 points: the whole double range, the cut-offs, the thresholds, [1e-3, 20]."""
    mags = [
        10.0 ** rng.uniform(-310, 308, 30000),  # the whole range, subnormals included
        rng.uniform(1e-3, 20, 40000),
        10.0 ** rng.uniform(-3, math.log10(20), 30000),
        rng.uniform(0, 1.5, 20000),
    ]
    ln2 = math.log(2)
    centres = [TANH_CUT, math.atanh(0.5), 19.06, 20.0, 18.7]  # tanh cut, saturation, clamp
    centres += [(k + 0.5) * ln2 / 2 for k in range(60)]  # where n = round(2a/ln2) steps
    if name == "sigmoid":
        centres += [708.39, 745.13, 744.4, 36.7, 37.43, 40.0]  # subnormal and 0; result 1
        centres += [(k + 0.5) * ln2 for k in range(0, 1076, 7)]  # where n steps
    for c in centres:
        mags.append(c + rng.uniform(-1e-3, 1e-3, 300))
        mags.append(np.nextafter(c, np.inf) + np.arange(-20, 20) * math.ulp(c))
    mags = np.abs(np.concatenate(mags))
    signs = np.where(rng.random(len(mags)) < 0.5, -1.0, 1.0)
    return mags * signs


@pytest.fixture(scope="module")
def measured():
    rng = np.random.default_rng(20240611)
    res = {}
    for name in ("tanh", "sigmoid"):
        x = _sample_points(name, rng)
        res[name] = (x, ulp_errors(name, x, vec(name, x)))
    return res


@pytest.mark.slow
def test_tanh_error_against_mpmath(measured):
    x, err = measured["tanh"]
    assert not np.isnan(err).any()
    i = int(np.argmax(err))
    assert err[i] <= TANH_BOUND, f"tanh({x[i]!r}) is {err[i]:.3f} ulp off"


@pytest.mark.slow
def test_sigmoid_error_against_mpmath(measured):
    x, err = measured["sigmoid"]
    assert not np.isnan(err).any()
    for side, bound in ((x >= 0, SIGMOID_POS_BOUND), (x < 0, SIGMOID_NEG_BOUND)):
        i = int(np.flatnonzero(side)[np.argmax(err[side])])
        assert err[i] <= bound, f"sigmoid({x[i]!r}) is {err[i]:.3f} ulp off"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tanh", "sigmoid"])
def test_error_against_libm_on_millions(name):
    """4 million points against the scalar activate() (std::tanh, std::exp): the
    disagreements are ranked in ulps, and the 1,500 largest are checked against mpmath."""
    rng = np.random.default_rng(7)
    x = np.concatenate([
        rng.uniform(-20, 20, 2_000_000),
        rng.uniform(-1, 1, 1_000_000),
        np.sign(rng.random(1_000_000) - 0.5) * 10.0 ** rng.uniform(-310, 308.2, 1_000_000),
    ])
    if name == "sigmoid":
        x[:500_000] = rng.uniform(-745, -20, 500_000)
    ours, libm = vec(name, x), scalar(name, x)
    diff = np.abs(ours - libm) / np.spacing(np.abs(libm))
    assert np.isfinite(diff).all()
    # a sanity guard (measured: at most 2); glibc's own error is documented, not proven
    assert diff.max() <= 4.5
    worst = np.argsort(diff)[-1500:]
    err = ulp_errors(name, x[worst], ours[worst])
    bound = np.where(x[worst] >= 0, SIGMOID_POS_BOUND, SIGMOID_NEG_BOUND) \
        if name == "sigmoid" else TANH_BOUND
    assert (err <= bound).all(), (x[worst][err > bound], err[err > bound])


# ---------------------------------------------------------------------------------------
# (b) Special values

SUB = [5e-324, 1e-310, 2.2250738585072009e-308, 2.2250738585072014e-308]


def test_tanh_special_values():
    z = np.array([0.0, -0.0, math.inf, -math.inf, math.nan, -math.nan, 1e308, -1e308,
                  19.07, -19.07, 25.0, 710.0, -746.0] + SUB + [-s for s in SUB])
    t = vec("tanh", z)
    assert bits(t[:2]).tolist() == bits([0.0, -0.0]).tolist()  # the sign of zero kept
    assert t[2] == 1.0 and t[3] == -1.0
    assert np.isnan(t[4]) and np.isnan(t[5])
    assert t[6:13].tolist() == [1.0, -1.0, 1.0, -1.0, 1.0, 1.0, -1.0]
    # tanh(x) rounds to x for |x| < 2^-26; subnormals come back unchanged
    assert bits(t[13:]).tolist() == bits(SUB + [-s for s in SUB]).tolist()
    small = np.array([2.0**-27, -2.0**-30, 1e-200])
    assert bits(vec("tanh", small)).tolist() == bits(small).tolist()


def test_sigmoid_special_values():
    z = np.array([0.0, -0.0, math.inf, -math.inf, math.nan, 1e308, -1e308, 38.0, -746.0,
                  -745.2] + SUB + [-s for s in SUB])
    s = vec("sigmoid", z)
    assert s[:4].tolist() == [0.5, 0.5, 1.0, 0.0]
    assert np.isnan(s[4])
    assert s[5:10].tolist() == [1.0, 0.0, 1.0, 0.0, 0.0]
    assert (s[10:] == 0.5).all()
    # the subnormal results: exp(x) = 2^-1074 between -745.13 and -744.44
    tiny = vec("sigmoid", np.array([-745.0, -744.5, -740.0, -720.0, -708.5]))
    err = ulp_errors("sigmoid", np.array([-745.0, -744.5, -740.0, -720.0, -708.5]), tiny)
    assert tiny[0] == 5e-324 and (tiny > 0).all()
    assert (err <= 0.51).all(), err  # one rounding, into the subnormal grid


def test_nan_propagates_through_every_lane():
    for name in ("tanh", "sigmoid", "identity"):
        z = np.linspace(-3, 3, 11)
        z[[0, 4, 10]] = math.nan
        out = vec(name, z)
        assert np.isnan(out[[0, 4, 10]]).all()
        assert not np.isnan(np.delete(out, [0, 4, 10])).any()


def test_odd_and_in_range():
    x = np.concatenate([np.linspace(0, 21, 100001), 10.0 ** np.linspace(-12, 0, 5001)])
    t = vec("tanh", x)
    assert bits(vec("tanh", -x)).tolist() == bits(-t).tolist()  # exactly odd
    assert ((t >= 0) & (t <= 1)).all()
    s = vec("sigmoid", np.concatenate([-x, x]))
    assert ((s >= 0) & (s <= 1)).all()


# ---------------------------------------------------------------------------------------
# (c) Independent of position, length, alignment, in-place use and variant

def _mixed(rng, n):
    z = rng.standard_normal(n) * 10.0 ** rng.uniform(-4, 2.5, n)
    z[rng.integers(0, n, n // 8)] = rng.choice(
        [0.0, -0.0, math.inf, -math.inf, math.nan, 0.55, -0.55, 5e-324, -800.0], n // 8)
    return z


@pytest.mark.parametrize("name", ["tanh", "sigmoid", "relu", "identity"])
def test_independent_of_position_and_length(name):
    rng = np.random.default_rng(3)
    buf = _mixed(rng, 80)
    for off in range(8):
        whole = bits(vec(name, buf[off:]))
        for n in range(1, 68):
            part = bits(vec(name, buf[off:off + n]))
            assert part.tolist() == whole[:n].tolist(), (off, n)
    # each element alone
    alone = [bits(vec(name, buf[i:i + 1]))[0] for i in range(80)]
    assert alone == bits(vec(name, buf)).tolist()


@pytest.mark.parametrize("name", ["tanh", "sigmoid", "relu", "identity"])
def test_in_place(name):
    z = _mixed(np.random.default_rng(4), 101)
    expected = bits(vec(name, z))
    out = vec(name, z, out=z)
    assert out is z
    assert bits(z).tolist() == expected.tolist()


def test_same_bits_on_the_baseline_variant(tmp_path):
    """BNFAST_SIMD=baseline (2-lane SSE2 code) gives the avx2 variant's bits."""
    if _core.simd_level() != "avx2":
        pytest.skip("only one variant on this machine")
    rng = np.random.default_rng(5)
    z = np.concatenate([_mixed(rng, 20001), rng.uniform(-25, 25, 20000)])
    code = (
        "import sys, numpy as np; from bnfast import _core\n"
        "assert _core.simd_level() == 'baseline'\n"
        "z = np.frombuffer(sys.stdin.buffer.read(), dtype=np.float64)\n"
        "out = [_core._activate_array(n, z) for n in ('tanh', 'sigmoid')]\n"
        "sys.stdout.buffer.write(np.concatenate(out).tobytes())\n"
    )
    env = dict(os.environ, BNFAST_SIMD="baseline")
    # cwd outside the source tree: `python -c` puts the cwd first on sys.path, and the
    # source tree's bnfast/ has no compiled _core in a fresh clone.
    run = subprocess.run([sys.executable, "-c", code], input=z.tobytes(), env=env,
                         capture_output=True, check=True, timeout=120, cwd=tmp_path)
    base = np.frombuffer(run.stdout, dtype=np.uint64)
    ours = np.concatenate([bits(vec("tanh", z)), bits(vec("sigmoid", z))])
    assert base.tolist() == ours.tolist()


# ---------------------------------------------------------------------------------------
# (d) identity and relu as the scalar path, bit for bit

@pytest.mark.parametrize("name", ["identity", "relu"])
def test_identity_relu_equal_scalar(name):
    z = np.concatenate([_mixed(np.random.default_rng(6), 1000),
                        [0.0, -0.0, math.nan, -math.nan, math.inf, -math.inf] + SUB])
    assert bits(vec(name, z)).tolist() == bits(scalar(name, z)).tolist()
    if name == "relu":  # -0 gives +0; NaN stays NaN (a NaN in the data stays visible)
        nan = np.array([math.nan])
        assert bits(vec(name, np.array([-0.0, math.nan]))).tolist() == [0, bits(nan)[0]]


def test_empty_and_bad_input():
    for name in ("tanh", "sigmoid", "relu", "identity"):
        assert vec(name, np.empty(0)).shape == (0,)
    with pytest.raises(ValueError):
        _core._activate_array("softplus", np.zeros(3))
    with pytest.raises(TypeError):
        _core._activate_array("tanh", np.zeros(3, dtype=np.float32))
    with pytest.raises(ValueError):
        _core._activate_array("tanh", np.zeros((2, 2)))
    with pytest.raises(ValueError):
        _core._activate_array("tanh", np.zeros(6)[::2])
    with pytest.raises(ValueError):
        _core._activate_array("tanh", np.zeros(3), np.zeros(4))
