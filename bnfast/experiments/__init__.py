"""Experiments that settle the empirical claims about BN (docs/experiments/README.md).

    bnfast.experiments.run(name, quick=False, seed=0, executor=None, progress=True)
        -> ExperimentResult(name, claim, source, verdict, rule, settings, measurements,
                            seconds, rule_version, rule_params, rule_hash, fragility)
    bnfast.experiments.names() -> ("ics", "landscape", "noisy-bn", "lp-norm",
        "explosion", "decoupling", "lipschitz")

One module per experiment (ics.py, ...), each defining ``EXPERIMENT`` (spec.py says
how); a module that defines one is an experiment, nothing else lists them (runner.py).
What several experiments share is in problems.py (the deep linear network, the digits
MLP) and measures.py (the landscape measures, internal covariate shift, the
checkpointed training loop). `bnfast run NAME` is the command.
"""

from .result import LABELS, VERDICTS, ExperimentResult, Verdict
from .runner import experiment, names, run
from .spec import Experiment, derived_seed

__all__ = ["LABELS", "VERDICTS", "Experiment", "ExperimentResult", "Verdict", "derived_seed", "experiment",
           "names", "run"]
