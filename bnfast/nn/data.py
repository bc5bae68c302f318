"""Learning sets as the core takes them: C-contiguous float64 arrays.

Only conversions happen here (dtype policy, y of shape (m,) for a one-output network);
the shape rules of X and y belong to the bindings (docs/design/argument_rules.md).
"""

import numpy as np

from .._validate import compute_dtype

__all__ = ["inputs", "learning_set"]


def _float64(a, name):
    a = np.asarray(a)
    compute_dtype(a, name)
    return np.asarray(a, dtype=np.float64, order="C")


def inputs(X):
    """X as a C-contiguous float64 array."""
    return _float64(X, "X")


def learning_set(out_features, X, y):
    """X as a C-contiguous float64 array and y likewise, y of shape (m,) made (m, 1) when
    the network has one output."""
    X = inputs(X)
    if y is None:
        raise TypeError("y must be an array of targets, got None")
    y = _float64(y, "y")
    if y.ndim == 1 and out_features == 1:
        y = y.reshape(-1, 1)
    return X, y
