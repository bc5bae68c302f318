"""Sweeps: how often a statement about BN fails over many random instances, on one
machine or on a Dask cluster, every counterexample certified exactly
(docs/math/search.md).

    bnfast.search.lemma_4_5(instances, data="random", dim=2, samples=3, seed=0,
                            executor=None, progress=True, out=None) -> SearchResult

The native inner loop is bnfast/search/_lemma_4_5_batch.pyx (Cython over the core's
csrc/core/search/lemma_4_5_check.hpp); certify.py shrinks and certifies
counterexamples; results_file.py keeps per-chunk aggregates in Parquet.
`bnfast search` is the command.
"""

from .lemma_4_5 import lemma_4_5
from .result import SearchResult, wilson_interval

__all__ = ["SearchResult", "lemma_4_5", "wilson_interval"]
