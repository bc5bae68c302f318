"""bnfast.batch_moments, merge_moments, population_stats: within a few ulps of the exact
(fractions) statistics on adversarial data, whatever the chunking, the thread count or
the Dask tree (docs/math/population_statistics.md); non-finite data reported per channel;
the arguments' rules. Tolerances: moments_bounds.py (the bound, and the tighter M2_TOL
and MEAN_ULPS the results are held to)."""

import math
import pickle
import warnings

import numpy as np
import pytest

import bnfast
from bnfast import Moments, batch_moments, merge_moments, population_stats
from bnfast.reference.moments import adversarial_cases
from bnfast.stats import DASK_GROUP, pairwise, population_moments

from moments_bounds import M2_TOL, MEAN_ULPS, U, Exact

pytestmark = pytest.mark.timeout(600)

FIELDS = ("mean", "m2", "mean_low", "m2_low")


def same_bits(a, b):
    return a.count == b.count and all(
        np.array_equal(getattr(a, f), getattr(b, f), equal_nan=True) for f in FIELDS)


@pytest.fixture(scope="module")
def worst():
    """The worst errors seen in this module, printed at the end (pytest -s)."""
    record = {}
    yield record
    if record:
        print("\nworst errors against the exact statistics:",
              ", ".join(f"{k} {v:.3g}" for k, v in sorted(record.items())))


# ---- adversarial data: each method of reduction against the exact statistics

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_adversarial_cases_within_a_few_ulps(dtype, worst):
    for name, shards in adversarial_cases(dtype, scale=0.1 if dtype is np.float32 else 1):
        exact = Exact(np.concatenate(shards))
        parts = [batch_moments(s) for s in shards]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)   # the NaN case warns
            streamed = population_moments(shards)
        merged = merge_moments(parts)
        assert same_bits(streamed, merged), name   # one tree: a stream, a list
        exact.check(merged, worst, name)
        whole = batch_moments(np.concatenate(shards))   # other blocks: within the bound
        exact.check(whole, worst, name)


def test_constant_channel_is_exact():
    # 0.1 is not a binary fraction: a mean of copies must still be 0.1 and the variance
    # exactly 0 (eps = 0 must see a zero variance), through any chunking and merge.
    x = np.full((10_001, 3), 0.1)
    x[:, 1] = 7.0
    x[:, 2] = np.float32(0.1)
    for parts in ([x], np.array_split(x, 13), [x[:1], x[1:]]):
        m = merge_moments([batch_moments(p) for p in parts])
        assert np.array_equal(m.mean, x[0]) and np.all(m.m2 == 0) and np.all(m.m2_low == 0)
        assert np.all(m.mean_low == 0)
    assert np.array_equal(population_stats(x.astype(np.float32))[1], np.zeros(3))


def test_one_row_against_ten_million(worst):
    rng = np.random.default_rng(5)
    big = 1e3 + rng.standard_normal((10**7, 1))
    one = np.array([[1e3 + 40.0]])      # an outlier: most of the variance
    exact = Exact(np.concatenate([one, big]))
    for order in ([one, big], [big, one]):
        exact.check(merge_moments([batch_moments(p) for p in order]), worst, "1 vs 1e7")


def test_variance_far_below_eps_keeps_its_digits(worst):
    # var 1e-20 next to eps = 1e-5: SyncBatchNorm's 1/invstd^2 - eps loses it all
    rng = np.random.default_rng(6)
    x = 1.0 + 1e-10 * rng.standard_normal((200_000, 2))
    exact = Exact(x)
    exact.check(population_moments(np.array_split(x, 7)), worst, "var 1e-20")


# ---- chunking invariance

