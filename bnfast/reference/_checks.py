"""The reference's own argument checks, written independently of bnfast's.

Same exception types as bnfast (TypeError for a wrong kind of value, ValueError for a
wrong value), messages naming the argument. Bools are not accepted as ints or reals.

A layer's normalization (the "normalization" dict, or the legacy "batch_norm" dict that
means kind "batch") becomes one BN record whatever its kind; only the kind "batch"
keeps running statistics, so "the BN layers" (bn_layers) are the batch-kind ones.

Layers of every type (dense, conv, maxpool, avgpool, flatten) become one Layer record.
check_layers checks what the dicts alone determine (keys, values, the feature counts of
adjacent dense layers, the channel counts of conv layers in a row); the spatial sizes
and the flattened sizes are known only with X, so learning_set checks them
(layer_shapes), naming the layer.
"""

import math
import numbers
from typing import NamedTuple, Optional

import numpy as np

ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu")
NORMS = ("std", "l1", "l2", "linf")
KINDS = ("batch", "layer", "group")
TYPES = ("dense", "conv", "maxpool", "avgpool", "flatten")
POOLS = ("maxpool", "avgpool")
LOSSES = ("sum", "mean", "cross_entropy", "cross_entropy_sum")
CROSS_ENTROPY = ("cross_entropy", "cross_entropy_sum")
_LAYER_KEYS = ("in_features", "out_features", "activation", "bias")
_LAYER_NOISE = ("noise",)  # optional on dense and conv dicts: noise without normalization
_NORM_KEYS = ("normalization", "batch_norm")  # exactly one of them; batch_norm = legacy
_CONV_KEYS = ("type", "in_channels", "out_channels", "kernel_size", "stride", "padding",
              "activation", "bias")
_POOL_KEYS = ("type", "kernel_size", "stride")
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
    """A layer's normalization, of any kind (networks.md sections 7 and 14)."""
    gamma: np.ndarray  # float64 (out,)
    beta: np.ndarray   # float64 (out,)
    trainable: bool
    eps: float
    momentum: Optional[float] = 0.1  # None: the cumulative average (kind "batch" only)
    norm: str = "std"                # one of NORMS ("std" for the layer and group kinds)
    noise: Optional[Noise] = None    # kind "batch" only: noisy BN
    kind: str = "batch"              # one of KINDS
    groups: int = 1                  # kind "group": the number of groups (else 1)


class Layer(NamedTuple):
    """One layer. A residual block is a run of layers in the flat list, the first with
    block_start, the last with block_end (one layer: both).

    type "dense": in_features, out_features; "conv": in_features = in_channels,
    out_features = out_channels, kernel, stride, padding (one int per spatial
    dimension); "maxpool", "avgpool": kernel, stride (padding zeros); "flatten". Pools
    and flatten have no parameters (in_features = out_features = 0, activation
    "identity", no bias, no normalization)."""
    in_features: int
    out_features: int
    activation: str
    bias: bool
    bn: Optional[BN]            # the normalization, any kind (None: none)
    name: str = ""              # where it came from: "layers[2]['residual'][0]"
    block_start: bool = False
    block_end: bool = False
    type: str = "dense"         # one of TYPES
    kernel: tuple = ()          # conv and pools: (k,) or (kh, kw)
    stride: tuple = ()
    padding: tuple = ()
    noise: Optional[Noise] = None  # the layer's own noise (no normalization: bn is None)


def layer_noise(layer):
    """The Algorithm 1 noise of a checked layer (networks.md section 8): its BN's (noisy
    BN) or its own (the same noise without normalization), or None."""
    if layer.bn is not None:
        return layer.bn.noise
    return layer.noise


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


def _per_neuron(v, name, n, unit="neurons"):
    """gamma or beta: a finite number (broadcast) or n finite numbers, as float64 (n,)
    (one per neuron of a dense layer, per channel of a conv layer: ``unit``)."""
    if isinstance(v, (str, bytes)) or _is_bool(v):
        raise TypeError(f"{name} must be a number or a list of numbers, "
                        f"got {type(v).__name__}")
    arr = np.asarray(v)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim > 1 or (arr.ndim == 1 and arr.shape != (n,)):
        raise ValueError(f"{name} has shape {arr.shape} but the layer has {n} {unit}")
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


