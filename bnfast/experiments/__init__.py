"""Experiments that settle the empirical claims about BN (docs/experiments/README.md).

    bnfast.experiments.run(name, quick=False, seed=0, executor=None, progress=True)
        -> ExperimentResult(name, claim, source, verdict, rule, settings, measurements,
                            seconds)
    bnfast.experiments.NAMES: "ics", "landscape", "noisy-bn", "lp-norm", "explosion",
        "decoupling", "lipschitz"

One module per experiment (ics.py, ...), each defining ``EXPERIMENT`` (spec.py says
how); the shared problems (the deep linear network, the digits MLP) are in problems.py.
`bnfast run NAME` is the command.
"""

from .result import VERDICTS, ExperimentResult
from .runner import NAMES, experiment, run
from .spec import Experiment, derived_seed

__all__ = ["NAMES", "VERDICTS", "Experiment", "ExperimentResult", "derived_seed",
           "experiment", "run"]
