"""Shared pieces of the asv suite: parameters, cached input arrays, a ratio timer.

asv (asv_runner 0.3) re-runs a benchmark's ``setup`` before every timed sample, and
before every call when ``number > 1``. Setup must therefore be cheap: the arrays are
built once per benchmark process and kept in small module-level caches, and output
buffers for ``out=`` are written once so that their pages are mapped before timing.
"""

import functools
import time

import numpy as np

#: (N, C) row-major, (N, C) with few rows and many channels, (N, C, H, W), and a tiny
#: overhead-bound call. The (64, 64, 56, 56) float64 array is 100 MB.
SHAPES = [(65536, 256), (256, 65536), (64, 64, 56, 56), (3, 2)]
DTYPES = ["float32", "float64"]
THREADS = [1, 2]

TINY = 1 << 12  # elements: below this a call is overhead bound (microseconds)
TINY_NUMBER = 20  # calls per timing sample for tiny shapes

# A random block whose length is prime, tiled to any size: random-looking data at
# memory speed (drawing 16M normals costs ~0.5 s per array, per benchmark process).
_BLOCK = 1_000_003


def is_tiny(shape):
    return int(np.prod(shape)) <= TINY


@functools.lru_cache(maxsize=4)
def _block(seed, dtype):
    return np.random.default_rng(seed).standard_normal(_BLOCK).astype(dtype)


def _filled(shape, dtype, seed, scale=1.0, offset=0.0):
    size = int(np.prod(shape))
    if size <= _BLOCK:
        a = np.random.default_rng(seed).standard_normal(size).astype(dtype)
    else:
        a = np.resize(_block(seed, dtype), size)
    a = a.reshape(shape)
    if scale != 1.0:
        a *= dtype.type(scale)
    if offset != 0.0:
        a += dtype.type(offset)
    return a


@functools.lru_cache(maxsize=1)
def arrays(shape, dtype):
    """(x, dy, weight, bias) for a shape and dtype name, built once per process.

    x has mean ~3 and std ~2 per channel; dy is standard normal; weight and bias are
    float64 (C,) (the kernels convert them; what a NumPy caller passes).
    """
    dtype = np.dtype(dtype)
    x = _filled(shape, dtype, seed=1, scale=2.0, offset=3.0)
    dy = _filled(shape, dtype, seed=2)
    rng = np.random.default_rng(3)
    channels = shape[1]
    weight = rng.uniform(0.5, 1.5, channels)
    bias = rng.standard_normal(channels)
    return x, dy, weight, bias


@functools.lru_cache(maxsize=2)
def batch_stats(shape, dtype, impl):
    """(mean, invstd) of the x of ``arrays(shape, dtype)`` from ``impl`` (bnfast or
    bnfast.reference, passed as the module), for the backward benchmarks."""
    x, _, weight, bias = arrays(shape, dtype)
    _, mean, invstd = impl.batch_norm_forward(x, weight, bias)
    return mean, invstd


@functools.lru_cache(maxsize=1)
def out_buffer(shape, dtype):
    """A preallocated output array with its pages already mapped."""
    out = np.empty(shape, dtype=dtype)
    out.fill(0)
    return out


def configure_timing(bench, shape, large_repeat=(2, 5, 4.0)):
    """Per-parameter timing attributes (asv reads them again after setup).

    Tiny calls take microseconds: 20 calls per sample, many samples (short samples:
    on a loaded machine a call that waits for a descheduled thread, e.g. PyTorch's
    autograd engine, can take ~70 ms; the minimum of short samples skips those).
    Large calls take 10-100 ms: one call per sample, a few samples.
    """
    if is_tiny(shape):
        bench.number = TINY_NUMBER
        bench.repeat = (10, 40, 1.0)
        bench.warmup_time = 0.05
    else:
        bench.number = 0  # asv picks 1 call per sample for these
        bench.repeat = large_repeat
        bench.warmup_time = 0.0


def import_torch():
    """torch, or NotImplementedError (asv's skip) when PyTorch is not installed."""
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise NotImplementedError(f"PyTorch is not importable ({exc})") from exc
    return torch


def min_time(func, number=1, repeat=5, budget=3.0):
    """Minimum over ``repeat`` samples of the mean time of ``number`` calls (seconds);
    stops early after ``budget`` seconds once 2 samples are in."""
    best = float("inf")
    start = time.perf_counter()
    for k in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            func()
        best = min(best, (time.perf_counter() - t0) / number)
        if k >= 1 and time.perf_counter() - start > budget:
            break
    return best


#: The pause before each side's sample in ``ratio``: a library's worker threads keep
#: spinning for milliseconds after its work (PyTorch's OpenMP team, XLA's pool), and a
#: sample started at once would share the cores with them (measured: the top Hessian
#: eigenvalue took 28.5 ms right after PyTorch's, 21.9 ms after a 50 ms pause).
SETTLE_SECONDS = 0.05
#: Then untimed calls for at least this long: this side's threads wake and the cores
#: leave their idle states (one call of a 0.6 ms product after the pause was not enough:
#: the next five ran up to 1.5x slower than in a row).
WARM_SECONDS = 0.02


def _settled_sample(func, number):
    """One sample of ``number`` calls with the cores to itself: a pause (the other
    side's threads park), WARM_SECONDS of untimed calls, then the timed calls."""
    time.sleep(SETTLE_SECONDS)
    start = time.perf_counter()
    func()
    while time.perf_counter() - start < WARM_SECONDS:
        func()
    return min_time(func, number, 1)


def ratio(numerator, denominator, number=1, repeat=5, budget=6.0):
    """min time of ``numerator`` / min time of ``denominator``, measured interleaved
    in one process (the machine is shared and noisy: both sides see the same load),
    each sample settled (_settled_sample) so that it has the cores to itself."""
    best_n = best_d = float("inf")
    start = time.perf_counter()
    for k in range(repeat):
        best_n = min(best_n, _settled_sample(numerator, number))
        best_d = min(best_d, _settled_sample(denominator, number))
        if k >= 1 and time.perf_counter() - start > budget:
            break
    return best_n / best_d
