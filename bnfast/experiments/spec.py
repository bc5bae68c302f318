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
    settings : quick (bool) -> dict of the set-up, JSON-able, with "reduced": a list of
        strings saying what differs from the paper's set-up and why. Quick and full share
        every line of code; only these numbers differ.
    tasks : (settings, seed) -> list of task dicts (JSON-able, picklable); seeds inside
        them come from ``derived_seed``.
    run_task : task dict -> result dict (JSON-able); a module-level function, so that it
        pickles for worker processes and Dask.
    conclude : (settings, task results in task order) -> (verdict, measurements), with
        measurements["verdict_inputs"] the numbers the rule used.
    summary : measurements -> list of text lines for the terminal report.
    headline : measurements["verdict_inputs"] -> one short line of the key figures the
        rule used (3-4 significant digits), after the verdict in ``Verdict:``; None: a
        generic compaction of verdict_inputs (result.verdict_line).
    order : where `bnfast run --list` lists it (by order, then name; the default lists
        a new experiment after the first seven, which follow docs/experiments/README.md).
    """

    name: str
    claim: str
    source: str
    rule: str
    settings: Callable
    tasks: Callable
    run_task: Callable
    conclude: Callable
    summary: Callable
    order: int = 100
    headline: Optional[Callable] = None
