"""The comparison of docs/math/population_statistics.md ("Three merges side by side"):
on the adversarial cases bnfast's population statistics are within a few ulps of the
exact ones, while PyTorch SyncBatchNorm's merge (the variance rebuilt from invstd) and
E[x^2] - E[x]^2 (with Flax's unweighted pmean) lose digits, or everything, where the
page says. Where torch is installed, the SyncBatchNorm emulation of bnfast.reference is
checked against the same formula run by torch, from shard statistics torch computed."""

import warnings

import numpy as np
import pytest

import bnfast
from bnfast.reference.moments import (adversarial_cases, compare_merges, exact_moments,
                                      sync_batchnorm_merge)

from moments_bounds import M2_TOL, MEAN_ULPS

pytestmark = pytest.mark.timeout(600)


def ours(shards):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # the NaN case warns
        return bnfast.population_stats(shards)


@pytest.fixture(scope="module", params=[np.float64, np.float32], ids=["float64", "float32"])
def table(request):
    """{case name: per-channel rows of compare_merges} at a tenth of the page's sizes
    (the 1-row-against-1e7 case keeps 10**6 rows)."""
    return request.param, {name: compare_merges(shards, ours) for name, shards in
                           adversarial_cases(request.param, scale=0.1)}


def test_bnfast_is_within_a_few_ulps_everywhere(table):
    _, rows = table
    for name, channels in rows.items():
        for j, row in enumerate(channels):
            _, _, mean_err, var_err = row["bnfast"]
            if row["exact"] is None:
                assert np.isnan(var_err), (name, j)      # NaN data: NaN, reported
                continue
            # var = m2 / n: m2's tolerance plus the division's rounding (u)
            assert var_err <= M2_TOL + 2.0**-53, (name, j, var_err)
            scale_ulp = 2.0**-52                           # a relative ulp (of the scale)
            assert mean_err <= MEAN_ULPS * scale_ulp, (name, j, mean_err)


def test_the_peers_fail_where_the_page_says(table):
    dtype, rows = table
    big = rows["large mean, tiny spread"]
    below = rows["variance far below eps"]
    constant = rows["a constant channel"][0]
    unequal = rows["1 row against 1e7"][0]
    # E[x^2] - E[x]^2 cancels catastrophically when the mean dwarfs the spread (float64:
    # 1e16 / 1e-8: the variance is lost entirely; float32 data 1e8 / 1e-6: 2 digits left)
    assert min(r["raw"][3] for r in big) > (0.5 if dtype is np.float64 else 1e-3)
    # ... and Flax clips the negative result to 0 (or keeps garbage): error ~1
    assert min(r["flax"][3] for r in big) > 0.5
    # SyncBatchNorm rebuilds var from invstd = 1/sqrt(var + eps): var 1e-12 << eps loses
    # log10(eps / var) = 7 digits, all of float32's
    assert min(r["syncbn"][3] for r in below) > (1e-11 if dtype is np.float64 else 0.1)
    # ... and a constant channel gets a variance that is not 0 (so eps = 0 cannot see it)
    assert constant["syncbn"][3] == np.inf and constant["bnfast"][3] == 0.0
    # Flax's pmean weighs a 1-row shard like a 10**6-row one
    assert unequal["flax"][2] > 1e-5 and unequal["flax"][3] > 1e-2
    # where a peer fails, bnfast is within a few ulps (test above): 1e5 times closer
    for r, peer in [(r, "raw") for r in big] + [(r, "syncbn") for r in below] + \
            [(unequal, "flax")]:
        assert r["bnfast"][3] * 1e5 < r[peer][3]


def test_nan_and_inf_stay_in_their_channels_and_are_reported():
    _, shards = adversarial_cases(np.float64, scale=0.1)[-1]
    with pytest.warns(RuntimeWarning, match=r"channel\(s\) \[0, 1\] of the data hold NaN"):
        mean, var = bnfast.population_stats(shards)
    assert np.isnan(mean[:2]).all() and np.isnan(var[:2]).all()
    exact = exact_moments(np.concatenate(shards))[2]
    # m2 within M2_TOL, and the division by n rounds once more (u)
    assert abs(var[2] - float(exact[2] / exact[0])) <= (M2_TOL + 2.0**-53) * var[2]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_syncbn_emulation_matches_torch(dtype):
    """The merge formula of batch_norm_reduce_statistics_kernel run in torch tensors of
    the accumulation type, from per-shard (mean, invstd) that torch computes, agrees with
    the NumPy emulation the comparison page uses (given the same shard statistics); and
    torch's numbers show the same loss far below eps."""
    torch = pytest.importorskip("torch")
    eps = 1e-5
    rng = np.random.default_rng(1)
    shards = [(1.0 + 1e-6 * rng.standard_normal(n)).astype(dtype) for n in (5000, 3, 7000)]
    tdtype = torch.float32 if dtype is np.float32 else torch.float64
    counts, means, invstds = [], [], []
    for s in shards:
        t = torch.from_numpy(s)
        var, mean = torch.var_mean(t, correction=0)
        counts.append(float(len(s)))
        means.append(mean)
        invstds.append(torch.rsqrt(var + eps))   # what batch_norm_stats sends
    # the CUDA kernel's loop, in torch arithmetic of the accumulation type
    avg = torch.zeros((), dtype=tdtype)
    var_n = torch.zeros((), dtype=tdtype)
    n = 0
    for count, m, invstd in zip(counts, means, invstds):
        c = torch.tensor(count, dtype=tdtype)
        v = 1.0 / invstd
        v = (v * v - eps) * c
        factor = 1.0 / (n + c)
        var_n = var_n + v + (avg - m) * (avg - m) * n * c * factor
        avg = n * factor * avg + c * factor * m
        n += count
    torch_mean, torch_var = float(avg), float(var_n / n)
    # the emulation, fed torch's shard statistics (mean, and the var invstd stands for)
    emulated = sync_batchnorm_merge(
        [(int(c), float(m), float(1.0 / float(i) ** 2 - eps)) for c, m, i in
         zip(counts, means, invstds)], eps, dtype)
    tol = 8 * float(np.finfo(dtype).eps)   # a few roundings of the accumulation type
    assert abs(emulated[0] - torch_mean) <= tol * abs(torch_mean)
    # var = (1/invstd^2 - eps) is a difference at eps's scale: a few roundings of each of
    # the ~4 terms (the square, - eps, the Chan terms) of size eps + var
    assert abs(emulated[1] - torch_var) <= 4 * tol * (eps + abs(torch_var))
    exact = exact_moments(np.concatenate(shards)[:, None])[0]
    exact_var = float(exact[2] / exact[0])
    ours_var = bnfast.population_stats([s[:, None] for s in shards])[1][0]
    assert abs(ours_var - exact_var) <= M2_TOL * exact_var
    torch_err = abs(torch_var - exact_var) / exact_var
    assert torch_err > (0.1 if dtype is np.float32 else 1e-12)   # digits lost below eps
