"""The BN kernels: argument handling in Python, the work in bnfast._core (C++).

Shapes: x is (N, C) or (N, C, *) with channels on ``axis`` (default 1; -1 for
channels-last (N, *, C), the Keras/Flax/TensorFlow layout and PyTorch's channels_last
memory format; any axis in range); per-channel arrays are (C,). Statistics of channel c
run over every other axis. No transposed copy is made: channels-last data is a
(N * prod(*), C) matrix to the kernels.
dtypes: float32 and float64 compute in their own precision (statistics are always
accumulated in float64); float16 computes in float32 and the result is converted back;
integers and bools are converted to float64; complex/object/string dtypes are a
TypeError. Per-channel results (mean, invstd, grad_weight, grad_bias) are float64.
Large outputs (>= 1 MiB) reuse recently freed output buffers (see bnfast.runtime).
The formulas are in docs/math/batch_norm.md; which layer checks which argument is in
docs/design/argument_rules.md (shapes are checked by the bindings, values here).
"""

import numpy as np

from . import _core
from ._validate import (axis_value, boolean, check_out, compute_dtype, eps_value,
                        float64_array, float_input, momentum_value)

__all__ = ["batch_norm", "batch_norm_forward", "batch_norm_backward"]


def _finish(buffer, target):
    if target is None:
        return buffer
    np.copyto(target, buffer, casting="unsafe")
    return target


def _result(y, result_dtype):
    return y if y.dtype == result_dtype else y.astype(result_dtype)


def batch_norm(x, running_mean=None, running_var=None, weight=None, bias=None,
               training=False, momentum=0.1, eps=1e-5, axis=1):
    """Batch normalization with the semantics of torch.nn.functional.batch_norm.

    Parameters
    ----------
    x : array_like, shape (N, C) or (N, C, *); channels on ``axis``
    running_mean, running_var : ndarray (C,), optional
        Population statistics. Required when ``training`` is False. When training and
        given, they are updated in place (float32 or float64, writable, any stride):
        ``running <- (1 - momentum) * running + momentum * batch``, with the batch
        variance unbiased (times m/(m-1), m = N * prod(trailing)). Channels whose batch
        statistics are not finite (NaN/inf in x), or whose updated running values would
        overflow the running arrays' dtype (float32 beyond ~3.4e38), keep their running
        values, with a RuntimeWarning. momentum follows PyTorch (Keras/Flax write 1 - momentum and keep
        the biased variance); a cumulative average is momentum = 1/k at the k-th batch.
    weight, bias : array_like (C,), optional
        The affine parameters gamma and beta (default 1 and 0).
    training : bool
        Batch statistics (True) or running statistics (False).
    momentum : float in [0, 1]
    eps : float >= 0
        Added to the variance. eps = 0 is the exact transform; a channel with zero
        variance then raises ZeroVarianceError (a ValueError) naming the channel.
    axis : int, the channel axis (default 1; -1 for channels-last)

    Returns
    -------
    y : ndarray, shape of x, dtype of x (ints and bools give float64).

    A call that raises changes nothing (running statistics included).
    """
    xc, result = float_input(x, "x")
    weight = float64_array(weight, "weight")
    bias = float64_array(bias, "bias")
    eps = eps_value(eps)
    training = boolean(training, "training")
    axis = axis_value(axis)
    y = _core.empty(xc.shape, xc.dtype)
    if training:
        tracking = running_mean is not None or running_var is not None
        # momentum=None only matters when there are running stats to update
        momentum = momentum_value(momentum) if tracking or momentum is not None else 0.0
        # the binding warns (RuntimeWarning) about channels whose statistics are not
        # finite before it updates anything
        _core.forward_train(xc, weight, bias, eps, y, running_mean, running_var, momentum,
                            axis)
    else:
        if momentum is not None:
            momentum_value(momentum)  # a bad momentum is an error in every mode
        running_mean = float64_array(running_mean, "running_mean")
        running_var = float64_array(running_var, "running_var")
        _core.forward_eval(xc, running_mean, running_var, weight, bias, eps, y, axis)
    return _result(y, result)


