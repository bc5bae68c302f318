"""How often Lemma 4.5 of Santurkar et al. (2018) fails over random instances: a sweep
of the native checker over chunks, through an executor, every float verdict near a
boundary decided exactly and every reported counterexample certified exactly
(docs/math/search.md)."""

import math
import time

import numpy as np

from .._validate import boolean, integer
from ..executors import derived_seed, map_tasks
from . import _lemma_4_5_batch as native
from .certify import exact_verdict, shrink_counterexample
from .result import SearchResult, wilson_interval

__all__ = ["CHUNK_SIZE", "DATA", "lemma_4_5"]

#: Instances per chunk. Fixed (not derived from the number of workers), so that the
#: counts for a seed are the same whatever runs the chunks.
CHUNK_SIZE = 1 << 18
#: The data laws: "random" draws X (samples, dim) and y (samples,) with independent
#: N(0, 1) entries per instance; "example-3-2" is Dannemann and Junike's data.
DATA = ("random", "example-3-2")
EXAMPLE_3_2 = (np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), np.array([8.0, 6.0, 11.0]))
#: Failing instances each chunk hands back (for certification), and how many
#: certified counterexamples a sweep reports.
KEEP_PER_CHUNK = 4
VERDICT_NAMES = native.VERDICT_NAMES


def _settings(instances, data, dim, samples, seed, counterexamples):
    instances = integer(instances, "instances", 1)
    if not isinstance(data, str) or data not in DATA:
        raise ValueError(f"data must be one of {', '.join(map(repr, DATA))}, got {data!r}")
    dim = integer(dim, "dim", 1)
    samples = integer(samples, "samples", 1)
    seed = integer(seed, "seed", 0)
    if seed >= 2**63:
        raise ValueError(f"seed must be < 2**63, got {seed}")
    counterexamples = integer(counterexamples, "counterexamples", 0)
    if data == "example-3-2" and (dim, samples) != (2, 3):
        raise ValueError(f"data='example-3-2' has dim=2 and samples=3, got dim={dim}, "
                         f"samples={samples}")
    if dim > native.MAX_DIM:
        raise ValueError(f"dim must be <= {native.MAX_DIM} for the native checker, got {dim}")
    if samples < dim + 1:
        raise ValueError(f"samples must be >= dim + 1 = {dim + 1}: with fewer, the centred "
                         f"data have rank < dim and the BN optima are not a ray "
                         f"(degenerate), got samples={samples}")
    if samples > native.MAX_SAMPLES:
        raise ValueError(f"samples must be <= {native.MAX_SAMPLES}, got {samples}")
    chunks = -(-instances // CHUNK_SIZE)
    return {"statement": "lemma-4-5", "instances": instances, "data": data, "dim": dim,
            "samples": samples, "seed": seed, "chunk_size": CHUNK_SIZE, "chunks": chunks}, \
        counterexamples


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
                             "w0": w.tolist()} for i, X, y, w in zip(*arrays)]
                     for kind, arrays in kept.items()})
    return row


