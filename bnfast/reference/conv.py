"""Convolution and pooling in plain NumPy (docs/math/networks.md section 17), in
PyTorch's layouts: inputs A (m, C, *S) with S = (L,) or (H, W), weights (O, C, *k).

Each map is a sum over the kernel offsets kk (the index tuples of the kernel, in
row-major order) of strided views: for output position j (a tuple), offset kk reads
the input position j s + kk (s the stride, per dimension) of the input, zero padded
by p on both sides for a convolution (Ap):

    conv     H[n, o, j] = sum_kk sum_c W[o, c, kk] Ap[n, c, j s + kk]      (then + b_o)
    maxpool  H[n, c, j] = max_kk A[n, c, j s + kk]   (the first maximum in scan order)
    avgpool  H[n, c, j] = (1/K) sum_kk A[n, c, j s + kk],    K = prod(k)

with out = floor((S + 2p - k)/s) + 1 positions per dimension (p = 0 for the pools).
The backward passes are the same sums read the other way (scatter-adds into the input):

    dW[o, c, kk]        = sum_n sum_j dH[n, o, j] Ap[n, c, j s + kk]
    dAp[n, c, j s + kk] += sum_o dH[n, o, j] W[o, c, kk]         (dA: dAp without pad)
    maxpool: dA[n, c, j s + kk*] += dH[n, c, j], kk* the offset of the maximum
    avgpool: dA[n, c, j s + kk]  += dH[n, c, j] / K

Complex-safe (network_hvp's complex step): the max pool compares real parts, and
everything else is linear in the values.
"""

import numpy as np

__all__ = ["output_size", "conv_forward", "conv_backward", "pool_forward",
           "pool_backward"]


def output_size(size, kernel, stride, padding):
    """floor((n + 2p - k)/s) + 1 per spatial dimension, a tuple."""
    return tuple((n + 2 * p - k) // s + 1
                 for n, k, s, p in zip(size, kernel, stride, padding))


def _taps(kernel, stride, out):
    """(t, kk, view) for each kernel offset kk (t its number in row-major order): view
    indexes A[:, :, j s + kk] for all output positions j, a (m, C, *out) strided view."""
    for t, kk in enumerate(np.ndindex(*kernel)):
        yield t, kk, (slice(None), slice(None)) + tuple(
            slice(k, k + s * (n - 1) + 1, s) for k, s, n in zip(kk, stride, out))


def _positions(A):
    """(m, C, *P) -> (m, C, prod(P)): the positions in one axis, row-major."""
    return A.reshape(A.shape[0], A.shape[1], -1)


def _pad(A, padding):
    return np.pad(A, [(0, 0), (0, 0)] + [(p, p) for p in padding])


def conv_forward(A, W, stride, padding):
    """(H (m, O, *out) without the bias, Ap the zero-padded input for the backward)."""
    kernel = W.shape[2:]
    Ap = _pad(A, padding)
    out = output_size(A.shape[2:], kernel, stride, padding)
    H = 0
    for _, kk, view in _taps(kernel, stride, out):
        W_kk = W[(slice(None), slice(None)) + kk]
        H = H + np.einsum("ncp,oc->nop", _positions(Ap[view]), W_kk)
    return H.reshape((A.shape[0], W.shape[0]) + out), Ap


def conv_backward(dH, Ap, W, stride, padding):
    """(dA, dW) from dH = dLoss/dH (m, O, *out); Ap as conv_forward returned it."""
    kernel = W.shape[2:]
    dtype = np.result_type(dH, Ap, W)
    dW = np.empty(W.shape, dtype)
    dAp = np.zeros(Ap.shape, dtype)
    G = _positions(dH)
    for _, kk, view in _taps(kernel, stride, dH.shape[2:]):
        w = (slice(None), slice(None)) + kk
        dW[w] = np.einsum("nop,ncp->oc", G, _positions(Ap[view]))
        dAp[view] += np.einsum("nop,oc->ncp", G, W[w]).reshape(dAp[view].shape)
    crop = (slice(None), slice(None)) + tuple(slice(p, n - p)
                                              for p, n in zip(padding, Ap.shape[2:]))
    return dAp[crop], dW


def pool_forward(A, kind, kernel, stride):
    """(H (m, C, *out), arg): arg (m, C, *out) is the offset number t of each window's
    maximum for "maxpool", None for "avgpool". As PyTorch's max pool: a later entry
    replaces the running maximum only if it is larger (so the first of tied maxima is
    kept) or NaN (so a NaN in the window is the maximum; the last NaN, as torch)."""
    out = output_size(A.shape[2:], kernel, stride, (0,) * len(kernel))
    taps = list(_taps(kernel, stride, out))
    if kind == "avgpool":
        return sum(A[view] for _, _, view in taps) / len(taps), None
    H = A[taps[0][2]]
    arg = np.zeros(H.shape, dtype=np.int64)
    for t, _, view in taps[1:]:
        V = A[view]
        take = (V.real > H.real) | np.isnan(V.real)
        H, arg = np.where(take, V, H), np.where(take, t, arg)
    return H, arg


def pool_backward(dH, shape, kind, kernel, stride, arg):
    """dA (``shape``, the pool's input) from dH = dLoss/dH (m, C, *out)."""
    dA = np.zeros(shape, dH.dtype)
    K = int(np.prod(kernel))
    for t, _, view in _taps(kernel, stride, dH.shape[2:]):
        dA[view] += dH / K if kind == "avgpool" else np.where(arg == t, dH, 0.0)
    return dA
