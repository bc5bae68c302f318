"""The reference's own argument checks, written independently of bnfast's.

Same exception types as bnfast (TypeError for a wrong kind of value, ValueError for a
wrong value), messages naming the argument. Bools are not accepted as ints or reals.
"""

import math
import numbers
from typing import NamedTuple, Optional

import numpy as np

ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu")
NORMS = ("std", "l1", "l2", "linf")
_LAYER_KEYS = ("in_features", "out_features", "activation", "bias", "batch_norm")
_BN_KEYS = ("gamma", "beta", "trainable", "eps")
_BN_OPTIONAL = ("momentum", "norm", "noise")
_NOISE_LOW = {"n_mu": 0.0, "n_sigma": 1.0, "r_mu": 0.0, "r_sigma": 0.0}


class Noise(NamedTuple):
    """Noisy BN (networks.md section 8)."""
    n_mu: float
    n_sigma: float
    r_mu: float
    r_sigma: float


class BN(NamedTuple):
    gamma: np.ndarray  # float64 (out,)
    beta: np.ndarray   # float64 (out,)
    trainable: bool
    eps: float
    momentum: Optional[float] = 0.1  # None: the cumulative average
    norm: str = "std"                # one of NORMS
    noise: Optional[Noise] = None


class Layer(NamedTuple):
    """One Dense layer. A residual block is a run of layers in the flat list, the first
    with block_start, the last with block_end (one layer: both)."""
    in_features: int
    out_features: int
    activation: str
    bias: bool
    bn: Optional[BN]
    name: str = ""              # where it came from: "layers[2]['residual'][0]"
    block_start: bool = False
    block_end: bool = False


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


def choice(value, name, options, what):
    """A str among ``options`` (TypeError for a non-str, ValueError for another str)."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, one of {', '.join(options)}; "
                        f"got {type(value).__name__}")
    if value not in options:
        raise ValueError(f"{name}: unknown {what} {value!r}; expected one of "
                         f"{', '.join(options)}")
    return str(value)


def _keys(d, expected, name, optional=()):
    if not isinstance(d, dict):
        raise TypeError(f"{name} must be a dict, got {type(d).__name__}")
    missing = [k for k in expected if k not in d]
    unknown = [k for k in d if k not in expected and k not in optional]
    if missing or unknown:
        extra = f" (optional: {', '.join(optional)})" if optional else ""
        raise ValueError(f"{name} must have the keys {', '.join(expected)}{extra}; "
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


def _noise(d, name):
    """The noise dict {n_mu, n_sigma, r_mu, r_sigma}: finite, each >= its lower bound."""
    _keys(d, tuple(_NOISE_LOW), name)
    values = {}
    for key, low in _NOISE_LOW.items():
        v = real(d[key], f"{name}['{key}']")
        if not (math.isfinite(v) and v >= low):
            raise ValueError(f"{name}['{key}'] must be a finite number >= {low:g}, got {v}")
        values[key] = v
    return Noise(**values)


def _batch_norm(d, name, n_out):
    _keys(d, _BN_KEYS, name, _BN_OPTIONAL)
    eps = real(d["eps"], f"{name}['eps']")
    if not (eps >= 0 and math.isfinite(eps)):
        raise ValueError(f"{name}['eps'] must be a finite number >= 0, got {eps}")
    momentum = d.get("momentum", 0.1)
    if momentum is not None:
        momentum = real(momentum, f"{name}['momentum']")
        if not 0 < momentum <= 1:
            raise ValueError(f"{name}['momentum'] must be in (0, 1], or None for the "
                             f"cumulative average; got {momentum}")
    norm = choice(d.get("norm", "std"), f"{name}['norm']", NORMS, "norm")
    noise = d.get("noise")
    if noise is not None:
        noise = _noise(noise, f"{name}['noise']")
    return BN(_per_neuron(d["gamma"], f"{name}['gamma']", n_out),
              _per_neuron(d["beta"], f"{name}['beta']", n_out),
              boolean(d["trainable"], f"{name}['trainable']"), eps, momentum, norm, noise)


def _dense(d, name):
    """A Layer from a Dense dict (its own checks only; the chain is checked by _chain)."""
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
        bn = _batch_norm(bn, f"{name}['batch_norm']", n_out)
    return Layer(n_in, n_out, act, bias, bn, name)


def _chain(layer, out):
    """Appends ``layer`` to the flat list ``out`` after checking that it takes the
    previous layer's outputs."""
    if out and layer.in_features != out[-1].out_features:
        raise ValueError(f"{layer.name} has in_features {layer.in_features} but "
                         f"{out[-1].name} has out_features {out[-1].out_features}")
    out.append(layer)


