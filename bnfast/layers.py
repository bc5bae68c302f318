"""Layer descriptions, as the papers define them (math.md sections 1-2).

Pure Python, no compiled code: both the native Network and the NumPy reference read
these descriptions.
"""

import math
import numbers

import numpy as np

ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu")

__all__ = ["ACTIVATIONS", "BatchNorm", "Dense", "check_chain", "param_slices", "unflatten"]


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


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
        if not isinstance(trainable, (bool, np.bool_)):
            raise TypeError(f"trainable must be a bool, got {type(trainable).__name__}")
        self.trainable = bool(trainable)
        if isinstance(eps, bool) or not isinstance(eps, numbers.Real):
            raise TypeError(f"eps must be a real number, got {type(eps).__name__}")
        if not (eps >= 0 and math.isfinite(eps)):
            raise ValueError(f"eps must be a finite number >= 0, got {eps}")
        self.eps = float(eps)

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
        self.in_features = _positive_int(in_features, "in_features")
        self.out_features = _positive_int(out_features, "out_features")
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; expected one of "
                             f"{', '.join(ACTIVATIONS)}")
        self.activation = activation
        if not isinstance(bias, (bool, np.bool_)):
            raise TypeError(f"bias must be a bool, got {type(bias).__name__}")
        self.bias = bool(bias)
        if batch_norm is not None and not isinstance(batch_norm, BatchNorm):
            raise TypeError("batch_norm must be a bnfast.BatchNorm or None, got "
                            f"{type(batch_norm).__name__}")
        self.batch_norm = batch_norm
        if batch_norm is not None:
            batch_norm.values(self.out_features)  # shapes checked now, not at first use

    @property
    def num_params(self):
        n = self.in_features * self.out_features
        if self.bias:
            n += self.out_features
        if self.batch_norm is not None and self.batch_norm.trainable:
            n += 2 * self.out_features
        return n

    def __repr__(self):
        return (f"Dense({self.in_features}, {self.out_features}, "
                f"activation={self.activation!r}, bias={self.bias}, "
                f"batch_norm={self.batch_norm!r})")


def param_slices(layers):
    """Where each layer's parameters sit in the flat vector.

    Returns a list with one dict per layer mapping "W", "b", "gamma", "beta" to a
    (slice, shape) pair; absent parameters are missing from the dict. The order is the
    public one: layer by layer, W (out, in) row-major, b, gamma, beta.
    """
    out, offset = [], 0
    for layer in layers:
        entry = {}

        def take(name, shape):
            nonlocal offset
            size = int(np.prod(shape))
            entry[name] = (slice(offset, offset + size), shape)
            offset += size

        take("W", (layer.out_features, layer.in_features))
        if layer.bias:
            take("b", (layer.out_features,))
        if layer.batch_norm is not None and layer.batch_norm.trainable:
            take("gamma", (layer.out_features,))
            take("beta", (layer.out_features,))
        out.append(entry)
    return out


def unflatten(layers, params):
    """The flat parameter vector as one dict per layer of views: W (out, in), b, gamma,
    beta (those the layer has)."""
    return [{name: params[sl].reshape(shape) for name, (sl, shape) in entry.items()}
            for entry in param_slices(layers)]


def check_chain(layers):
    """layers as a tuple of Dense whose feature counts chain; ValueError otherwise."""
    layers = tuple(layers)
    if not layers:
        raise ValueError("a network needs at least one layer")
    for i, layer in enumerate(layers):
        if not isinstance(layer, Dense):
            raise TypeError(f"layers[{i}] must be a bnfast.Dense, got {type(layer).__name__}")
        if i and layer.in_features != layers[i - 1].out_features:
            raise ValueError(f"layers[{i}] has in_features {layer.in_features} but "
                             f"layers[{i - 1}] has out_features {layers[i - 1].out_features}")
    return layers
