"""Shared fixtures. Helpers for tolerances live in kernel_tolerances.py."""

import zlib

import numpy as np
import pytest

import bnfast


@pytest.fixture
def rng(request):
    """A generator seeded from the test's id, so every test gets its own fixed data."""
    seed = zlib.crc32(request.node.nodeid.encode())
    return np.random.default_rng(seed)


@pytest.fixture(params=[1, 2], ids=["threads1", "threads2"])
def threads(request):
    """Runs the test with bnfast.set_num_threads(1) and (2); restores the count after.
    Inputs above ~65k elements then take the multi-threaded (chunked) code paths."""
    old = bnfast.get_num_threads()
    bnfast.set_num_threads(request.param)
    yield request.param
    bnfast.set_num_threads(old)
