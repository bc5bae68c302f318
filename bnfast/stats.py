"""Population statistics at scale: per-channel moments that merge across chunks,
processes and Dask workers to within a few ulps of the exact statistics (precise BN, Wu
and Johnson 2021; docs/math/population_statistics.md).

    batch_moments(x, axis=1) -> Moments          one chunk, by the C++ kernel
    merge_moments(parts) -> Moments              Chan's merge, any shard sizes
    population_moments(data, axis=1, client=None) -> Moments
    population_stats(data, axis=1, ddof=0, client=None) -> (mean, var)

``data`` is an array (one call of the kernel), an iterable of chunks (streamed: memory
bounded by a chunk), or a dask.array (each block reduced on the workers, the small
results merged in a tree there too). Channels sit on ``axis`` as for the kernels (x of
shape (N, C) or (N, C, *); axis=-1 for channels-last); a channel's statistics run over
every other axis. Statistics are float64 whatever the data (float32, float64; float16
computes as float32, ints and bools as float64).

How exact: the mean and the sum of squared deviations m2 are kept as unevaluated sums of
two doubles (Moments.mean + Moments.mean_low, Moments.m2 + Moments.m2_low) and merged in
that precision, so chunking only moves the result within the rounding of the per-block
sums of the kernel: the bound is in docs/math/population_statistics.md ("The bound").
Parts merge pairwise in order (a binary counter); a stream of chunks, a list given to
merge_moments and the Dask tree over the same blocks build the same tree and give the
same bits.

Non-finite data are reported per channel, never spread: a channel holding NaN or inf has
NaN statistics (Moments.finite is False there) and the other channels are untouched;
population_stats warns (RuntimeWarning) naming such channels.
"""

import dataclasses
import warnings

import numpy as np

from . import _core
from ._validate import axis_value, float_input, integer

__all__ = ["Moments", "batch_moments", "merge_moments", "population_moments",
           "population_stats"]

#: Parts merged by one task of the Dask tree: a power of two, so that the tree of aligned
#: groups is the binary counter's tree (the same bits as merging in one process).
DASK_GROUP = 8


@dataclasses.dataclass(frozen=True, eq=False)
class Moments:
    """Per-channel moments of a set of values: the count of values per channel, the mean
    and m2, the sum of squared deviations from the mean (float64 (C,) arrays).

    mean_low and m2_low (default zeros) are the low parts of the double-double mean and
    m2 (mean + mean_low, m2 + m2_low, |low| <= half an ulp of the high part): what
    merging keeps so that the mean of 1e8 + N(0, 1e-4) parts merges without losing the
    bits a float64 mean rounds away. mean and m2 alone are the float64 values.

    A channel holding NaN or inf has NaN mean and m2 (``finite`` is False there). A
    Moments with count 0 is the identity of merge_moments. Counts are exact up to 2**53
    values per channel (the merge weighs parts by count in float64).
    """

    count: int
    mean: np.ndarray
    m2: np.ndarray
    mean_low: np.ndarray = None
    m2_low: np.ndarray = None

    def __post_init__(self):
        count = integer(self.count, "count", 0)
        arrays = {}
        for name in ("mean", "m2", "mean_low", "m2_low"):
            value = getattr(self, name)
            if value is None:
                value = np.zeros_like(arrays["mean"])
            value = np.array(value, dtype=np.float64)   # a private copy
            if value.ndim != 1:
                raise ValueError(f"{name} must be a 1-D array (one value per channel), "
                                 f"got shape {value.shape}")
            if name != "mean" and value.shape != arrays["mean"].shape:
                raise ValueError(f"{name} has shape {value.shape} but mean has "
                                 f"{arrays['mean'].shape}")
            value.flags.writeable = False
            arrays[name] = value
        if np.any(arrays["m2"] < 0):
            raise ValueError("m2 (a sum of squares) must be >= 0")
        object.__setattr__(self, "count", count)
        for name, value in arrays.items():
            object.__setattr__(self, name, value)

    @classmethod
    def empty(cls, channels):
        """The moments of no values (count 0) over ``channels`` channels."""
        zeros = np.zeros(integer(channels, "channels", 0))
        return cls(0, zeros, zeros)

    @property
    def channels(self):
        return self.mean.shape[0]

    @property
    def finite(self):
        """Per channel, whether the statistics are finite (False: the channel held NaN
        or inf, or, with a finite mean, its m2 exceeds float64's range)."""
        return np.isfinite(self.mean) & np.isfinite(self.m2)

    def var(self, ddof=0):
        """The variance m2 / (count - ddof) per channel: ddof=0 the population (biased)
        variance, ddof=1 the unbiased one BN keeps as running_var. NaN when count <=
        ddof."""
        ddof = integer(ddof, "ddof", 0)
        if self.count <= ddof:
            return np.full(self.channels, np.nan)
        return (self.m2 + self.m2_low) / float(self.count - ddof)

    def __repr__(self):
        return (f"Moments(count={self.count}, channels={self.channels}, "
                f"mean={np.array2string(self.mean, threshold=6)}, "
                f"m2={np.array2string(self.m2, threshold=6)})")