def _eps(d, name):
    eps = real(d["eps"], f"{name}['eps']")
    if not (eps >= 0 and math.isfinite(eps)):
        raise ValueError(f"{name}['eps'] must be a finite number >= 0, got {eps}")
    return eps


def _batch_norm(d, name, n_out, required=_BN_KEYS, unit="neurons"):
    _keys(d, required, name, _BN_OPTIONAL)
    eps = _eps(d, name)
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
    return BN(_per_neuron(d["gamma"], f"{name}['gamma']", n_out, unit),
              _per_neuron(d["beta"], f"{name}['beta']", n_out, unit),
              boolean(d["trainable"], f"{name}['trainable']"), eps, momentum, norm, noise)


def _row_norm(d, name, n_out, kind, unit="neurons"):
    """A layer or group normalization dict: kind, (groups,) gamma, beta, trainable, eps,
    optional norm "std"; statistics per row, so no momentum and no noise."""
    for key, what in (("momentum", "running statistics (momentum)"), ("noise", "noise")):
        if key in d:
            raise ValueError(f"{name}['{key}']: a {kind} normalization has no {what}; "
                             "only kind 'batch' has")
    required = ("kind",) + (("groups",) if kind == "group" else ()) + _BN_KEYS
    _keys(d, required, name, ("norm",))
    eps = _eps(d, name)
    norm = choice(d.get("norm", "std"), f"{name}['norm']", NORMS, "norm")
    if norm != "std":
        raise ValueError(f"{name}['norm']: kind {kind!r} supports only norm 'std', "
                         f"got {norm!r}")
    groups = 1
    if kind == "group":
        groups = integer(d["groups"], f"{name}['groups']", 1)
        if n_out % groups:
            width = "out_channels" if unit == "channels" else "out_features"
            raise ValueError(f"{name}['groups'] = {groups} does not divide the layer's "
                             f"{width} {n_out}")
    return BN(_per_neuron(d["gamma"], f"{name}['gamma']", n_out, unit),
              _per_neuron(d["beta"], f"{name}['beta']", n_out, unit),
              boolean(d["trainable"], f"{name}['trainable']"), eps, None, "std", None,
              kind, groups)


def _normalization(d, name, n_out, unit="neurons"):
    """The "normalization" dict: {"kind": "batch" | "layer" | "group", ...}."""
    if not isinstance(d, dict):
        raise TypeError(f"{name} must be None or a dict, got {type(d).__name__}")
    if "kind" not in d:
        raise ValueError(f"{name} must have the key 'kind' (one of {', '.join(KINDS)})")
    kind = choice(d["kind"], f"{name}['kind']", KINDS, "normalization kind")
    if kind == "batch":
        return _batch_norm(d, name, n_out, ("kind",) + _BN_KEYS, unit)
    return _row_norm(d, name, n_out, kind, unit)


def _norm_key(d, name):
    """The key of a layer's normalization: exactly one of "normalization", "batch_norm"."""
    given = [k for k in _NORM_KEYS if k in d]
    if len(given) == 2:
        raise ValueError(f"{name} has both 'normalization' and 'batch_norm': give one "
                         "('batch_norm' is the legacy spelling of kind 'batch')")
    if not given:
        raise ValueError(f"{name} must have the key 'normalization' (or the legacy "
                         "'batch_norm'): None or a normalization dict")
    return given[0]


def _norm_of(d, key, name, n_out, unit):
    """The BN record of the layer dict's normalization under ``key`` (None: none)."""
    bn = d[key]
    if bn is None:
        return None
    where = f"{name}['{key}']"
    return (_batch_norm(bn, where, n_out, unit=unit) if key == "batch_norm"
            else _normalization(bn, where, n_out, unit))


def _activation(d, name):
    act = d["activation"]
    if not isinstance(act, str) or act not in ACTIVATIONS:
        raise ValueError(f"{name}['activation']: unknown activation {act!r}; expected "
                         f"one of {', '.join(ACTIVATIONS)}")
    return act


def _own_noise(d, name, bn):
    """The layer dict's optional "noise" (None or a noise dict): only on a layer without
    normalization (a normalized layer's noise is its batch normalization's)."""
    nz = d.get("noise")
    if nz is None:
        return None
    if bn is not None:
        raise ValueError(f"{name}['noise']: a layer with a normalization takes its noise "
                         "from the normalization dict (noisy BN); the layer's own noise "
                         "needs normalization None")
    return _noise(nz, f"{name}['noise']")


