"""Exact per-channel moments: the oracle of bnfast.batch_moments, merge_moments and
population_stats; and, for the comparison page (docs/math/population_statistics.md),
the merges two peers use, written from their sources, and the adversarial cases.

Exact means exact: every float is an integer times a power of two, so a channel's sum
and sum of squares are integers (times powers of two) that Python's ints hold without
rounding; the mean S1/n and m2 = S2 - S1^2/n are then fractions.Fraction. The sums are
taken on 18-bit limbs of the 53-bit significands with int64 NumPy sums (no overflow
below 2**25 values per exponent batch), fast enough for 10**7 values.
"""

from fractions import Fraction

import numpy as np

__all__ = ["exact_moments", "exact_moments_slow", "sync_batchnorm_merge",
           "raw_moments_merge", "adversarial_cases", "compare_merges", "var_error",
           "mean_error", "METHODS"]

_BATCH = 1 << 24   # values per batch: limb products < 2**37, sums < 2**61


def _channels(x, axis):
    """x as a (C, values) float64 array: channel c's values in row c."""
    x = np.asarray(x)
    if x.dtype.kind not in "fiub":
        raise TypeError(f"x must hold real numbers, got dtype {x.dtype}")
    x = np.moveaxis(np.asarray(x, dtype=np.float64), axis, 0)
    return x.reshape(x.shape[0], -1)


def _int_sums(values):
    """(S1, S2, scale): sum(values) == S1 * 2**scale and sum(values**2) == S2 *
    2**(2 * scale) exactly, for finite float64 values."""
    s1 = s2 = 0
    scale = None
    for start in range(0, values.size, _BATCH):
        frac, exp = np.frexp(values[start:start + _BATCH])
        sig = (frac * 2.0**53).astype(np.int64)            # exact: |sig| < 2**53
        exp = exp.astype(np.int64) - 53                     # value = sig * 2**exp
        keep = sig != 0
        sig, exp = sig[keep], exp[keep]
        if sig.size == 0:
            continue
        order = np.argsort(exp, kind="stable")
        sig, exp = sig[order], exp[order]
        starts = np.flatnonzero(np.r_[True, exp[1:] != exp[:-1]])
        low = int(exp[0]) if scale is None else min(scale, int(exp[0]))
        if scale is not None and low < scale:           # rescale what we have
            s1 <<= scale - low
            s2 <<= 2 * (scale - low)
        scale = low
        hi, lo = sig >> 26, sig & ((1 << 26) - 1)       # sig = hi 2^26 + lo, lo >= 0
        mag = np.abs(sig)
        a, b, c = mag >> 36, (mag >> 18) & 0x3FFFF, mag & 0x3FFFF
        sums = {name: np.add.reduceat(v, starts) for name, v in
                (("hi", hi), ("lo", lo), ("aa", a * a), ("ab", a * b), ("ac", a * c),
                 ("bb", b * b), ("bc", b * c), ("cc", c * c))}
        for k, start_k in enumerate(starts):
            shift = int(exp[start_k]) - scale
            part1 = (int(sums["hi"][k]) << 26) + int(sums["lo"][k])
            part2 = ((int(sums["aa"][k]) << 72) + (int(sums["ab"][k]) << 55)
                     + ((2 * int(sums["ac"][k]) + int(sums["bb"][k])) << 36)
                     + (int(sums["bc"][k]) << 19) + int(sums["cc"][k]))
            s1 += part1 << shift
            s2 += part2 << (2 * shift)
    return s1, s2, (0 if scale is None else scale)


def _times_power(value, exponent):
    return Fraction(value) * (Fraction(2) ** exponent)


def exact_moments(x, axis=1):
    """Per channel of x (channels on ``axis``): (count, mean, m2) with mean and m2 exact
    Fractions, or (count, None, None) for a channel holding NaN or inf. A list, one
    tuple per channel."""
    out = []
    for values in _channels(x, axis):
        n = values.size
        if not np.all(np.isfinite(values)):
            out.append((n, None, None))
            continue
        s1, s2, scale = _int_sums(values)
        total = _times_power(s1, scale)
        squares = _times_power(s2, 2 * scale)
        out.append((n, total / n, squares - total * total / n))
    return out