def batch_moments(x, axis=1):
    """The per-channel Moments of one array x (N, C) or (N, C, *), channels on ``axis``.

    Computed by the C++ kernel in fixed units of work: the same bits whatever the thread
    count. An x with no values but a channel axis (e.g. (0, C)) gives count 0.
    """
    xc, _ = float_input(x, "x")
    axis = axis_value(axis)
    if xc.size == 0 and xc.ndim >= 2 and -xc.ndim <= axis < xc.ndim \
            and xc.shape[axis] > 0:
        return Moments.empty(xc.shape[axis])
    count, mean, mean_low, m2, m2_low = _core.moments(xc, axis)
    return Moments(count, mean, m2, mean_low, m2_low)


def merge_moments(parts):
    """The Moments of the union of the parts' values: Chan's merge in double-double,
    pairwise in the order given (any sizes: a part of 1 value against one of 10**7 is
    exact to the same few ulps; parts with count 0 change nothing).

    parts : an iterable of Moments with the same number of channels (at least one).
    """
    parts = list(parts)
    if not parts:
        raise ValueError("merge_moments needs at least one Moments")
    for k, part in enumerate(parts):
        if not isinstance(part, Moments):
            raise TypeError(f"parts[{k}] must be a Moments, got {type(part).__name__}")
        if part.channels != parts[0].channels:
            raise ValueError(f"parts[{k}] has {part.channels} channels but parts[0] has "
                             f"{parts[0].channels}")
    count = sum(part.count for part in parts)
    counts = np.array([float(part.count) for part in parts])
    tables = [np.stack([getattr(part, name) for part in parts])
              for name in ("mean", "mean_low", "m2", "m2_low")]
    mean, mean_low, m2, m2_low = _core.merge_moments(counts, *tables)
    return Moments(count, mean, m2, mean_low, m2_low)


class _Pairwise:
    """Parts merged pairwise as they arrive: the binary counter of the C++ merge
    (kernels/moments.hpp PairwiseMerge) with ``merge2`` as its merge, so a stream gives
    the bits merge_moments gives for the same parts in the same order."""

    def __init__(self, merge2):
        self._merge2 = merge2
        self._stack = []   # [part, number of parts merged into it]

    def push(self, part):
        self._stack.append([part, 1])
        while len(self._stack) >= 2 and self._stack[-1][1] == self._stack[-2][1]:
            newer, runs = self._stack.pop()
            self._stack[-1] = [self._merge2(self._stack[-1][0], newer), 2 * runs]

    def result(self):
        if not self._stack:
            raise ValueError("data has no chunks")
        acc = self._stack[-1][0]
        for below, _ in reversed(self._stack[:-1]):
            acc = self._merge2(below, acc)
        return acc


def _merge2(a, b):
    return merge_moments([a, b])


def pairwise(parts, merge2=_merge2):
    """The parts merged by the binary counter (one Dask tree task, or a whole stream)."""
    acc = _Pairwise(merge2)
    for part in parts:
        acc.push(part)
    return acc.result()


def _tree(items, merge_group):
    """The Dask reduction: aligned groups of DASK_GROUP items merged by
    ``merge_group(*group)`` (one task each), level by level, down to one item. Every
    level merges at least once, so a single block is normalized as a merge would."""
    while True:
        items = [merge_group(*items[i:i + DASK_GROUP])
                 for i in range(0, len(items), DASK_GROUP)]
        if len(items) == 1:
            return items[0]


def _merge_moments_group(*parts):
    return merge_moments(parts)


def is_dask_array(data):
    """Whether ``data`` is a dask.array.Array (checked without importing dask)."""
    return type(data).__module__.startswith("dask.array") and hasattr(data, "to_delayed")


def _one_thread(fn, *args):
    """fn(*args) with the kernels on one thread (a Dask task: the parallelism is across
    tasks; bnfast.executors pins the same way)."""
    from .executors import _one_thread_call
    return _one_thread_call(lambda a: fn(*a), args)


def _block_moments(block, axis):
    return _one_thread(batch_moments, block, axis)


def dask_blocks(x, axis):
    """The blocks of a dask.array as delayed objects, per channel block: a list (one per
    block of the channel axis) of lists of blocks in C order of the other block axes."""
    ndim = x.ndim
    if ndim < 2:
        raise ValueError(f"x must have at least 2 dimensions (N, C, *), got shape {x.shape}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis} is out of range for x with {ndim} dimensions")
    blocks = np.moveaxis(x.to_delayed(), axis % ndim, -1)
    blocks = blocks.reshape(-1, blocks.shape[-1])
    return [list(blocks[:, j]) for j in range(blocks.shape[1])]