def _dense(d, name):
    """A Layer from a Dense dict (its own checks only; the chain is checked by _chain)."""
    missing = [k for k in _LAYER_KEYS if k not in d]
    unknown = [k for k in d if k not in _LAYER_KEYS + _NORM_KEYS + _LAYER_NOISE + ("type",)]
    if missing or unknown:
        raise ValueError(f"{name} must have the keys {', '.join(_LAYER_KEYS)} and one of "
                         f"{', '.join(_NORM_KEYS)} (optional: noise); missing {missing}, "
                         f"unknown {unknown}")
    key = _norm_key(d, name)
    n_in = integer(d["in_features"], f"{name}['in_features']", 1)
    n_out = integer(d["out_features"], f"{name}['out_features']", 1)
    act = _activation(d, name)
    bias = boolean(d["bias"], f"{name}['bias']")
    bn = _norm_of(d, key, name, n_out, "neurons")
    return Layer(n_in, n_out, act, bias, bn, name, noise=_own_noise(d, name, bn))


def _sizes(value, name, low, dims=None):
    """kernel_size, stride or padding: a list (or tuple) of 1 or 2 ints >= low, one per
    spatial dimension (``dims`` of them when given)."""
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"{name} must be a list of ints, one per spatial dimension "
                        f"([k] or [kh, kw]), got {type(value).__name__}")
    if len(value) not in (1, 2) or (dims is not None and len(value) != dims):
        want = "1 or 2" if dims is None else f"{dims} (as kernel_size)"
        raise ValueError(f"{name} must have {want} entries, one per spatial dimension; "
                         f"got {len(value)}")
    return tuple(integer(v, f"{name}[{i}]", low) for i, v in enumerate(value))


def _conv(d, name):
    """A Layer from a conv dict: a 1-D or 2-D convolution (the length of kernel_size),
    zero padding, PyTorch's layouts; normalizations and noise as for Dense, per channel
    (a noise draw per sample and channel)."""
    _keys(d, _CONV_KEYS, name, _NORM_KEYS + _LAYER_NOISE)
    key = _norm_key(d, name)
    n_in = integer(d["in_channels"], f"{name}['in_channels']", 1)
    n_out = integer(d["out_channels"], f"{name}['out_channels']", 1)
    kernel = _sizes(d["kernel_size"], f"{name}['kernel_size']", 1)
    stride = _sizes(d["stride"], f"{name}['stride']", 1, len(kernel))
    padding = _sizes(d["padding"], f"{name}['padding']", 0, len(kernel))
    act = _activation(d, name)
    bias = boolean(d["bias"], f"{name}['bias']")
    bn = _norm_of(d, key, name, n_out, "channels")
    return Layer(n_in, n_out, act, bias, bn, name, type="conv", kernel=kernel,
                 stride=stride, padding=padding, noise=_own_noise(d, name, bn))


def _pool(d, name):
    """A Layer from a maxpool or avgpool dict: no padding, floor output sizes; stride
    None means kernel_size (PyTorch's default)."""
    _keys(d, _POOL_KEYS, name)
    kernel = _sizes(d["kernel_size"], f"{name}['kernel_size']", 1)
    stride = (kernel if d["stride"] is None
              else _sizes(d["stride"], f"{name}['stride']", 1, len(kernel)))
    return Layer(0, 0, "identity", False, None, name, type=d["type"], kernel=kernel,
                 stride=stride, padding=(0,) * len(kernel))


def _flatten(d, name):
    _keys(d, ("type",), name)
    return Layer(0, 0, "identity", False, None, name, type="flatten")


def _layer(d, name):
    """A Layer from a layer dict of any type (no "type": dense)."""
    if not isinstance(d, dict):
        raise TypeError(f"{name} must be a dict, got {type(d).__name__}")
    kind = choice(d.get("type", "dense"), f"{name}['type']", TYPES, "layer type")
    parse = {"dense": _dense, "conv": _conv, "flatten": _flatten}.get(kind, _pool)
    return parse(d, name)