def exact_moments_slow(x, axis=1):
    """exact_moments one Fraction at a time (the check of the fast one, small x only)."""
    out = []
    for values in _channels(x, axis):
        if not np.all(np.isfinite(values)):
            out.append((values.size, None, None))
            continue
        fractions = [Fraction(float(v)) for v in values]
        mean = sum(fractions) / len(fractions)
        out.append((len(fractions), mean, sum((f - mean) ** 2 for f in fractions)))
    return out


def mean_error(mean, count, exact_mean, exact_m2, ulps=False):
    """|mean - exact| relative to max(|exact mean|, std), the scale BN sees the mean on
    ((x - mean) / std: a zero-mean channel is not judged on its tiny mean); with ulps=True
    in units of that scale's ulp (np.spacing)."""
    scale = max(abs(float(exact_mean)), float(exact_m2 / count) ** 0.5)
    err = abs(Fraction(float(mean)) - exact_mean)
    if scale == 0:
        return 0.0 if err == 0 else float("inf")
    return float(err) / (float(np.spacing(scale)) if ulps else scale)


def var_error(var, exact_var):
    """|var - exact| / exact (relative), 0 when both are 0 and inf when only the exact
    one is; NaN when var is not finite."""
    if not np.isfinite(var):
        return float("nan")
    if exact_var == 0:
        return 0.0 if var == 0 else float("inf")
    return float(abs(Fraction(float(var)) - exact_var) / exact_var)


def _rounded(value, dtype):
    return dtype(float(value))


def sync_batchnorm_merge(shards, eps=1e-5, dtype=np.float32):
    """PyTorch SyncBatchNorm's merge of per-shard statistics (batch_norm_reduce_
    statistics_kernel, aten/src/ATen/native/cuda/Normalization.cuh): each shard sends
    its count, mean and invstd = 1/sqrt(var + eps); the merge rebuilds var = 1/invstd^2
    - eps and combines with Chan's formula, in the accumulation type ``dtype`` (float32
    for float32 data, float64 for float64).

    shards : list of (count, exact mean, exact biased var) per shard (one channel); each
    shard's mean and invstd are the exact values rounded once to dtype, so only the
    merge's own errors show. Returns (mean, biased var) as floats.
    """
    eps_t = dtype(eps)
    avg, var_n, n = dtype(0), dtype(0), 0
    for count, mean, var in shards:
        m = _rounded(mean, dtype)
        invstd = dtype(1.0 / np.sqrt(float(var) + eps))
        cnt = dtype(count)
        v = dtype(1) / invstd
        v = (v * v - eps_t) * cnt
        factor = dtype(1) / (dtype(n) + cnt)
        var_n = var_n + v + (avg - m) * (avg - m) * dtype(n) * cnt * factor
        avg = dtype(n) * factor * avg + cnt * factor * m
        n += count
    return float(avg), float(var_n / dtype(n))


def raw_moments_merge(shards, dtype=np.float64, weighted=True, clip=False):
    """Var = E[x^2] - E[x]^2 from per-shard means of x and of x^2 (each exact, rounded
    once to ``dtype``), combined in dtype arithmetic. weighted=True weighs shards by
    their counts; weighted=False averages them with equal weights, as Flax's BatchNorm
    does across devices (lax.pmean of the per-device means; it assumes equal shards),
    and clip=True then clips a negative variance to 0 as Flax does.

    shards : list of (count, exact mean, exact mean of squares) per shard (one channel).
    Returns (mean, biased var) as floats.
    """
    total = sum(count for count, _, _ in shards)
    mean, mean2 = dtype(0), dtype(0)
    for count, m, m2 in shards:
        w = dtype(count / total) if weighted else dtype(1.0 / len(shards))
        mean = mean + w * _rounded(m, dtype)
        mean2 = mean2 + w * _rounded(m2, dtype)
    var = mean2 - mean * mean
    if clip:
        var = max(dtype(0), var)
    return float(mean), float(var)


