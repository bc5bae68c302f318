"""Sweeps over many random instances: generators, executors (local, Dask), results files,
and the shrinking and exact certification of counterexamples. Filled by the sweeps
issue; `bnfast search` will be their command."""
