"""Sweeps: how often a statement about BN fails over many random instances, on one
machine or on a Dask cluster, every counterexample certified exactly
(docs/math/search.md).

    bnfast.search.lemma_4_5(instances, data="random", dim=2, samples=3, seed=0,
                            executor=None, progress=True, out=None) -> SearchResult
    bnfast.search.theorem_4_1(instances, samples=4, ...), theorem_4_4(..., lam=1.0)
        the printed forms of Santurkar et al.'s Theorems 4.1 and 4.4
    bnfast.search.failure_law(data_sets=200, initializations=20000, ...) -> FailureLaw
        Lemma 4.5's rate per random data set against its closed form

    bnfast.search.sweeps() -> {name: Sweep}: the sweeps `bnfast search` offers, each
        listed by its module in SWEEPS (a new sweep is one new module)

sweep.py is the driver they share (chunks, executors, the Parquet file, exact
decisions, certificates) and the registry; the Lemma 4.5 inner loop is native
(bnfast/search/_lemma_4_5_batch.pyx, Cython over csrc/core/search/lemma_4_5_check.hpp),
the theorems' is vectorised NumPy; certify.py shrinks and certifies counterexamples.
`bnfast search` is the command.
"""

from .failure_law import FailureLaw, failure_law
from .lemma_4_5 import lemma_4_5
from .result import SearchResult, wilson_interval
from .sweep import sweeps
from .theorems import theorem_4_1, theorem_4_4

__all__ = ["FailureLaw", "SearchResult", "failure_law", "lemma_4_5", "sweeps", "theorem_4_1",
           "theorem_4_4", "wilson_interval"]
