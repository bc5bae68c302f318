"""The sweep driver every statement shares: chunks seeded by (seed, chunk index), an
executor, the Parquet results file, exact decisions of undecided float verdicts, and
certified counterexamples (docs/math/search.md); and the registry of sweeps.

A statement plugs in as a ``Statement``: its chunk checker returns one row per chunk,
{"chunk", "count", "no_premise", "holds", "fails", "undecided", "degenerate",
"predicted_sum", "predicted_count", "kept": {"fails": [...], "undecided": [...]}},
the kept instances being JSON-able dicts.

A module of this package that lists ``SWEEPS`` (a tuple of ``Sweep``) offers those
sweeps; ``sweeps()`` finds them, and `bnfast search` takes its statements, options and
report from them: a new sweep is one new module.
"""

import math
import time
from dataclasses import dataclass
from typing import Callable, Optional

from .._registry import by_name, collect
from .._validate import boolean, integer, seed as seed_value
from ..executors import derived_seed, map_tasks
from .result import SearchResult, wilson_interval

__all__ = ["MAX_CHUNKS", "VERDICT_NAMES", "Figure", "Option", "Statement", "Sweep",
           "chunk_count", "common_settings", "run_sweep", "sweeps"]

#: Verdicts counted per chunk, in this order.
VERDICT_NAMES = ("no_premise", "holds", "fails", "undecided", "degenerate")
#: The most chunks a sweep may have. This process keeps one row per finished chunk (its
#: counts and kept instances) and the results file holds (and rewrites) them all, so a
#: sweep's memory and file grow with its chunks: larger sweeps are refused up front
#: (instances <= MAX_CHUNKS * the statement's chunk size), not left to exhaust memory.
#: Split a larger sweep over several seeds.
MAX_CHUNKS = 1 << 18


@dataclass(frozen=True)
class Statement:
    """name: e.g. "lemma-4-5". check_chunk: task dict (chunk, seed, count and the
    statement's settings) -> row (module docstring); module-level, for pickling.
    decide: kept instance -> verdict name, in exact arithmetic. certify: failing kept
    instance -> certificate dict with "size" (exact), or None if it does not fail
    exactly. finish: certificate list -> the list reported (e.g. drop fixed data)."""

    name: str
    check_chunk: Callable
    decide: Callable
    certify: Callable
    finish: Callable = list


@dataclass(frozen=True)
class Option:
    """A setting of a sweep beyond those every sweep has (instances, samples, seed,
    executor, progress, out, resume): the keyword ``name`` of its function, which
    `bnfast search` offers as --NAME METAVAR and reads with ``parse`` (int, float or
    str). Left out, the function's default applies."""

    name: str
    metavar: str
    parse: Callable
    help: str


@dataclass(frozen=True)
class Figure:
    """What `bnfast search NAME --plot PATH` draws for a sweep.

    name : the key of its data in the JSON output, and the module bnfast.plot.<name>
        whose plot_<name>(path, data) draws it.
    what : what it shows (for the help of --plot).
    applies : {option name: value given} -> whether it can be drawn; refusal: the
        message when it cannot.
    measure : (SearchResult, executor, progress) -> its data (with ``to_dict()``).
    summary : data -> the report's line about it.
    """

    name: str
    what: str
    applies: Callable
    refusal: str
    measure: Callable
    summary: Callable


@dataclass(frozen=True)
class Sweep:
    """A statement as `bnfast search NAME` sweeps it.

    name : e.g. "lemma-4-5"; title : the statement, the report's first words.
    run : function(instances, samples=, seed=, executor=, progress=, out=, resume=,
        overwrite=, **options) -> SearchResult.
    samples : what --samples means for it and its default (help text).
    law : settings -> the instance law, for the report's first line.
    premise, holds : the report's labels of the two counts.
    example : certificate -> its report lines.
    closed : what the closed-form rate is (reported when ``predicted`` is not None).
    options : its own Options; figure : its Figure, or None.
    """

    name: str
    title: str
    run: Callable
    samples: str
    law: Callable
    premise: str
    holds: str
    example: Callable
    closed: Optional[str] = None
    options: tuple = ()
    figure: Optional[Figure] = None


def sweeps():
    """{name: Sweep} of every module of this package that lists SWEEPS, in module
    order."""
    return by_name([s for group in collect(__package__, "SWEEPS") for s in group], "sweep")


