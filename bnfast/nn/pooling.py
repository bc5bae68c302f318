"""Pooling and flattening layers (docs/math/networks.md section 17), PyTorch's semantics:
MaxPool1d/2d and AvgPool1d/2d without padding (each output axis (n - k) // stride + 1;
stride defaults to the kernel), and Flatten, (m, C, *) -> (m, C * prod(*)) in row-major
order. They have no parameters. Max pooling takes the first largest value of a window in
row-major order (a NaN counts as largest), and its gradient goes there.
"""

from .conv import axes_tuple
from .layers import Layer

__all__ = ["AvgPool1d", "AvgPool2d", "Flatten", "MaxPool1d", "MaxPool2d"]


class _Pool(Layer):
    axes = None
    _positional = ("kernel_size",)

    def __init__(self, kernel_size, stride=None):
        self.kernel_size = axes_tuple(kernel_size, "kernel_size", self.axes, 1)
        self.stride = (self.kernel_size if stride is None
                       else axes_tuple(stride, "stride", self.axes, 1))

    def _arguments(self):
        return {"kernel_size": self.kernel_size, "stride": self.stride}

    def _spec_fields(self):
        return dict(kernel=list(self.kernel_size), stride=list(self.stride))

    def to_dict(self):
        """{"type": "maxpool" or "avgpool", "kernel_size": [...], "stride": [...]}."""
        return {"type": self.kind.replace("_", ""), "kernel_size": list(self.kernel_size),
                "stride": list(self.stride)}


class MaxPool1d(_Pool):
    """The largest value of each window of each channel: nn.MaxPool1d(kernel_size,
    stride); kernel_size, stride (default kernel_size) ints >= 1."""

    kind, axes = "max_pool", 1


class MaxPool2d(_Pool):
    """nn.MaxPool2d(kernel_size, stride): kernel_size and stride (default kernel_size)
    an int or a pair (height, width), >= 1."""

    kind, axes = "max_pool", 2


class AvgPool1d(_Pool):
    """The mean of each window of each channel: nn.AvgPool1d(kernel_size, stride)."""

    kind, axes = "avg_pool", 1


class AvgPool2d(_Pool):
    """nn.AvgPool2d(kernel_size, stride): an int or a pair (height, width)."""

    kind, axes = "avg_pool", 2


class Flatten(Layer):
    """(m, C, *) -> (m, C * prod(*)), row-major (torch.flatten(x, 1)): the values of a
    sample as features, for a Dense layer after convolutions."""

    kind = "flatten"

    def _arguments(self):
        return {}

    def to_dict(self):
        return {"type": "flatten"}
