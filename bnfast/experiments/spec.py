"""How an experiment is written: a set-up, a grid of independent tasks, a conclusion.

Every experiment module defines ``EXPERIMENT = Experiment(...)``; that is all it takes to
be listed (runner.py finds the modules of this package that define one). ``run``
builds the settings, splits the work into tasks (each a JSON-able dict carrying its own
seed), sends them through an executor, and hands the results, in task order, to
``conclude``. Because a task is a pure function of its dict, the result for a seed is the
same whatever the executor (in-process, local processes, a Dask cluster).
"""

from dataclasses import dataclass
from typing import Callable, Optional

from ..executors import derived_seed

__all__ = ["Experiment", "derived_seed"]


@dataclass(frozen=True)
class Experiment:
    """One empirical claim as an experiment.

    name, claim, source, rule : as in ExperimentResult; the rule is fixed here, before
        any run.
    rule_version : int, the rule's version; a new version for every change of its text,
        its parameters or its outcome mapping (docs/experiments/README.md, "Changing a
        rule").
    rule_params : dict (JSON-able), the rule's numeric parameters (margins, windows,
        seeds, steps, thresholds of the full run), the single source the module reads
        them from; ``rule_hash`` = sha256 of the canonical JSON of {name, version, text,
        params}, pinned in registered_rules.json.
    settings : quick (bool) -> dict of the set-up, JSON-able, with "reduced": a list of
        strings saying what differs from the paper's set-up and why. Quick and full share
        every line of code; only these numbers differ.
    tasks : (settings, seed) -> list of task dicts (JSON-able, picklable); seeds inside
        them come from ``derived_seed``.
    run_task : task dict -> result dict (JSON-able); a module-level function, so that it
        pickles for worker processes and Dask.
    conclude : (settings, task results in task order) -> (Verdict, measurements), with
        measurements["verdict_inputs"] the numbers the rule used and
        measurements["alternatives"] {name: label} the verdict under each reasonable
        alternative summary (window, median vs mean, matched loss vs matched step), from
        which the run computes its fragility line.
    summary : measurements -> list of text lines for the terminal report.
    headline : measurements["verdict_inputs"] -> one short line of the key figures the
        rule used (3-4 significant digits), after the verdict in ``Verdict:``; None: a
        generic compaction of verdict_inputs (result.verdict_line).
    title : the claim in a few words with its source, for the tables of the README
        and of `bnfast report` ("BN does not reduce internal covariate shift, yet
        trains faster (Santurkar et al. 2018, Def. 2.1, Fig. 5)").
    order : where `bnfast run --list` lists it (by order, then name; the default lists
        a new experiment after the first seven, which follow docs/experiments/README.md).
    """

    name: str
    claim: str
    source: str
    rule: str
    rule_version: int
    rule_params: dict
    settings: Callable
    tasks: Callable
    run_task: Callable
    conclude: Callable
    summary: Callable
    order: int = 100
    headline: Optional[Callable] = None
    title: str = ""

    @property
    def rule_hash(self):
        """sha256 of the canonical JSON of {name, version, text, params}."""
        from .result import rule_hash
        return rule_hash(self.name, self.rule_version, self.rule, self.rule_params)