def _chain(layer, out):
    """Appends ``layer`` to the flat list ``out`` after checking what the dicts tell: a
    dense layer right after a dense layer takes its out_features, a conv layer after a
    conv layer (pools between keep the channels) its out_channels, and all kernels have
    the same number of spatial dimensions. Spatial and flattened sizes need X
    (layer_shapes)."""
    if layer.kernel:
        first = next((p for p in out if p.kernel), None)
        if first is not None and len(first.kernel) != len(layer.kernel):
            raise ValueError(f"{layer.name} is {len(layer.kernel)}-D but {first.name} is "
                             f"{len(first.kernel)}-D: a network's conv and pool layers "
                             "have the same number of spatial dimensions")
    before = [p for p in out if p.type not in POOLS] if layer.type == "conv" else out
    prev = before[-1] if before else None
    if (prev is not None and prev.type == layer.type and layer.type in ("dense", "conv")
            and layer.in_features != prev.out_features):
        what = "features" if layer.type == "dense" else "channels"
        raise ValueError(f"{layer.name} has in_{what} {layer.in_features} but "
                         f"{prev.name} has out_{what} {prev.out_features}")
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
                             "holds dense and conv layers)")
        layer = _layer(e, f"{bname}[{j}]")
        if layer.type not in ("dense", "conv"):
            raise ValueError(f"{bname}[{j}]: a residual block holds dense and conv layers "
                             f"only, not {layer.type} (x + block(x) needs the block to "
                             "keep the shape)")
        _chain(layer, out)
    n_in, n_out = out[start].in_features, out[-1].out_features
    if n_in != n_out:
        what = "features" if out[start].type == "dense" else "channels"
        raise ValueError(f"{bname} maps {n_in} {what} to {n_out}: a residual block "
                         f"x -> x + block(x) must end with as many {what} as it starts")
    out[start] = out[start]._replace(block_start=True)
    out[-1] = out[-1]._replace(block_end=True)


def check_layers(layers):
    """The flat list of Layer (a residual block's layers in place, marked) from a
    non-empty list of entries: layer dicts (Dense dicts, the format of
    bnfast.Dense.to_dict(), and conv, pool and flatten dicts) and {"residual": [dense
    or conv dicts]}, whose feature and channel counts chain."""
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
            _chain(_layer(d, f"layers[{i}]"), out)
    return out


def _shape(s):
    return "(m, " + ", ".join(str(n) for n in s) + ")"


