"""No leaks: repeated kernel calls, successful and failing, keep memory flat.

A leak of one output per call would grow memory by 2000 * 16 KB = 32 MB for the
(64, 32) float64 input used here; the allowed growth (4 MB of resident memory, 256 KB
of traced Python/NumPy allocations) is far below that and above allocator noise.
"""

import os
import resource
import tracemalloc

import numpy as np
import pytest

import bnfast

CALLS = 2000


def resident_bytes():
    """Current resident set size (Linux /proc), else the peak from getrusage."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _calls():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 32))
    g = rng.normal(size=(64, 32))
    w, b = rng.normal(size=32), rng.normal(size=32)
    rm, rv = np.zeros(32), np.ones(32)
    out = np.empty_like(x)
    constant = x.copy()
    constant[:, 3] = 1.0

    def forward():
        bnfast.batch_norm_forward(x, w, b)

    def forward_out_float32():
        bnfast.batch_norm_forward(x.astype(np.float32), w, b)

    def backward():
        _, mean, invstd = bnfast.batch_norm_forward(x)
        bnfast.batch_norm_backward(g, x, mean, invstd, w, out=out)

    def train_and_eval():
        bnfast.batch_norm(x, rm, rv, w, b, training=True)
        bnfast.batch_norm(x, rm, rv, w, b)

    def failing():
        try:
            bnfast.batch_norm_forward(constant, eps=0.0)
        except bnfast.ZeroVarianceError:
            pass
        try:
            bnfast.batch_norm(x, rm, np.ones(31), training=True)
        except ValueError:
            pass

    return {"forward": forward, "forward float32": forward_out_float32,
            "backward": backward, "train and eval": train_and_eval, "failing": failing}


@pytest.mark.parametrize("name", list(_calls()))
def test_repeated_calls_keep_memory_flat(name):
    call = _calls()[name]
    for _ in range(200):  # warm up allocator pools and caches
        call()
    rss = resident_bytes()
    tracemalloc.start()
    try:
        call()
        traced, _ = tracemalloc.get_traced_memory()
        for _ in range(CALLS):
            call()
        traced_growth = tracemalloc.get_traced_memory()[0] - traced
    finally:
        tracemalloc.stop()
    rss_growth = resident_bytes() - rss
    assert traced_growth < 256 * 1024, f"traced memory grew by {traced_growth} bytes"
    assert rss_growth < 4 * 1024 * 1024, f"resident memory grew by {rss_growth} bytes"
