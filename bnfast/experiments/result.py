"""The result of an experiment and its verdict (docs/experiments/README.md).

Version 2 of the experiments (docs/experiments/README.md, "Verdicts (version 2)") defines the verdict
labels once, here:

- ``supported`` / ``refuted``: the pre-registered rule decided it with the stated power;
- ``mixed``: the evidence conflicts across pre-registered conditions (e.g. one learning
  rate supports, another refutes); the Verdict lists which condition went which way;
- ``underpowered``: too few seeds, widths or steps to decide; the Verdict says what
  would decide it;
- a refutation obtained only in a reduced set-up (not the paper's) renders as
  ``refuted in <setting>``, never bare.

Every rule has a version and a hash (``rule_hash``: sha256 of the canonical JSON of
{name, version, text, params}); ``registered_rules.json`` pins every published version
(docs/experiments/README.md, "Changing a rule"). Results written by version-1 rules
(labels supported / refuted / inconclusive, no hash in the file) are still read; they
carry ``rule_version`` 1.
"""

import hashlib
import json
from dataclasses import dataclass, field

__all__ = ["LABELS", "V1_LABELS", "VERDICTS", "ExperimentResult", "Verdict", "combine",
           "figure", "fragility", "fragility_line", "key_figures", "rule_hash",
           "verdict_line", "verdict_text"]

#: The four verdicts a version-2 rule may give.
LABELS = ("supported", "refuted", "mixed", "underpowered")
VERDICTS = LABELS
#: The three verdicts of version-1 rules (results files written before version 2).
V1_LABELS = ("supported", "refuted", "inconclusive")
#: A mixed verdict's text names at most this many conditions of one outcome (else counts).
MIXED_NAMES = 6
#: ... and at most this many characters of names (a verdict line stays readable).
MIXED_CHARACTERS = 60
#: The outcome of one pre-registered condition (a learning rate, a problem, a measure).
OUTCOMES = ("supported", "refuted", "undecided")


@dataclass(frozen=True, eq=False)
class Verdict:
    """A verdict: its label and what it was obtained in.

    label : one of LABELS ("inconclusive" only for a result read from a version-1 file).
    setting : the set-up the rule judged, in words ("the 25-layer deep linear network").
    reduced : True when that set-up is a reduced stand-in for the paper's (then a
        refutation renders as "refuted in <setting>").
    conditions : {condition: outcome} of the pre-registered conditions (outcomes
        "supported", "refuted", "undecided"); for "mixed" they say which went which way.
    decide : for "underpowered": what would decide it (more seeds, widths, steps).

    A Verdict compares equal to its label (``verdict == "refuted"``); ``str`` is its
    text (``text``).
    """

    label: str
    setting: str = ""
    reduced: bool = False
    conditions: dict = field(default_factory=dict)
    decide: str = ""

    def __post_init__(self):
        if self.label not in LABELS + ("inconclusive",):
            raise ValueError(f"verdict must be one of {LABELS}, got {self.label!r}")
        if self.label == "refuted" and self.reduced and not self.setting:
            raise ValueError("a refutation in a reduced set-up must name its setting")
        if self.label == "mixed":
            outcomes = set(self.conditions.values())
            if not {"supported", "refuted"} <= outcomes:
                raise ValueError("a mixed verdict needs a condition that supports and "
                                 "one that refutes")
        if self.label == "underpowered" and not self.decide:
            raise ValueError("an underpowered verdict must say what would decide it")

    def __eq__(self, other):
        if isinstance(other, str):
            return self.label == other
        if isinstance(other, Verdict):
            return self.to_dict() == other.to_dict()
        return NotImplemented

    def __hash__(self):
        return hash(self.label)

    def _which(self, outcome):
        return [name for name, value in self.conditions.items() if value == outcome]

    def _listed(self, outcome):
        """The conditions with ``outcome``, by name; by count when there are more than
        MIXED_NAMES of them or their names take more than MIXED_CHARACTERS (the JSON's
        "conditions" has every name)."""
        which = self._which(outcome)
        named = ", ".join(which)
        if len(which) > MIXED_NAMES or len(named) > MIXED_CHARACTERS:
            return f"{len(which)} of {len(self.conditions)} conditions"
        return named

    @property
    def text(self):
        """The verdict as reports print it: "refuted in <setting>" for a refutation
        obtained only in a reduced set-up; "mixed (supported: ...; refuted: ...)"
        (conditions by name, or by count when one outcome's names are many or long);
        "underpowered (would decide: ...)"."""
        if self.label == "refuted" and self.reduced:
            return f"refuted in {self.setting}"
        if self.label == "mixed":
            return (f"mixed (supported: {self._listed('supported')}; "
                    f"refuted: {self._listed('refuted')})")
        if self.label == "underpowered":
            return f"underpowered (would decide: {self.decide})"
        return self.label

    def __str__(self):
        return self.text

    def __repr__(self):
        return f"Verdict({self.text!r})"

    def to_dict(self):
        return {"label": self.label, "text": self.text, "setting": self.setting,
                "reduced": self.reduced, "conditions": dict(self.conditions),
                "decide": self.decide}

    @classmethod
    def from_dict(cls, fields):
        return cls(label=fields["label"], setting=fields.get("setting", ""),
                   reduced=bool(fields.get("reduced", False)),
                   conditions=dict(fields.get("conditions", {})),
                   decide=fields.get("decide", ""))


