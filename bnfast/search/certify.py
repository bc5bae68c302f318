"""Exact verdicts and small certificates for the instances a sweep reports
(docs/math/search.md).

Lemma 4.5's verdict does not change when X, y or w0 is multiplied by a positive number
(bnfast.claims.check_lemma_4_5's docstring), so a float counterexample can be shrunk to
integers: normalise each of X, y, w0 to a largest entry of 1, multiply by k and round,
for k = 1, 2, 3, ... until the integer instance still fails in exact arithmetic. The
integer instance is then the certificate; its size is its largest absolute entry.
"""

import functools

import numpy as np

from ..claims import check_lemma_4_5

__all__ = ["SCALES", "exact_verdict", "shrink_counterexample"]

#: The integer scales tried when shrinking, smallest first.
SCALES = (1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 25, 32, 50, 64, 100, 128, 256, 1000)

VERDICTS = ("no_premise", "holds", "fails", "degenerate")


def exact_verdict(X, y, w0):
    """("no_premise" | "holds" | "fails" | "degenerate", report or None) in exact
    arithmetic (floats taken at their exact binary values)."""
    arrays = [np.asarray(a, dtype=np.float64) for a in (X, y, w0)]
    return _exact_verdict(*(a.tobytes() for a in arrays), arrays[0].shape)


@functools.lru_cache(maxsize=4096)
def _exact_verdict(X, y, w0, shape):
    # Cached by value: shrinking many kept instances meets the same small integer
    # candidates again and again (e.g. w0 = (1, 1) on Example 3.2's data).
    X, y, w0 = (np.frombuffer(X).reshape(shape), np.frombuffer(y), np.frombuffer(w0))
    try:
        report = check_lemma_4_5(X, y, w0, exact=True, cross_check=False)
    except ValueError:
        return "degenerate", None
    if not report.premise:
        return "no_premise", report
    return ("holds" if report.holds else "fails"), report


def _integers(a, k):
    a = np.asarray(a, dtype=np.float64)
    top = np.max(np.abs(a))
    return np.round(a / top * k) if top > 0 else a


def shrink_counterexample(X, y, w0, fixed_data=False):
    """The smallest integer rescaling of a counterexample that still fails exactly.

    X (m, d), y (m,), w0 (d,): a float instance that fails (1). fixed_data: leave X and
    y as they are (they are the given data, e.g. Example 3.2's) and shrink w0 only.

    Returns a dict: "X", "y", "w0" (nested lists of exact ints, or of the original
    floats when no scale in SCALES keeps the failure), "lhs", "rhs" (the exact sides of
    (1) as strings), "size" (the largest absolute entry), "shrunk" (bool); or None when
    the instance does not fail in exact arithmetic (a float verdict the margins should
    have caught; the caller treats it as a bug).
    """
    for k in SCALES + (None,):
        if k is None:                       # no scale kept the failure: the original
            Xk, yk, wk = X, y, w0
        elif fixed_data:
            Xk, yk, wk = X, y, _integers(w0, k)
        else:
            Xk, yk, wk = _integers(X, k), _integers(y, k), _integers(w0, k)
        verdict, report = exact_verdict(Xk, yk, wk)
        if verdict != "fails":
            continue
        integral = all(np.array_equal(np.round(a), a) for a in map(np.asarray, (Xk, yk, wk)))
        moved = [wk] if fixed_data else [Xk, yk, wk]
        return {"w0": _as_list(wk, integral), "X": _as_list(Xk, integral),
                "y": _as_list(yk, integral), "lhs": str(report.lhs), "rhs": str(report.rhs),
                "size": float(max(np.max(np.abs(a)) for a in moved)),
                "shrunk": k is not None}
    return None


def _as_list(a, integral):
    a = np.asarray(a, dtype=np.float64)
    return a.astype(np.int64).tolist() if integral else a.tolist()