def batch_norm_forward(x, weight=None, bias=None, eps=1e-5, out=None, axis=1):
    """Training-mode batch normalization, returning what the backward pass needs.

    Parameters
    ----------
    x : array_like, shape (N, C) or (N, C, *); channels on ``axis``
    weight, bias : array_like (C,), optional (default 1 and 0)
    eps : float >= 0 (eps = 0 with a constant channel raises ZeroVarianceError)
    out : ndarray, shape of x, dtype of the result, optional
        Where to write y (may be x itself). Reusing a buffer saves the allocation.
    axis : int, the channel axis (default 1; -1 for channels-last)

    Returns
    -------
    y : ndarray, shape and dtype of x (``out`` when given)
    mean : float64 ndarray (C,), the batch mean
    invstd : float64 ndarray (C,), 1 / sqrt(biased batch variance + eps)
    """
    if axis.__class__ is int and axis == 1 and eps.__class__ is float:
        # The common call, checked and run in one step (a tiny array in well under a
        # microsecond); None when anything is unusual: then the general path below,
        # which owns every error message.
        done = _core.forward_train_fast(x, weight, bias, eps, out)
        if done is not None:
            return done
    xc, result = float_input(x, "x")
    weight = float64_array(weight, "weight")
    bias = float64_array(bias, "bias")
    eps = eps_value(eps)
    axis = axis_value(axis)
    buffer, target = check_out(out, xc, result, sources=(xc,), empty=_core.empty)
    mean, invstd, _ = _core.forward_train(xc, weight, bias, eps, buffer, None, None, 0.0, axis)
    y = _finish(buffer, target)
    return (y if target is not None else _result(y, result)), mean, invstd


def batch_norm_backward(grad_y, x, mean, invstd, weight=None, out=None, axis=1):
    """Gradients of training-mode batch normalization.

    With xhat = (x - mean) * invstd and m = N * prod(trailing):
    grad_bias = sum grad_y, grad_weight = sum grad_y * xhat (over all but the channel axis),
    grad_x = weight * invstd / m * (m * grad_y - grad_bias - xhat * grad_weight).

    Parameters
    ----------
    grad_y : array_like, shape of x
    x : array_like, shape (N, C) or (N, C, *), the forward input
    mean, invstd : array_like (C,), as returned by batch_norm_forward
    weight : array_like (C,), optional (default 1)
    out : ndarray, shape of x, dtype of the result, optional (may be grad_y or x)
    axis : int, the channel axis, as in the forward call (default 1; -1 channels-last)

    Returns
    -------
    grad_x : ndarray, shape and dtype of x
    grad_weight, grad_bias : float64 ndarray (C,), always returned
    """
    if axis.__class__ is int and axis == 1:
        # As in batch_norm_forward: the common call in one step, else None.
        done = _core.backward_fast(grad_y, x, mean, invstd, weight, out)
        if done is not None:
            return done
    xc, result = float_input(x, "x")
    gy = np.asarray(grad_y)
    if not (gy.dtype == xc.dtype and gy.flags.c_contiguous):
        compute_dtype(gy, "grad_y")
        gy = np.asarray(gy, dtype=xc.dtype, order="C")
    mean = float64_array(mean, "mean")
    invstd = float64_array(invstd, "invstd")
    weight = float64_array(weight, "weight")
    axis = axis_value(axis)
    buffer, target = check_out(out, xc, result, sources=(xc, gy), empty=_core.empty)
    grad_weight, grad_bias = _core.backward(gy, xc, mean, invstd, weight, buffer, axis)
    gx = _finish(buffer, target)
    return (gx if target is not None else _result(gx, result)), grad_weight, grad_bias
