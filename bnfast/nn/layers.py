"""Layer descriptions, as the papers define them (docs/math/networks.md).

A Dense layer crosses to the C++ core as a bound LayerSpec (fields by name; its
normalization as one NormSpec, normalization.py), and to the NumPy reference as the
plain dict of Dense.to_dict(); a Residual block as its layers' specs, the last one marking
where the block started. The activations and the parameter layout are defined once, in
C++ (csrc/core/nn/layer.hpp), and read here.
"""

import numpy as np

from .. import _core
from .._validate import boolean, integer
from .normalization import NORMS, BatchNorm, BNNoise, Normalization

#: The activation functions, in the core's order.
ACTIVATIONS = tuple(_core.Activation.__members__)

__all__ = ["ACTIVATIONS", "Dense", "Layer", "NORMS", "Residual", "Weighted", "check_layers",
           "flat_layers", "flat_specs", "param_slices", "unflatten"]


class Layer:
    """What every layer of a Network has: ``spec(skip_from=-1)``, the core's bound
    LayerSpec (its attributes checked again by a fresh construction, so a layer changed
    after construction cannot hand the core a value it never saw checked);
    ``to_dict()``, the plain data bnfast.reference takes; ``num_params``."""

    #: The core's LayerKind member name.
    kind = None
    #: The constructor's arguments shown without their names by repr().
    _positional = ()

    # Each layer class defines _arguments(): the constructor's arguments, by name, that
    # rebuild the layer.

    def copy(self):
        """A new layer from these attributes, checked again by the constructor."""
        return type(self)(**self._arguments())

    def spec(self, skip_from=-1):
        return self.copy()._spec(skip_from)

    def _spec(self, skip_from):
        return _core.LayerSpec(kind=_core.LayerKind.__members__[self.kind],
                               skip_from=skip_from, **self._spec_fields())

    def _spec_fields(self):
        return {}

    @property
    def num_params(self):
        """How many entries of the flat parameter vector this layer has."""
        return self.spec().num_params

    def _repr_arguments(self, args):
        return ", ".join(repr(v) if k in self._positional else f"{k}={v!r}"
                         for k, v in args.items())

    def __repr__(self):
        return f"{type(self).__name__}({self._repr_arguments(self._arguments())})"


