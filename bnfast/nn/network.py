"""Batch-normalized networks evaluated by the C++ core (docs/math/networks.md)."""

import numpy as np

from .. import _core
from .data import inputs, learning_set
from .init import default_params
from .layers import check_chain, param_slices, unflatten

__all__ = ["Network"]


class Network:
    """A feed-forward network f(x) = layer_L(... layer_1(x)) of bnfast.Dense layers.

    Parameters
    ----------
    layers : sequence of Dense, feature counts chaining
    seed : int
        Seeds the initial weights: W ~ N(0, 1/in_features), b = 0, gamma/beta from
        each layer's BatchNorm. Set ``params`` to start anywhere else.

    Attributes
    ----------
    params : float64 ndarray (num_params,)
        Get (a copy) and set. Order: layer by layer, W (out, in) row-major, then b (if
        bias), then gamma, beta (if batch_norm and trainable).
    layers : tuple of Dense
    """

    def __init__(self, layers, seed=0):
        self.layers = check_chain(layers)
        self._core = _core.Network([layer.spec() for layer in self.layers])
        self._layout = self._core.param_layout
        self._params = default_params(self.layers, self._layout, seed)

    def __getstate__(self):
        # The compiled network is rebuilt from the layers: pickle and copy.deepcopy
        # round-trip exactly (Dask ships networks to workers this way).
        return {"layers": self.layers, "params": self._params}

    def __setstate__(self, state):
        self.__init__(state["layers"])
        self._params = np.array(state["params"], dtype=np.float64)

    @property
    def num_params(self):
        return self._core.num_params

    @property
    def in_features(self):
        return self.layers[0].in_features

    @property
    def out_features(self):
        return self.layers[-1].out_features

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

    def param_slices(self):
        """Per layer, {"W"/"b"/"gamma"/"beta": (slice, shape)} into ``params``."""
        return param_slices(self._layout)

    def unflatten(self, params=None):
        """Per layer, a dict of the parameter arrays (W (out, in), b, gamma, beta)."""
        return unflatten(self._layout, self.params if params is None else np.asarray(params))

    def loss(self, X, y):
        """sum_i ||y_i - f(x_i)||^2 with batch statistics over the rows of X.

        X : (m, in_features); y : (m, out_features), or (m,) when out_features == 1.
        """
        X, y = learning_set(self.out_features, X, y)
        return self._core.loss(self._params, X, y)

    def gradient(self, X, y):
        """d loss / d params, float64 (num_params,), in the order of ``params``."""
        X, y = learning_set(self.out_features, X, y)
        return self._core.gradient(self._params, X, y)[1]

    def loss_and_gradient(self, X, y):
        """(loss, gradient) from one forward and backward pass."""
        X, y = learning_set(self.out_features, X, y)
        return self._core.gradient(self._params, X, y)

    def forward(self, X):
        """Outputs f(X), float64 (m, out_features), batch statistics over X (m, in)."""
        X = inputs(X)
        return self._core.forward(self._params, X)

    def __repr__(self):
        inner = ",\n    ".join(repr(layer) for layer in self.layers)
        return f"Network([\n    {inner},\n])"
