"""Precise BN (Wu and Johnson 2021): every BN layer's running statistics set to the
population statistics of its pre-activations over a data set, layer by layer
(Network.recalibrate; docs/math/networks.md section 9, docs/math/
population_statistics.md).

Layer k's inputs are computed in inference mode with the layers before it already
recalibrated (the statistics it will see at inference), streamed in chunks of rows: one
pass over the data per BN layer, memory bounded by a chunk's pre-activations. Each
chunk's statistics are bnfast.batch_moments (plus the mean of |h| for an l1 layer and
the maximum of |h| for linf), merged pairwise as bnfast.stats does: in this process, or
as tasks on a Dask cluster (the same tree, so the same bits).

The statistics follow training's convention (docs/math/networks.md section 9): with n
the values per channel over the whole data (rows x positions),
    running_mean = mean h
    running_var  = m2 / (n - 1)                        "std" (unbiased, PyTorch's)
                 = (mean |h|)^2, mean h^2, (max |h|)^2  "l1", "l2", "linf" (s^2, no Bessel)
so recalibrating on one batch gives what one training update with momentum 1 gives to
the first BN layer, and to every layer when all are lp-norm layers (above a "std" layer
the inputs are normalized with its unbiased running variance, as at inference, where
training used the batch's biased one).
"""

import threading
import uuid
import warnings

import numpy as np

from .. import _core
from .._validate import integer
from ..stats import (Moments, _check_client, _Pairwise, _tree, batch_moments, compute_dask,
                     is_dask_array, merge_moments)
from .data import inputs
from .layers import flat_specs

__all__ = ["recalibrated_running"]

#: Float64 values of one BN layer's pre-activations per chunk when batch_size is None
#: (32 MiB): the chunk's rows follow from the widest BN layer.
DEFAULT_CHUNK_VALUES = 1 << 22


class _Evaluator:
    """What a chunk's task needs: the layers, loss, params and running statistics (flat)
    of the network being recalibrated. It compiles its own core network, one per thread
    (a compiled network serves one call at a time), so tasks on a worker's threads run
    side by side; it pickles without them (Dask ships it to the workers)."""

    def __init__(self, layers, loss, params, running):
        self.layers, self.loss = layers, loss
        self.params, self.running = params, running
        self._token = uuid.uuid4().hex
        self._local = threading.local()

    def __getstate__(self):
        return {"layers": self.layers, "loss": self.loss, "params": self.params,
                "running": self.running, "token": self._token}

    def __setstate__(self, state):
        self.__init__(state["layers"], state["loss"], state["params"], state["running"])
        self._token = state["token"]

    def __dask_tokenize__(self):
        return ("bnfast-recalibration", self._token)

    def normalization_input(self, X, layer):
        core = getattr(self._local, "core", None)
        if core is None:
            core = _core.Network(flat_specs(self.layers), _core.LossKind.__members__[self.loss])
            self._local.core = core
        return core.normalization_input(self.params, self.running, X, layer)


def _chunk_part(evaluator, X, layer, channels, scale):
    """One chunk's share of layer ``layer``'s statistics: (Moments of h, Moments of |h|
    for l1, max |h| per channel for linf) with h (rows, channels, positions)."""
    from ..executors import _one_thread_call
    return _one_thread_call(lambda args: _part(*args), (evaluator, X, layer, channels, scale))


def _part(evaluator, X, layer, channels, scale):
    X = inputs(X)
    if X.shape[0] == 0:
        h = np.zeros((0, channels, 1))
    else:
        h = evaluator.normalization_input(X, layer)
        h = h.reshape(h.shape[0], channels, -1)
    part = [batch_moments(h, 1) if h.size else Moments.empty(channels)]
    if scale == "l1":
        part.append(batch_moments(np.abs(h), 1) if h.size else Moments.empty(channels))
    if scale == "linf":
        part.append(np.abs(h).max(axis=(0, 2)) if h.size else np.zeros(channels))
    return tuple(part)


def _merge2(a, b):
    """Two chunks' shares merged: Moments by merge_moments, maxima by max (NaN stays)."""
    return tuple(merge_moments([x, y]) if isinstance(x, Moments) else np.maximum(x, y)
                 for x, y in zip(a, b))


def _merge_group(*parts):
    acc = _Pairwise(_merge2)
    for part in parts:
        acc.push(part)
    return acc.result()


def _bn_layers(net):
    """(flat layer index, channels, scale name) of each layer with running statistics,
    in network order (the order of net._running_views)."""
    return [(k, spec.out_features, spec.norm.scale.name)
            for k, (start, spec) in enumerate(zip(net._core.running_offsets,
                                                  flat_specs(net.layers)))
            if start >= 0]


def _row_chunks(X, rows):
    for start in range(0, X.shape[0], rows):
        yield X[start:start + rows]