def _output_shape(layer, s, source):
    """The per-sample output shape of ``layer`` for inputs of per-sample shape ``s``,
    checking that it takes them (ValueError naming the layer and ``source``, what feeds
    it: "X" or the output of the layer before)."""
    if layer.type == "flatten":
        return (math.prod(s),)
    if layer.type == "dense":
        if len(s) != 1:
            raise ValueError(f"{layer.name} is a dense layer and needs inputs (m, "
                             f"features), but {source} has shape {_shape(s)}: put a "
                             "flatten layer before it")
        if s[0] != layer.in_features:
            raise ValueError(f"{layer.name} has in_features {layer.in_features} but "
                             f"{source} has {s[0]} features")
        return (layer.out_features,)
    dims = len(layer.kernel)
    if len(s) != dims + 1:
        raise ValueError(f"{layer.name} is a {dims}-D {layer.type} layer and needs inputs "
                         f"(m, C, {'L' if dims == 1 else 'H, W'}), but {source} has shape "
                         f"{_shape(s)}")
    if layer.type == "conv" and s[0] != layer.in_features:
        raise ValueError(f"{layer.name} has in_channels {layer.in_features} but {source} "
                         f"has {s[0]} channels (shape {_shape(s)})")
    padded = [n + 2 * p for n, p in zip(s[1:], layer.padding)]
    if any(k > n for k, n in zip(layer.kernel, padded)):
        raise ValueError(f"{layer.name}: kernel_size {list(layer.kernel)} is larger than "
                         f"its input's spatial size {padded} (padding included; {source} "
                         f"has shape {_shape(s)})")
    out = tuple((n - k) // st + 1 for n, k, st in zip(padded, layer.kernel, layer.stride))
    return (layer.out_features if layer.type == "conv" else s[0],) + out


def layer_shapes(layers, sample):
    """The per-sample output shape (a tuple, without m) of each checked layer for
    inputs of per-sample shape ``sample`` (X.shape[1:]); ValueError naming the first
    layer that does not take its input, or the residual block that changes the shape."""
    shapes, s, start = [], tuple(sample), None
    for i, layer in enumerate(layers):
        if layer.block_start:
            start = s
        source = "X" if i == 0 else f"the output of {layers[i - 1].name}"
        s = _output_shape(layer, s, source)
        if layer.block_end and s != start:
            block = layer.name.rsplit("[", 1)[0]
            raise ValueError(f"{block} maps inputs of shape {_shape(start)} to "
                             f"{_shape(s)}: a residual block x -> x + block(x) must keep "
                             "the shape")
        shapes.append(s)
    return shapes


def bn_layers(layers):
    """The checked layers with batch normalization (kind "batch": the ones with running
    statistics), in network order."""
    return [layer for layer in layers if layer.bn is not None and layer.bn.kind == "batch"]


def weight_shape(layer):
    """W's shape: (out, in) for dense, (out_channels, in_channels, *kernel) for conv."""
    return (layer.out_features, layer.in_features) + layer.kernel


def num_params(layers):
    """Length of the flat parameter vector of checked layers (pools and flatten have
    none)."""
    n = 0
    for layer in layers:
        if layer.type in ("dense", "conv"):
            n += math.prod(weight_shape(layer)) + layer.bias * layer.out_features
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


_NO_Y = object()  # learning_set without targets (forward, predict)


def learning_set(layers, X, y=_NO_Y, training=True, loss="sum"):
    """X as float64 (m, in_features) and y as float64 (m, out_features); y may be given
    as (m,) when the network has one output. With a cross-entropy loss y is (m,) class
    labels instead (class_labels: int64). Batch statistics (training) need m >= 2
    when the network has batch normalization; inference takes any m >= 1.

    A network with conv, pool or flatten layers takes X (m, C, L) or (m, C, H, W) (any
    (m, ...) that its layers take: layer_shapes checks the chain); the losses need its
    outputs to be (m, k), so it ends with a dense or a flatten layer."""
    X = _real_array(X, "X")
    if all(layer.type == "dense" for layer in layers):
        n_in, n_out = layers[0].in_features, layers[-1].out_features
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D (m, {n_in}), got shape {X.shape}")
        if X.shape[1] != n_in:
            raise ValueError(f"X has {X.shape[1]} features but the network expects {n_in}")
        out = (n_out,)
    else:
        if X.ndim < 2:
            raise ValueError(f"X must be (m, C, L) or (m, C, H, W), got shape {X.shape}")
        out = layer_shapes(layers, X.shape[1:])[-1]
    if X.shape[0] < 1:
        raise ValueError("X must have at least one row")
    if training and X.shape[0] < 2 and bn_layers(layers):
        raise ValueError("X: batch normalization needs at least 2 samples, got 1")
    if y is _NO_Y:
        return X
    if len(out) != 1:
        raise ValueError(f"the network's outputs have shape {_shape(out)}, but a loss "
                         "needs outputs (m, k): end the network with a flatten or a "
                         "dense layer")
    n_out = out[0]
    if loss in CROSS_ENTROPY:
        return X, class_labels(y, X.shape[0], n_out)
    y = _real_array(y, "y")
    if y.ndim == 1 and n_out == 1:
        y = y.reshape(-1, 1)
    if y.ndim != 2 or y.shape[1] != n_out:
        raise ValueError(f"y must have shape (m, {n_out})"
                         + (" or (m,)" if n_out == 1 else "") + f", got {y.shape}")
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but y has {y.shape[0]}")
    return X, y


def class_labels(y, m, n_out):
    """y as int64 (m,): class labels in [0, n_out), given as ints or as floats with
    integral values (TypeError for another dtype, ValueError for a wrong shape, a
    non-integral, non-finite or out-of-range label)."""
    if isinstance(y, (str, bytes)):
        raise TypeError(f"y must be an array of integer class labels, got {type(y).__name__}")
    a = np.asarray(y)
    if a.dtype.kind not in "fiu":
        raise TypeError("y must hold integer class labels (ints, or floats with integral "
                        f"values), got dtype {a.dtype}")
    if a.ndim != 1:
        raise ValueError(f"y must be 1-D: one class label per row of X, shape ({m},); "
                         f"got shape {a.shape}")
    if a.shape[0] != m:
        raise ValueError(f"X has {m} rows but y has {a.shape[0]}")
    if a.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(a) | (a != np.floor(a)))
        if bad.size:
            raise ValueError(f"y must hold integral class labels, got y[{bad[0]}] = "
                             f"{a[bad[0]].item()!r}")
    bad = np.flatnonzero((a < 0) | (a >= n_out))
    if bad.size:
        raise ValueError(f"y[{bad[0]}] = {a[bad[0]].item()!r} is not a class label of the "
                         f"network's {n_out} outputs (labels are 0 .. {n_out - 1})")
    return a.astype(np.int64)


