"""Learning sets as the core takes them: C-contiguous float64 arrays.

Only conversions happen here (dtype policy, y of shape (m,) for a one-output network);
the shape rules of X and y belong to the bindings (docs/design/argument_rules.md).
"""

import numpy as np

from .._validate import compute_dtype

__all__ = ["inputs", "labels", "learning_set"]


def _float64(a, name):
    a = np.asarray(a)
    compute_dtype(a, name)
    return np.asarray(a, dtype=np.float64, order="C")


def inputs(X):
    """X as a C-contiguous float64 array."""
    return _float64(X, "X")


def labels(y, classes):
    """Class labels y as a C-contiguous float64 array of integral values in [0, classes)
    (the cross-entropy losses' targets; their shape (m,) is the bindings' to check)."""
    y = _float64(y, "y")
    bad = ~((y == np.round(y)) & (y >= 0) & (y < classes))
    if bad.any():
        raise ValueError(f"y must hold class labels 0..{classes - 1} (the network's "
                         f"outputs), got {float(y.flat[np.argmax(bad.ravel())])!r}")
    return y


def learning_set(out_features, X, y, classes=False):
    """X as a C-contiguous float64 array and y likewise: targets, y of shape (m,) made
    (m, 1) when the network has one output, and targets of convolutional outputs
    (out_features None) flattened to (m, values); or, when ``classes``, class labels
    (labels())."""
    X = inputs(X)
    if y is None:
        raise TypeError("y must be an array of " + ("class labels" if classes else "targets")
                        + ", got None")
    if classes:
        if out_features is None:
            raise ValueError("the cross-entropy losses need a network that ends with a "
                             "Dense layer (its outputs are the classes)")
        return X, labels(y, out_features)
    y = _float64(y, "y")
    if y.ndim == 1 and out_features in (1, None):
        y = y.reshape(-1, 1)
    elif out_features is None and y.ndim > 2:
        y = y.reshape(len(y), -1)
    return X, y
