"""bnfast: batch normalization numerics with a C++ core.

Kernels (channels on axis 1, float32 and float64):
    batch_norm, batch_norm_forward, batch_norm_backward
Networks as the papers define them, trained natively:
    BatchNorm, Dense, Network, train, TrainResult, TrainingDiverged
Claims about BN, checked in float64 and exactly (sympy):
    bnfast.claims (check_lemma_4_5, example_3_2); `bnfast verify` on the command line
Threads:
    set_num_threads, get_num_threads
Pure-NumPy twins of everything (the test oracle and benchmark baseline):
    bnfast.reference
"""

try:
    from . import _core
except ImportError as exc:  # pragma: no cover - only without a built extension
    raise ImportError(
        "bnfast's compiled extension bnfast._core could not be imported "
        f"({exc}). Install the package with `pip install .` from the source tree "
        "(it builds the C++ core with CMake); importing from a source checkout "
        "without building it does not work."
    ) from exc

from ._core import ZeroVarianceError
from . import claims, reference
from .functional import batch_norm, batch_norm_backward, batch_norm_forward
from .layers import BatchNorm, Dense
from .memory import cached_buffer_bytes, clear_buffer_cache
from .network import Network
from .threads import get_num_threads, set_num_threads
from .train import TrainResult, TrainingDiverged, train

__version__ = "0.1.0"

__all__ = [
    "BatchNorm",
    "Dense",
    "Network",
    "TrainResult",
    "TrainingDiverged",
    "train",
    "ZeroVarianceError",
    "cached_buffer_bytes",
    "clear_buffer_cache",
    "batch_norm",
    "batch_norm_backward",
    "batch_norm_forward",
    "get_num_threads",
    "set_num_threads",
    "claims",
    "reference",
    "__version__",
]
