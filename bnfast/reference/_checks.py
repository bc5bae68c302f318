"""The reference's own argument checks, written independently of bnfast's.

Same exception types as bnfast (TypeError for a wrong kind of value, ValueError for a
wrong value), messages naming the argument. Bools are not accepted as ints or reals.
"""

import math
import numbers
from typing import NamedTuple, Optional

import numpy as np

ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu")
_LAYER_KEYS = ("in_features", "out_features", "activation", "bias", "batch_norm")
_BN_KEYS = ("gamma", "beta", "trainable", "eps")


class BN(NamedTuple):
    gamma: np.ndarray  # float64 (out,)
    beta: np.ndarray   # float64 (out,)
    trainable: bool
    eps: float


class Layer(NamedTuple):
    in_features: int
    out_features: int
    activation: str
    bias: bool
    bn: Optional[BN]


def _is_bool(v):
    return isinstance(v, (bool, np.bool_))


def integer(value, name, low):
    if _is_bool(value) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return int(value)


def real(value, name):
    if _is_bool(value) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    return float(value)


def boolean(value, name):
    if not _is_bool(value):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return bool(value)


def _keys(d, expected, name):
    if not isinstance(d, dict):
        raise TypeError(f"{name} must be a dict, got {type(d).__name__}")
    missing = [k for k in expected if k not in d]
    unknown = [k for k in d if k not in expected]
    if missing or unknown:
        raise ValueError(f"{name} must have the keys {', '.join(expected)}; "
                         f"missing {missing}, unknown {unknown}")


def _per_neuron(v, name, n):
    """gamma or beta: a finite number (broadcast) or n finite numbers, as float64 (n,)."""
    if isinstance(v, (str, bytes)) or _is_bool(v):
        raise TypeError(f"{name} must be a number or a list of numbers, "
                        f"got {type(v).__name__}")
    arr = np.asarray(v)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim > 1 or (arr.ndim == 1 and arr.shape != (n,)):
        raise ValueError(f"{name} has shape {arr.shape} but the layer has {n} neurons")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite")
    return np.broadcast_to(arr.astype(np.float64), (n,)).copy()


def check_layers(layers):
    """A list of Layer from a non-empty list of layer dicts (the format of
    bnfast.Dense.to_dict()) whose feature counts chain."""
    if not isinstance(layers, (list, tuple)):
        raise TypeError("layers must be a list of layer dicts, "
                        f"got {type(layers).__name__}")
    if not layers:
        raise ValueError("layers must not be empty: a network needs at least one layer")
    out = []
    for i, d in enumerate(layers):
        name = f"layers[{i}]"
        _keys(d, _LAYER_KEYS, name)
        n_in = integer(d["in_features"], f"{name}['in_features']", 1)
        n_out = integer(d["out_features"], f"{name}['out_features']", 1)
        act = d["activation"]
        if not isinstance(act, str) or act not in ACTIVATIONS:
            raise ValueError(f"{name}['activation']: unknown activation {act!r}; expected "
                             f"one of {', '.join(ACTIVATIONS)}")
        bias = boolean(d["bias"], f"{name}['bias']")
        bn = d["batch_norm"]
        if bn is not None:
            bname = f"{name}['batch_norm']"
            _keys(bn, _BN_KEYS, bname)
            eps = real(bn["eps"], f"{bname}['eps']")
            if not (eps >= 0 and math.isfinite(eps)):
                raise ValueError(f"{bname}['eps'] must be a finite number >= 0, got {eps}")
            bn = BN(_per_neuron(bn["gamma"], f"{bname}['gamma']", n_out),
                    _per_neuron(bn["beta"], f"{bname}['beta']", n_out),
                    boolean(bn["trainable"], f"{bname}['trainable']"), eps)
        if out and n_in != out[-1].out_features:
            raise ValueError(f"layers[{i}] has in_features {n_in} but layers[{i - 1}] has "
                             f"out_features {out[-1].out_features}")
        out.append(Layer(n_in, n_out, act, bias, bn))
    return out


def num_params(layers):
    """Length of the flat parameter vector of checked layers."""
    n = 0
    for layer in layers:
        n += layer.out_features * (layer.in_features + layer.bias)
        if layer.bn is not None and layer.bn.trainable:
            n += 2 * layer.out_features
    return n


def check_params(layers, params):
    """params as a new float64 array of shape (num_params(layers),)."""
    arr = np.asarray(params)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"params must be real numbers, got dtype {arr.dtype}")
    n = num_params(layers)
    if arr.shape != (n,):
        raise ValueError(f"params must have shape ({n},), got {arr.shape}")
    return np.array(arr, dtype=np.float64)


def _real_array(a, name):
    a = np.asarray(a)
    if a.dtype.kind not in "fiub" or (a.dtype.kind == "f" and a.dtype.itemsize > 8):
        raise TypeError(f"{name} must hold real numbers (float16/32/64, ints or bools), "
                        f"got dtype {a.dtype}")
    return np.array(a, dtype=np.float64)


def learning_set(layers, X, y=None):
    """X as float64 (m, in_features) and y as float64 (m, out_features); y may be given
    as (m,) when the network has one output."""
    n_in, n_out = layers[0].in_features, layers[-1].out_features
    X = _real_array(X, "X")
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (m, {n_in}), got shape {X.shape}")
    if X.shape[1] != n_in:
        raise ValueError(f"X has {X.shape[1]} features but the network expects {n_in}")
    if X.shape[0] < 1:
        raise ValueError("X must have at least one row")
    if X.shape[0] < 2 and any(layer.bn is not None for layer in layers):
        raise ValueError("X: batch normalization needs at least 2 samples, got 1")
    if y is None:
        return X
    y = _real_array(y, "y")
    if y.ndim == 1 and n_out == 1:
        y = y.reshape(-1, 1)
    if y.ndim != 2 or y.shape[1] != n_out:
        raise ValueError(f"y must have shape (m, {n_out})"
                         + (" or (m,)" if n_out == 1 else "") + f", got {y.shape}")
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but y has {y.shape[0]}")
    return X, y


def train_args(layers, m, lr, steps, batch_size, seed, record_every, callback):
    """(lr, steps, batch_size or 0 for full batch, seed, record_every), checked."""
    lr = real(lr, "lr")
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a finite number > 0, got {lr}")
    steps = integer(steps, "steps", 0)
    if batch_size is None:
        batch_size = 0
    else:
        batch_size = integer(batch_size, "batch_size", 1)
        if batch_size > m:
            raise ValueError(f"batch_size {batch_size} is larger than the {m} samples")
        if batch_size < 2 and any(layer.bn is not None for layer in layers):
            raise ValueError("batch_size must be >= 2 with batch normalization "
                             "(one sample has no batch variance)")
    seed = integer(seed, "seed", 0)
    if seed >= 2**64:
        raise ValueError(f"seed must be < 2**64, got {seed}")
    record_every = integer(record_every, "record_every", 1)
    if callback is not None and not callable(callback):
        raise TypeError("callback must be callable (step, loss) -> bool, or None")
    return lr, steps, batch_size, seed, record_every
