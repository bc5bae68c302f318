"""Networks as the papers define them, evaluated and trained by the C++ core.

    Dense, Residual         layer descriptions (layers.py)
    Conv1d, Conv2d          convolutions (conv.py)
    MaxPool1d/2d, AvgPool1d/2d, Flatten     pooling, flattening (pooling.py)
    BatchNorm, BNNoise, LayerNorm, GroupNorm    normalizations (normalization.py)
    Network                 loss, gradient, forward over a flat parameter vector (network.py)
    train                   native gradient descent (train.py)
    SGD, Adam, OptimizerState   PyTorch's update rules (optimizers.py)
    train_many              many one-neuron instances at once (train_many.py)
    default_params          the default initial draw (init.py)
"""

from .init import default_params
from .conv import Conv1d, Conv2d
from .layers import ACTIVATIONS, Dense, Residual
from .optimizers import SGD, Adam, OptimizerState
from .pooling import AvgPool1d, AvgPool2d, Flatten, MaxPool1d, MaxPool2d
from .normalization import NORMS, BatchNorm, BNNoise, GroupNorm, LayerNorm
from .network import LOSSES, Network
from .train import TrainingDiverged, TrainResult, train
from .train_many import TrainManyResult, train_many

__all__ = ["ACTIVATIONS", "LOSSES", "NORMS", "AvgPool1d", "AvgPool2d", "BNNoise", "BatchNorm",
           "Conv1d", "Conv2d", "Dense", "Flatten", "GroupNorm", "MaxPool1d", "MaxPool2d",
           "LayerNorm", "Network", "SGD", "Adam", "OptimizerState",
           "Residual", "TrainManyResult", "TrainResult",
           "TrainingDiverged", "default_params", "train", "train_many"]
