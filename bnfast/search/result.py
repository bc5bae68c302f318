"""The result of a sweep (docs/math/search.md)."""

import math
from dataclasses import dataclass, field

__all__ = ["SearchResult", "wilson_interval"]


def wilson_interval(successes, trials, z=1.959963984540054):
    """The 95% Wilson score interval (low, high) for a binomial rate; (0, 1) without
    trials. Chosen over the normal approximation: it stays inside [0, 1] and is accurate
    for rates near 0 or 1 and for few trials."""
    if trials == 0:
        return (0.0, 1.0)
    p = successes / trials
    denominator = 1.0 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    # At p = 0 the lower end is exactly 0 (centre = half), at p = 1 the upper end exactly
    # 1; in floats centre - half can round to +2e-19, which would put a rate of exactly 0
    # (Theorem 4.1's closed form) outside an interval that contains it.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return (low, high)


@dataclass(frozen=True)
class SearchResult:
    """How often a statement holds over random instances.

    statement : e.g. "lemma-4-5".
    instances : instances checked.
    premise : instances where the statement's premise holds (it then claims something).
    holds : of those, instances where it holds.
    rate : holds / premise (NaN without premises).
    predicted : the closed form's prediction of ``rate`` (for Lemma 4.5: the mean of
        1/2 - theta/(2 pi) over the drawn data sets), or None.
    ci : the 95% Wilson interval (low, high) of ``rate``.
    counterexamples : list of dicts, smallest first, each certified in exact arithmetic
        (keys "w0", and "X", "y" when the data are random; "lhs", "rhs" exact values as
        strings; "size": the largest absolute integer entry after shrinking; the
        theorem sweeps add "denominator": Theorem 4.4's g is on the grid 1/denominator,
        see bnfast.search.theorems).
    seconds : wall time.
    settings : the sweep's arguments and derived numbers (data, dim, samples, seed,
        chunks, chunk_size, degenerate, decided_exactly, ...).
    """

    statement: str
    instances: int
    premise: int
    holds: int
    rate: float
    predicted: object
    ci: tuple
    counterexamples: list = field(default_factory=list)
    seconds: float = 0.0
    settings: dict = field(default_factory=dict)

    def to_dict(self):
        """The JSON object of ``bnfast search ... --json``."""
        return {"statement": self.statement, "instances": self.instances,
                "premise": self.premise, "holds": self.holds,
                "rate": None if math.isnan(self.rate) else self.rate,
                "predicted": self.predicted, "ci": list(self.ci),
                "counterexamples": self.counterexamples, "seconds": self.seconds,
                "settings": self.settings}