def combine(conditions, setting, reduced=False, decide=""):
    """The verdict from the outcomes of pre-registered conditions, the one mapping of
    every version-2 rule: supported (refuted) if every condition supports (refutes);
    mixed if at least one supports and one refutes; else underpowered (a condition the
    rule could not decide: ``decide`` says what would). An outcome other than
    "supported" or "refuted" counts as undecided."""
    conditions = {str(k): (v if v in ("supported", "refuted") else "undecided")
                  for k, v in conditions.items()}
    outcomes = set(conditions.values())
    if not conditions:
        label = "underpowered"
    elif outcomes == {"supported"}:
        label = "supported"
    elif outcomes == {"refuted"}:
        label = "refuted"
    elif {"supported", "refuted"} <= outcomes:
        label = "mixed"
    else:
        label = "underpowered"
    if label == "underpowered" and not decide:
        decide = "more seeds, steps or widths in the undecided conditions"
    return Verdict(label, setting=setting, reduced=reduced, conditions=conditions,
                   decide=decide if label == "underpowered" else "")


def fragility(verdict, alternatives):
    """How many reasonable alternative summaries flip the verdict.

    verdict : the Verdict (or label) of the pre-registered summary.
    alternatives : {name: Verdict or label} of the same measurements under alternative
        summaries (another window, mean for median, matched loss for matched step).
    Returns {"flips", "of", "which" (names that flip), "alternatives" (name -> label)}.
    """
    label = getattr(verdict, "label", verdict)
    labels = {str(name): getattr(alt, "label", alt) for name, alt in alternatives.items()}
    which = [name for name, alt in labels.items() if alt != label]
    return {"flips": len(which), "of": len(labels), "which": which,
            "alternatives": labels}


def fragility_line(fragile):
    """"k of n reasonable alternative summaries flip the verdict (which)"."""
    if fragile is None:
        return "fragility: not computed (a version-1 result)"
    which = f" ({'; '.join(fragile['which'])})" if fragile["which"] else ""
    return (f"{fragile['flips']} of {fragile['of']} reasonable alternative summaries "
            f"flip the verdict{which}")


def canonical_rule(name, version, text, params):
    """The canonical JSON text that ``rule_hash`` hashes: sorted keys, no spaces,
    UTF-8, no NaN."""
    return json.dumps({"name": name, "version": version, "text": text,
                       "params": params}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False, allow_nan=False)


def rule_hash(name, version, text, params):
    """sha256 (hex) of the canonical JSON of {name, version, text, params}."""
    return hashlib.sha256(canonical_rule(name, version, text, params).encode()).hexdigest()


