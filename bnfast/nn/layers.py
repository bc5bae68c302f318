"""Layer descriptions, as the papers define them (docs/math/networks.md).

A Dense layer crosses to the C++ core as a bound LayerSpec (fields by name), and to the
NumPy reference as the plain dict of Dense.to_dict(); a Residual block as its layers'
specs, the last one marking where the block started. The activations, the norms and the
parameter layout are defined once, in C++ (csrc/core/nn/layer.hpp), and read here.
"""

import math
from dataclasses import dataclass

import numpy as np

from .. import _core
from .._validate import boolean, eps_value, integer, momentum_value, real_number

#: The activation functions, in the core's order.
ACTIVATIONS = tuple(_core.Activation.__members__)
#: The scales a BN layer can divide by (docs/math/networks.md section 7).
NORMS = tuple(_core.NormScale.__members__)

__all__ = ["ACTIVATIONS", "BNNoise", "BatchNorm", "Dense", "NORMS", "Residual",
           "check_layers", "dense_layers", "flat_specs", "param_slices", "unflatten"]


@dataclass(frozen=True)
class BNNoise:
    """The noise of noisy BN (Santurkar et al. 2018, Algorithm 1; docs/math/networks.md
    section 8). At each training step, per BN unit j: mu_j ~ U(-n_mu, n_mu), s0_j ~
    U(1, n_sigma); per sample i: m_ij ~ U(mu_j - r_mu, mu_j + r_mu), s_ij ~ N(s0_j,
    r_sigma^2); the BN output z becomes s_ij z + m_ij. Drawn from the train seed.

    n_mu >= 0, n_sigma >= 1, r_mu >= 0, r_sigma >= 0, all finite.
    """

    n_mu: float = 0.5
    n_sigma: float = 1.25
    r_mu: float = 0.1
    r_sigma: float = 0.1

    def __post_init__(self):
        for name, low in (("n_mu", 0.0), ("n_sigma", 1.0), ("r_mu", 0.0), ("r_sigma", 0.0)):
            value = real_number(getattr(self, name), name)
            if not (math.isfinite(value) and value >= low):
                raise ValueError(f"{name} must be a finite number >= {low:g}, got {value}")
            object.__setattr__(self, name, value)

    def to_dict(self):
        return {"n_mu": self.n_mu, "n_sigma": self.n_sigma, "r_mu": self.r_mu,
                "r_sigma": self.r_sigma}


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
    momentum : float in [0, 1] or None
        The running statistics (used by Network.predict) move by this fraction towards
        each training batch's statistics, as in PyTorch; None: the cumulative average
        of all batches (the Ioffe-Szegedy population estimate). networks.md section 9.
    norm : {"std", "l1", "l2", "linf"}
        The scale the centred pre-activations are divided by: the batch standard
        deviation (BN), or the average lp norm of the uncentred ones (Santurkar et al.
        2018, section 3.3). networks.md section 7.
    noise : BNNoise or None
        Noisy BN: random scale and shift of the BN output at every training step.
    """

    def __init__(self, gamma=1.0, beta=0.0, trainable=True, eps=1e-5, momentum=0.1,
                 norm="std", noise=None):
        self.gamma = self._values(gamma, "gamma")
        self.beta = self._values(beta, "beta")
        self.trainable = boolean(trainable, "trainable")
        self.eps = eps_value(eps)
        self.momentum = None if momentum is None else momentum_value(momentum)
        if not isinstance(norm, str) or norm not in NORMS:
            raise ValueError(f"unknown norm {norm!r}; expected one of {', '.join(NORMS)}")
        self.norm = norm
        if noise is not None and not isinstance(noise, BNNoise):
            raise TypeError("noise must be a bnfast.BNNoise or None, got "
                            f"{type(noise).__name__}")
        self.noise = noise

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

    def spec(self, out_features):
        """The core's bound NormSpec for a layer of ``out_features`` neurons."""
        gamma, beta = self.values(out_features)
        noise = None if self.noise is None else _core.NoiseSpec(**self.noise.to_dict())
        return _core.NormSpec(kind=_core.NormKind.batch,
                              scale=_core.NormScale.__members__[self.norm],
                              trainable=self.trainable, gamma=list(gamma), beta=list(beta),
                              eps=self.eps,
                              momentum=0.0 if self.momentum is None else self.momentum,
                              cumulative=self.momentum is None, noise=noise)

    def copy(self):
        """A new BatchNorm from these attributes, checked again by the constructor."""
        return BatchNorm(self.gamma, self.beta, self.trainable, self.eps, self.momentum,
                         self.norm, self.noise)

    def to_dict(self):
        """A plain description: gamma and beta as floats or lists, trainable, eps,
        momentum, norm, noise (None or a dict of the four BNNoise fields)."""
        def plain(v):
            return float(v) if v.ndim == 0 else [float(e) for e in v]
        return {"gamma": plain(self.gamma), "beta": plain(self.beta),
                "trainable": self.trainable, "eps": self.eps, "momentum": self.momentum,
                "norm": self.norm,
                "noise": None if self.noise is None else self.noise.to_dict()}

    def __repr__(self):
        def show(v):
            return repr(float(v)) if v.ndim == 0 else f"array{v.shape}"
        return (f"BatchNorm(gamma={show(self.gamma)}, beta={show(self.beta)}, "
                f"trainable={self.trainable}, eps={self.eps}, momentum={self.momentum}, "
                f"norm={self.norm!r}, noise={self.noise!r})")


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

    def spec(self, skip_from=-1):
        """The layer as the core's bound LayerSpec (skip_from: where a residual block
        ending here started, -1 for none). The attributes are checked again (by the
        constructors, the one owner of these rules): a layer changed after construction
        cannot hand the core a value it never saw checked."""
        bn = self.batch_norm.copy() if self.batch_norm is not None else None
        layer = Dense(self.in_features, self.out_features, self.activation, self.bias, bn)
        return _core.LayerSpec(
            in_features=layer.in_features, out_features=layer.out_features,
            activation=_core.Activation.__members__[layer.activation], bias=layer.bias,
            norm=None if bn is None else bn.spec(layer.out_features), skip_from=skip_from)

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

