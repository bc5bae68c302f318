"""Convolutional layers (docs/math/networks.md section 17): PyTorch's Conv1d and Conv2d
layouts and semantics (a cross-correlation with zero padding), followed as a Dense layer
is by an optional normalization over channels and an activation:
x -> phi(N(conv(x, W) + b)).

Samples are (C, L) or (C, H, W) (X (m, C, L) or (m, C, H, W)); W is (out_channels,
in_channels, *kernel_size); b, gamma and beta are per channel. BatchNorm normalizes each
channel over the batch and its positions (BatchNorm1d/2d); LayerNorm is GroupNorm(1, C)
(per sample over all channels and positions, affine per channel); GroupNorm(G) per sample
over groups of channels and their positions.

Noise (Santurkar et al.'s Algorithm 1, docs/math/networks.md section 8), noisy BN
(BatchNorm(noise=...)) or the layer's own noise without normalization (noise=...): the
unit is the channel, so one draw (s, m) per sample and channel, shared by all positions
of that sample and channel: z[i, c, *] <- s[i, c] z[i, c, *] + m[i, c].
"""

from .._validate import integer
from .layers import Weighted

__all__ = ["Conv1d", "Conv2d", "axes_tuple"]


def axes_tuple(value, name, axes, low):
    """An int or a sequence of ``axes`` ints, each >= low, as a tuple of ``axes`` ints."""
    if isinstance(value, (tuple, list)):
        if len(value) != axes:
            raise ValueError(f"{name} must be an int or {axes} ints, got {value!r}")
        return tuple(integer(v, name, low) for v in value)
    return (integer(value, name, low),) * axes


class _Conv(Weighted):
    """x -> phi(N(conv(x, W) + b)) over ``axes`` spatial axes."""

    kind = "conv"
    axes = None
    _positional = ("in_channels", "out_channels", "kernel_size")

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 activation="identity", bias=True, batch_norm=None, normalization=None,
                 noise=None):
        self.in_channels = integer(in_channels, "in_channels", 1)
        self.out_channels = integer(out_channels, "out_channels", 1)
        self.kernel_size = axes_tuple(kernel_size, "kernel_size", self.axes, 1)
        self.stride = axes_tuple(stride, "stride", self.axes, 1)
        self.padding = axes_tuple(padding, "padding", self.axes, 0)
        self._init_map(activation, bias, batch_norm, normalization, noise)

    # Channels are what a normalization counts and a residual block must keep.
    @property
    def in_features(self):
        return self.in_channels

    @property
    def out_features(self):
        return self.out_channels

    @property
    def _kernel_count(self):
        count = 1
        for k in self.kernel_size:
            count *= k
        return count

    @property
    def fan_in(self):
        return self.in_channels * self._kernel_count

    @property
    def fan_out(self):
        return self.out_channels * self._kernel_count

    def _arguments(self):
        return {"in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": self.kernel_size, "stride": self.stride,
                "padding": self.padding, **super()._arguments()}

    def _spec_fields(self):
        return dict(super()._spec_fields(), kernel=list(self.kernel_size),
                    stride=list(self.stride), padding=list(self.padding))

    def to_dict(self):
        """The layer as plain data (what bnfast.reference takes): type "conv",
        in_channels, out_channels, kernel_size, stride, padding (lists), activation,
        bias, normalization, and "noise" when the layer has its own noise."""
        return {"type": "conv", "in_channels": self.in_channels,
                "out_channels": self.out_channels, "kernel_size": list(self.kernel_size),
                "stride": list(self.stride), "padding": list(self.padding), **self._plain()}


class Conv1d(_Conv):
    """A 1-D convolution layer, PyTorch's nn.Conv1d (then N and phi): samples (C, L),
    W (out_channels, in_channels, k), output length (L + 2 padding - k) // stride + 1.

    Parameters
    ----------
    in_channels, out_channels : int >= 1
    kernel_size : int >= 1; stride : int >= 1; padding : int >= 0 (zeros, both ends)
    activation, bias, normalization, batch_norm, noise : as for Dense; noise (and
        noisy BN) draws once per sample and channel (module docstring)
    """

    axes = 1


class Conv2d(_Conv):
    """A 2-D convolution layer, PyTorch's nn.Conv2d (then N and phi): samples (C, H, W),
    W (out_channels, in_channels, kh, kw); each output axis (n + 2 padding - k) //
    stride + 1.

    Parameters
    ----------
    in_channels, out_channels : int >= 1
    kernel_size, stride, padding : an int or a pair (height, width); kernel and stride
        >= 1, padding >= 0 (zeros)
    activation, bias, normalization, batch_norm, noise : as for Dense; noise (and
        noisy BN) draws once per sample and channel (module docstring)
    """

    axes = 2
