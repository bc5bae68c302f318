"""Layer descriptions, as the papers define them (docs/math/networks.md).

A Dense layer crosses to the C++ core as a bound LayerSpec (fields by name), and to the
NumPy reference as the plain dict of Dense.to_dict(). The activations and the
parameter layout are defined once, in C++ (csrc/core/nn/layer.hpp), and read here.
"""

import numpy as np

from .. import _core
from .._validate import boolean, eps_value, integer

#: The activation functions, in the core's order.
ACTIVATIONS = tuple(_core.Activation.__members__)

__all__ = ["ACTIVATIONS", "BatchNorm", "Dense", "check_chain", "param_slices", "unflatten"]


class BatchNorm:
    """Batch normalization of a layer's pre-activations: phi(BN(W x + b)).

    Parameters
    ----------
    gamma, beta : float or array_like (out_features,)
        Scale and shift. Initial values when ``trainable``, constants otherwise.
    trainable : bool
        Whether gamma and beta are parameters (they then appear in Network.params).
    eps : float >= 0
        eps = 0 is the exact transform of the theory; a neuron whose pre-activation
        is constant over a batch then raises ZeroVarianceError.
    """

    def __init__(self, gamma=1.0, beta=0.0, trainable=True, eps=1e-5):
        self.gamma = self._values(gamma, "gamma")
        self.beta = self._values(beta, "beta")
        self.trainable = boolean(trainable, "trainable")
        self.eps = eps_value(eps)

    @staticmethod
    def _values(v, name):
        arr = np.asarray(v, dtype=np.float64) if not isinstance(v, str) else None
        if arr is None or arr.ndim > 1 or not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} must be a finite number or a 1-D array of them")
        return arr.copy()

    def values(self, out_features):
        """gamma and beta as float64 arrays of shape (out_features,)."""
        return self._broadcast(self.gamma, "gamma", out_features), \
            self._broadcast(self.beta, "beta", out_features)

    @staticmethod
    def _broadcast(v, name, n):
        if v.ndim == 0:
            return np.full(n, float(v))
        if v.shape != (n,):
            raise ValueError(f"{name} has shape {v.shape} but the layer has {n} neurons")
        return v.copy()

    def to_dict(self):
        """A plain description: gamma and beta as floats or lists, trainable, eps."""
        def plain(v):
            return float(v) if v.ndim == 0 else [float(e) for e in v]
        return {"gamma": plain(self.gamma), "beta": plain(self.beta),
                "trainable": self.trainable, "eps": self.eps}

    def __repr__(self):
        def show(v):
            return repr(float(v)) if v.ndim == 0 else f"array{v.shape}"
        return (f"BatchNorm(gamma={show(self.gamma)}, beta={show(self.beta)}, "
                f"trainable={self.trainable}, eps={self.eps})")


class Dense:
    """A fully connected layer x -> phi(BN(W x + b)), W of shape (out_features, in_features).

    Parameters
    ----------
    in_features, out_features : int >= 1
    activation : {"identity", "sigmoid", "tanh", "relu"}
    bias : bool
        Whether the layer has a bias b (out_features,). Before BN a bias has no effect
        (the centring removes it) and its gradient is zero.
    batch_norm : BatchNorm or None
    """

    def __init__(self, in_features, out_features, activation="identity", bias=True,
                 batch_norm=None):
        self.in_features = integer(in_features, "in_features", 1)
        self.out_features = integer(out_features, "out_features", 1)
        if not isinstance(activation, str) or activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; expected one of "
                             f"{', '.join(ACTIVATIONS)}")
        self.activation = activation
        self.bias = boolean(bias, "bias")
        if batch_norm is not None and not isinstance(batch_norm, BatchNorm):
            raise TypeError("batch_norm must be a bnfast.BatchNorm or None, got "
                            f"{type(batch_norm).__name__}")
        self.batch_norm = batch_norm
        if batch_norm is not None:
            batch_norm.values(self.out_features)  # shapes checked now, not at first use

    @property
    def num_params(self):
        """How many entries of the flat parameter vector this layer has."""
        return self.spec().num_params

    def spec(self):
        """The layer as the core's bound LayerSpec. The attributes are checked again
        (by the constructors, the one owner of these rules): a layer changed after
        construction cannot hand the core a value it never saw checked."""
        bn = self.batch_norm
        if bn is not None:
            bn = BatchNorm(bn.gamma, bn.beta, bn.trainable, bn.eps)
        layer = Dense(self.in_features, self.out_features, self.activation, self.bias, bn)
        gamma, beta = bn.values(layer.out_features) if bn is not None else ([], [])
        return _core.LayerSpec(
            in_features=layer.in_features, out_features=layer.out_features,
            activation=_core.Activation.__members__[layer.activation], bias=layer.bias,
            batch_norm=bn is not None, trainable=bn is not None and bn.trainable,
            eps=bn.eps if bn is not None else 0.0, gamma=list(gamma), beta=list(beta))

    def to_dict(self):
        """The layer as plain data (what bnfast.reference takes): in_features,
        out_features, activation, bias, batch_norm (None or BatchNorm.to_dict())."""
        return {"in_features": self.in_features, "out_features": self.out_features,
                "activation": self.activation, "bias": self.bias,
                "batch_norm": None if self.batch_norm is None else self.batch_norm.to_dict()}

    def __repr__(self):
        return (f"Dense({self.in_features}, {self.out_features}, "
                f"activation={self.activation!r}, bias={self.bias}, "
                f"batch_norm={self.batch_norm!r})")


def param_slices(layout):
    """Where each layer's parameters sit in the flat vector, from the core's layout.

    Returns a list with one dict per layer mapping "W", "b", "gamma", "beta" to a
    (slice, shape) pair; absent parameters are missing from the dict. The order is
    defined in csrc/core/nn/layer.hpp: layer by layer, W (out, in) row-major, b, gamma,
    beta.
    """
    return [{name: (slice(start, start + int(np.prod(shape))), tuple(shape))
             for name, (start, shape) in entry.items()} for entry in layout]


def unflatten(layout, params):
    """The flat parameter vector as one dict per layer of views: W (out, in), b, gamma,
    beta (those the layer has)."""
    return [{name: params[sl].reshape(shape) for name, (sl, shape) in entry.items()}
            for entry in param_slices(layout)]


def check_chain(layers):
    """layers as a tuple of Dense (the core checks that their feature counts chain)."""
    layers = tuple(layers)
    for i, layer in enumerate(layers):
        if not isinstance(layer, Dense):
            raise TypeError(f"layers[{i}] must be a bnfast.Dense, got {type(layer).__name__}")
    return layers