def _residual(d, name, out):
    """Appends the layers of the residual entry ``d`` to ``out``, marking the block."""
    _keys(d, ("residual",), name)
    bname = f"{name}['residual']"
    block = d["residual"]
    if not isinstance(block, (list, tuple)):
        raise TypeError(f"{bname} must be a list of layer dicts, "
                        f"got {type(block).__name__}")
    if not block:
        raise ValueError(f"{bname} must not be empty: a residual block needs at least "
                         "one layer")
    start = len(out)
    for j, e in enumerate(block):
        if isinstance(e, dict) and "residual" in e:
            raise ValueError(f"{bname}[{j}]: residual blocks cannot be nested (a block "
                             "holds Dense layers)")
        _chain(_dense(e, f"{bname}[{j}]"), out)
    n_in, n_out = out[start].in_features, out[-1].out_features
    if n_in != n_out:
        raise ValueError(f"{bname} maps {n_in} features to {n_out}: a residual block "
                         "x -> x + block(x) must end with as many features as it starts")
    out[start] = out[start]._replace(block_start=True)
    out[-1] = out[-1]._replace(block_end=True)


def check_layers(layers):
    """The flat list of Layer (a residual block's layers in place, marked) from a
    non-empty list of entries: Dense dicts (the format of bnfast.Dense.to_dict()) and
    {"residual": [Dense dicts]}, whose feature counts chain."""
    if not isinstance(layers, (list, tuple)):
        raise TypeError("layers must be a list of layer dicts, "
                        f"got {type(layers).__name__}")
    if not layers:
        raise ValueError("layers must not be empty: a network needs at least one layer")
    out = []
    for i, d in enumerate(layers):
        if isinstance(d, dict) and "residual" in d:
            _residual(d, f"layers[{i}]", out)
        else:
            _chain(_dense(d, f"layers[{i}]"), out)
    return out


def bn_layers(layers):
    """The checked layers with batch normalization, in network order."""
    return [layer for layer in layers if layer.bn is not None]


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


def learning_set(layers, X, y=None, training=True):
    """X as float64 (m, in_features) and y as float64 (m, out_features); y may be given
    as (m,) when the network has one output. Batch statistics (training) need m >= 2
    when the network has batch normalization; inference takes any m >= 1."""
    n_in, n_out = layers[0].in_features, layers[-1].out_features
    X = _real_array(X, "X")
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (m, {n_in}), got shape {X.shape}")
    if X.shape[1] != n_in:
        raise ValueError(f"X has {X.shape[1]} features but the network expects {n_in}")
    if X.shape[0] < 1:
        raise ValueError("X must have at least one row")
    if training and X.shape[0] < 2 and bn_layers(layers):
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
        if batch_size < 2 and bn_layers(layers):
            raise ValueError("batch_size must be >= 2 with batch normalization "
                             "(one sample has no batch variance)")
    seed = integer(seed, "seed", 0)
    if seed >= 2**64:
        raise ValueError(f"seed must be < 2**64, got {seed}")
    record_every = integer(record_every, "record_every", 1)
    if callback is not None and not callable(callback):
        raise TypeError("callback must be callable (step, loss) -> bool, or None")
    return lr, steps, batch_size, seed, record_every


def reduction(loss):
    """The loss reduction: "sum" or "mean" (networks.md section 6)."""
    if not isinstance(loss, str):
        raise TypeError(f"loss must be 'sum' or 'mean', got {type(loss).__name__}")
    if loss not in ("sum", "mean"):
        raise ValueError(f"loss must be 'sum' or 'mean', got {loss!r}")
    return str(loss)


def direction(v, n):
    """The direction v of a Hessian-vector product: a new finite float64 (n,)."""
    arr = np.asarray(v)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"v must be real numbers, got dtype {arr.dtype}")
    if arr.shape != (n,):
        raise ValueError(f"v must have shape ({n},) (one entry per parameter), "
                         f"got {arr.shape}")
    arr = np.array(arr, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError("v must be finite")
    return arr


def running_stats(layers, running_mean, running_var):
    """(running_mean, running_var) as new lists of float64 (out,) arrays, one per BN
    layer in network order; None stands for the initial values (zeros, ones). Finite,
    running_var >= 0."""
    bns = bn_layers(layers)
    result = []
    for value, name, initial in ((running_mean, "running_mean", 0.0),
                                 (running_var, "running_var", 1.0)):
        if value is None:
            result.append([np.full(layer.out_features, initial) for layer in bns])
            continue
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"{name} must be a list with one array per BN layer, "
                            f"got {type(value).__name__}")
        if len(value) != len(bns):
            raise ValueError(f"{name} must have one array per BN layer ({len(bns)}), "
                             f"got {len(value)}")
        arrays = []
        for j, (a, layer) in enumerate(zip(value, bns)):
            a = np.asarray(a)
            if a.dtype.kind not in "fiu":
                raise TypeError(f"{name}[{j}] must hold real numbers, got dtype {a.dtype}")
            if a.shape != (layer.out_features,):
                raise ValueError(f"{name}[{j}] must have shape ({layer.out_features},) "
                                 f"({layer.name} has {layer.out_features} neurons), "
                                 f"got {a.shape}")
            a = np.array(a, dtype=np.float64)
            if not np.all(np.isfinite(a)) or (initial == 1.0 and np.any(a < 0)):
                raise ValueError(f"{name}[{j}] must be finite"
                                 + (" and >= 0" if initial == 1.0 else ""))
            arrays.append(a)
        result.append(arrays)
    return result[0], result[1]