def adversarial_cases(dtype, scale=1):
    """The adversarial data of the issue, as (name, shards): shards a list of (rows, C)
    arrays of ``dtype`` whose union is the data. ``scale`` (<= 1) shrinks the row counts
    (the tests' quick variants); the comparison page uses scale=1.

    - large mean, tiny spread: 1e8 + N(0, 1e-4) in float64 (float32 cannot hold that
      spread at 1e8: 1e4 + N(0, 1e-3) there, a spread of one float32 ulp);
    - very unequal shards: one row against 10**7 (of 1e3 + N(0, 1));
    - a variance far below eps = 1e-5: 1 + N(0, 1e-6) (variance 1e-12);
    - a constant channel (0.1, not a binary fraction) next to a random one;
    - NaN in channel 0 and inf in channel 1 of one shard, channel 2 clean.
    """
    dtype = np.dtype(dtype).type
    rng = np.random.default_rng(20260)
    big, small = (1e8, 1e-4) if dtype is np.float64 else (1e4, 1e-3)

    def rows(n):
        return max(2, int(n * scale))

    cases = []
    cases.append(("large mean, tiny spread",
                  [(big + small * rng.standard_normal((rows(125_000), 2))).astype(dtype)
                   for _ in range(8)]))
    cases.append(("1 row against 1e7",
                  [(1e3 + rng.standard_normal((1, 1))).astype(dtype),
                   (1e3 + rng.standard_normal((rows(10**7), 1))).astype(dtype)]))
    cases.append(("variance far below eps",
                  [(1.0 + 1e-6 * rng.standard_normal((rows(n), 2))).astype(dtype)
                   for n in (250_000, 3, 400_000, 77)]))
    constant = [np.column_stack([np.full(rows(n), 0.1), rng.standard_normal(rows(n))])
                .astype(dtype) for n in (100_000, 1, 31_000)]
    cases.append(("a constant channel", constant))
    shards = [rng.standard_normal((rows(n), 3)).astype(dtype) for n in (50_000, 20_000, 9)]
    shards[1][7, 0] = np.nan
    shards[1][11, 1] = np.inf
    cases.append(("NaN and inf in one shard", shards))
    return cases


#: The merges compare_merges puts side by side, with the labels of the comparison page.
METHODS = {
    "bnfast": "bnfast (Chan, double-double)",
    "syncbn": "PyTorch SyncBatchNorm",
    "raw": "E[x^2] - E[x]^2 (count-weighted, float64)",
    "flax": "Flax BatchNorm (pmean, clipped)",
}


def compare_merges(shards, ours, eps=1e-5):
    """Each method's statistics of the union of ``shards`` (a list of (rows, C) arrays of
    one dtype) against the exact ones, per channel: a list of dicts {"exact": (count,
    mean, var) or None for a non-finite channel, method: (mean, var, relative mean error
    (mean_error), relative var error (var_error))} with the methods of METHODS.

    ours(shards) -> (mean, var): bnfast's population statistics of the shards (passed in:
    this module imports nothing from bnfast). The peers get each shard's exact
    statistics rounded once to their accumulation type (the data's dtype), so the table
    measures their merges, not their per-shard reductions; bnfast reduces the data.
    """
    dtype = np.dtype(shards[0].dtype).type
    per_shard = [exact_moments(s) for s in shards]
    total = exact_moments(np.concatenate(shards))
    our_mean, our_var = ours(shards)
    rows = []
    for j, (count, mean, m2) in enumerate(total):
        row = {"exact": None if mean is None else (count, mean, m2 / count)}
        stats = {"bnfast": (float(our_mean[j]), float(our_var[j]))}
        finite = all(p[j][1] is not None for p in per_shard)
        if finite:
            syncbn_in = [(n, mu, q / n) for n, mu, q in (p[j] for p in per_shard)]
            raw_in = [(n, mu, q / n + mu * mu) for n, mu, q in (p[j] for p in per_shard)]
            stats["syncbn"] = sync_batchnorm_merge(syncbn_in, eps, dtype)
            stats["raw"] = raw_moments_merge(raw_in, np.float64)
            flax_dtype = np.float64 if dtype is np.float64 else np.float32
            stats["flax"] = raw_moments_merge(raw_in, flax_dtype, weighted=False, clip=True)
        else:
            stats.update({k: (float("nan"), float("nan")) for k in ("syncbn", "raw", "flax")})
        for method, (mu, var) in stats.items():
            if mean is None:
                row[method] = (mu, var, float("nan"), float("nan"))
            else:
                row[method] = (mu, var, mean_error(mu, count, mean, m2),
                               var_error(var, m2 / count))
        rows.append(row)
    return rows
