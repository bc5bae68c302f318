"""Exact arithmetic for the Lemma 4.5 checker: numpy object arrays of sympy numbers.

Inputs are converted without rounding: an int becomes a sympy Integer, a float the
Rational of its exact binary value (0.1 -> 3602879701896397/36028797018963968, the
number the float really is), a fractions.Fraction a Rational, and a sympy number is
kept as it is (so 1/3 or sqrt(2) can be passed exactly). Least squares by exact
Gaussian elimination on the normal equations; every decision (signs, zero tests,
the comparison in (1)) is exact. With rational data every reported number is a
rational or a rational times the square root of a rational, which sympy keeps in
canonical form (e.g. -10*sqrt(78)/507)."""

import fractions
import math
import numbers

import numpy as np
import sympy


def _to_exact(value, name):
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must hold real numbers, got a bool")
    if isinstance(value, sympy.Basic):
        expr = sympy.sympify(value)
        if not (expr.is_number and expr.is_real):
            raise ValueError(f"{name} must hold real numbers, got {expr}")
        if not expr.is_finite:
            raise ValueError(f"{name} must be finite, got {expr}")
        return expr
    if isinstance(value, fractions.Fraction):
        return sympy.Rational(value.numerator, value.denominator)
    if isinstance(value, (numbers.Integral, np.integer)):
        return sympy.Integer(int(value))
    if isinstance(value, (numbers.Real, np.floating)):
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite (no NaN or inf)")
        # The exact binary value of the float, as the fraction it is.
        num, den = value.as_integer_ratio()
        return sympy.Rational(num, den)
    raise TypeError(f"{name} must hold real numbers, got {type(value).__name__}")


def _simplify(expr):
    """Rationals and q*sqrt(r) are already canonical; anything else (data given
    with radicals) gets sympy's simplification."""
    if expr.is_Rational or expr.is_Atom:
        return expr
    if expr.is_Mul and all(f.is_Rational or (f.is_Pow and f.base.is_Rational)
                           for f in expr.args):
        return expr
    return sympy.radsimp(sympy.simplify(expr))


def _is_zero(expr):
    expr = _simplify(sympy.sympify(expr))
    zero = expr.is_zero
    if zero is None:
        zero = expr.equals(0)
    if zero is None:  # pragma: no cover - undecidable for real algebraic numbers
        raise ValueError(f"cannot decide exactly whether {expr} is zero")
    return bool(zero)


def _is_positive(expr):
    expr = _simplify(sympy.sympify(expr))
    if _is_zero(expr):
        return False
    positive = expr.is_positive
    if positive is None:
        # Not zero (decided above), so a high-precision evaluation settles the sign.
        positive = bool(expr.evalf(60) > 0)
    return bool(positive)


def expanded(expr):
    """expr in sympy's expanded form: cheap, and canonical for the sums of rational
    multiples of products of square roots (of rationals and of pi) that the scale
    invariance and l1 constant checkers produce, where simplify() is slow."""
    return sympy.expand(sympy.sympify(expr))


def is_zero_expanded(expr):
    """Is expr zero? Literal 0 once expanded; otherwise a 50-digit evaluation clearly
    away from 0 says no; anything else is decided by _is_zero (simplify, equals)."""
    expr = expanded(expr)
    if expr == 0:
        return True
    if abs(expr.evalf(50)) > 1e-30:
        return False
    return _is_zero(expr)   # pragma: no cover - no instance of the audit gets here


class ExactArithmetic:
    exact = True

    # ---- inputs -----------------------------------------------------------------
    def array(self, value, name):
        if isinstance(value, (str, bytes)):
            raise TypeError(f"{name} must be an array of real numbers, got {type(value).__name__}")
        if isinstance(value, sympy.MatrixBase):
            value = value.tolist() if value.cols > 1 else list(value)
        arr = np.asarray(value, dtype=object)
        out = np.empty(arr.shape, dtype=object)
        for index, v in np.ndenumerate(arr):
            out[index] = _to_exact(v, name)
        return out

    def scalar(self, value, name):
        if isinstance(value, np.ndarray) and value.ndim == 0:
            value = value[()]
        return _to_exact(value, name)

    def prepare(self, X, Xc):
        pass

    def prepare_batch(self, m):
        pass

    # ---- scaling and centring (section-4 checkers; exact numbers need neither) -------
    def split_scale(self, v):
        return v, 0

    def scale_back(self, v, e):
        if e == 0:
            return v
        factor = sympy.Integer(2) ** int(e)
        return v * factor if not isinstance(v, np.ndarray) else self.vector(v * factor)

    def centre(self, v):
        mean = self.mean(v)
        return self.vector(np.array([e - mean for e in v], dtype=object)), mean

    # ---- linear algebra ---------------------------------------------------------
    def rank(self, A):
        return sympy.Matrix(A.tolist()).rank(simplify=True)

    def lstsq(self, A, b):
        M = sympy.Matrix(A.tolist())
        rhs = sympy.Matrix(list(b))
        sol = (M.T * M).LUsolve(M.T * rhs)
        return np.array([_simplify(v) for v in sol], dtype=object)

    def mean(self, v):
        return _simplify(sum(v, sympy.Integer(0)) / len(v))

    def sqrt(self, x):
        return _simplify(sympy.sqrt(x))

    def dot(self, a, b):
        return _simplify(sum((p * q for p, q in zip(a, b)), sympy.Integer(0)))

    # ---- decisions (exact: the scale arguments are ignored) ------------------------
    def is_positive(self, x, scale):
        return _is_positive(x)

    def is_zero(self, x, scale):
        return _is_zero(x)

    def all_equal(self, v):
        return all(_is_zero(e - v[0]) for e in v)

    def le(self, a, b, scale):
        return not _is_positive(a - b)

    def tolerance(self, scale):
        return 0.0

    # ---- outputs ----------------------------------------------------------------
    def number(self, x):
        return _simplify(sympy.sympify(x))

    def vector(self, v):
        out = np.array([_simplify(sympy.sympify(e)) for e in np.ravel(v)], dtype=object)
        out = out.reshape(np.shape(v))
        out.setflags(write=False)
        return out

    def to_float(self, v):
        return np.array([float(e) for e in np.ravel(v)], dtype=np.float64).reshape(np.shape(v))
