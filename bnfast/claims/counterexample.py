"""Smallest counterexamples: a deterministic search over small integer instances, a
greedy shrink, and an exact re-check; and the audit's rows (``Row``: a statement in one
form, its checker and its generator of instances), which each statement's module lists
in ``AUDIT_ROWS`` with the generators below.

A statement is given by `check(instance, exact)` -> holds (True / False / None) for an
instance, a dict of integer arrays and numbers; ValueError (a degenerate instance) counts
as "no verdict". The search draws instances of size m = 2, 3, ... from `draw(rng, m)`
and takes the first failure at the smallest m (float64 check, then confirmed exactly).
The shrink then moves entries towards 0 one at a time (v -> 0, then v -> v -/+ 1) while
the exact check still fails, until no entry can move: the result is minimal in that no
single entry can get smaller in absolute value. Same seed, same counterexample.
"""

from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional

import numpy as np

__all__ = ["BOUND", "Counterexample", "Row", "draw_data", "draw_h_grad",
           "draw_h_grad_hessian", "draw_x_w", "find_counterexample", "shrink"]

#: Integer entries of the audit's instances lie in [-BOUND, BOUND].
BOUND = 3


@dataclass(frozen=True)
class Row:
    """A row of `bnfast audit`: a statement in one form, checked on small random
    integer instances (claims/audit.py runs it).

    name       the CLI name, e.g. "theorem-4-1"; the audit lists rows by the numbers in
               it (the order of the paper)
    statement  e.g. "Theorem 4.1"; form: "printed", "corrected", ...
    check      check(**instance, exact=...) -> report
    draw       (rng, m) -> instance, a dict of the checker's arguments
    extra      None, or () -> dict of numbers the row adds to its JSON
    notes      None, or extra -> lines the table adds below the row
    """

    name: str
    statement: str
    form: str
    check: Callable[..., Any]
    draw: Callable[[np.random.Generator, int], dict]
    extra: Optional[Callable[[], dict]] = None
    notes: Optional[Callable[[dict], list]] = None


def _ints(rng, *shape):
    return rng.integers(-BOUND, BOUND + 1, shape)


def draw_h_grad(rng, m):
    """h and grad (m,): one neuron's batch and the gradient at its BN output."""
    return {"h": _ints(rng, m), "grad": _ints(rng, m)}


def draw_h_grad_hessian(rng, m):
    """h, grad (m,) and a symmetric hessian (m, m)."""
    upper = np.triu(_ints(rng, m, m))
    return {"h": _ints(rng, m), "grad": _ints(rng, m), "hessian": upper + np.triu(upper, 1).T}


def draw_data(rng, m):
    """X (m, d) with d < m (the BN optima need m >= d + 1), and y, w0."""
    d = int(rng.integers(1, m))
    return {"X": _ints(rng, m, d), "y": _ints(rng, m), "w0": _ints(rng, d)}


def draw_x_w(rng, m):
    """X (m, d) with d < m, and W (d,)."""
    d = int(rng.integers(1, m))
    return {"X": _ints(rng, m, d), "W": _ints(rng, d)}


@dataclass(frozen=True, eq=False)
class Counterexample:
    """A failing instance, re-checked in exact arithmetic.

    instance   dict of the checker's arguments (integer numpy arrays and numbers)
    m          its size (the statement's batch or sample count)
    draws      how many instances the search checked before it found one
    """

    instance: Dict[str, Any]
    m: int
    draws: int

    def to_dict(self):
        """JSON-ready: arrays as nested lists of ints."""
        return {"m": self.m, "draws": self.draws,
                "instance": {k: (v.tolist() if isinstance(v, np.ndarray) else v)
                             for k, v in self.instance.items()}}


def _verdict(check, instance, exact):
    try:
        return check(instance, exact)
    except ValueError:
        return None     # a degenerate instance: the statement says nothing there


def _fails(check, instance, exact):
    return _verdict(check, instance, exact) is False


def _size(instance):
    """The order shrinking lowers: the sum of the absolute values of all entries."""
    return sum(int(np.sum(np.abs(v))) for v in instance.values()
               if isinstance(v, np.ndarray))


def _moves(value):
    """Integer values closer to 0 than `value`, the closest to 0 first."""
    if value == 0:
        return []
    step = 1 if value > 0 else -1
    return [0] + ([value - step] if abs(value) > 1 else [])


def shrink(check, instance, keep_symmetric=("hessian",)):
    """Moves entries of a failing instance towards 0 while the exact check still fails.

    Arrays named in keep_symmetric are changed in mirrored pairs (a Hessian stays
    symmetric). Returns the shrunk instance (a new dict)."""
    current = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in instance.items()}
    improved = True
    while improved:
        improved = False
        for name, array in current.items():
            if not isinstance(array, np.ndarray):
                continue
            for index in np.ndindex(array.shape):
                if name in keep_symmetric and index[0] > index[-1]:
                    continue
                for value in _moves(int(array[index])):
                    trial = {k: (v.copy() if isinstance(v, np.ndarray) else v)
                             for k, v in current.items()}
                    trial[name][index] = value
                    if name in keep_symmetric:
                        trial[name][index[::-1]] = value
                    if _fails(check, trial, exact=True):
                        current, improved = trial, True
                        break
    return current


def find_counterexample(check: Callable[[dict, bool], Optional[bool]],
                        draw: Callable[[np.random.Generator, int], dict],
                        sizes=range(2, 7), tries=300, seed=0,
                        exact=False) -> Optional[Counterexample]:
    """The smallest counterexample the search finds, or None.

    check(instance, exact) -> holds; draw(rng, m) -> a random integer instance of size
    m. For each m in `sizes` (in order) up to `tries` instances are drawn; the first
    that fails in float64 and again exactly (exact=True: exactly only) is shrunk (see
    shrink) and returned.
    """
    rng = np.random.default_rng(seed)
    draws = 0
    for m in sizes:
        for _ in range(tries):
            instance = draw(rng, m)
            draws += 1
            if (exact or _fails(check, instance, exact=False)) and \
                    _fails(check, instance, exact=True):
                small = shrink(check, instance)
                assert _size(small) <= _size(instance)
                return Counterexample(instance=small, m=m, draws=draws)
    return None
