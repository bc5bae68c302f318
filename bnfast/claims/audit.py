"""The audit of Santurkar et al. (2018) section 4: every statement, its verdict, and the
smallest counterexample of the ones that fail (`bnfast audit`).

Each row is a statement in one form with a checker of one instance and a generator of
small random integer instances (counterexample.py). A row FAILS when the search finds an
instance whose inequality fails (confirmed in exact arithmetic, then shrunk); it HOLDS
when none of the searched instances fails, and it is an IDENTITY when moreover every
searched instance has gap exactly 0 (exact mode) or 0 within rounding (float mode). The
Lemma 4.5 row adds the closed-form probability that (1) holds for a random
initialization on Example 3.2 (lemma_4_5_probability.py).

    audit(statements=None, exact=False, seed=0) -> list of AuditRow, one per row
    ROWS: the rows, in the order of the paper; STATEMENTS: the names `bnfast audit` takes
"""

from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Optional

import numpy as np

from .counterexample import Counterexample, find_counterexample
from .example_3_2 import EXAMPLE_3_2
from .lemma_4_5 import check_lemma_4_5
from .lemma_4_5_probability import lemma_4_5_holds_probability
from .observation_4_3 import check_observation_4_3
from .theorem_4_1 import check_theorem_4_1
from .theorem_4_2 import check_theorem_4_2
from .theorem_4_4 import check_theorem_4_4

__all__ = ["AuditRow", "ROWS", "STATEMENTS", "audit", "check_instance"]

#: Integer entries of the searched instances lie in [-BOUND, BOUND].
BOUND = 3
#: Instances drawn per size m (m = 2, ..., 6) before a row counts as holding: in float64,
#: and in exact mode (sympy with radicals is ~50x slower per instance).
TRIES = 40
EXACT_TRIES = 12


@dataclass(frozen=True)
class Row:
    name: str                                    # the CLI name, e.g. "theorem-4-1"
    statement: str                               # e.g. "Theorem 4.1"
    form: str                                    # "printed", "corrected", ...
    check: Callable[..., Any]                    # check(**instance, exact=...) -> report
    draw: Callable[[np.random.Generator, int], dict]   # (rng, m) -> instance


def _ints(rng, *shape):
    return rng.integers(-BOUND, BOUND + 1, shape)


def _draw_h_grad(rng, m):
    return {"h": _ints(rng, m), "grad": _ints(rng, m)}


def _draw_h_grad_hessian(rng, m):
    upper = np.triu(_ints(rng, m, m))
    return {"h": _ints(rng, m), "grad": _ints(rng, m), "hessian": upper + np.triu(upper, 1).T}


def _draw_data(rng, m):
    """X (m, d) with d < m (the BN optima need m >= d + 1), and y, w0 (or W)."""
    d = int(rng.integers(1, m))
    return {"X": _ints(rng, m, d), "y": _ints(rng, m), "w0": _ints(rng, d)}


def _draw_x_w(rng, m):
    d = int(rng.integers(1, m))
    return {"X": _ints(rng, m, d), "W": _ints(rng, d)}


ROWS = (
    Row("theorem-4-1", "Theorem 4.1", "printed", partial(check_theorem_4_1, form="printed"),
        _draw_h_grad),
    Row("theorem-4-1", "Theorem 4.1", "corrected", partial(check_theorem_4_1, form="corrected"),
        _draw_h_grad),
    Row("theorem-4-2", "Theorem 4.2(a)", "printed", partial(check_theorem_4_2, part="a"),
        _draw_h_grad_hessian),
    Row("theorem-4-2", "Theorem 4.2(b)", "printed", partial(check_theorem_4_2, part="b"),
        _draw_h_grad_hessian),
    Row("observation-4-3", "Observation 4.3", "w-dependent", check_observation_4_3, _draw_x_w),
    Row("observation-4-3", "Observation 4.3", "constant",
        partial(check_observation_4_3, gamma=1, beta=0), _draw_x_w),
    Row("theorem-4-4", "Theorem 4.4", "printed", partial(check_theorem_4_4, form="printed"),
        _draw_h_grad),
    Row("theorem-4-4", "Theorem 4.4", "corrected", partial(check_theorem_4_4, form="corrected"),
        _draw_h_grad),
    Row("lemma-4-5", "Lemma 4.5", "printed", partial(check_lemma_4_5, cross_check=False),
        _draw_data),
)

