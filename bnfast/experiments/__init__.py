"""Experiments that settle the empirical claims about BN, one module per experiment
(ics.py, landscape.py, ...) with a shared result and verdict type. Filled by the
experiments issue; `bnfast run NAME` will be their command."""
