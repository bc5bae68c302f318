"""The failure law of Lemma 4.5 per data set: for each of many random data sets (X, y),
the rate at which (1) holds over many isotropic initializations w0, next to the data
set's closed form 1/2 - theta/(2 pi) (docs/math/search.md). What the README's figure
shows; ``bnfast search lemma-4-5 --plot PATH`` draws it."""

import math
from dataclasses import dataclass

import numpy as np

from .._validate import boolean, integer, seed as seed_value
from ..executors import derived_seed, map_tasks
from . import _lemma_4_5_batch as native
from .result import wilson_interval

__all__ = ["FailureLaw", "failure_law"]

#: Data sets per task.
DATA_SETS_PER_TASK = 16
HOLDS, FAILS, DEGENERATE = 1, 2, 4


@dataclass(frozen=True)
class FailureLaw:
    """Per data set (arrays of length data_sets): predicted (the closed form), premise
    and holds (counts over the initializations), with dim, samples, initializations,
    seed. ``rates`` and ``intervals`` derive the measured rates and 95% intervals."""

    dim: int
    samples: int
    initializations: int
    seed: int
    predicted: np.ndarray
    premise: np.ndarray
    holds: np.ndarray

    def rates(self):
        return self.holds / np.maximum(self.premise, 1)

    def intervals(self):
        return np.array([wilson_interval(int(h), int(p))
                         for h, p in zip(self.holds, self.premise)])

    def inside(self):
        """The fraction of data sets whose 95% interval contains the closed form (about
        0.95 if the law holds)."""
        low, high = self.intervals().T
        return float(np.mean((low <= self.predicted) & (self.predicted <= high)))

    def to_dict(self):
        return {"dim": self.dim, "samples": self.samples,
                "initializations": self.initializations, "seed": self.seed,
                "predicted": self.predicted.tolist(), "premise": self.premise.tolist(),
                "holds": self.holds.tolist(), "inside": self.inside()}


def _task(task):
    """Draws the task's data sets (X, y with N(0, 1) entries; degenerate ones redrawn)
    and checks each against ``initializations`` draws of w0."""
    rng = np.random.default_rng(task["seed"])
    out = []
    for k in range(task["count"]):
        while True:
            X = rng.standard_normal((task["samples"], task["dim"]))
            y = rng.standard_normal(task["samples"])
            counts, predicted_sum, predicted_count, _ = native.check_chunk(
                derived_seed(task["seed"], k), task["initializations"], task["dim"],
                task["samples"], X, y, keep=0)
            if counts[DEGENERATE] == 0 and not counts[3]:
                break
        out.append((predicted_sum / predicted_count, int(counts[HOLDS] + counts[FAILS]),
                    int(counts[HOLDS])))
    return out


def failure_law(data_sets=200, initializations=20_000, dim=2, samples=3, seed=0,
                executor=None, progress=True):
    """Measures Lemma 4.5's rate per random data set against its closed form.

    data_sets : random data sets (X (samples, dim), y (samples,), N(0, 1) entries).
    initializations : isotropic w0 per data set.
    Returns a FailureLaw. Executors and seeds as in lemma_4_5 (identical for a seed
    whatever runs the tasks)."""
    data_sets = integer(data_sets, "data_sets", 1)
    initializations = integer(initializations, "initializations", 1)
    # The closed form is for dim >= 2; the upper bounds are the native checker's.
    dim = integer(dim, "dim", 2, native.MAX_DIM)
    samples = integer(samples, "samples", dim + 1, native.MAX_SAMPLES)
    seed = seed_value(seed)
    boolean(progress, "progress")
    tasks = [{"seed": derived_seed(seed, t), "initializations": initializations,
              "dim": dim, "samples": samples,
              "count": min(DATA_SETS_PER_TASK, data_sets - t * DATA_SETS_PER_TASK)}
             for t in range(math.ceil(data_sets / DATA_SETS_PER_TASK))]
    rows = [r for chunk in map_tasks(_task, tasks, executor=executor, progress=progress,
                                     desc="bnfast failure law") for r in chunk]
    predicted, premise, holds = (np.array(c) for c in zip(*rows))
    return FailureLaw(dim, samples, initializations, seed, predicted, premise, holds)