def common_settings(statement, instances, seed, counterexamples, chunk_size):
    """The settings every sweep has, validated; returns (settings, counterexamples).
    ValueError for more instances than MAX_CHUNKS chunks hold."""
    instances = integer(instances, "instances", 1)
    if instances > MAX_CHUNKS * chunk_size:
        raise ValueError(
            f"instances must be <= {MAX_CHUNKS * chunk_size:,} for {statement} "
            f"({MAX_CHUNKS:,} chunks of {chunk_size:,}: a sweep keeps a row per chunk in "
            f"memory and in its results file; split a larger sweep over several seeds), "
            f"got {instances:,}")
    seed = seed_value(seed)
    counterexamples = integer(counterexamples, "counterexamples", 0)
    return {"statement": statement, "instances": instances, "seed": seed,
            "chunk_size": chunk_size, "chunks": -(-instances // chunk_size)}, counterexamples


def chunk_count(settings, chunk):
    """The sweep's chunk plan: how many instances chunk ``chunk`` has (chunk_size, the
    last one the rest)."""
    size = settings["chunk_size"]
    return min(size, settings["instances"] - chunk * size)


def run_sweep(statement, settings, wanted, executor=None, progress=True, out=None,
              resume=False, overwrite=False):
    """Runs ``statement`` over settings["instances"] instances; returns a SearchResult.
    ``out``: the results file (results_file.ChunkFile); an existing one is continued
    with resume=True, replaced with overwrite=True, refused (FileExistsError) otherwise.
    Raises bnfast.executors.Interrupted on Ctrl-C (after the results file is saved)."""
    progress = boolean(progress, "progress")
    resume = boolean(resume, "resume")
    overwrite = boolean(overwrite, "overwrite")
    start = time.perf_counter()
    results_file, done = None, {}
    if out is not None:
        from .results_file import ChunkFile
        results_file = ChunkFile(out, settings, resume=resume, overwrite=overwrite)
        if resume:
            done = dict(results_file.load())   # a copy: the file gains rows below
    elif resume:
        raise ValueError("resume=True needs out= (the file to continue)")
    fields = {k: v for k, v in settings.items()
              if k not in ("instances", "seed", "chunk_size", "chunks")}
    tasks = [dict(fields, chunk=chunk, seed=derived_seed(settings["seed"], chunk),
                  count=chunk_count(settings, chunk))
             for chunk in range(settings["chunks"]) if chunk not in done]
    on_result = None if results_file is None else \
        (lambda i, row: results_file.add(row["chunk"], row))
    rows = map_tasks(statement.check_chunk, tasks, executor=executor, progress=progress,
                     desc=f"bnfast search {statement.name}", on_result=on_result)
    # In chunk order: which counterexamples are certified must not depend on what
    # finished first or on what a resumed file held.
    rows = sorted(list(done.values()) + rows, key=lambda row: row["chunk"])
    return _conclude(statement, settings, rows, wanted, time.perf_counter() - start)


def _conclude(statement, settings, rows, wanted, seconds):
    totals = {name: sum(r[name] for r in rows) for name in VERDICT_NAMES}
    predicted_sum = math.fsum(r["predicted_sum"] for r in rows)
    predicted_count = sum(r["predicted_count"] for r in rows)
    decided = 0
    for row in rows:                    # undecided in float64: decided exactly
        for instance in row["kept"]["undecided"]:
            totals[statement.decide(instance)] += 1
            decided += 1
    totals["undecided"] -= decided
    if totals["undecided"] != 0:
        raise RuntimeError("undecided instances were not all handed back for exact checks")
    found = {}
    for row in rows:
        for instance in row["kept"]["fails"]:
            if len(found) >= wanted:
                break
            certificate = statement.certify(instance)
            if certificate is None:
                raise RuntimeError("a float counterexample did not fail in exact arithmetic "
                                   f"(beyond the checker's margins: a bug): {instance}")
            found.setdefault(repr(sorted(certificate.items())), certificate)
    # Smallest first: integer certificates before float ones, then by size.
    examples = statement.finish(sorted(
        found.values(), key=lambda c: (not c.get("shrunk", False), c["size"], repr(c))))
    premise = totals["holds"] + totals["fails"]
    return SearchResult(
        statement=statement.name, instances=settings["instances"], premise=premise,
        holds=totals["holds"], rate=totals["holds"] / premise if premise else math.nan,
        predicted=predicted_sum / predicted_count if predicted_count else None,
        ci=wilson_interval(totals["holds"], premise), counterexamples=examples,
        seconds=round(seconds, 3),
        settings=dict(settings, degenerate=totals["degenerate"],
                      no_premise=totals["no_premise"], decided_exactly=decided))
