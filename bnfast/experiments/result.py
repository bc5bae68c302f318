"""The result of an experiment and its verdict (docs/experiments/README.md)."""

from dataclasses import dataclass, field

__all__ = ["VERDICTS", "ExperimentResult"]

#: The three verdicts a rule may give.
VERDICTS = ("supported", "refuted", "inconclusive")


@dataclass(frozen=True)
class ExperimentResult:
    """What ``bnfast.experiments.run`` returns.

    name : the experiment ("ics", "explosion", ...).
    claim : the claim, quoted from its source.
    source : where the claim is made (paper, section, figure).
    verdict : "supported", "refuted" or "inconclusive", decided by ``rule``.
    rule : the verdict rule, fixed before the run, in words.
    settings : dict, the set-up that ran (JSON-able); settings["reduced"] lists what the
        run reduced relative to the paper's set-up, and why.
    measurements : dict, what was measured (JSON-able); measurements["verdict_inputs"]
        holds the numbers the rule used.
    seconds : wall time of the run.
    """

    name: str
    claim: str
    source: str
    verdict: str
    rule: str
    settings: dict = field(default_factory=dict)
    measurements: dict = field(default_factory=dict)
    seconds: float = 0.0

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")

    def to_dict(self):
        """The JSON object of ``bnfast run NAME --json`` (keys of docs/experiments/README.md)."""
        return {"experiment": self.name, "claim": self.claim, "source": self.source,
                "verdict": self.verdict, "rule": self.rule, "settings": self.settings,
                "measurements": self.measurements, "seconds": self.seconds}

    @classmethod
    def from_dict(cls, fields):
        """The inverse of ``to_dict`` (e.g. to plot a result read back from JSON)."""
        return cls(name=fields["experiment"], claim=fields["claim"],
                   source=fields["source"], verdict=fields["verdict"], rule=fields["rule"],
                   settings=fields["settings"], measurements=fields["measurements"],
                   seconds=fields["seconds"])
