"""bnfast: batch normalization numerics with a C++ core, and a lab for BN theory.

Kernels (channels on axis 1, float32 and float64):
    batch_norm, batch_norm_forward, batch_norm_backward
Networks as the papers define them, trained natively:
    BatchNorm, LayerNorm, GroupNorm, BNNoise, Dense, Residual, Network, train,
    Conv1d, Conv2d, MaxPool1d, MaxPool2d, AvgPool1d, AvgPool2d, Flatten (convolutional),
    TrainResult, TrainingDiverged, SGD, Adam, OptimizerState (PyTorch's update rules),
    train_many, TrainManyResult (many one-neuron instances at once, for sweeps)
Population statistics at scale (precise BN: Network.recalibrate):
    batch_moments, merge_moments, population_stats, Moments
Runtime:
    set_num_threads, get_num_threads, clear_buffer_cache, cached_buffer_bytes
Subpackages, loaded on first use (so `import bnfast` stays light: no sympy, no
matplotlib):
    bnfast.claims       statements about BN checked in float64 and exactly (sympy)
    bnfast.curvature    Hessian spectra, trace and density of the train- or eval-mode loss
    bnfast.datasets     the digits and MNIST-1D, shipped or generated (no download)
    bnfast.reference    pure-NumPy twins of everything (the test oracle)
    bnfast.plot         figures (needs matplotlib)
    bnfast.cli          the `bnfast` command line
The maths is in docs/math/, the layout in docs/design/ (in the source repository).
"""

__version__ = "0.1.0"


def _source_folder_without_extension():
    """This folder, when it is a source checkout's bnfast/ without the built extension."""
    import os

    here = os.path.dirname(os.path.abspath(__file__))
    in_source_tree = os.path.exists(os.path.join(os.path.dirname(here), "pyproject.toml"))
    has_extension = any(name.startswith("_core.") and not name.endswith(".pyi")
                        for name in os.listdir(here))
    return here if in_source_tree and not has_extension else None


try:
    from . import _core
except ImportError as _exc:  # only without a built extension (tests/test_package.py)
    _folder = _source_folder_without_extension()
    if _folder is not None:   # Python would call this a "circular import": it is not
        raise ImportError(
            f"you are importing the source folder {_folder}, which has no compiled "
            "extension: run from another directory, or install with `pip install -e .` "
            "(or `pip install .`) from the repository root") from None
    raise ImportError(
        f"bnfast's compiled extension bnfast._core could not be imported ({_exc}); "
        "reinstall bnfast with `pip install .` from the source tree (it builds the C++ "
        "core with CMake)") from _exc

from ._core import ZeroVarianceError  # noqa: E402
from .kernels import batch_norm, batch_norm_backward, batch_norm_forward  # noqa: E402
from .nn import (SGD, Adam, AvgPool1d, AvgPool2d, BatchNorm, BNNoise, Conv1d,  # noqa: E402
                 Conv2d, Dense, Flatten, GroupNorm, LayerNorm, MaxPool1d, MaxPool2d, Network,
                 OptimizerState, Residual, TrainingDiverged, TrainManyResult, TrainResult,
                 train, train_many)
from .runtime import (cached_buffer_bytes, clear_buffer_cache, get_num_threads,  # noqa: E402
                      set_num_threads)
from .stats import Moments, batch_moments, merge_moments, population_stats  # noqa: E402

_LAZY_SUBPACKAGES = ("claims", "cli", "curvature", "datasets", "experiments", "plot",
                     "reference", "search")


def __getattr__(name):
    """bnfast.claims, bnfast.reference, ...: imported on first access."""
    if name in _LAZY_SUBPACKAGES:
        import importlib
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'bnfast' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY_SUBPACKAGES))


__all__ = [
    "Adam",
    "AvgPool1d",
    "AvgPool2d",
    "BatchNorm",
    "BNNoise",
    "Conv1d",
    "Conv2d",
    "Dense",
    "Flatten",
    "GroupNorm",
    "LayerNorm",
    "MaxPool1d",
    "MaxPool2d",
    "Moments",
    "Network",
    "OptimizerState",
    "Residual",
    "SGD",
    "TrainManyResult",
    "TrainResult",
    "TrainingDiverged",
    "train",
    "train_many",
    "ZeroVarianceError",
    "cached_buffer_bytes",
    "clear_buffer_cache",
    "batch_moments",
    "batch_norm",
    "batch_norm_backward",
    "batch_norm_forward",
    "get_num_threads",
    "merge_moments",
    "population_stats",
    "set_num_threads",
    "__version__",
]
