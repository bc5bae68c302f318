"""``run(name, ...)``: one experiment from set-up to verdict; ``names()`` and
``experiment(name)``: the experiments, derived from the modules of this package that
define ``EXPERIMENT`` (spec.py)."""

import functools
import time

from .._registry import by_name, collect
from .._validate import boolean, seed as seed_value
from ..executors import map_tasks
from .result import ExperimentResult, Verdict, fragility

__all__ = ["experiment", "names", "run"]


def _experiments():
    """{name: Experiment}, listed by (order, name)."""
    found = sorted(collect(__package__, "EXPERIMENT"), key=lambda e: (e.order, e.name))
    return by_name(found, "experiment")


def names():
    """The experiments' names, in the order `bnfast run --list` shows them."""
    return tuple(_experiments())


def experiment(name):
    """The Experiment definition of ``name``; ValueError listing the known names."""
    known = _experiments()
    if not isinstance(name, str) or name not in known:
        raise ValueError(f"unknown experiment {name!r}; the experiments are: "
                         f"{', '.join(known)}")
    return known[name]


def run(name, quick=False, seed=0, executor=None, progress=True):
    """Runs experiment ``name`` and decides its verdict by the experiment's rule.

    name : one of names().
    quick : the reduced set-up (under a minute on 2 cores; what tests use). Quick and
        full runs share all code; only the sizes differ.
    seed : int in [0, 2**63); the run is a pure function of (name, quick, seed).
    executor : None (local worker processes), a concurrent.futures.Executor, or a
        dask.distributed.Client; the result does not depend on it.
    progress : a tqdm bar on stderr for runs over a second.

    Returns an ExperimentResult. Raises bnfast.executors.Interrupted on Ctrl-C.
    """
    spec = experiment(name)
    quick = boolean(quick, "quick")
    seed = seed_value(seed)
    progress = boolean(progress, "progress")
    start = time.perf_counter()
    settings = spec.settings(quick)
    settings = {**settings, "quick": quick, "seed": seed}
    tasks = spec.tasks(settings, seed)
    timed = map_tasks(functools.partial(_timed_task, spec.run_task), tasks,
                      executor=executor, progress=progress, desc=f"bnfast run {name}")
    results = [result for result, _ in timed]
    verdict, measurements = spec.conclude(settings, results)
    if not isinstance(verdict, Verdict) or "verdict_inputs" not in measurements \
            or not isinstance(measurements.get("alternatives"), dict):
        raise RuntimeError(f"experiment {name!r} broke its contract: verdict {verdict!r} "
                           "must be a Verdict, measurements need 'verdict_inputs' and "
                           "'alternatives'")
    return ExperimentResult(name=name, claim=spec.claim, source=spec.source,
                            verdict=verdict, rule=spec.rule, settings=settings,
                            measurements=measurements,
                            seconds=round(time.perf_counter() - start, 3),
                            rule_version=spec.rule_version, rule_params=spec.rule_params,
                            rule_hash=spec.rule_hash,
                            fragility=fragility(verdict, measurements["alternatives"]),
                            cpu_seconds=round(sum(cpu for _, cpu in timed), 3))


def _timed_task(run_task, task):
    """(run_task(task), the CPU seconds of the thread that ran it: the task's own cost,
    whatever else shares its process; its kernels run on that thread, map_tasks pins
    them to one)."""
    start = time.thread_time()
    result = run_task(task)
    return result, time.thread_time() - start
