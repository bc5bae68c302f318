"""The runtime of the kernels: threads, the instruction-set variant, output buffers.

Threads: results are deterministic for a given thread count; small inputs run on one
thread whatever the count is, because starting threads would cost more than it saves.

Output buffers: allocating a fresh 64 MB array costs about as much as a BN pass over it
(the operating system zeroes every new page on first touch), so outputs of 1 MiB or
more are taken from a small cache of buffers that earlier outputs gave back when they
were freed. The cache holds at most 8 buffers and 512 MiB.
"""

from . import _core
from ._validate import integer

#: More threads than this is a mistake (the kernels split work into at most this many).
MAX_THREADS = 1024

__all__ = ["cached_buffer_bytes", "clear_buffer_cache", "get_num_threads",
           "set_num_threads", "simd_level"]


def set_num_threads(n):
    """Let the kernels use up to ``n`` threads (an int, 1 <= n <= MAX_THREADS)."""
    n = integer(n, "n", 1)
    if n > MAX_THREADS:
        raise ValueError(f"n must be <= {MAX_THREADS}, got {n}")
    _core.set_num_threads(n)


def get_num_threads():
    """The number of threads the kernels may use (default: the machine's cores)."""
    return _core.get_num_threads()


def simd_level():
    """The kernel variant in use: "avx2" or "baseline" (BNFAST_SIMD=baseline forces it)."""
    return _core.simd_level()


def clear_buffer_cache():
    """Free every cached output buffer (arrays still in use are not affected)."""
    _core.clear_buffer_cache()


def cached_buffer_bytes():
    """How many bytes the cache holds right now."""
    return _core.cached_buffer_bytes()
