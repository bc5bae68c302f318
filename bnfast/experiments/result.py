"""The result of an experiment and its verdict (docs/experiments/README.md)."""

from dataclasses import dataclass, field

__all__ = ["VERDICTS", "ExperimentResult", "figure", "verdict_line"]

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

    @property
    def quick(self):
        """True for a quick run (the reduced set-up, whose verdict may differ from the
        full run's)."""
        return bool(self.settings.get("quick", False))

    def to_dict(self):
        """The JSON object of ``bnfast run NAME --json`` (keys of docs/experiments/README.md);
        "quick" says whether it is a quick run (the reduced set-up)."""
        return {"experiment": self.name, "claim": self.claim, "source": self.source,
                "verdict": self.verdict, "quick": self.quick, "rule": self.rule,
                "settings": self.settings, "measurements": self.measurements,
                "seconds": self.seconds}

    @classmethod
    def from_dict(cls, fields):
        """The inverse of ``to_dict`` (e.g. to plot a result read back from JSON)."""
        return cls(name=fields["experiment"], claim=fields["claim"],
                   source=fields["source"], verdict=fields["verdict"], rule=fields["rule"],
                   settings=fields["settings"], measurements=fields["measurements"],
                   seconds=fields["seconds"])


#: What a quick run's verdict line, JSON and figure title say it is.
QUICK_LABEL = "QUICK RUN (reduced set-up; the full run's verdict may differ)"


def figure(value):
    """A number at 4 significant digits (None: "n/a"; ints as they are)."""
    if value is None:
        return "n/a"
    if isinstance(value, bool) or isinstance(value, int):
        return str(value)
    return f"{value:.4g}"


def _compact(inputs, limit=200):
    """A generic one-line rendering of verdict_inputs: leaf numbers by dotted key, at 4
    significant digits, cut at ``limit`` characters."""
    parts = []

    def walk(value, key):
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{key}.{k}" if key else str(k))
        elif isinstance(value, (list, tuple)):
            if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
                parts.append(f"{key} [{', '.join(figure(v) for v in value[:4])}"
                             f"{', ...' if len(value) > 4 else ''}]")
        elif isinstance(value, (int, float, str)) or value is None:
            parts.append(f"{key} {figure(value) if not isinstance(value, str) else value}")
    walk(inputs, "")
    text = "; ".join(parts)
    return text if len(text) <= limit else text[:limit - 3].rstrip() + "..."


def verdict_line(result):
    """The report's one-line verdict: ``Verdict: VERDICT`` (with the quick-run label for
    a quick run) and the key figures the rule used, at 3-4 significant digits (the
    experiment's ``headline``); the full numbers are in ``--json``."""
    from .runner import experiment

    inputs = result.measurements.get("verdict_inputs", {})
    try:
        headline = experiment(result.name).headline
    except ValueError:
        headline = None
    key_figures = headline(inputs) if headline is not None else _compact(inputs)
    label = f" [{QUICK_LABEL}]" if result.quick else ""
    return f"Verdict: {result.verdict}{label}: {key_figures}"