#: The statement names `bnfast audit STATEMENT` takes, in the order of the paper.
STATEMENTS = tuple(dict.fromkeys(row.name for row in ROWS))


@dataclass(frozen=True, eq=False)
class AuditRow:
    """One row of the audit.

    statement, form   as in the reports ("Theorem 4.1", "printed")
    verdict           "fails", "holds" or "identity" (holds with gap 0 on every instance)
    holds             False / True
    instances         how many instances were checked
    lhs, rhs, gap     on the counterexample (failing rows) or on the last instance
                      searched (the largest m; holding rows)
    counterexample    a Counterexample (smallest found, re-checked exactly) or None
    report            the checker's report on that instance (exact arithmetic for a
                      counterexample)
    extra             more numbers: Lemma 4.5 adds "example_3_2_holds_probability" and
                      "example_3_2_theta_degrees"
    """

    statement: str
    form: str
    verdict: str
    holds: bool
    instances: int
    lhs: Any
    rhs: Any
    gap: Any
    counterexample: Optional[Counterexample]
    report: Any
    extra: dict

    def to_dict(self):
        """JSON-ready: numbers as floats; exact forms as strings under "exact_forms"."""
        out = {"statement": self.statement, "form": self.form, "verdict": self.verdict,
               "holds": self.holds, "instances": self.instances,
               "lhs": float(self.lhs), "rhs": float(self.rhs), "gap": float(self.gap),
               "counterexample": None if self.counterexample is None
               else self.counterexample.to_dict()}
        if self.report is not None and getattr(self.report, "exact", False):
            out["exact_forms"] = {"lhs": str(self.lhs), "rhs": str(self.rhs),
                                  "gap": str(self.gap)}
        out.update(self.extra)
        return out


def _gap(report):
    """rhs - lhs of either report type (Lemma45Report calls it margin)."""
    return report.margin if hasattr(report, "margin") else report.gap


def _search(row, exact, seed):
    """(counterexample or None, instances checked, the last report, all gaps zero)."""
    last, zero, checked = None, True, 0

    def check(instance, exact_now):
        nonlocal last, zero, checked
        report = row.check(**instance, exact=exact_now)
        if exact_now == exact and report.holds is not None:
            checked += 1
            zero = zero and _is_zero(report, exact)
            last = report
        return report.holds

    found = find_counterexample(check, row.draw, tries=EXACT_TRIES if exact else TRIES,
                                seed=seed, exact=exact)
    return found, checked, last, zero


def _is_zero(report, exact):
    gap = _gap(report)
    if exact:
        return gap == 0
    return abs(float(gap)) <= float(report.tolerance)


def _audit_row(row, exact, seed):
    found, checked, last, zero = _search(row, exact, seed)
    extra = {}
    if row.statement == "Lemma 4.5":
        p, theta = lemma_4_5_holds_probability(EXAMPLE_3_2["X"], EXAMPLE_3_2["y"])
        extra = {"example_3_2_holds_probability": p,
                 "example_3_2_theta_degrees": float(np.degrees(theta))}
    if found is not None:
        report = row.check(**found.instance, exact=True)
        return AuditRow(row.statement, row.form, "fails", False, found.draws, report.lhs,
                        report.rhs, _gap(report), found, report, extra)
    return AuditRow(row.statement, row.form, "identity" if zero else "holds", True, checked,
                    last.lhs, last.rhs, _gap(last), None, last, extra)


def audit(statements=None, exact=False, seed=0):
    """The audit rows of the named statements (all of STATEMENTS when None).

    exact  False: the search checks in float64 and confirms a failure exactly; True:
           every instance is checked exactly. Same seed, same rows.
    """
    if statements is None:
        statements = STATEMENTS
    unknown = [s for s in statements if s not in STATEMENTS]
    if unknown:
        raise ValueError(f"unknown statement {unknown[0]!r}; expected one of "
                         f"{', '.join(STATEMENTS)}")
    return [_audit_row(row, exact, seed) for row in ROWS if row.name in statements]


def check_instance(statement, instance, exact=False):
    """The reports of every row of `statement` on one user instance (a dict of the
    checker's arguments, e.g. h, grad, gamma, beta; hessian for theorem-4-2)."""
    rows = [row for row in ROWS if row.name == statement]
    if not rows:
        raise ValueError(f"unknown statement {statement!r}; expected one of "
                         f"{', '.join(STATEMENTS)}")
    return [row.check(**instance, exact=exact) for row in rows]
