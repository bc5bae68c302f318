"""Learning-set checks shared by the native networks and the NumPy reference."""

import numpy as np

from ._validate import compute_dtype


def learning_set(layers, X, y=None):
    """X as a C-contiguous float64 (m, in_features) array and y as (m, out_features).

    y may be (m,) when the last layer has one output. ValueError names what is wrong.
    """
    n_in, n_out = layers[0].in_features, layers[-1].out_features
    X = np.asarray(X)
    compute_dtype(X, "X")
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (m, {n_in}), got shape {X.shape}")
    if X.shape[1] != n_in:
        raise ValueError(f"X has {X.shape[1]} features but the network expects {n_in}")
    if X.shape[0] < 1:
        raise ValueError("X must have at least one row")
    if X.shape[0] < 2 and any(layer.batch_norm is not None for layer in layers):
        raise ValueError("batch normalization needs at least 2 samples, got 1")
    X = np.ascontiguousarray(X, dtype=np.float64)
    if y is None:
        return X
    y = np.asarray(y)
    compute_dtype(y, "y")
    if y.ndim == 1 and n_out == 1:
        y = y.reshape(-1, 1)
    if y.ndim != 2 or y.shape[1] != n_out:
        raise ValueError(f"y must have shape (m, {n_out})"
                         + (" or (m,)" if n_out == 1 else "") + f", got {y.shape}")
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but y has {y.shape[0]}")
    return X, np.ascontiguousarray(y, dtype=np.float64)