class _Source:
    """The data as chunks of rows: an array (row slices of ``rows``), a re-iterable of
    chunks (each split into slices of ``rows`` when given), or a dask.array (its row
    blocks, rechunked to ``rows`` when given). With a client, local chunks are sent to
    the workers once (scatter) and every layer's pass runs there."""

    def __init__(self, data, batch_size):
        self.rows, self.array, self.iterable = batch_size, None, None
        self.client, self.blocks = None, None
        if is_dask_array(data):
            if data.ndim < 2:
                raise ValueError("data must have shape (m, ...) with one sample per row, "
                                 f"got a dask.array of shape {data.shape}")
            chunks = {i: -1 for i in range(1, data.ndim)}
            if batch_size is not None:
                chunks[0] = batch_size
            data = data.rechunk(chunks)
            self.blocks = list(data.to_delayed().ravel())
        elif isinstance(data, np.ndarray) or (hasattr(data, "__array__") and
                                              not hasattr(data, "__next__")):
            self.array = np.asarray(data)
            if self.array.ndim < 2:
                raise ValueError("data must have shape (m, ...) with one sample per row, "
                                 f"got shape {self.array.shape}")
        else:
            if isinstance(data, (str, bytes)) or not hasattr(data, "__iter__"):
                raise TypeError("data must be an array (m, ...), a dask.array or a "
                                "re-iterable of such chunks, got " + type(data).__name__)
            if iter(data) is data:
                raise TypeError("data is an iterator, which can be read once; "
                                "recalibration reads the data once per BN layer: pass a "
                                "list of chunks, or a re-iterable (such as a DataLoader)")
            self.iterable = data

    def default_rows(self, net, layers):
        """Rows per chunk of an array when batch_size was not given: about
        DEFAULT_CHUNK_VALUES pre-activations of the widest BN layer (probed on a row)."""
        if self.array is None or self.rows is not None or self.array.shape[0] == 0:
            return
        probe = inputs(self.array[:1])
        widest = max(net._core.normalization_input(net._params, net._running, probe,
                                                   k).shape[1] for k, _, _ in layers)
        self.rows = max(1, DEFAULT_CHUNK_VALUES // widest)

    def attach(self, client):
        """Runs every layer's pass on ``client``'s workers from now on."""
        self.client = client
        if self.blocks is None:
            self.blocks = client.scatter(list(self._local_chunks()), hash=False)

    def _local_chunks(self):
        if self.array is not None:
            yield from _row_chunks(self.array, self.rows or max(1, self.array.shape[0]))
            return
        for chunk in self.iterable:
            chunk = np.asarray(chunk)
            yield from (_row_chunks(chunk, self.rows) if self.rows else (chunk,))

    def layer_statistics(self, evaluator, layer, channels, scale):
        """Layer ``layer``'s statistics over all chunks, merged pairwise in chunk order."""
        if self.blocks is None:
            acc, chunks = _Pairwise(_merge2), 0
            for chunk in self._local_chunks():
                acc.push(_chunk_part(evaluator, chunk, layer, channels, scale))
                chunks += 1
            if not chunks:
                raise ValueError("data has no rows")
            return acc.result()
        if not self.blocks:
            raise ValueError("data has no rows")
        from dask import delayed
        part = delayed(_chunk_part, pure=True)
        ev = evaluator if self.client is None else \
            self.client.scatter(evaluator, broadcast=True, hash=False)
        parts = [part(ev, block, layer, channels, scale) for block in self.blocks]
        return compute_dask(_tree(parts, delayed(_merge_group, pure=True)), self.client)


def recalibrated_running(net, data, batch_size=None, client=None):
    """The flat running-statistics vector after precise BN over ``data``
    (Network.recalibrate documents the arguments); the network is not changed."""
    if batch_size is not None:
        batch_size = integer(batch_size, "batch_size", 1, 2**62)
    client = _check_client(client)
    layers = _bn_layers(net)
    running = net._running.copy()
    if not layers:
        return running
    source = _Source(data, batch_size)
    source.default_rows(net, layers)
    if client is not None:
        source.attach(client)
    views = net._running_views(running)
    for (layer, channels, scale), (mean_view, var_view) in zip(layers, views):
        evaluator = _Evaluator(net.layers, net.loss_kind, net._params, running.copy())
        stats = source.layer_statistics(evaluator, layer, channels, scale)
        moments = stats[0]
        n = moments.count
        if scale == "std" and n < 2:
            raise ValueError(f"layer {layer}: recalibration needs at least 2 values per "
                             f"channel, got {n}")
        if n == 0:
            raise ValueError("data has no rows")
        mean = moments.mean
        if scale == "std":
            var = moments.var(1)
        elif scale == "l2":
            var = mean * mean + moments.var(0)
        elif scale == "l1":
            var = stats[1].mean * stats[1].mean
        else:  # linf
            var = stats[1] * stats[1]
        finite = np.isfinite(mean) & np.isfinite(var)
        if not finite.all():
            bad = np.flatnonzero(~finite)
            shown = ", ".join(str(int(i)) for i in bad[:10]) + (", ..." if bad.size > 10 else "")
            warnings.warn(f"layer {layer}: the population statistics of {bad.size} "
                          f"channel(s) ([{shown}]) are not finite (NaN or inf in its "
                          "pre-activations); their running statistics were left unchanged",
                          RuntimeWarning, stacklevel=3)
        mean_view[finite] = mean[finite]
        var_view[finite] = var[finite]
    return running
