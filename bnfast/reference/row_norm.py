"""Layer and group normalization of a network layer in plain NumPy (docs/math/
networks.md section 14): PyTorch's nn.LayerNorm(out) and nn.GroupNorm(G, out) on the
pre-activation H (m, out), rows = samples, columns = features (= channels).

The statistics run over each row's features (kind "layer", G = 1) or over each row's
G contiguous groups of k = out/G features (kind "group"); gamma and beta are per
feature. No running statistics: inference uses the same per-row statistics.

    mu_ig  = (1/k) sum_{j in g} H_ij
    s2_ig  = (1/k) sum_{j in g} (H_ij - mu_ig)^2       (biased)
    d_ig   = sqrt(s2_ig + eps),  zhat_ij = (H_ij - mu_ig) / d_ig,  z = gamma zhat + beta

Complex-safe (network_hvp's complex step): only means, squares, sqrt and divisions of
the values themselves; the zero-variance test reads real parts.
"""

import numpy as np

from .bn_layer import colsum

__all__ = ["normalize_rows", "normalize_rows_backward"]


def _grouped(A, groups):
    """(m, out) -> (m, G, k), a view."""
    m, n = A.shape
    return A.reshape(m, groups, n // groups)


def normalize_rows(H, bn, where):
    """zhat (m, out) and the cache of the backward pass {"d": (m, G, 1)}.

    bn : _checks.BN of kind "layer" or "group" (its groups and eps). With eps == 0 a
    (row, group) whose values are all equal raises ValueError naming ``where`` (the
    layer), the row and, for kind "group", the group.
    """
    Hg = _grouped(H, bn.groups)
    k = Hg.shape[2]
    mu = Hg.sum(axis=2, keepdims=True) / k
    mu = mu + (Hg - mu).sum(axis=2, keepdims=True) / k  # a constant group's mean exact
    C = Hg - mu
    s2 = (C ** 2).sum(axis=2, keepdims=True) / k
    if bn.eps == 0:
        R = Hg.real
        zero = np.all(R == R[:, :, :1], axis=2) | (s2[:, :, 0].real == 0)
        if np.any(zero):
            i, g = (int(v) for v in np.argwhere(zero)[0])
            what = (f"row {i}" if bn.kind == "layer" else f"row {i}, group {g}")
            raise ValueError(f"{where} ({bn.kind} normalization), {what} has constant "
                             f"pre-activations over its {k} feature(s) and eps == 0")
    d = np.sqrt(s2 + bn.eps)
    return (C / d).reshape(H.shape), {"d": d}


def normalize_rows_backward(G, zhat, cache, gamma, groups):
    """(dH, dgamma, dbeta) from G = dLoss/dz (m, out), z = gamma zhat + beta:

        dbeta_j = sum_i G_ij,  dgamma_j = sum_i G_ij zhat_ij,
        with g = gamma G (per feature), per row i and group of k features:
        dH_ij = (g_ij - mean_g(g_i.) - zhat_ij mean_g(g_i. zhat_i.)) / d_ig.
    """
    dbeta, dgamma = colsum(G), colsum(G * zhat)
    g = _grouped(gamma * G, groups)
    z = _grouped(zhat, groups)
    k = g.shape[2]
    mean_g = g.sum(axis=2, keepdims=True) / k
    mean_gz = (g * z).sum(axis=2, keepdims=True) / k
    dH = (g - mean_g - z * mean_gz) / cache["d"]
    return dH.reshape(G.shape), dgamma, dbeta