def compute_dask(final, client):
    """The value of a delayed object: on ``client`` (polling, so Ctrl-C cancels the work
    and raises KeyboardInterrupt), or on dask's default scheduler when client is None."""
    if client is None:
        import dask
        return dask.compute(final)[0]
    from .executors import dask_result
    return dask_result(client, client.compute(final))


def _dask_moments(x, axis, client):
    from dask import delayed
    block_moments = delayed(_block_moments, pure=True)
    merge_group = delayed(_merge_moments_group, pure=True)
    finals = [_tree([block_moments(b, axis) for b in column], merge_group)
              for column in dask_blocks(x, axis)]
    parts = compute_dask(delayed(list)(finals), client)
    return _concat_channels(parts)


def _concat_channels(parts):
    """One Moments from per-channel-block Moments of the same values."""
    if len(parts) == 1:
        return parts[0]
    return Moments(parts[0].count,
                   *(np.concatenate([getattr(p, name) for p in parts])
                     for name in ("mean", "m2", "mean_low", "m2_low")))


def _check_client(client):
    if client is None:
        return None
    from .executors import is_dask_client
    if not is_dask_client(client):
        raise TypeError("client must be a dask.distributed.Client or None, got "
                        f"{type(client).__name__}")
    return client


def population_moments(data, axis=1, client=None):
    """The per-channel Moments of all the values in ``data``.

    data : a numpy.ndarray (x (N, C) or (N, C, *), np.memmap included): one kernel call;
        a dask.array: each block reduced where it lives, the results merged in a tree of
        tasks (blocks are never gathered; chunking of the channel axis is allowed);
        any other iterable: chunks (array_likes with the same channels), streamed and
        merged pairwise (memory: one chunk and log2(chunks) Moments).
    axis : the channel axis of x (of each chunk).
    client : a dask.distributed.Client: a dask.array is reduced on its workers (also an
        ndarray, sent to them as a dask.array of about 64 MiB row blocks; an iterable of
        chunks is still streamed here). None: dask's default scheduler for a dask.array,
        this process otherwise.
    """
    axis = axis_value(axis)
    client = _check_client(client)
    if client is not None and isinstance(data, np.ndarray):
        import dask.array as da
        rows = max(1, (64 << 20) // max(1, data[:1].nbytes))
        data = da.from_array(data, chunks=(rows,) + data.shape[1:])
    if is_dask_array(data):
        return _dask_moments(data, axis, client)
    if isinstance(data, np.ndarray):
        return batch_moments(data, axis)
    if isinstance(data, (str, bytes)) or not hasattr(data, "__iter__"):
        raise TypeError("data must be an array, an iterable of chunks or a dask.array, "
                        f"got {type(data).__name__}")
    acc, channels = _Pairwise(_merge2), None
    for k, chunk in enumerate(data):
        part = batch_moments(chunk, axis)
        if channels is not None and part.channels != channels:
            raise ValueError(f"chunk {k} has {part.channels} channels but chunk 0 has "
                             f"{channels}")
        channels = part.channels
        acc.push(part)
    if channels is None:
        raise ValueError("data has no chunks")
    return acc.result()


def report_nonfinite(moments, what="data", stacklevel=3):
    """Warns (RuntimeWarning) about the channels whose statistics are not finite: NaN
    (the channel held NaN or inf) or an m2 beyond float64's range. Returns the mask of
    the finite channels."""
    finite = moments.finite
    if not finite.all():
        nan = np.flatnonzero(np.isnan(moments.mean) | np.isnan(moments.m2))
        huge = np.flatnonzero(~finite & ~np.isnan(moments.mean) & ~np.isnan(moments.m2))
        parts = []
        if nan.size:
            parts.append(f"channel(s) {_listed(nan)} of the {what} hold NaN or inf: their "
                         "statistics are NaN")
        if huge.size:
            parts.append(f"channel(s) {_listed(huge)} of the {what} have a sum of squared "
                         "deviations beyond float64's range")
        warnings.warn("; ".join(parts), RuntimeWarning, stacklevel=stacklevel)
    return finite


def _listed(indices, limit=10):
    shown = ", ".join(str(int(i)) for i in indices[:limit])
    return f"[{shown}{', ...' if indices.size > limit else ''}]"


def population_stats(data, axis=1, ddof=0, client=None):
    """(mean, var): each channel's mean and variance over all the values in ``data``,
    float64 (C,) each, within a few ulps of the exact values (see the module docs).

    data, axis, client : as for population_moments.
    ddof : 0 (default) the population variance m2 / n; 1 the unbiased m2 / (n - 1).
    Channels holding NaN or inf get NaN, with a RuntimeWarning naming them.
    """
    ddof = integer(ddof, "ddof", 0, 1)
    moments = population_moments(data, axis, client)
    report_nonfinite(moments)
    return moments.mean.copy(), moments.var(ddof)