def lemma_4_5(instances, data="random", dim=2, samples=3, seed=0, executor=None,
              progress=True, out=None, resume=False, counterexamples=5):
    """Checks inequality (1) of Lemma 4.5 on ``instances`` random instances.

    An instance is (X, y, w0) with w0 ~ N(0, I_dim) (isotropic); data="random" also
    draws X (samples, dim) and y (samples,) with independent N(0, 1) entries; data=
    "example-3-2" uses Example 3.2's X, y (dim 2, samples 3). One identity neuron,
    gamma = 1, beta = 0, eps = 0.

    Work is split into chunks of CHUNK_SIZE instances seeded by (seed, chunk index), run
    by ``executor`` (None: local processes; a concurrent.futures.Executor; a
    dask.distributed.Client): the counts for a seed are bit-identical whatever runs them.
    ``out`` (a .parquet path) keeps each finished chunk's aggregates (valid after
    Ctrl-C); resume=True continues the sweep stored there. ``counterexamples``: how many
    certified counterexamples to report.

    Returns a SearchResult: rate = holds / premise, predicted = the mean over the drawn
    data sets of 1/2 - theta/(2 pi) (dim >= 2; for dim = 1 it is 1 or 0), ci its 95%
    Wilson interval, counterexamples shrunk to small integers and certified exactly,
    smallest first. Raises bnfast.executors.Interrupted on Ctrl-C (after saving).
    """
    settings, wanted = _settings(instances, data, dim, samples, seed, counterexamples)
    progress = boolean(progress, "progress")
    resume = boolean(resume, "resume")
    start = time.perf_counter()
    results_file = None
    done = {}
    if out is not None:
        from .results_file import ChunkFile
        results_file = ChunkFile(out, settings)
        if resume:
            done = dict(results_file.load())   # a copy: the file gains rows below
    elif resume:
        raise ValueError("resume=True needs out= (the file to continue)")
    tasks = []
    for chunk in range(settings["chunks"]):
        if chunk not in done:
            count = min(CHUNK_SIZE, settings["instances"] - chunk * CHUNK_SIZE)
            tasks.append({"chunk": chunk, "seed": derived_seed(seed, chunk), "count": count,
                          "data": data, "dim": dim, "samples": samples})
    on_result = None if results_file is None else \
        (lambda i, row: results_file.add(row["chunk"], row))
    rows = map_tasks(check_chunk, tasks, executor=executor, progress=progress,
                     desc="bnfast search lemma-4-5", on_result=on_result)
    # In chunk order: which counterexamples are certified must not depend on what
    # finished first or on what a resumed file held.
    rows = sorted(list(done.values()) + rows, key=lambda row: row["chunk"])
    return _conclude(settings, rows, wanted, time.perf_counter() - start)


def _conclude(settings, rows, wanted, seconds):
    totals = {name: sum(r[name] for r in rows) for name in VERDICT_NAMES}
    predicted_sum = math.fsum(r["predicted_sum"] for r in rows)
    predicted_count = sum(r["predicted_count"] for r in rows)
    # Undecided in float64: decide each exactly.
    decided = 0
    for row in rows:
        for inst in row["kept"]["undecided"]:
            verdict, _ = exact_verdict(inst["X"], inst["y"], inst["w0"])
            totals[verdict] += 1
            decided += 1
    totals["undecided"] -= decided
    if totals["undecided"] != 0:
        raise RuntimeError("undecided instances were not all handed back for exact checks")
    fixed = settings["data"] == "example-3-2"
    found = {}
    for row in rows:
        for inst in row["kept"]["fails"]:
            if len(found) >= wanted:
                break
            certificate = shrink_counterexample(np.array(inst["X"]), np.array(inst["y"]),
                                                np.array(inst["w0"]), fixed_data=fixed)
            if certificate is None:
                raise RuntimeError("a float counterexample did not fail in exact arithmetic "
                                   f"(beyond the checker's margins: a bug): {inst}")
            key = repr((certificate["X"], certificate["y"], certificate["w0"]))
            found.setdefault(key, certificate)
    examples = sorted(found.values(), key=lambda c: (c["size"], str(c["w0"])))
    if fixed:
        for c in examples:
            del c["X"], c["y"]     # the data are Example 3.2's
    premise = totals["holds"] + totals["fails"]
    rate = totals["holds"] / premise if premise else math.nan
    predicted = predicted_sum / predicted_count if predicted_count else None
    return SearchResult(
        statement="lemma-4-5", instances=settings["instances"], premise=premise,
        holds=totals["holds"], rate=rate, predicted=predicted,
        ci=wilson_interval(totals["holds"], premise), counterexamples=examples,
        seconds=round(seconds, 3),
        settings=dict(settings, degenerate=totals["degenerate"],
                      no_premise=totals["no_premise"], decided_exactly=decided))