@dataclass(frozen=True)
class ExperimentResult:
    """What ``bnfast.experiments.run`` returns.

    name : the experiment ("ics", "explosion", ...).
    claim : the claim, quoted from its source.
    source : where the claim is made (paper, section, figure).
    verdict : a Verdict (a label string is accepted and wrapped), decided by ``rule``.
    rule : the verdict rule, fixed before the run, in words.
    settings : dict, the set-up that ran (JSON-able); settings["reduced"] lists what the
        run reduced relative to the paper's set-up, and why.
    measurements : dict, what was measured (JSON-able); measurements["verdict_inputs"]
        holds the numbers the rule used; measurements["alternatives"] the labels under
        the alternative summaries (the fragility line).
    seconds : wall time of the run.
    cpu_seconds : the CPU time of the run's tasks, summed over tasks wherever they ran
        (each task runs with the kernels on one thread): the run's cost independent of
        the machine's load; about cpu_seconds / 2 of wall time on two idle cores. None
        in files written before it was recorded.
    rule_version, rule_params, rule_hash : the pre-registered rule's version, numeric
        parameters and hash (version 1: results written before rules had versions).
    fragility : the fragility (``fragility``) or None (version 1).
    """

    name: str
    claim: str
    source: str
    verdict: Verdict
    rule: str
    settings: dict = field(default_factory=dict)
    measurements: dict = field(default_factory=dict)
    seconds: float = 0.0
    rule_version: int = 1
    rule_params: dict = field(default_factory=dict)
    rule_hash: str = ""
    fragility: dict = None
    cpu_seconds: float = None

    def __post_init__(self):
        verdict = self.verdict
        if isinstance(verdict, str):
            if verdict not in (V1_LABELS if self.rule_version == 1 else LABELS):
                raise ValueError(f"verdict must be one of {LABELS}, got {verdict!r}")
            verdict = Verdict(verdict) if verdict != "underpowered" else Verdict(
                verdict, decide="see the measurements")
            object.__setattr__(self, "verdict", verdict)
        elif self.rule_version != 1 and verdict.label not in LABELS:
            raise ValueError(f"verdict must be one of {LABELS}, got {verdict.label!r}")
        if not self.rule_hash:
            object.__setattr__(self, "rule_hash", rule_hash(
                self.name, self.rule_version, self.rule, self.rule_params))

    @property
    def quick(self):
        """True for a quick run (the reduced set-up, whose verdict may differ from the
        full run's)."""
        return bool(self.settings.get("quick", False))

    def to_dict(self):
        """The JSON object of ``bnfast run NAME --json`` (keys of docs/experiments/README.md);
        "quick" says whether it is a quick run (the reduced set-up); "verdict" is the
        label, "verdict_detail" the Verdict (text, setting, conditions, what would
        decide it)."""
        return {"experiment": self.name, "claim": self.claim, "source": self.source,
                "verdict": self.verdict.label, "verdict_detail": self.verdict.to_dict(),
                "quick": self.quick, "rule": self.rule,
                "rule_version": self.rule_version, "rule_hash": self.rule_hash,
                "rule_params": self.rule_params, "fragility": self.fragility,
                "settings": self.settings, "measurements": self.measurements,
                "seconds": self.seconds, "cpu_seconds": self.cpu_seconds}

    @classmethod
    def from_dict(cls, fields):
        """The inverse of ``to_dict`` (e.g. to plot a result read back from JSON). A file
        without "rule_version" was written by a version-1 rule: version 1, its hash
        computed from its rule text (version 1 had no separate parameters)."""
        version = fields.get("rule_version", 1)
        detail = fields.get("verdict_detail")
        verdict = Verdict.from_dict(detail) if detail else fields["verdict"]
        return cls(name=fields["experiment"], claim=fields["claim"],
                   source=fields["source"], verdict=verdict, rule=fields["rule"],
                   settings=fields["settings"], measurements=fields["measurements"],
                   seconds=fields["seconds"], rule_version=version,
                   rule_params=fields.get("rule_params", {}),
                   rule_hash=fields.get("rule_hash", ""),
                   fragility=fields.get("fragility"),
                   cpu_seconds=fields.get("cpu_seconds"))


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


def key_figures(result):
    """The key figures the rule used, at 3-4 significant digits: the experiment's
    ``headline`` of measurements["verdict_inputs"]; a generic compaction of them when
    there is no headline, or when the headline cannot read inputs written by another
    version of the rule (an older results file)."""
    from .runner import experiment

    inputs = result.measurements.get("verdict_inputs", {})
    try:
        headline = experiment(result.name).headline
    except ValueError:
        headline = None
    if headline is not None:
        try:
            return headline(inputs)
        except (KeyError, IndexError, TypeError):
            if experiment(result.name).rule_version == result.rule_version:
                raise
    return _compact(inputs)


def verdict_text(result):
    """The verdict as a run prints it ("refuted in <setting>", "mixed (...)"), with its
    rule version: "supported (rule v2)"."""
    return f"{result.verdict.text} (rule v{result.rule_version})"


def verdict_line(result):
    """The report's one-line verdict: ``Verdict: VERDICT`` (with the quick-run label for
    a quick run) and the key figures the rule used (``key_figures``); the full numbers
    are in ``--json``."""
    label = f" [{QUICK_LABEL}]" if result.quick else ""
    # A result written before version 2 (old labels, no fragility) says which rule.
    version = " (rule v1)" if result.fragility is None else ""
    return f"Verdict: {result.verdict.text}{version}{label}: {key_figures(result)}"
