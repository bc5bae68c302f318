"""The batch normalization of a network layer in plain NumPy (docs/math/networks.md
sections 7 and 9): centring by the batch mean, the four normalizing scales, the exact
backward pass, the batch values of the running statistics and the inference map.

H is (m, k): one column per neuron, the statistics of a column over its m rows;
per-column arrays are (k,). Complex-safe, because network_hvp runs the gradient on
complex parameters (the complex step): |h| is written sign(Re h) h, signs and maxima
use real parts, and everything else is analytic (mean, square, sqrt).

    mu   = (1/m) sum_i h_i
    "std"  s^2 = (1/m) sum_i (h_i - mu)^2     "l1"   s = (1/m) sum_i |h_i|
    "l2"   s^2 = (1/m) sum_i h_i^2            "linf" s = max_i |h_i|
    d    = sqrt(s^2 + eps),   zhat = (h - mu) / d,   z = gamma zhat + beta
"""

import numpy as np

__all__ = ["normalize", "normalize_backward", "batch_moments", "infer"]


def colsum(A):
    """Column sums (k,) of A (m, k), each column summed pairwise as a contiguous row."""
    return np.ascontiguousarray(A.T).sum(axis=1)


def _zero_scale(H, norm, s2):
    """Columns whose scale is 0: constant ("std"), all zero (lp), or s^2 == 0."""
    R = H.real
    if norm == "std":
        zero = np.all(R == R[0], axis=0)
    else:
        zero = np.all(R == 0, axis=0)
    return zero | (s2.real == 0)


def _ldexp(H, e):
    """H 2^e, exact for real or complex H (a power of two scales both parts)."""
    if np.iscomplexobj(H):
        return np.ldexp(H.real, e) + 1j * np.ldexp(H.imag, e)
    return np.ldexp(H, e)


def _column_exponents(H, eps):
    """Per column e with max |Re h| 2^-e in [1/2, 1), or 0: with eps == 0 the
    normalization is scale invariant, so the statistics are taken on H 2^-e, where
    squares neither underflow nor overflow (tiny or huge data give the same zhat as
    data near 1). eps > 0 fixes a scale: e = 0."""
    e = np.zeros(H.shape[1], dtype=np.int64)
    if eps != 0:
        return e
    largest = np.max(np.abs(H.real), axis=0)
    ok = np.isfinite(largest) & (largest > 0)
    e[ok] = np.frexp(largest[ok])[1]
    return e


def normalize(H, bn, where):
    """zhat (m, k) and the cache of the backward pass: mu, s2 = s^2, d (k,), and for
    "l1"/"linf" s (k,), for "linf" k (k,) the first row where |h| is largest; all of
    them for the column times 2^-e, e (k,) in the cache too (_column_exponents).

    bn : _checks.BN (its norm and eps). ``where`` names the layer in the error raised
    when eps == 0 and a column has s = 0.
    """
    m = H.shape[0]
    e = _column_exponents(H, bn.eps)
    H = _ldexp(H, -e)
    mu = colsum(H) / m
    mu = mu + colsum(H - mu) / m  # one correction pass: a constant column's mean exact
    cache = {"mu": mu, "e": e}
    if bn.norm == "std":
        s2 = colsum((H - mu) ** 2) / m
    elif bn.norm == "l2":
        s2 = colsum(H * H) / m
    else:
        if bn.norm == "l1":
            s = colsum(np.sign(H.real) * H) / m
        else:  # linf
            k = np.argmax(np.abs(H.real), axis=0)
            h_k = H[k, np.arange(H.shape[1])]
            s = np.sign(h_k.real) * h_k
            cache["k"] = k
        cache["s"] = s
        s2 = s * s
    if bn.eps == 0:
        zero = np.flatnonzero(_zero_scale(H, bn.norm, s2))
        if zero.size:
            what = ("a constant pre-activation" if bn.norm == "std" else
                    f"an all-zero pre-activation (norm {bn.norm!r}: s = 0)")
            raise ValueError(f"{where}, neuron {zero[0]} has {what} and eps == 0")
    d = np.sqrt(s2 + bn.eps)
    cache["s2"], cache["d"] = s2, d
    return (H - mu) / d, cache


def normalize_backward(G, H, zhat, cache, gamma, norm):
    """(dH, dgamma, dbeta) from G = dLoss/dz, z = gamma zhat + beta (section 7):

        dbeta = sum_i G_i,  dgamma = sum_i G_i zhat_i,
        dh_j  = (gamma/d) (G_j - dbeta/m - dgamma q_j),  q_j = (s/d) ds/dh_j,

    with the cache's statistics of H 2^-e (d 2^e is the column's own d).
    """
    m = H.shape[0]
    d, e = cache["d"], cache["e"]
    H = _ldexp(H, -e)
    dbeta, dgamma = colsum(G), colsum(G * zhat)
    if norm == "std":
        q = zhat / m
    elif norm == "l2":
        q = H / (m * d)
    elif norm == "l1":
        q = (cache["s"] / d) * np.sign(H.real) / m
    else:  # linf: only the arg max row depends on h (a one-sided derivative at ties)
        cols = np.arange(H.shape[1])
        k = cache["k"]
        q = np.zeros_like(zhat)
        q[k, cols] = (cache["s"] / d) * np.sign(H[k, cols].real)
    dH = _ldexp((gamma / d) * (G - dbeta / m - dgamma * q), -e)
    return dH, dgamma, dbeta


def batch_moments(cache, norm, m):
    """The batch values entering the running statistics (section 9): (mu_B, v_B) with
    v_B = s^2 m/(m - 1) for "std" (the unbiased variance) and s^2 for the lp norms."""
    e = cache["e"]
    s2 = _ldexp(cache["s2"], 2 * e)
    return _ldexp(cache["mu"], e), (s2 * (m / (m - 1)) if norm == "std" else s2)


def infer(H, bn, running_mean, running_var, where):
    """zhat of inference, (h - running_mean) / sqrt(running_var + eps), (m, k); eps == 0
    with a zero running_var raises ValueError naming ``where`` and the neuron."""
    if bn.eps == 0:
        zero = np.flatnonzero(running_var == 0)
        if zero.size:
            raise ValueError(f"{where}, neuron {zero[0]} has running_var 0 and eps == 0")
    return (H - running_mean) / np.sqrt(running_var + bn.eps)
