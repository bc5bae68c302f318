"""The cache of large output buffers.

Allocating a fresh 64 MB array costs about as much as a BN pass over it (the operating
system zeroes every new page on first touch), so outputs of 1 MiB or more are taken
from a small cache of buffers that earlier outputs gave back when they were freed. The
cache holds at most 8 buffers and 512 MiB.
"""

from . import _core

__all__ = ["cached_buffer_bytes", "clear_buffer_cache"]


def clear_buffer_cache():
    """Free every cached output buffer (arrays still in use are not affected)."""
    _core.clear_buffer_cache()


def cached_buffer_bytes():
    """How many bytes the cache holds right now."""
    return _core.cached_buffer_bytes()