def learning_rates(lr, steps):
    """lr as a float > 0, or a 1-D float64 array of at least ``steps`` finite rates > 0
    (lr[t] for the t-th update of the run)."""
    if isinstance(lr, (list, tuple, np.ndarray)):
        a = np.asarray(lr)
        if a.dtype.kind not in "fiu":
            raise TypeError("lr must be a real number or a 1-D array of real per-step "
                            f"rates, got dtype {a.dtype}")
        if a.ndim != 1:
            raise ValueError("lr must be a real number or a 1-D array of per-step rates, "
                             f"got shape {a.shape}")
        if a.shape[0] < steps:
            raise ValueError(f"lr has {a.shape[0]} per-step rates but steps is {steps} "
                             "(one rate per update)")
        a = np.array(a, dtype=np.float64)
        bad = np.flatnonzero(~(np.isfinite(a) & (a > 0)))
        if bad.size:
            raise ValueError(f"lr must be finite numbers > 0, got lr[{bad[0]}] = "
                             f"{a[bad[0]].item()!r}")
        return a
    lr = real(lr, "lr")
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a finite number > 0, got {lr}")
    return lr


def train_args(layers, m, lr, steps, batch_size, seed, record_every, callback):
    """(lr, steps, batch_size or 0 for full batch, seed, record_every), checked; lr a
    float or a float64 array of per-step rates (learning_rates)."""
    steps = integer(steps, "steps", 0)
    lr = learning_rates(lr, steps)
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
    """The loss: "sum" or "mean" of the squared error (networks.md section 6), or
    "cross_entropy" (mean over rows) or "cross_entropy_sum" (section 15)."""
    also = "(or, with class labels y, 'cross_entropy' or 'cross_entropy_sum')"
    if not isinstance(loss, str):
        raise TypeError(f"loss must be 'sum' or 'mean', got {type(loss).__name__} {also}")
    if loss not in LOSSES:
        raise ValueError(f"loss must be 'sum' or 'mean', got {loss!r} {also}")
    return str(loss)


def direction(v, n):
    """The direction v of a Hessian-vector product: a new finite float64 (n,)."""
    return _state_vector(v, "v", n)


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
                unit = "channels" if layer.type == "conv" else "neurons"
                raise ValueError(f"{name}[{j}] must have shape ({layer.out_features},) "
                                 f"({layer.name} has {layer.out_features} {unit}), "
                                 f"got {a.shape}")
            a = np.array(a, dtype=np.float64)
            if not np.all(np.isfinite(a)) or (initial == 1.0 and np.any(a < 0)):
                raise ValueError(f"{name}[{j}] must be finite"
                                 + (" and >= 0" if initial == 1.0 else ""))
            arrays.append(a)
        result.append(arrays)
    return result[0], result[1]


# ---------------------------------------------------------------- optimizers (section 16)


class Optimizer(NamedTuple):
    """torch.optim.SGD (dampening 0) or torch.optim.Adam (amsgrad False), checked."""
    name: str                    # "sgd" or "adam"
    momentum: float = 0.0        # sgd
    nesterov: bool = False       # sgd
    weight_decay: float = 0.0    # both: L2, added to the gradient
    betas: tuple = (0.9, 0.999)  # adam
    eps: float = 1e-8            # adam


_OPTIONS = {"sgd": {"momentum": 0.0, "nesterov": False, "weight_decay": 0.0},
            "adam": {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0}}


def _nonnegative(value, name):
    v = real(value, name)
    if not (v >= 0 and math.isfinite(v)):
        raise ValueError(f"{name} must be a finite number >= 0, got {v}")
    return v