class Weighted(Layer):
    """A layer x -> phi(N(map(x) + b)) with weights W, an optional bias b and an optional
    normalization N: Dense and the convolutions. ``in_features``/``out_features`` are its
    features (Dense) or channels (convolutions): what a normalization and its running
    statistics count.

    activation : {"identity", "sigmoid", "tanh", "relu"}
    bias : bool
        Whether the layer has a bias b (out,). Before BN, LayerNorm or GroupNorm a bias
        has little or no effect (the centring removes all of it, or its group means).
    normalization : BatchNorm, LayerNorm, GroupNorm or None
        How the pre-activations are normalized.
    batch_norm : BatchNorm or None
        The papers' phi(BN(W x + b)): the same as normalization=BatchNorm(...). Give at
        most one of the two.
    noise : BNNoise or None
        Santurkar et al.'s Algorithm 1 noise on a layer WITHOUT normalization: at each
        training step x -> phi(s * (map(x) + b) + m), one draw (s, m) per sample and unit
        (a feature of a Dense layer's (m, out) values; a channel of a convolution's
        (m, C, *) values, shared by all its positions), as noisy BN draws it: the
        noisy-bn experiment's control, "the same noise on the standard network"
        (docs/math/networks.md section 8). Noise free outside training, as noisy BN. A
        normalized layer takes its noise from its BatchNorm (noisy BN:
        BatchNorm(noise=...)).
    """

    def _init_map(self, activation, bias, batch_norm, normalization, noise=None):
        if not isinstance(activation, str) or activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; expected one of "
                             f"{', '.join(ACTIVATIONS)}")
        self.activation = activation
        self.bias = boolean(bias, "bias")
        if batch_norm is not None and normalization is not None:
            raise TypeError("give batch_norm or normalization, not both")
        if batch_norm is not None and not isinstance(batch_norm, BatchNorm):
            raise TypeError("batch_norm must be a bnfast.BatchNorm or None, got "
                            f"{type(batch_norm).__name__} (use normalization= for the "
                            "other normalizations)")
        if normalization is not None and not isinstance(normalization, Normalization):
            raise TypeError("normalization must be a bnfast.BatchNorm, LayerNorm or "
                            f"GroupNorm, or None, got {type(normalization).__name__}")
        self.normalization = batch_norm if batch_norm is not None else normalization
        if self.normalization is not None:  # shapes checked now, not at first use
            self.normalization.values(self.out_features)
        if noise is not None and not isinstance(noise, BNNoise):
            raise TypeError(f"noise must be a bnfast.BNNoise or None, got {type(noise).__name__}")
        if noise is not None and self.normalization is not None:
            raise ValueError("noise: a normalized layer takes its noise from the "
                             "normalization (noisy BN: BatchNorm(noise=...)); noise= is the "
                             "noise of a layer without normalization")
        self.noise = noise

    @property
    def batch_norm(self):
        """The layer's normalization when it is a BatchNorm, else None."""
        return self.normalization if isinstance(self.normalization, BatchNorm) else None

    @property
    def fan_in(self):
        """Inputs of one output value: in_features (times the kernel's size)."""
        return self.in_features

    @property
    def fan_out(self):
        """Outputs one input value reaches: out_features (times the kernel's size)."""
        return self.out_features

    def copy(self):
        args = self._arguments()
        norm = args.pop("normalization")
        return type(self)(**args, normalization=None if norm is None else norm.copy())

    def _arguments(self):
        return {"activation": self.activation, "bias": self.bias,
                "normalization": self.normalization, "noise": self.noise}

    @property
    def applied_noise(self):
        """The Algorithm 1 noise the layer applies (its BatchNorm's, or its own), or None."""
        return getattr(self.normalization, "noise", None) or self.noise

    def _spec_fields(self):
        norm, noise = self.normalization, self.applied_noise
        return dict(in_features=self.in_features, out_features=self.out_features,
                    activation=_core.Activation.__members__[self.activation], bias=self.bias,
                    norm=None if norm is None else norm.spec(self.out_features),
                    noise=None if noise is None else _core.NoiseSpec(**noise.to_dict()))

    def _plain(self):
        """The to_dict() entries every weighted layer has ("noise" only when set)."""
        plain = {"activation": self.activation, "bias": self.bias,
                 "normalization": None if self.normalization is None
                 else self.normalization.to_dict()}
        if self.noise is not None:
            plain["noise"] = self.noise.to_dict()
        return plain

    def __repr__(self):
        args = self._arguments()
        norm = args.pop("normalization")
        if args["noise"] is None:
            del args["noise"]
        text = self._repr_arguments(args)
        if norm is not None:
            text += (f", batch_norm={norm!r}" if isinstance(norm, BatchNorm)
                     else f", normalization={norm!r}")
        return f"{type(self).__name__}({text})"


class Dense(Weighted):
    """A fully connected layer x -> phi(N(W x + b)), W of shape (out_features, in_features),
    N an optional normalization.

    Parameters
    ----------
    in_features, out_features : int >= 1
    activation, bias, normalization, batch_norm, noise : as for every weighted layer
        (bnfast.nn.layers.Weighted): activation "identity", "sigmoid", "tanh" or "relu";
        normalization a BatchNorm, LayerNorm or GroupNorm (batch_norm= a BatchNorm);
        noise a BNNoise on the (m, out_features) pre-activations of a layer without
        normalization (the noisy-bn experiment's control).

    Attributes
    ----------
    normalization : the layer's normalization or None
    batch_norm : the normalization when it is a BatchNorm, else None
    noise : the layer's own noise (without normalization) or None
    """

    kind = "dense"
    _positional = ("in_features", "out_features")

    def __init__(self, in_features, out_features, activation="identity", bias=True,
                 batch_norm=None, normalization=None, noise=None):
        self.in_features = integer(in_features, "in_features", 1)
        self.out_features = integer(out_features, "out_features", 1)
        self._init_map(activation, bias, batch_norm, normalization, noise)

    def _arguments(self):
        return {"in_features": self.in_features, "out_features": self.out_features,
                **super()._arguments()}

    def to_dict(self):
        """The layer as plain data (what bnfast.reference takes): in_features,
        out_features, activation, bias, normalization (None or its to_dict(), with its
        kind), and "noise" (BNNoise.to_dict()) when the layer has its own noise."""
        return {"in_features": self.in_features, "out_features": self.out_features,
                **self._plain()}


