"""The audit of Santurkar et al. (2018) section 4, and of two statements of later papers
(the scale invariance of BN weights, Arora, Li and Lyu 2019: scale_invariance.py; the
l1 constant, Hoffer et al. 2018: l1_constant.py): every statement, its verdict, and the
smallest counterexample of the ones that fail (`bnfast audit`).

Each row is a statement in one form with a checker of one instance and a generator of
small random integer instances (counterexample.py). A row FAILS when the search finds an
instance whose inequality fails (confirmed in exact arithmetic, then shrunk); it HOLDS
when none of the searched instances fails, and it is an IDENTITY when moreover every
searched instance has gap exactly 0 (exact mode) or 0 within rounding (float mode). The
Lemma 4.5 row adds the closed-form probability that (1) holds for a random
initialization with the premise <W0, W*> > 0 on Example 3.2 (its ``extra``;
lemma_4_5_probability.py); the l1 constant's corrected row adds a Monte Carlo sweep of
the finite-batch ratio (its ``extra``, l1_constant.l1_ratio_sweep). An equality
statement (a report with relation "=") fails where its two sides differ.

    audit(statements=None, exact=False, seed=0) -> list of AuditRow, one per row
    rows(): the rows, Santurkar et al.'s in the order of the paper, then the later
        papers'; statements(): the names `bnfast audit` takes

The rows are those the statements' modules list in AUDIT_ROWS (counterexample.Row): a
new row, or a new statement, is written in its own module, and nothing lists them here.
"""

import re
from dataclasses import dataclass
from typing import Any, Optional

from .._registry import collect
from .._validate import seed as seed_value
from .counterexample import Counterexample, find_counterexample

__all__ = ["AuditRow", "audit", "check_instance", "rows", "statements"]

#: Instances drawn per size m (m = 2, ..., 6) before a row counts as holding: in float64,
#: and in exact mode (sympy with radicals is ~50x slower per instance).
TRIES = 40
EXACT_TRIES = 12


def rows():
    """Every row of the audit (counterexample.Row): the AUDIT_ROWS of the modules of this
    package, in the order of the paper, i.e. by the section numbers that end the
    statement's name (theorem-4-1, ..., lemma-4-5; names without them, such as
    scale-invariance or l1-constant, last, in module order), a module's rows in the
    module's order."""
    found = [row for group in collect(__package__, "AUDIT_ROWS") for row in group]
    return sorted(found, key=_paper_order)


def _paper_order(row):
    # Only the trailing "-4-1" of "theorem-4-1" counts (the 1 of "l1-constant" does not).
    tail = re.search(r"(?:-\d+)+$", row.name)
    numbers = tuple(int(n) for n in re.findall(r"\d+", tail.group())) if tail else ()
    return (not numbers, numbers)


def statements():
    """The statement names `bnfast audit STATEMENT` takes, in the order of the paper."""
    return tuple(dict.fromkeys(row.name for row in rows()))


@dataclass(frozen=True, eq=False)
class AuditRow:
    """One row of the audit.

    statement, form   as in the reports ("Theorem 4.1", "printed")
    relation          "<=" (lhs <= rhs) or "=" (an equality: the scale invariance and
                      l1 constant rows)
    verdict           "fails", "holds" or "identity" (holds with gap 0 on every instance)
    holds             False / True
    instances         how many instances were checked
    lhs, rhs, gap     on the counterexample (failing rows) or on the last instance
                      searched (the largest m; holding rows)
    counterexample    a Counterexample (smallest found, re-checked exactly) or None
    report            the checker's report on that instance (exact arithmetic for a
                      counterexample)
    extra             more numbers (the Row's extra): Lemma 4.5 adds
                      "example_3_2_holds_probability" and "example_3_2_theta_degrees";
                      the l1 constant's corrected row "monte_carlo" (L1Sweep.to_dict())
    notes             lines of text about ``extra`` for the table (the Row's notes)
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
    notes: tuple = ()

    @property
    def relation(self):
        return getattr(self.report, "relation", "<=")

    def to_dict(self):
        """JSON-ready: numbers as floats; exact forms as strings under "exact_forms"."""
        out = {"statement": self.statement, "form": self.form, "verdict": self.verdict,
               "relation": self.relation,
               "holds": self.holds, "instances": self.instances,
               "lhs": float(self.lhs), "rhs": float(self.rhs), "gap": float(self.gap),
               "counterexample": None if self.counterexample is None
               else self.counterexample.to_dict()}
        if self.report is not None and getattr(self.report, "exact", False):
            out["exact_forms"] = {"lhs": str(self.lhs), "rhs": str(self.rhs),
                                  "gap": str(self.gap)}
        out.update(self.extra)
        return out


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
    gap = report.gap
    if exact:
        return gap == 0
    return abs(float(gap)) <= float(report.tolerance)


def _audit_row(row, exact, seed):
    found, checked, last, zero = _search(row, exact, seed)
    extra = {} if row.extra is None else row.extra()
    notes = () if row.notes is None else tuple(row.notes(extra))
    if found is not None:
        report = row.check(**found.instance, exact=True)
        return AuditRow(row.statement, row.form, "fails", False, found.draws, report.lhs,
                        report.rhs, report.gap, found, report, extra, notes)
    return AuditRow(row.statement, row.form, "identity" if zero else "holds", True, checked,
                    last.lhs, last.rhs, last.gap, None, last, extra, notes)


def _rows_of(names):
    """The rows of the statements ``names``; ValueError naming an unknown one."""
    known = statements()
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"unknown statement {unknown[0]!r}; expected one of "
                         f"{', '.join(known)}")
    return [row for row in rows() if row.name in names]


def audit(statements=None, exact=False, seed=0, progress=False):
    """The audit rows of the named statements (all of statements() when None).

    exact     False: the search checks in float64 and confirms a failure exactly; True:
              every instance is checked exactly. Same seed, same rows.
    seed      an int in [0, 2**63).
    progress  a tqdm bar over the rows on stderr, shown once the audit takes over a
              second (`bnfast audit` shows it unless --no-progress).
    """
    seed = seed_value(seed)
    selected = rows() if statements is None else _rows_of(statements)
    if progress:
        import sys

        from tqdm.auto import tqdm
        selected = tqdm(selected, desc="audit", unit="row", file=sys.stderr, delay=1.0,
                        leave=False, dynamic_ncols=True)
    return [_audit_row(row, exact, seed) for row in selected]


def check_instance(statement, instance, exact=False):
    """The reports of every row of `statement` on one user instance (a dict of the
    checker's arguments, e.g. h, grad, gamma, beta; hessian for theorem-4-2)."""
    return [row.check(**instance, exact=exact) for row in _rows_of([statement])]