def optimizer(opt):
    """None (plain gradient descent) or an Optimizer from the dict {"name": "sgd",
    optional "momentum" >= 0, "nesterov", "weight_decay" >= 0} or {"name": "adam",
    optional "betas" (b1, b2) in [0, 1), "eps" > 0, "weight_decay" >= 0}; missing
    options take torch's defaults."""
    if opt is None:
        return None
    if not isinstance(opt, dict):
        raise TypeError(f"optimizer must be None or a dict, got {type(opt).__name__}")
    if "name" not in opt:
        raise ValueError("optimizer must have the key 'name' ('sgd' or 'adam')")
    name = choice(opt["name"], "optimizer['name']", tuple(_OPTIONS), "optimizer")
    _keys(opt, ("name",), "optimizer", tuple(_OPTIONS[name]))
    values = {**_OPTIONS[name], **{k: v for k, v in opt.items() if k != "name"}}
    decay = _nonnegative(values["weight_decay"], "optimizer['weight_decay']")
    if name == "sgd":
        momentum = _nonnegative(values["momentum"], "optimizer['momentum']")
        nesterov = boolean(values["nesterov"], "optimizer['nesterov']")
        if nesterov and momentum == 0:
            raise ValueError("optimizer['nesterov'] needs optimizer['momentum'] > 0 "
                             "(Nesterov momentum requires a momentum, as in torch.optim.SGD)")
        return Optimizer("sgd", momentum=momentum, nesterov=nesterov, weight_decay=decay)
    betas = values["betas"]
    if not isinstance(betas, (list, tuple)) or len(betas) != 2:
        raise TypeError("optimizer['betas'] must be a pair (beta1, beta2), got "
                        f"{betas!r}")
    betas = tuple(real(b, f"optimizer['betas'][{i}]") for i, b in enumerate(betas))
    for i, b in enumerate(betas):
        if not 0 <= b < 1:
            raise ValueError(f"optimizer['betas'][{i}] must be in [0, 1), got {b}")
    eps = real(values["eps"], "optimizer['eps']")
    if not (eps > 0 and math.isfinite(eps)):
        raise ValueError(f"optimizer['eps'] must be a finite number > 0, got {eps}")
    return Optimizer("adam", betas=betas, eps=eps, weight_decay=decay)


def _state_vector(value, name, n, nonnegative=False):
    a = np.asarray(value)
    if a.dtype.kind not in "fiu":
        raise TypeError(f"{name} must hold real numbers, got dtype {a.dtype}")
    if a.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) (one entry per parameter), "
                         f"got {a.shape}")
    a = np.array(a, dtype=np.float64)
    if not np.all(np.isfinite(a)) or (nonnegative and np.any(a < 0)):
        raise ValueError(f"{name} must be finite" + (" and >= 0" if nonnegative else ""))
    return a


def optimizer_state(opt, state, n):
    """The optimizer state before a run, as a new dict (its arrays new float64 (n,)):
    None for plain gradient descent; sgd {"momentum_buffer": None (before the first
    step with momentum) or (n,)}; adam {"step": int >= 0, "exp_avg": (n,),
    "exp_avg_sq": (n,) >= 0}. state None: the initial state (no buffer; step 0, zeros)."""
    if opt is None:
        if state is not None:
            raise ValueError("optimizer_state must be None without an optimizer (plain "
                             "gradient descent keeps no state)")
        return None
    if state is None:
        if opt.name == "sgd":
            return {"momentum_buffer": None}
        return {"step": 0, "exp_avg": np.zeros(n), "exp_avg_sq": np.zeros(n)}
    if opt.name == "sgd":
        _keys(state, ("momentum_buffer",), "optimizer_state")
        buf = state["momentum_buffer"]
        if buf is not None:
            buf = _state_vector(buf, "optimizer_state['momentum_buffer']", n)
        return {"momentum_buffer": buf}
    _keys(state, ("step", "exp_avg", "exp_avg_sq"), "optimizer_state")
    return {"step": integer(state["step"], "optimizer_state['step']", 0),
            "exp_avg": _state_vector(state["exp_avg"], "optimizer_state['exp_avg']", n),
            "exp_avg_sq": _state_vector(state["exp_avg_sq"],
                                        "optimizer_state['exp_avg_sq']", n, True)}
