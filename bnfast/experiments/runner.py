"""``run(name, ...)``: one experiment from set-up to verdict."""

import importlib
import time

from .._validate import boolean, integer
from ..executors import map_tasks
from .result import VERDICTS, ExperimentResult

__all__ = ["NAMES", "experiment", "run"]

#: The experiments, in the order of docs/experiments/README.md; module = name with "_".
NAMES = ("ics", "landscape", "noisy-bn", "lp-norm", "explosion", "decoupling", "lipschitz")


def experiment(name):
    """The Experiment definition of ``name``; ValueError listing the known names."""
    if not isinstance(name, str) or name not in NAMES:
        raise ValueError(f"unknown experiment {name!r}; the experiments are: "
                         f"{', '.join(NAMES)}")
    return importlib.import_module(f".{name.replace('-', '_')}", __package__).EXPERIMENT


def run(name, quick=False, seed=0, executor=None, progress=True):
    """Runs experiment ``name`` and decides its verdict by the experiment's rule.

    name : one of NAMES.
    quick : the reduced set-up (under a minute on 2 cores; what tests use). Quick and
        full runs share all code; only the sizes differ.
    seed : int >= 0; the run is a pure function of (name, quick, seed).
    executor : None (local worker processes), a concurrent.futures.Executor, or a
        dask.distributed.Client; the result does not depend on it.
    progress : a tqdm bar on stderr for runs over a second.

    Returns an ExperimentResult. Raises bnfast.executors.Interrupted on Ctrl-C.
    """
    spec = experiment(name)
    quick = boolean(quick, "quick")
    seed = integer(seed, "seed", 0)
    if seed >= 2**63:
        raise ValueError(f"seed must be < 2**63, got {seed}")
    progress = boolean(progress, "progress")
    start = time.perf_counter()
    settings = spec.settings(quick)
    settings = {**settings, "quick": quick, "seed": seed}
    tasks = spec.tasks(settings, seed)
    results = map_tasks(spec.run_task, tasks, executor=executor, progress=progress,
                        desc=f"bnfast run {name}")
    verdict, measurements = spec.conclude(settings, results)
    if verdict not in VERDICTS or "verdict_inputs" not in measurements:
        raise RuntimeError(f"experiment {name!r} broke its contract: verdict {verdict!r}, "
                           "measurements need 'verdict_inputs'")
    return ExperimentResult(name=name, claim=spec.claim, source=spec.source,
                            verdict=verdict, rule=spec.rule, settings=settings,
                            measurements=measurements,
                            seconds=round(time.perf_counter() - start, 3))
