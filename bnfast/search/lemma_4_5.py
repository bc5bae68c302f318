"""How often Lemma 4.5 of Santurkar et al. (2018) fails over random instances: a sweep
of the native checker over chunks, through an executor, every float verdict near a
boundary decided exactly and every reported counterexample certified exactly
(docs/math/search.md)."""

import numpy as np

from .._validate import choice, integer
from . import _lemma_4_5_batch as native
from .certify import exact_verdict, shrink_counterexample
from .failure_law import failure_law
from .sweep import (VERDICT_NAMES, Figure, Option, Statement, Sweep, common_settings,
                    run_sweep)

__all__ = ["CHUNK_SIZE", "DATA", "SWEEPS", "lemma_4_5"]

#: Instances per chunk. Fixed (not derived from the number of workers), so that the
#: counts for a seed are the same whatever runs the chunks.
CHUNK_SIZE = 1 << 18
#: The data laws: "random" draws X (samples, dim) and y (samples,) with independent
#: N(0, 1) entries per instance; "example-3-2" is Dannemann and Junike's data.
DATA = ("random", "example-3-2")
EXAMPLE_3_2 = (np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), np.array([8.0, 6.0, 11.0]))
#: Failing instances each chunk hands back for certification.
KEEP_PER_CHUNK = 4
if native.VERDICT_NAMES != VERDICT_NAMES:   # the native counts' order is the driver's
    raise ImportError("bnfast.search._lemma_4_5_batch is out of date: reinstall bnfast")


def _settings(instances, data, dim, samples, seed, counterexamples):
    settings, counterexamples = common_settings("lemma-4-5", instances, seed,
                                                counterexamples, CHUNK_SIZE)
    data = choice(data, "data", DATA)
    dim = integer(dim, "dim", 1)
    samples = integer(samples, "samples", 1)
    if data == "example-3-2" and (dim, samples) != (2, 3):
        raise ValueError(f"data='example-3-2' has dim=2 and samples=3, got dim={dim}, "
                         f"samples={samples}")
    dim = integer(dim, "dim", 1, native.MAX_DIM)     # the native checker's sizes
    if samples < dim + 1:
        raise ValueError(f"samples must be >= dim + 1 = {dim + 1}: with fewer, the centred "
                         f"data have rank < dim and the BN optima are not a ray "
                         f"(degenerate), got samples={samples}")
    samples = integer(samples, "samples", 1, native.MAX_SAMPLES)
    return dict(settings, data=data, dim=dim, samples=samples), counterexamples


def check_chunk(task):
    """One chunk (a task of map_tasks): the native loop's aggregates and kept instances,
    as plain picklable data."""
    fixed = EXAMPLE_3_2 if task["data"] == "example-3-2" else (None, None)
    counts, predicted_sum, predicted_count, kept = native.check_chunk(
        task["seed"], task["count"], task["dim"], task["samples"], *fixed,
        keep=KEEP_PER_CHUNK)
    row = dict(zip(VERDICT_NAMES, (int(c) for c in counts)))
    row.update(chunk=task["chunk"], count=task["count"], predicted_sum=float(predicted_sum),
               predicted_count=int(predicted_count),
               kept={kind: [{"index": int(i), "X": X.tolist(), "y": y.tolist(),
                             "w0": w.tolist(), "data": task["data"]}
                            for i, X, y, w in zip(*arrays)]
                     for kind, arrays in kept.items()})
    return row


def _decide(instance):
    return exact_verdict(instance["X"], instance["y"], instance["w0"])[0]


def _certify(instance):
    fixed = instance["data"] == "example-3-2"
    return shrink_counterexample(np.array(instance["X"]), np.array(instance["y"]),
                                 np.array(instance["w0"]), fixed_data=fixed)


STATEMENT = Statement("lemma-4-5", check_chunk, _decide, _certify)


