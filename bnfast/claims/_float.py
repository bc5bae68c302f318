"""float64 arithmetic for the Lemma 4.5 checker: numpy arrays, least squares by
LAPACK, and decisions (signs, zero tests) made with a tolerance reasoned from the
conditioning of the data, so that a quantity lost in rounding is never mistaken for
a sign. The exact twin is _exact.py; lemma_4_5.py runs the same algorithm on both."""

import math

import numpy as np

from .._validate import real_number

_EPS = np.finfo(np.float64).eps


class FloatArithmetic:
    exact = False

    def __init__(self):
        # Relative size of rounding errors, set from the data by prepare().
        self.rel = 64 * _EPS

    # ---- inputs -----------------------------------------------------------------
    def array(self, value, name):
        if isinstance(value, (str, bytes)):
            raise TypeError(f"{name} must be an array of real numbers, got {type(value).__name__}")
        arr = np.asarray(value)
        if arr.dtype.kind not in "fiu":
            raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
        arr = np.array(arr, dtype=np.float64)
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} must be finite (no NaN or inf)")
        return arr

    def scalar(self, value, name):
        value = real_number(value, name)
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value}")
        return value

    def prepare(self, X, Xc):
        """Sets the rounding tolerance from the condition numbers of X and X_c."""
        cond = max(np.linalg.cond(X), np.linalg.cond(Xc))
        self.rel = 64 * _EPS * max(1.0, cond)

    def prepare_batch(self, m):
        """Sets the rounding tolerance of the section-4 checkers for a batch of m
        samples: 64 m eps (the derivation is in bnfast/claims/statement.py)."""
        self.rel = 64 * m * _EPS

    # ---- scaling and centring (section-4 checkers) ----------------------------------
    def split_scale(self, v):
        """(v / 2**e, e) with max |v / 2**e| in [1/2, 1) (e = 0 when v is 0). Dividing
        by a power of two is exact, so the scaled values are the inputs' own digits."""
        arr = np.asarray(v, dtype=np.float64)
        top = float(np.max(np.abs(arr))) if arr.size else 0.0
        if top == 0.0:
            return (arr.copy() if arr.ndim else float(arr)), 0
        e = math.frexp(top)[1]
        out = np.ldexp(arr, -e)
        return (out if arr.ndim else float(out)), e

    def scale_back(self, v, e):
        """v * 2**e, saturating to +-inf (or 0) outside the float64 range."""
        with np.errstate(over="ignore", under="ignore"):
            out = np.ldexp(np.asarray(v, dtype=np.float64), int(e))
        return out if out.ndim else float(out)

    def centre(self, v):
        """(v - mean(v), mean(v)) for a vector v. Two passes with correctly rounded
        sums (math.fsum): the second removes the rounding of the first mean, so the
        centred values are accurate to a few roundings of their own size however
        large the mean is against the spread."""
        v = np.asarray(v, dtype=np.float64)
        mean = math.fsum(v) / v.size
        c = v - mean
        shift = math.fsum(c) / v.size
        return c - shift, mean + shift

    # ---- linear algebra ---------------------------------------------------------
    def rank(self, A):
        return int(np.linalg.matrix_rank(A))

    def lstsq(self, A, b):
        return np.linalg.lstsq(A, b, rcond=None)[0]

    def mean(self, v):
        return float(np.mean(v))

    def sqrt(self, x):
        return math.sqrt(x)

    def dot(self, a, b):
        return float(a @ b)

    # ---- decisions --------------------------------------------------------------
    def is_positive(self, x, scale):
        """x > 0, counting |x| <= rounding of `scale` as 0 (not positive)."""
        return x > self.rel * scale

    def is_zero(self, x, scale):
        return abs(x) <= self.rel * scale

    def all_equal(self, v):
        return bool(np.all(v == v[0]))

    def le(self, a, b, scale):
        """a <= b, with equality up to rounding of `scale` counted as <=."""
        return bool(a <= b + self.rel * scale)

    def tolerance(self, scale):
        return self.rel * scale

    # ---- outputs ----------------------------------------------------------------
    def number(self, x):
        return float(x)

    def vector(self, v):
        out = np.array(v, dtype=np.float64)
        out.setflags(write=False)
        return out

    def to_float(self, v):
        return np.asarray(v, dtype=np.float64)
