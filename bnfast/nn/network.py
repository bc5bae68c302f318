"""Batch-normalized networks evaluated by the C++ core (docs/math/networks.md)."""

import numpy as np

from .. import _core
from .._validate import choice, float64_array, integer, update_count
from .._validate import seed as seed_value
from .data import inputs, learning_set
from .init import default_params, scheme_params
from .layers import Dense, check_layers, flat_layers, flat_specs, param_slices, unflatten

__all__ = ["Network", "LOSSES", "MODES"]

#: The evaluation modes: batch statistics ("train") or population statistics ("eval").
MODES = ("train", "eval")

#: The loss reductions (docs/math/networks.md section 6).
LOSSES = tuple(_core.LossKind.__members__)


class Network:
    """A feed-forward network f(x) = layer_L(... layer_1(x)) of layers (bnfast.Dense,
    Conv1d, Conv2d, MaxPool1d/2d, AvgPool1d/2d, Flatten) and bnfast.Residual blocks.

    Parameters
    ----------
    layers : sequence of layers and Residual blocks whose shapes chain. A network that
        starts with a Dense layer takes X (m, in_features); one that starts with a
        convolution or pooling takes X (m, C, L) or (m, C, H, W), and its shapes are
        checked when it first sees X (a ValueError names the layer).
    loss : {"sum", "mean", "cross_entropy", "cross_entropy_sum"}
        "sum": sum_i ||y_i - f(x_i)||^2, the papers' loss; "mean": that divided by the
        number of rows evaluated (in SGD, the batch size). networks.md section 6.
        "cross_entropy": the mean over rows of -log softmax(f(x_i))[y_i] (PyTorch's
        F.cross_entropy), y the (m,) integer class labels in [0, out_features);
        "cross_entropy_sum": its sum. Stable for logits of any finite size
        (log-sum-exp). networks.md section 15.
    seed : int
        Seeds the initial weights: W ~ N(0, 1/in_features), b = 0, gamma/beta from
        each layer's BatchNorm. ``init(scheme, seed)`` draws from the usual schemes;
        set ``params`` to start anywhere else.

    Attributes
    ----------
    params : float64 ndarray (num_params,)
        Get (a copy) and set. Order: layer by layer (blocks opened in place), W (out, in)
        or (out, in, *kernel) row-major, then b (if bias), then gamma, beta (if
        normalized with trainable gamma and beta); pooling and Flatten have none.
    param_slices : list of slice, one per layer: that layer's part of ``params``.
    running_mean, running_var : list of float64 (out,) arrays, one per BN layer
        (per channel for a convolution). The population statistics ``predict`` uses;
        updated by ``bnfast.train``, set to the exact ones by ``recalibrate``.
    layers : tuple of layers and Residual blocks
    """

    def __init__(self, layers, loss="sum", seed=0):
        self._layers = check_layers(layers)
        if not isinstance(loss, str) or loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}; expected one of {', '.join(LOSSES)}")
        self.loss_kind = loss
        seed = seed_value(seed, "seed")
        self._core = _core.Network(flat_specs(self._layers), _core.LossKind.__members__[loss])
        self._layout = self._core.param_layout
        self._params = default_params(flat_layers(self._layers), self._layout, seed)
        self._reset_running()

    def _training_state(self):
        """Copies of what a training run starts from and changes: (params, running
        statistics (flat, the core's layout), their update count)."""
        return self.params, self._running.copy(), self._updates

    def _commit_training(self, params, running, updates):
        """What a successful training run leaves: params, the running statistics (flat,
        the core's layout) and their update count."""
        self.params = params
        self._running, self._updates = np.array(running, dtype=np.float64), int(updates)

    def _commit_running(self, running):
        """New running statistics (flat, the core's layout), e.g. recalibrated ones; the
        update count is kept."""
        running = np.array(running, dtype=np.float64)
        if running.shape != (self._core.num_running,):
            raise ValueError(f"running must have shape ({self._core.num_running},), got "
                             f"{running.shape}")
        self._running = running

    def _reset_running(self):
        """Running statistics back to PyTorch's initial 0 (mean) and 1 (var)."""
        running = np.zeros(self._core.num_running)
        for _, var in self._running_views(running):
            var[...] = 1.0
        self._running, self._updates = running, 0

    def _running_views(self, running):
        """(mean, var) views into the flat running-statistics vector, per BN layer."""
        views = []
        for start, spec in zip(self._core.running_offsets, flat_specs(self._layers)):
            if start >= 0:
                n = spec.out_features  # features, or channels
                views.append((running[start:start + n], running[start + n:start + 2 * n]))
        return views

    def __getstate__(self):
        # The compiled network is rebuilt from the layers: pickle and copy.deepcopy
        # round-trip exactly (Dask ships networks to workers this way).
        return {"layers": self._layers, "loss": self.loss_kind, "params": self._params,
                "running": self._running, "updates": self._updates}

    def __setstate__(self, state):
        # the same rules as the constructor and the setters: an edited state is refused
        self.__init__(state["layers"], state.get("loss", "sum"))
        self.params = state["params"]
        if "running" in state:
            running = float64_array(state["running"], "running")
            if running.shape != self._running.shape or not np.all(np.isfinite(running)):
                raise ValueError(f"running must be finite with shape {self._running.shape}, "
                                 f"got shape {running.shape}")
            if any(np.any(var < 0) for _, var in self._running_views(running)):
                raise ValueError("running: a running variance is negative")
            self._running = running
            self._updates = update_count(state["updates"], "updates")

    @property
    def layers(self):
        """The network's layers (copies: changing them changes nothing in the network)."""
        return tuple(layer.copy() for layer in self._layers)

    @property
    def num_params(self):
        return self._core.num_params

    @property
    def in_features(self):
        """Features of an input sample (a network starting with a Dense layer), else None
        (convolutional inputs: their shape is read from X)."""
        first = self._layers[0]
        return first.in_features if isinstance(first, Dense) else None

    @property
    def out_features(self):
        """Values of an output sample when the last layer is Dense (the classes of the
        cross-entropy losses), else None (the shape follows from X's)."""
        last = flat_layers(self._layers)[-1]
        return last.out_features if isinstance(last, Dense) else None

    @property
    def params(self):
        return self._params.copy()

    @params.setter
    def params(self, value):
        value = np.asarray(value)
        if value.dtype.kind not in "fiu":
            raise TypeError(f"params must be real numbers, got dtype {value.dtype}")
        if value.shape != (self.num_params,):
            raise ValueError(f"params must have shape ({self.num_params},), got {value.shape}")
        if not np.all(np.isfinite(value)):
            raise ValueError("params must be finite")
        self._params = np.array(value, dtype=np.float64)

    @property
    def param_slices(self):
        """One slice of ``params`` per layer, in network order (blocks opened in place):
        params[net.param_slices[i]] are layer i's W, b, gamma, beta (empty for a
        pooling or Flatten)."""
        slices, end = [], 0
        for entry in param_slices(self._layout):
            start = min((sl.start for sl, _ in entry.values()), default=end)
            end = max((sl.stop for sl, _ in entry.values()), default=end)
            slices.append(slice(start, end))
        return slices

    def param_layout(self):
        """Per layer, {"W"/"b"/"gamma"/"beta": (slice, shape)} into ``params``."""
        return param_slices(self._layout)

    def unflatten(self, params=None):
        """Per layer, a dict of the parameter arrays (W (out, in) or (out, in, *kernel),
        b, gamma, beta; empty for a pooling or Flatten)."""
        return unflatten(self._layout, self.params if params is None else np.asarray(params))

    @property
    def running_mean(self):
        """Per BN layer, the running mean (out,) (copies)."""
        return [mean.copy() for mean, _ in self._running_views(self._running)]

    @property
    def running_var(self):
        """Per BN layer, the running variance (out,) (copies); for the lp norms the
        running average of the squared scale (networks.md section 9)."""
        return [var.copy() for _, var in self._running_views(self._running)]

    def recalibrate(self, data, batch_size=None, client=None):
        """Precise BN (Wu and Johnson 2021): every BN layer's running_mean and running_var
        set to the population statistics of its pre-activations over ``data``, layer by
        layer (each layer's inputs computed in inference mode with the layers before it
        already recalibrated). Statistics within a few ulps of the exact ones
        (bnfast.population_stats), in training's convention: running_var is the unbiased
        variance m2/(n - 1) for "std" (n = rows x positions per channel) and s^2 for the
        lp norms ((mean |h|)^2, mean h^2, (max |h|)^2), so recalibrating on one batch
        gives what one training update with momentum 1 gives to the first BN layer (to
        every layer when all are lp-norm layers: above a "std" layer, inputs are
        normalized with its unbiased running variance, as at inference, not the batch's
        biased one; population_statistics.md section 6).

        data : X (m, in_features) or (m, C, *) as ``predict`` takes it: an array, a
            dask.array (its row blocks are the chunks, computed where they live), or a
            re-iterable of such chunks (a list, a DataLoader; read once per BN layer).
        batch_size : rows per chunk (default: about 32 MiB of a layer's pre-activations
            for an array, the chunks as given otherwise). Memory is bounded by a chunk.
        client : a dask.distributed.Client: the chunks' forward passes and the merges run
            on its workers (an array's chunks are sent there once). A dask.array without
            a client runs on dask's default scheduler. The numbers are the same bits as
            in this process for the same chunks.

        Channels whose statistics are not finite keep their running values, with a
        RuntimeWarning (as in training). The update count is not changed. Layers other
        than BN (LayerNorm, GroupNorm) have no running statistics and are skipped.
        Returns the network.
        """
        from .recalibrate import recalibrated_running
        self._commit_running(recalibrated_running(self, data, batch_size, client))
        return self

    def init(self, scheme="glorot", seed=0):
        """Redraw the parameters: W from ``scheme`` ("glorot": U(-a, a), a =
        sqrt(6/(in + out)); "he": N(0, 2/in); "normal": N(0, 1)) with NumPy's
        default_rng(seed), b = 0, gamma and beta the BatchNorm values; the running
        statistics start again from 0 and 1. Returns the network."""
        params = scheme_params(flat_layers(self._layers), self._layout, scheme,
                               integer(seed, "seed", 0))
        self._params = params
        self._reset_running()
        return self

    @property
    def takes_labels(self):
        """Whether y holds class labels (the cross-entropy losses), not targets."""
        return self.loss_kind.startswith("cross_entropy")

    def learning_set(self, X, y):
        """(X, y) converted and checked as this network's loss takes them."""
        return learning_set(self.out_features, X, y, classes=self.takes_labels)

    def _running_for(self, mode):
        """The running statistics an evaluation of ``mode`` uses: None for "train"
        (batch statistics), the population statistics for "eval"."""
        return None if choice(mode, "mode", MODES) == "train" else self._running

    def loss(self, X, y, mode="train"):
        """The loss over the rows of X.

        X : (m, in_features) or (m, C, *); y : (m, out_features) targets, or (m,) when
        out_features == 1; for the cross-entropy losses, (m,) class labels in
        [0, out_features).
        mode : "train" (batch statistics over the rows of X: the loss being trained) or
            "eval" (BN with the population statistics running_mean/running_var, rows
            independent, no noise: the inference-mode loss).
        """
        X, y = self.learning_set(X, y)
        return self._core.loss(self._params, X, y, self._running_for(mode))

    def gradient(self, X, y, mode="train"):
        """d loss / d params, float64 (num_params,), in the order of ``params``."""
        X, y = self.learning_set(X, y)
        return self._core.gradient(self._params, X, y, self._running_for(mode))[1]

    def loss_and_gradient(self, X, y, mode="train"):
        """(loss, gradient) from one forward and backward pass."""
        X, y = self.learning_set(X, y)
        return self._core.gradient(self._params, X, y, self._running_for(mode))

    def hvp(self, X, y, v, mode="train"):
        """The Hessian-vector product H v, float64 (num_params,), H the Hessian of the
        train-mode loss (batch statistics depend on params and couple the samples) at
        ``params``. Exact (forward-over-reverse, networks.md section 11), about three
        gradients' work.

        X : (m, in_features); y as for ``loss``; v : (num_params,), finite; mode as for
        ``loss`` ("eval": the Hessian of the inference-mode loss).
        """
        X, y = self.learning_set(X, y)
        v = float64_array(v, "v")
        if v.shape == (self.num_params,) and not np.all(np.isfinite(v)):
            raise ValueError("v must be finite")
        return self._core.hvp(self._params, X, y, v, self._running_for(mode))[2]

    def forward(self, X):
        """Outputs f(X), float64 (m, out_features), batch statistics over X (m, in)."""
        X = inputs(X)
        return self._core.forward(self._params, X)

    def predict(self, X):
        """Inference outputs, float64 (m, out_features), for X (m, in_features), m >= 1:
        BN layers use ``running_mean``/``running_var`` (no noise), so rows do not
        interact. Before any training these are PyTorch's initial 0 and 1 (allowed, as
        in PyTorch's eval mode). networks.md section 9."""
        X = inputs(X)
        return self._core.predict(self._params, self._running, X)

    def accuracy(self, X, y):
        """The fraction of rows of X whose largest output (in inference mode, ``predict``)
        is the class label y (m,) (ties: the first largest, as numpy.argmax)."""
        X, y = learning_set(self.out_features, X, y, classes=True)
        if y.shape != (X.shape[0],):
            raise ValueError(f"y must have shape ({X.shape[0]},) (one label per row of X), "
                             f"got {y.shape}")
        return float(np.mean(np.argmax(self.predict(X), axis=1) == y))

    def __repr__(self):
        inner = ",\n    ".join(repr(layer) for layer in self._layers)
        loss = "" if self.loss_kind == "sum" else f", loss={self.loss_kind!r}"
        return f"Network([\n    {inner},\n]{loss})"
