"""Pure-NumPy twins of the BN kernels (docs/math/batch_norm.md): the test oracle and the
asv baseline. Short and readable on purpose; imports nothing from bnfast.

Shapes: x is (N, C) or (N, C, *) with channels on axis 1; per-channel arrays are (C,).
Statistics of channel c run over axis 0 and every trailing axis (m = N * prod(*)).
Everything is computed in float64. y and grad_x come back in x's dtype (float16 stays
float16; ints and bools give float64); per-channel results are float64, as in
bnfast.kernels.
"""

import warnings

import numpy as np

__all__ = ["batch_norm", "batch_norm_forward", "batch_norm_backward"]


def _result_dtype(x):
    return x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)


def _channels_first(x):
    """x (N, C, *) as a float64 (C, m) array: one contiguous row per channel, so NumPy
    sums each row pairwise (error O(log m) roundings rather than O(m))."""
    x64 = np.asarray(x, dtype=np.float64)
    return np.moveaxis(x64, 1, 0).reshape(x64.shape[1], -1)


def _per_channel(v, ndim):
    """(C,) -> (1, C, 1, ...) broadcastable against an ndim-dimensional x."""
    return np.asarray(v, dtype=np.float64).reshape((1, -1) + (1,) * (ndim - 2))


def _scaled_moments(rows):
    """(e, mean, var, mean_s, var_s) per row of a (C, m) float64 array. Each row is
    scaled by 2**-e (exact), e the exponent of its largest |value|, before squaring:
    data near 1e308 would overflow and data near 1e-200 underflow otherwise
    (docs/math/batch_norm.md, extreme inputs). mean and var are mean_s * 2**e and
    var_s * 4**e (var may be inf or 0 where the true variance is outside float64)."""
    with np.errstate(invalid="ignore"):
        largest = np.max(np.abs(rows), axis=1)
    e = np.where(np.isfinite(largest) & (largest > 0), np.frexp(largest)[1], 0)
    scaled = np.ldexp(rows, -e[:, None])
    mean_s = scaled.mean(axis=1)
    mean_s += (scaled - mean_s[:, None]).mean(axis=1)
    var_s = np.square(scaled - mean_s[:, None]).mean(axis=1)
    with np.errstate(over="ignore", under="ignore"):
        return e, np.ldexp(mean_s, e), np.ldexp(var_s, 2 * e), mean_s, var_s


def _train_normalize(x, eps, weight, bias):
    """Training-mode y (float64, shape of x), mean and invstd, from the scaled moments:
    y = (x 2**-e - mean_s) / sqrt(var_s + eps 4**-e) * weight + bias. Where eps 4**-e
    overflows (tiny data, eps > 0) eps dominates and the unscaled form is exact enough."""
    rows = _channels_first(x)
    with np.errstate(invalid="ignore"):  # inf in x: NaN statistics, as documented
        e, mean, var, mean_s, var_s = _scaled_moments(rows)
    with np.errstate(over="ignore"):
        eps_s = np.ldexp(eps, -2 * e)
    e = np.where(np.isfinite(eps_s), e, 0)
    mean_s = np.where(np.isfinite(eps_s), mean_s, mean)
    var_s = np.where(np.isfinite(eps_s), var_s, var)
    inv_s = _invstd(var_s, np.where(np.isfinite(eps_s), eps_s, eps), "variance")
    nd = x.ndim
    centred = np.ldexp(np.asarray(x, dtype=np.float64), -_per_channel(e, nd).astype(int))
    y = _affine(centred, mean_s, inv_s, weight, bias)
    with np.errstate(under="ignore"):
        invstd = np.ldexp(inv_s, -e)
    return y, mean, var, invstd


def _check_input(x, training):
    if x.ndim < 2 or x.size == 0:
        raise ValueError(f"x must be a non-empty (N, C, *) array, got shape {x.shape}")
    if training and x.size // x.shape[1] < 2:
        raise ValueError("Expected more than 1 value per channel when training, "
                         f"got input of shape {x.shape}")


def _invstd(var, eps, what):
    zero = (np.asarray(eps) == 0) & (var == 0)
    if np.any(zero):
        raise ValueError(f"channel {int(np.flatnonzero(zero)[0])} has {what} 0 and eps == 0")
    return 1.0 / np.sqrt(var + eps)


def _affine(x, mean, invstd, weight, bias):
    """(x - mean) * invstd * weight + bias per channel, in float64, shape of x."""
    nd = x.ndim
    y = (np.asarray(x, dtype=np.float64) - _per_channel(mean, nd)) * _per_channel(invstd, nd)
    if weight is not None:
        y *= _per_channel(weight, nd)
    if bias is not None:
        y += _per_channel(bias, nd)
    return y


def _channel_axis(x, axis):
    """axis as a non-negative int in range for x (ndim >= 2 is checked later)."""
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"axis must be an int, got {type(axis).__name__}")
    if x.ndim < 2:
        return int(axis)  # the (N, C, *) check below says what is wrong
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"axis {axis} is out of range for x with {x.ndim} dimensions")
    return int(axis) % x.ndim


def _on_axis(f, arrays, axis, results):
    """f on the arrays with their channel axis moved to 1, and the first ``results`` of
    its outputs moved back (the per-channel outputs need no move)."""
    axis = _channel_axis(arrays[0], axis)
    if arrays[0].ndim < 2 or axis == 1:
        return f(*arrays)
    out = f(*[np.moveaxis(a, axis, 1) for a in arrays])
    if not isinstance(out, tuple):
        return np.moveaxis(out, 1, axis)
    return tuple(np.moveaxis(o, 1, axis) if i < results else o for i, o in enumerate(out))