class Residual:
    """A residual block x -> x + block(x) (docs/math/networks.md section 10).

    layers : non-empty sequence of Dense or convolution layers (no nested blocks), the
        first layer's in_features (channels) equal to the last layer's out_features
        (n -> n); the Network checks that the shapes chain and that the block keeps its
        input's shape, as for its own layers. The sum comes after the last layer's
        activation. The block adds no parameters.
    """

    def __init__(self, layers):
        layers = _layer_sequence(layers, (Weighted,),
                                 "bnfast.Dense or a convolution (blocks do not nest)",
                                 "a residual block needs a layer")
        if layers[0].in_features != layers[-1].out_features:
            raise ValueError("layers: a residual block must map n features to n, got "
                             f"{layers[0].in_features} -> {layers[-1].out_features}")
        self.layers = layers

    @property
    def in_features(self):
        return self.layers[0].in_features

    @property
    def out_features(self):
        return self.layers[-1].out_features

    def copy(self):
        """A new block of copies of its layers."""
        return Residual([layer.copy() for layer in self.layers])

    def to_dict(self):
        """{"residual": [Dense.to_dict(), ...]} (what bnfast.reference takes)."""
        return {"residual": [layer.to_dict() for layer in self.layers]}

    def __repr__(self):
        inner = ", ".join(repr(layer) for layer in self.layers)
        return f"Residual([{inner}])"


def _layer_sequence(layers, kinds, kinds_name, why_not_empty):
    """layers as a non-empty tuple whose items are instances of ``kinds``."""
    if isinstance(layers, (Layer, Residual)) or not hasattr(layers, "__iter__"):
        raise TypeError(f"layers must be a sequence of {kinds_name}, got "
                        f"{type(layers).__name__}")
    layers = tuple(layers)
    if not layers:
        raise ValueError(f"layers must not be empty: {why_not_empty}")
    for i, layer in enumerate(layers):
        if not isinstance(layer, kinds):
            raise TypeError(f"layers[{i}] must be a {kinds_name}, got {type(layer).__name__}")
    return layers


def check_layers(layers):
    """Copies of layers, a non-empty sequence of layers (Dense, convolutions, pooling,
    Flatten) and Residual blocks (the core checks that their shapes chain): a network
    owns its layers, so a layer object changed after building it changes nothing."""
    layers = _layer_sequence(layers, (Layer, Residual),
                             "bnfast layer (Dense, Conv1d, ...) or bnfast.Residual",
                             "a network needs at least one layer")
    return tuple(layer.copy() for layer in layers)


def flat_layers(layers):
    """The layers of checked layers in network order (blocks opened in place)."""
    return [d for layer in layers
            for d in (layer.layers if isinstance(layer, Residual) else (layer,))]


def flat_specs(layers):
    """The core's LayerSpec list for checked layers: one per layer in network order,
    the last layer of a block carrying the index where the block started."""
    specs = []
    for layer in layers:
        if isinstance(layer, Residual):
            start = len(specs)
            specs += [d.spec() for d in layer.layers[:-1]]
            specs.append(layer.layers[-1].spec(skip_from=start))
        else:
            specs.append(layer.spec())
    return specs


def param_slices(layout):
    """Where each layer's parameters sit in the flat vector, from the core's layout.

    Returns a list with one dict per layer mapping "W", "b", "gamma", "beta" to a
    (slice, shape) pair; absent parameters are missing from the dict (a pooling or
    Flatten has none). The order is defined in csrc/core/nn/layer.hpp: layer by layer,
    W (out, in) or (out, in, *kernel) row-major, b, gamma, beta.
    """
    return [{name: (slice(start, start + int(np.prod(shape))), tuple(shape))
             for name, (start, shape) in entry.items()} for entry in layout]


def unflatten(layout, params):
    """The flat parameter vector as one dict per layer of views: W (out, in) or (out, in,
    *kernel), b, gamma, beta (those the layer has)."""
    return [{name: params[sl].reshape(shape) for name, (sl, shape) in entry.items()}
            for entry in param_slices(layout)]

