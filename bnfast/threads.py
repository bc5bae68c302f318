"""How many threads bnfast's kernels use."""

from . import _core


def set_num_threads(n):
    """Let the kernels use up to ``n`` threads (an int >= 1).

    Results are deterministic for a given thread count; small inputs run on one
    thread whatever ``n`` is, because starting threads would cost more than it saves.
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n must be an int, got {type(n).__name__}")
    _core.set_num_threads(n)


def get_num_threads():
    """The number of threads the kernels may use (default: the machine's cores)."""
    return _core.get_num_threads()
