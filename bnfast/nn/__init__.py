"""Networks as the papers define them, evaluated and trained by the C++ core.

    Dense, Residual         layer descriptions (layers.py)
    BatchNorm, BNNoise, LayerNorm, GroupNorm    normalizations (normalization.py)
    Network                 loss, gradient, forward over a flat parameter vector (network.py)
    train                   native gradient descent (train.py)
    SGD, Adam, OptimizerState   PyTorch's update rules (optimizers.py)
    train_many              many one-neuron instances at once (train_many.py)
    default_params          the default initial draw (init.py)
"""

from .init import default_params
from .layers import ACTIVATIONS, Dense, Residual
from .optimizers import SGD, Adam, OptimizerState
from .normalization import NORMS, BatchNorm, BNNoise, GroupNorm, LayerNorm
from .network import LOSSES, Network
from .train import TrainingDiverged, TrainResult, train
from .train_many import TrainManyResult, train_many

__all__ = ["ACTIVATIONS", "LOSSES", "NORMS", "BNNoise", "BatchNorm", "Dense", "GroupNorm",
           "LayerNorm", "Network", "SGD", "Adam", "OptimizerState",
           "Residual", "TrainManyResult", "TrainResult",
           "TrainingDiverged", "default_params", "train", "train_many"]
