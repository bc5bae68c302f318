"""Networks as the papers define them, evaluated and trained by the C++ core.

    BatchNorm, Dense        layer descriptions (layers.py)
    Network                 loss, gradient, forward over a flat parameter vector (network.py)
    train                   native gradient descent (train.py)
    default_params          the default initial draw (init.py)
"""

from .init import default_params
from .layers import ACTIVATIONS, BatchNorm, Dense
from .network import Network
from .train import TrainingDiverged, TrainResult, train

__all__ = ["ACTIVATIONS", "BatchNorm", "Dense", "Network", "TrainResult",
           "TrainingDiverged", "default_params", "train"]