def lemma_4_5(instances, data="random", dim=2, samples=3, seed=0, executor=None,
              progress=True, out=None, resume=False, counterexamples=5, overwrite=False):
    """Checks inequality (1) of Lemma 4.5 on ``instances`` random instances.

    An instance is (X, y, w0) with w0 ~ N(0, I_dim) (isotropic); data="random" also
    draws X (samples, dim) and y (samples,) with independent N(0, 1) entries; data=
    "example-3-2" uses Example 3.2's X, y (dim 2, samples 3). One identity neuron,
    gamma = 1, beta = 0, eps = 0.

    Work is split into chunks of CHUNK_SIZE instances seeded by (seed, chunk index), run
    by ``executor`` (None: local processes; a concurrent.futures.Executor; a
    dask.distributed.Client): the counts for a seed are bit-identical whatever runs them.
    ``out`` (a .parquet path) keeps each finished chunk's aggregates (valid after
    Ctrl-C); resume=True continues the sweep stored there (every row checked against
    this sweep's chunks), overwrite=True replaces it; an existing ``out`` is refused
    otherwise (FileExistsError). ``counterexamples``: how many certified
    counterexamples to report. instances <= sweep.MAX_CHUNKS * CHUNK_SIZE.

    Returns a SearchResult: rate = holds / premise, predicted = the mean over the drawn
    data sets of 1/2 - theta/(2 pi) (dim >= 2; for dim = 1 it is 1 or 0), ci its 95%
    Wilson interval, counterexamples shrunk to small integers and certified exactly,
    smallest first (without X and y for Example 3.2's data). Raises
    bnfast.executors.Interrupted on Ctrl-C (after saving).
    """
    settings, wanted = _settings(instances, data, dim, samples, seed, counterexamples)
    statement = STATEMENT if data == "random" else \
        Statement("lemma-4-5", check_chunk, _decide, _certify, _without_data)
    return run_sweep(statement, settings, wanted, executor, progress, out, resume,
                     overwrite)


def _without_data(certificates):
    """Example 3.2's data are fixed: a certificate is its w0."""
    return [{k: v for k, v in c.items() if k not in ("X", "y")} for c in certificates]


# ---- as `bnfast search lemma-4-5` offers it -------------------------------------------

def _law(settings):
    return (f"data {settings['data']}, dim {settings['dim']}, samples "
            f"{settings['samples']}, seed {settings['seed']}; w0 ~ N(0, I)")


def _example(certificate):
    c = certificate
    data = "" if "X" not in c else f"  X = {c['X']}  y = {c['y']}"
    return [f"  w0 = {c['w0']}{data}",
            f"      ||W0 - What*||^2 = {c['lhs']}  >  {c['rhs']} = right side of (1)"]


def _failure_law(result, executor, progress):
    s = result.settings
    return failure_law(dim=s["dim"], samples=s["samples"], seed=s["seed"],
                       executor=executor, progress=progress)


def _failure_law_summary(law):
    return (f"failure law: {100 * law.inside():.0f}% of {len(law.predicted)} data sets' "
            "95% intervals contain the closed form")


SWEEPS = (Sweep(
    name="lemma-4-5", title="Lemma 4.5 of Santurkar et al. (2018)", run=lemma_4_5,
    samples=">= dim + 1, default 3", law=_law, premise="premise <w0, W*> > 0:",
    holds="(1) holds:", example=_example,
    closed="mean of 1/2 - theta/(2 pi) over the data sets",
    options=(Option("data", "NAME", str, "'random' (X, y with N(0, 1) entries per instance) "
                    "or 'example-3-2' (Dannemann & Junike's data); default random"),
             Option("dim", "D", int, "inputs per sample (default 2)")),
    figure=Figure(
        name="failure_law",
        what="Lemma 4.5's failure law, measured vs predicted rates per random data set "
             "(lemma-4-5 with --data random; 200 data sets x 20,000 w0)",
        applies=lambda options: options.get("data", "random") == "random",
        refusal="--plot draws Lemma 4.5's failure law over random data sets: it needs "
                "lemma-4-5 with --data random",
        measure=_failure_law, summary=_failure_law_summary)),)