def chunkings(x, rng):
    """(label, Moments) of x reduced in many ways: one kernel call on 1 and 2 threads,
    equal and random row chunks, chunks of single rows (small x), and Dask trees with
    the channel axis chunked too."""
    import dask.array as da
    n = x.shape[0]
    out = []
    for threads in (1, 2):
        old = bnfast.get_num_threads()
        bnfast.set_num_threads(threads)
        try:
            out.append((f"whole, {threads} threads", batch_moments(x)))
        finally:
            bnfast.set_num_threads(old)
    for k in (2, 3, 8, 64):
        out.append((f"{k} equal chunks", population_moments(np.array_split(x, k))))
    for seed in range(3):
        cuts = np.sort(rng.choice(np.arange(1, n), size=min(n - 1, 40), replace=False))
        out.append((f"random chunks {seed}", population_moments(np.split(x, cuts))))
    if n <= 5000:
        out.append(("1-row chunks", population_moments([x[i:i + 1] for i in range(n)])))
    rows = max(1, n // 37)
    for label, chunks in [("dask rows", (rows,) + x.shape[1:]),
                          ("dask rows x channels", (rows, max(1, x.shape[1] // 2)) + x.shape[2:])]:
        out.append((label, population_moments(da.from_array(x, chunks=chunks))))
    return out


def datasets():
    rng = np.random.default_rng(11)
    yield "N(3, 1) (N, C) float64", rng.normal(3, 1, (70_001, 5)), 1
    yield "1e8 + N(0, 1e-4) float64", 1e8 + 1e-4 * rng.standard_normal((40_000, 3)), 1
    yield "1 + N(0, 1e-3) float32 (N, C, L)", \
        (1 + 1e-3 * rng.standard_normal((300, 4, 97))).astype(np.float32), 1
    yield "channels-last float32 (N, L, C)", \
        (rng.standard_normal((2000, 13, 3)) * 5 - 2).astype(np.float32), -1
    yield "small, 1-row chunks", rng.normal(-4, 2, (777, 6)), 1


@pytest.mark.parametrize("name,x,axis", list(datasets()), ids=[d[0] for d in datasets()])
def test_chunking_changes_only_roundings(name, x, axis, worst):
    if axis != 1:   # chunkings() chunks rows and axis 1: put the channels there
        x = np.ascontiguousarray(np.moveaxis(x, axis, 1))
    exact = Exact(x)
    rng = np.random.default_rng(0)
    results = chunkings(x, rng)
    errors = {label: exact.check(m, worst, f"{name}: {label}") for label, m in results}
    # any two chunkings agree within twice the tolerance each meets (triangle inequality),
    # plus the rounding of each m2 + m2_low to the float64 m2 compared here (u each)
    ms = [m for _, m in results]
    spread_m2 = max(float(np.max(np.abs(a.m2 - b.m2) / np.maximum(np.abs(a.m2), 1e-300)))
                    for a in ms for b in ms)
    assert spread_m2 <= 2 * M2_TOL + 2 * U
    worst["chunking spread m2 (u)"] = max(worst.get("chunking spread m2 (u)", 0), spread_m2 / U)
    assert errors


def test_same_bits_whatever_the_thread_count():
    rng = np.random.default_rng(3)
    arrays = [rng.standard_normal((300_000, 7)),                     # rows, units split
              rng.standard_normal((40, 6, 30_000)).astype(np.float32),  # sample groups
              rng.standard_normal((1_000_000, 1)),                   # one channel: segments
              rng.standard_normal((3, 2, 600_000)).astype(np.float32),  # plane segments
              rng.standard_normal((3, 40, 10_000)),                  # channel groups
              rng.standard_normal((64, 64, 56)).astype(np.float32)]
    old = bnfast.get_num_threads()
    try:
        for x in arrays:
            results = []
            for threads in (1, 2, 3, 5):
                bnfast.set_num_threads(threads)
                results.append(batch_moments(x))
            assert all(same_bits(results[0], r) for r in results[1:]), x.shape
            Exact(x).check(results[0])      # every way of cutting units is exact too
    finally:
        bnfast.set_num_threads(old)


@pytest.mark.parametrize("parts", list(range(1, 41)) + [63, 64, 65, 100, 513])
def test_stream_list_and_dask_tree_are_one_tree(parts):
    """The binary counter (a stream, merge_moments over a list) and the Dask tree of
    aligned groups of DASK_GROUP build the same tree: the same bits."""
    import dask
    import dask.array as da
    rng = np.random.default_rng(parts)
    x = 1e6 + rng.standard_normal((parts * 3 + 1, 2))
    sizes = np.full(parts, 3)
    sizes[-1] += 1
    chunks = np.split(x, np.cumsum(sizes)[:-1])
    listed = merge_moments([batch_moments(c) for c in chunks])
    streamed = population_moments(iter(chunks))
    by_pairs = pairwise([batch_moments(c) for c in chunks])
    with dask.config.set(scheduler="synchronous"):
        treed = population_moments(da.from_array(x, chunks=(tuple(sizes), 2)))
    assert same_bits(listed, streamed) and same_bits(listed, by_pairs)
    assert same_bits(listed, treed)
    assert DASK_GROUP & (DASK_GROUP - 1) == 0   # a power of two: the equality above


# ---- layouts and dtypes

@pytest.mark.parametrize("shape,axis", [((500, 3), 1), ((40, 3, 17), 1), ((9, 3, 5, 7), 1),
                                        ((40, 17, 3), -1), ((3, 400), 0), ((2, 3, 4), 2)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16, np.int32, bool])
def test_layouts_and_dtypes(shape, axis, dtype):
    rng = np.random.default_rng(len(shape) + axis)
    x = (rng.standard_normal(shape) * 30 + 5).astype(dtype)
    m = batch_moments(x, axis=axis)
    assert m.channels == x.shape[axis] and m.count == x.size // x.shape[axis]
    Exact(x, axis).check(m)
    mean, var = population_stats(x, axis=axis)
    ref = np.asarray(x, dtype=np.float64)
    axes = tuple(i for i in range(x.ndim) if i != axis % x.ndim)
    # NumPy's pairwise float64 sums: within ~1e-14 relative of the exact values
    np.testing.assert_allclose(mean, ref.mean(axis=axes), rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(var, ref.var(axis=axes), rtol=1e-13, atol=1e-14)


def test_memmap_streams_from_disk(tmp_path):
    x = np.random.default_rng(4).standard_normal((50_000, 4))
    mm = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float64,
                                   shape=x.shape)
    mm[:] = x
    mm.flush()
    ro = np.load(tmp_path / "x.npy", mmap_mode="r")
    assert same_bits(batch_moments(ro), batch_moments(x))
    Exact(x).check(population_moments(ro))


# ---- non-finite data: per channel, never spread

def test_nan_and_inf_stay_in_their_channel():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((3000, 5))
    dirty = x.copy()
    dirty[1700, 0] = np.nan
    dirty[2500, 2] = np.inf
    dirty[10, 3], dirty[11, 3] = np.inf, -np.inf
    chunks = np.array_split(dirty, 4)
    clean = merge_moments([batch_moments(c) for c in np.array_split(x, 4)])
    got = merge_moments([batch_moments(c) for c in chunks])
    assert list(got.finite) == [False, True, False, False, True]
    for j in (0, 2, 3):
        assert np.isnan(got.mean[j]) and np.isnan(got.m2[j]) and got.mean_low[j] == 0
    for j in (1, 4):   # untouched: the same bits as without the bad values elsewhere
        assert all(getattr(got, f)[j] == getattr(clean, f)[j] for f in FIELDS)
    with pytest.warns(RuntimeWarning, match=r"channel\(s\) \[0, 2, 3\] of the data hold "
                                            r"NaN or inf"):
        mean, var = population_stats(chunks)
    assert np.isnan(mean[[0, 2, 3]]).all() and np.isfinite(mean[[1, 4]]).all()


def test_finite_data_whose_m2_overflows_is_reported_apart():
    x = np.array([[1e300, 1.0], [-1e300, 2.0], [1e300, 3.0]])
    m = batch_moments(x)
    assert np.isfinite(m.mean[0]) and m.m2[0] == np.inf and not m.finite[0] and m.finite[1]
    assert abs(m.mean[0] - 1e300 / 3) <= np.spacing(1e300 / 3)   # rescaled: still exact
    merged = merge_moments([m, batch_moments(x[:1])])
    assert merged.m2[0] == np.inf      # an inf m2 stays inf through merges (not NaN)
    with pytest.warns(RuntimeWarning, match=r"channel\(s\) \[0\] .*beyond float64's range"):
        population_stats(x)


def test_nonfinite_warning_as_error_raises():
    x = np.ones((4, 2))
    x[0, 1] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with pytest.raises(RuntimeWarning):
            population_stats(x)


# ---- Moments and merges

def test_merge_identities_and_the_moments_type():
    rng = np.random.default_rng(9)
    a = batch_moments(rng.standard_normal((100, 3)))
    empty = Moments.empty(3)
    assert same_bits(merge_moments([a]), a)
    for parts in ([empty, a], [a, empty], [empty, a, empty, empty]):
        assert np.array_equal(merge_moments(parts).m2, a.m2)
    assert merge_moments([empty, empty]).count == 0
    assert batch_moments(np.zeros((0, 3))).count == 0
    assert np.array_equal(a.var(), a.m2 / 100) and np.array_equal(a.var(1), a.m2 / 99)
    assert np.isnan(Moments.empty(2).var()).all()
    assert np.isnan(batch_moments(np.ones((1, 2))).var(1)).all()
    b = pickle.loads(pickle.dumps(a))
    assert same_bits(a, b)
    assert "count=100" in repr(a)
    with pytest.raises(ValueError):
        a.mean[0] = 1.0                    # read-only: a Moments is a value
    user = Moments(10, [1.0, 2.0], [3.0, 4.0])   # low parts default to zeros
    assert np.array_equal(user.mean_low, [0, 0]) and user.count == 10
    half = merge_moments([Moments(1, [5.0], [0.0]), Moments(1, [7.0], [0.0])])
    assert half.mean[0] == 6.0 and half.m2[0] == 2.0 and half.count == 2


def test_population_stats_ddof_and_kinds_of_data():
    rng = np.random.default_rng(10)
    x = rng.standard_normal((999, 4)) + 2
    mean, var = population_stats(x)
    _, unbiased = population_stats(x, ddof=1)
    np.testing.assert_allclose(var, x.var(0), rtol=1e-14)
    np.testing.assert_allclose(unbiased, x.var(0, ddof=1), rtol=1e-14)
    for data in (x, list(np.array_split(x, 5)), tuple(np.array_split(x, 5)),
                 (c for c in np.array_split(x, 5)), [c.tolist() for c in np.array_split(x, 3)]):
        m, v = population_stats(data)
        # other chunkings, other roundings: each mean within MEAN_ULPS (2 ulps, 4.4e-16
        # relative) and each variance within M2_TOL of the exact ones
        np.testing.assert_allclose(m, mean, rtol=2 * MEAN_ULPS * 2.0**-52)
        np.testing.assert_allclose(v, var, rtol=2 * M2_TOL)


# ---- argument rules

def test_bad_arguments():
    x = np.ones((4, 3))
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        batch_moments(np.ones(5))
    with pytest.raises(ValueError, match="out of range"):
        batch_moments(x, axis=2)
    with pytest.raises(TypeError, match="real numbers"):
        batch_moments(x.astype(complex))
    with pytest.raises(TypeError, match="axis must be an int"):
        batch_moments(x, axis=1.0)
    with pytest.raises(ValueError, match="at least one Moments"):
        merge_moments([])
    with pytest.raises(TypeError, match=r"parts\[1\] must be a Moments"):
        merge_moments([batch_moments(x), x])
    with pytest.raises(ValueError, match=r"parts\[1\] has 2 channels but parts\[0\] has 3"):
        merge_moments([batch_moments(x), batch_moments(x[:, :2])])
    with pytest.raises(ValueError, match="chunk 1 has 2 channels but chunk 0 has 3"):
        population_stats([x, x[:, :2]])
    with pytest.raises(ValueError, match="no chunks"):
        population_stats([])
    with pytest.raises(TypeError, match="data must be an array, an iterable of chunks"):
        population_stats(3.0)
    with pytest.raises(ValueError, match="ddof must be <= 1"):
        population_stats(x, ddof=2)
    with pytest.raises(TypeError, match="client must be a dask.distributed.Client"):
        population_stats(x, client=object())
    with pytest.raises(ValueError, match="m2 .* must be >= 0"):
        Moments(3, [0.0], [-1.0])
    with pytest.raises(ValueError, match="count must be >= 0"):
        Moments(-1, [0.0], [1.0])
    with pytest.raises(TypeError, match="count must be an int"):
        Moments(2.0, [0.0], [1.0])
    with pytest.raises(ValueError, match="m2 has shape"):
        Moments(3, [0.0, 1.0], [1.0])
    with pytest.raises(ValueError, match="1-D"):
        Moments(3, [[0.0]], [[1.0]])


def test_tolerances_are_tighter_than_the_bound():
    # the tolerances the tests hold results to are below the bound on typical data
    # (rho ~ 6, n ~ 1e5): they are the sharper check, the bound the guarantee
    from moments_bounds import m2_bound
    assert M2_TOL < m2_bound(10**5, 6.0, 0.0)
    assert MEAN_ULPS >= 0.5 and math.isfinite(M2_TOL)


def test_same_bits_on_every_instruction_set():
    """The baseline variant (BNFAST_SIMD=baseline, 2-lane vectors) gives the bits of the
    one this CPU runs: the accumulators and their combination order are fixed."""
    import os
    import subprocess
    import sys
    import tempfile
    script = ("import numpy as np, bnfast\n"
              "rng = np.random.default_rng(0)\n"
              "xs = [rng.standard_normal((3000, 7)) + 5,\n"
              "      (rng.standard_normal((20, 5, 3001)) * 3).astype(np.float32),\n"
              "      1e8 + 1e-4 * rng.standard_normal((50, 4, 700))]\n"
              "ms = [bnfast.batch_moments(x) for x in xs]\n"
              "print(repr([[getattr(m, f).tolist() for f in ('mean', 'm2', 'mean_low', "
              "'m2_low')] for m in ms]))\n")
    runs = [subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           timeout=120, cwd=tempfile.gettempdir(),
                           env=dict(os.environ, **extra))
            for extra in ({}, {"BNFAST_SIMD": "baseline"})]
    assert all(r.returncode == 0 for r in runs), [r.stderr for r in runs]
    assert runs[0].stdout == runs[1].stdout