def batch_norm(x, running_mean=None, running_var=None, weight=None, bias=None,
               training=False, momentum=0.1, eps=1e-5, axis=1):
    """Batch normalization as torch.nn.functional.batch_norm, channels on ``axis``
    (default 1; -1 for channels-last (N, *, C)): the (N, C, *) function below on x with
    that axis moved to 1."""
    x = np.asarray(x)
    return _on_axis(lambda xa: _batch_norm(xa, running_mean, running_var, weight, bias,
                                           training, momentum, eps), [x], axis, 1)


def batch_norm_forward(x, weight=None, bias=None, eps=1e-5, axis=1):
    """Training-mode BN with channels on ``axis``: returns (y, mean, invstd) as
    _batch_norm_forward does for x with that axis moved to 1."""
    x = np.asarray(x)
    return _on_axis(lambda xa: _batch_norm_forward(xa, weight, bias, eps), [x], axis, 1)


def batch_norm_backward(grad_y, x, mean, invstd, weight=None, axis=1):
    """Gradients of training-mode BN with channels on ``axis``: (grad_x, grad_weight,
    grad_bias) as _batch_norm_backward gives them for the arrays with that axis moved
    to 1."""
    x, grad_y = np.asarray(x), np.asarray(grad_y)
    return _on_axis(lambda ga, xa: _batch_norm_backward(ga, xa, mean, invstd, weight),
                    [grad_y, x], axis, 1)


def _batch_norm(x, running_mean=None, running_var=None, weight=None, bias=None,
                training=False, momentum=0.1, eps=1e-5):
    """Batch normalization as torch.nn.functional.batch_norm.

    x : (N, C, *);  running_mean, running_var, weight, bias : (C,) or None.
    training=True normalizes with the batch statistics and, when running stats are
    given, updates them in place: running <- (1 - momentum) * running + momentum * batch,
    with the batch variance unbiased (times m / (m - 1)). Channels whose batch
    statistics are not finite, or whose update overflows the running arrays' dtype, keep
    their running values (RuntimeWarning).
    training=False normalizes with running_mean / running_var.
    Returns y, shape of x, dtype of x (ints and bools give float64).
    """
    x = np.asarray(x)
    _check_input(x, training)
    if training:
        y, mean, var, _ = _train_normalize(x, eps, weight, bias)
        if running_mean is not None:
            m = x.size // x.shape[1]
            new_mean = (1 - momentum) * running_mean.astype(np.float64) + momentum * mean
            new_var = ((1 - momentum) * running_var.astype(np.float64)
                       + momentum * var * (m / (m - 1)))
            # kept where the batch is not finite or the update overflows the stats' dtype
            top = np.finfo(running_var.dtype).max
            with np.errstate(invalid="ignore"):
                ok = (np.abs(new_mean) <= top) & (np.abs(new_var) <= top)
            if not ok.all():
                warnings.warn(f"batch statistics of {np.count_nonzero(~ok)} channel(s) "
                              "are not finite or overflow the running statistics' dtype; "
                              "their running statistics were left unchanged",
                              RuntimeWarning, stacklevel=2)
            running_mean[ok] = new_mean[ok]
            running_var[ok] = new_var[ok]
        return y.astype(_result_dtype(x))
    mean = np.asarray(running_mean, dtype=np.float64)
    invstd = _invstd(np.asarray(running_var, dtype=np.float64), eps, "running variance")
    return _affine(x, mean, invstd, weight, bias).astype(_result_dtype(x))


def _batch_norm_forward(x, weight=None, bias=None, eps=1e-5):
    """Training-mode batch normalization.

    x : (N, C, *);  weight, bias : (C,) or None (1 and 0).
    Returns (y, mean, invstd): y shape and dtype of x; mean and invstd float64 (C,),
    invstd = 1 / sqrt(biased batch variance + eps).
    """
    x = np.asarray(x)
    _check_input(x, training=True)
    y, mean, _, invstd = _train_normalize(x, eps, weight, bias)
    return y.astype(_result_dtype(x)), mean, invstd


def _batch_norm_backward(grad_y, x, mean, invstd, weight=None):
    """Gradients of training-mode batch normalization (docs/math/batch_norm.md, sec. 2).

    grad_y, x : (N, C, *);  mean, invstd, weight : (C,) (weight None means 1).
    With xhat = (x - mean) * invstd and m = N * prod(*):
        grad_bias   = sum grad_y                    (over all axes but 1)
        grad_weight = sum grad_y * xhat
        grad_x      = weight * invstd / m * (m * grad_y - grad_bias - xhat * grad_weight)
    Returns (grad_x, grad_weight, grad_bias): grad_x shape and dtype of x, the others
    float64 (C,).
    """
    x = np.asarray(x)
    nd = x.ndim
    g = np.asarray(grad_y, dtype=np.float64)
    xhat = _affine(x, mean, invstd, None, None)
    grad_bias = _channels_first(g).sum(axis=1)
    grad_weight = _channels_first(g * xhat).sum(axis=1)
    m = x.size // x.shape[1]
    scale = np.asarray(invstd, dtype=np.float64) / m
    if weight is not None:
        scale = scale * np.asarray(weight, dtype=np.float64)
    grad_x = _per_channel(scale, nd) * (m * g - _per_channel(grad_bias, nd)
                                        - xhat * _per_channel(grad_weight, nd))
    return grad_x.astype(_result_dtype(x)), grad_weight, grad_bias
