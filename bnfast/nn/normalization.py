"""Normalizations of a layer's pre-activations (docs/math/networks.md sections 2, 7-9 and
14): BatchNorm (with the lp scales, running statistics and noise), LayerNorm, GroupNorm.

Each crosses to the C++ core as one bound NormSpec (``spec(out_features)``), the one unit
csrc/core/nn/ops/normalization.hpp evaluates, and to the NumPy reference as the plain dict
of ``to_dict()``. The scales are defined once, in C++, and read here.
"""

import math
from dataclasses import dataclass

import numpy as np

from .. import _core
from .._validate import boolean, eps_value, integer, momentum_value, real_number

#: The scales a BN layer can divide by (docs/math/networks.md section 7).
NORMS = tuple(_core.NormScale.__members__)

__all__ = ["BNNoise", "BatchNorm", "GroupNorm", "LayerNorm", "NORMS", "Normalization"]


@dataclass(frozen=True)
class BNNoise:
    """The noise of noisy BN (Santurkar et al. 2018, Algorithm 1; docs/math/networks.md
    section 8). At each training step, per BN unit j: mu_j ~ U(-n_mu, n_mu), s0_j ~
    U(1, n_sigma); per sample i: m_ij ~ U(mu_j - r_mu, mu_j + r_mu), s_ij ~ N(s0_j,
    r_sigma^2); the BN output z becomes s_ij z + m_ij. Drawn from the train seed.

    A unit is a feature of a Dense layer ((m, out) values, one draw per entry) or a
    channel of a convolution ((m, C, *) values: one draw per sample and channel, shared
    by all positions of that sample and channel). BatchNorm(noise=...) is noisy BN; a
    layer's own ``noise=`` puts the same noise on a layer without normalization (the
    noisy-bn experiment's control: "the same noise on the standard network").

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


class Normalization:
    """What every normalization has: z = gamma (h - mu) / sqrt(s^2 + eps) + beta per
    feature, the statistics over the sets of its kind.

    gamma, beta : float or array_like (out_features,)
        Scale and shift. Initial values when ``trainable``, constants otherwise.
    trainable : bool
        Whether gamma and beta are parameters (they then appear in Network.params).
    eps : float >= 0
        eps = 0 is the exact transform of the theory; a set of constant values then
        raises ZeroVarianceError.
    """

    #: The core's NormKind member name.
    kind = None

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
        """gamma and beta as float64 arrays of shape (out_features,); raises ValueError
        when they (or the kind's structure, e.g. the groups) do not fit the layer."""
        return self._broadcast(self.gamma, "gamma", out_features), \
            self._broadcast(self.beta, "beta", out_features)

    @staticmethod
    def _broadcast(v, name, n):
        if v.ndim == 0:
            return np.full(n, float(v))
        if v.shape != (n,):
            raise ValueError(f"{name} has shape {v.shape} but the layer has {n} neurons")
        return v.copy()

    def _fields(self):
        """The constructor's arguments beyond gamma, beta, trainable, eps, by name."""
        return {}

    def copy(self):
        """A new normalization from these attributes, checked again by the constructor."""
        return type(self)(gamma=self.gamma, beta=self.beta, trainable=self.trainable,
                          eps=self.eps, **self._fields())

    def spec(self, out_features):
        """The core's bound NormSpec for a layer of ``out_features`` neurons."""
        gamma, beta = self.values(out_features)
        return _core.NormSpec(kind=_core.NormKind.__members__[self.kind],
                              trainable=self.trainable, gamma=list(gamma), beta=list(beta),
                              eps=self.eps, **self._spec_fields())

    def _spec_fields(self):
        return {}

    def to_dict(self):
        """A plain description (what bnfast.reference takes): kind, gamma and beta as
        floats or lists, trainable, eps, and the kind's own fields."""
        def plain(v):
            return float(v) if v.ndim == 0 else [float(e) for e in v]
        return {"kind": self.kind, "gamma": plain(self.gamma), "beta": plain(self.beta),
                "trainable": self.trainable, "eps": self.eps, **self._plain_fields()}

    def _plain_fields(self):
        return self._fields()

    def __repr__(self):
        def show(v):
            return repr(float(v)) if v.ndim == 0 else f"array{v.shape}"
        extra = "".join(f", {k}={v!r}" for k, v in self._fields().items())
        return (f"{type(self).__name__}(gamma={show(self.gamma)}, beta={show(self.beta)}, "
                f"trainable={self.trainable}, eps={self.eps}{extra})")


class BatchNorm(Normalization):
    """Batch normalization of a layer's pre-activations: phi(BN(W x + b)), each neuron
    normalized over the rows of the batch (Ioffe and Szegedy 2015).

    Parameters
    ----------
    gamma, beta, trainable, eps : as for every normalization (bnfast.nn.Normalization)
    momentum : float in [0, 1] or None
        The running statistics (used by Network.predict) move by this fraction towards
        each training batch's statistics, as in PyTorch; None: the cumulative average
        of all batches (the Ioffe-Szegedy population estimate). networks.md section 9.
    norm : {"std", "l1", "l2", "linf"}
        The scale the centred pre-activations are divided by: the batch standard
        deviation (BN), or the average lp norm of the uncentred ones (Santurkar et al.
        2018, section 3.3). networks.md section 7.
    noise : BNNoise or None
        Noisy BN: random scale and shift of the BN output at every training step, one
        draw per sample and neuron (per sample and channel on a convolution).
    """

    kind = "batch"

    def __init__(self, gamma=1.0, beta=0.0, trainable=True, eps=1e-5, momentum=0.1,
                 norm="std", noise=None):
        super().__init__(gamma, beta, trainable, eps)
        self.momentum = None if momentum is None else momentum_value(momentum)
        if not isinstance(norm, str) or norm not in NORMS:
            raise ValueError(f"unknown norm {norm!r}; expected one of {', '.join(NORMS)}")
        self.norm = norm
        if noise is not None and not isinstance(noise, BNNoise):
            raise TypeError("noise must be a bnfast.BNNoise or None, got "
                            f"{type(noise).__name__}")
        self.noise = noise

    def _fields(self):
        return {"momentum": self.momentum, "norm": self.norm, "noise": self.noise}

    def _plain_fields(self):
        return {"momentum": self.momentum, "norm": self.norm,
                "noise": None if self.noise is None else self.noise.to_dict()}

    def _spec_fields(self):  # the noise crosses with the layer (Weighted.applied_noise)
        return dict(scale=_core.NormScale.__members__[self.norm],
                    momentum=0.0 if self.momentum is None else self.momentum,
                    cumulative=self.momentum is None)


class LayerNorm(Normalization):
    """Layer normalization (Ba, Kiros and Hinton 2016; PyTorch's nn.LayerNorm over the
    layer's features): each row of pre-activations normalized by its own mean and biased
    variance over the out_features neurons, then gamma, beta per neuron. The statistics
    are per sample, so training and inference agree and a batch of one row is allowed.
    networks.md section 14.

    gamma, beta, trainable, eps : as for every normalization (bnfast.nn.Normalization)
    """

    kind = "layer"


class GroupNorm(Normalization):
    """Group normalization (Wu and He 2018; PyTorch's nn.GroupNorm(groups, out_features)):
    each row's neurons split into ``groups`` contiguous groups of out_features / groups,
    each normalized by its own mean and biased variance, then gamma, beta per neuron.
    groups = 1 is LayerNorm; groups = out_features normalizes each value alone (with eps
    > 0 it then outputs beta). networks.md section 14.

    groups : int >= 1, dividing the layer's out_features
    gamma, beta, trainable, eps : as for every normalization (bnfast.nn.Normalization)
    """

    kind = "group"

    def __init__(self, groups, gamma=1.0, beta=0.0, trainable=True, eps=1e-5):
        super().__init__(gamma, beta, trainable, eps)
        self.groups = integer(groups, "groups", 1)

    def values(self, out_features):
        if out_features % self.groups:
            raise ValueError(f"groups: {self.groups} groups do not divide the layer's "
                             f"{out_features} neurons")
        return super().values(out_features)

    def copy(self):
        return GroupNorm(self.groups, self.gamma, self.beta, self.trainable, self.eps)

    def _fields(self):
        return {"groups": self.groups}

    def _spec_fields(self):
        return {"groups": self.groups}
