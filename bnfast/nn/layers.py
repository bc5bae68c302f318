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
from .normalization import NORMS, BatchNorm, Normalization

#: The activation functions, in the core's order.
ACTIVATIONS = tuple(_core.Activation.__members__)

__all__ = ["ACTIVATIONS", "Dense", "NORMS", "Residual", "check_layers", "dense_layers",
           "flat_specs", "param_slices", "unflatten"]


class Dense:
    """A fully connected layer x -> phi(N(W x + b)), W of shape (out_features, in_features),
    N an optional normalization.

    Parameters
    ----------
    in_features, out_features : int >= 1
    activation : {"identity", "sigmoid", "tanh", "relu"}
    bias : bool
        Whether the layer has a bias b (out_features,). Before BN, LayerNorm or GroupNorm
        a bias has no effect (the centring removes it) and its gradient is zero.
    normalization : BatchNorm, LayerNorm, GroupNorm or None
        How the pre-activations are normalized.
    batch_norm : BatchNorm or None
        The papers' phi(BN(W x + b)): the same as normalization=BatchNorm(...). Give at
        most one of the two.

    Attributes
    ----------
    normalization : the layer's normalization or None
    batch_norm : the normalization when it is a BatchNorm, else None
    """

    def __init__(self, in_features, out_features, activation="identity", bias=True,
                 batch_norm=None, normalization=None):
        self.in_features = integer(in_features, "in_features", 1)
        self.out_features = integer(out_features, "out_features", 1)
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

    @property
    def batch_norm(self):
        """The layer's normalization when it is a BatchNorm, else None."""
        return self.normalization if isinstance(self.normalization, BatchNorm) else None

    @property
    def num_params(self):
        """How many entries of the flat parameter vector this layer has."""
        return self.spec().num_params

    def spec(self, skip_from=-1):
        """The layer as the core's bound LayerSpec (skip_from: where a residual block
        ending here started, -1 for none). The attributes are checked again (by the
        constructors, the one owner of these rules): a layer changed after construction
        cannot hand the core a value it never saw checked."""
        norm = self.normalization.copy() if self.normalization is not None else None
        layer = Dense(self.in_features, self.out_features, self.activation, self.bias,
                      normalization=norm)
        return _core.LayerSpec(
            in_features=layer.in_features, out_features=layer.out_features,
            activation=_core.Activation.__members__[layer.activation], bias=layer.bias,
            norm=None if norm is None else norm.spec(layer.out_features), skip_from=skip_from)

    def to_dict(self):
        """The layer as plain data (what bnfast.reference takes): in_features,
        out_features, activation, bias, normalization (None or its to_dict(), with its
        kind)."""
        return {"in_features": self.in_features, "out_features": self.out_features,
                "activation": self.activation, "bias": self.bias,
                "normalization": None if self.normalization is None
                else self.normalization.to_dict()}

    def __repr__(self):
        norm = ("" if self.normalization is None else
                f", batch_norm={self.normalization!r}" if self.batch_norm is not None else
                f", normalization={self.normalization!r}")
        return (f"Dense({self.in_features}, {self.out_features}, "
                f"activation={self.activation!r}, bias={self.bias}{norm})")


class Residual:
    """A residual block x -> x + block(x) (docs/math/networks.md section 10).

    layers : non-empty sequence of Dense (no nested blocks), the first layer's
        in_features equal to the last layer's out_features (n -> n); the Network checks
        that the features chain, as for its own layers. The
        sum comes after the last layer's activation. The block adds no parameters.
    """

    def __init__(self, layers):
        layers = _layer_sequence(layers, (Dense,), "bnfast.Dense (blocks do not nest)",
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

    def to_dict(self):
        """{"residual": [Dense.to_dict(), ...]} (what bnfast.reference takes)."""
        return {"residual": [layer.to_dict() for layer in self.layers]}

    def __repr__(self):
        inner = ", ".join(repr(layer) for layer in self.layers)
        return f"Residual([{inner}])"


def _layer_sequence(layers, kinds, kinds_name, why_not_empty):
    """layers as a non-empty tuple whose items are instances of ``kinds``."""
    if isinstance(layers, (Dense, Residual)) or not hasattr(layers, "__iter__"):
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
    """layers as a non-empty tuple of Dense and Residual (the core checks that their
    feature counts chain)."""
    return _layer_sequence(layers, (Dense, Residual), "bnfast.Dense or bnfast.Residual",
                           "a network needs at least one layer")


def dense_layers(layers):
    """The Dense layers of checked layers in network order (blocks opened in place)."""
    return [d for layer in layers
            for d in (layer.layers if isinstance(layer, Residual) else (layer,))]


def flat_specs(layers):
    """The core's LayerSpec list for checked layers: one per Dense layer in network
    order, the last layer of a block carrying the index where the block started."""
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

