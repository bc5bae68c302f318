"""The native batched Lemma 4.5 checker (csrc/core/search/lemma_4_5_check.hpp through
bnfast.search._lemma_4_5_batch): its verdicts agree with bnfast.claims.check_lemma_4_5
(float64, and exact arithmetic on a sample), its measured rates agree with the closed
form 1/2 - theta/(2 pi), and the same seed gives the same counts."""

import math

import numpy as np
import pytest

from bnfast.claims import check_lemma_4_5
from bnfast.search import _lemma_4_5_batch as batch

NO_PREMISE, HOLDS, FAILS, UNDECIDED, DEGENERATE = range(5)
EXAMPLE_X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
EXAMPLE_Y = np.array([8.0, 6.0, 11.0])


def draw_like_the_checker(seed, count, dim, samples):
    """The verdicts of the first ``count`` instances, recomputed one by one with the
    claims checker from the instances the native loop keeps (keep=count)."""
    counts, _, _, kept = batch.check_chunk(seed, count, dim, samples, keep=count)
    return counts, kept


@pytest.mark.parametrize("dim, samples", [(2, 3), (3, 5), (4, 16), (1, 2), (8, 9)])
def test_failures_are_failures_for_the_claims_checker(dim, samples):
    counts, kept = draw_like_the_checker(11 + dim, 400, dim, samples)
    assert counts.sum() == 400 and counts[UNDECIDED] == 0 and counts[DEGENERATE] == 0
    index, X, y, w0 = kept["fails"]
    assert len(index) == counts[FAILS] > 0
    assert np.all(np.diff(index) > 0)
    for k in range(len(index)):
        report = check_lemma_4_5(X[k], y[k], w0[k], cross_check=False)
        assert report.premise and report.holds is False


def test_every_verdict_matches_the_claims_checker_on_random_instances():
    # Re-draw instances with NumPy and compare each verdict (the native loop on one
    # instance at a time, with that instance as fixed data).
    rng = np.random.default_rng(5)
    seen = {NO_PREMISE: 0, HOLDS: 0, FAILS: 0}
    for _ in range(300):
        X, y = rng.standard_normal((4, 3)), rng.standard_normal(4)
        counts, _, _, kept = batch.check_chunk(int(rng.integers(2**63)), 1, 3, 4, X, y,
                                            keep=1)
        verdict = int(np.argmax(counts))
        assert verdict != UNDECIDED
        w0 = (kept["fails"][3][0] if verdict == FAILS else None)
        seen[verdict] += 1
        if w0 is not None:
            report = check_lemma_4_5(X, y, w0, cross_check=False)
            assert report.premise and report.holds is False
    assert all(n > 30 for n in seen.values()), seen


def test_exact_arithmetic_confirms_a_sample_of_failures():
    counts, kept = draw_like_the_checker(3, 40, 2, 3)
    index, X, y, w0 = kept["fails"]
    for k in range(min(3, len(index))):
        report = check_lemma_4_5(X[k], y[k], w0[k], exact=True, cross_check=False)
        assert report.premise and report.holds is False


def test_example_3_2_rate_matches_the_closed_form():
    # theta = angle(a, W*) = 4.574 degrees: P[(1) holds | premise] = 0.4873.
    n = 400_000
    counts, predicted_sum, predicted_count, _ = batch.check_chunk(2025, n, 2, 3, EXAMPLE_X,
                                                                 EXAMPLE_Y)
    assert predicted_count == n
    premise = counts[HOLDS] + counts[FAILS]
    rate = counts[HOLDS] / premise
    theta = math.acos(np.dot([5 / 3 * 3, 3], [7, 5]) / (math.hypot(5, 3) * math.hypot(7, 5)))
    closed = 0.5 - theta / (2 * math.pi)
    # a sum of n equal terms: relative rounding error below n * 2**-53
    assert predicted_sum / n == pytest.approx(closed, rel=n * 2.0**-53)
    assert abs(closed - 0.4873) < 1e-4
    half_width = 4 * math.sqrt(closed * (1 - closed) / premise)   # 4 standard errors
    assert abs(rate - closed) < half_width
    assert abs(premise / n - 0.5) < 4 * math.sqrt(0.25 / n)       # P[premise] = 1/2


@pytest.mark.parametrize("dim, samples", [(2, 3), (4, 16)])
def test_random_data_rate_matches_the_mean_closed_form(dim, samples):
    n = 200_000
    counts, predicted_sum, predicted_count, _ = batch.check_chunk(7, n, dim, samples)
    premise = counts[HOLDS] + counts[FAILS]
    predicted = predicted_sum / predicted_count
    assert predicted_count == n - counts[DEGENERATE]
    # The rate's standard error is below sqrt(1/4 / premise); the predicted mean's spread
    # over data sets adds less than that again.
    assert abs(counts[HOLDS] / premise - predicted) < 4 * 2 * math.sqrt(0.25 / premise)


def test_one_dimension_has_the_degenerate_closed_form():
    # d = 1: a and W* parallel (P = 1) or opposite (P = 0), never 1/2 - theta/(2 pi)
    # with theta inside (0, pi).
    counts, predicted_sum, _, _ = batch.check_chunk(1, 50_000, 1, 3)
    premise = counts[HOLDS] + counts[FAILS]
    assert abs(counts[HOLDS] / premise - predicted_sum / 50_000) < 0.02


def test_same_seed_same_counts_and_different_seeds_differ():
    a = batch.check_chunk(99, 10_000, 3, 6)
    b = batch.check_chunk(99, 10_000, 3, 6)
    c = batch.check_chunk(100, 10_000, 3, 6)
    assert np.array_equal(a[0], b[0]) and a[1] == b[1] and a[2] == b[2]
    assert not np.array_equal(a[0], c[0])


def test_degenerate_data_are_counted_not_judged():
    X = np.array([[1.0, 2.0], [2.0, 4.0], [3.0, 6.0]])   # centred rank 1 < d
    counts, predicted_sum, count, _ = batch.check_chunk(0, 100, 2, 3, X,
                                                       np.array([1.0, 2, 4]))
    assert counts[DEGENERATE] == 100 and predicted_sum == 0.0 and count == 0
    y_const = np.array([2.0, 2.0, 2.0])                   # a = 0: the BN loss is flat
    counts, _, _, _ = batch.check_chunk(0, 100, 2, 3, EXAMPLE_X, y_const)
    assert counts[DEGENERATE] == 100


def test_the_instances_normals_follow_the_normal_law():
    # The ziggurat: Kolmogorov-Smirnov against N(0, 1) on 2e6 draws, the moments, and
    # the tail beyond the base layer's edge r = 3.4426 (drawn by rejection), whose
    # probability is 2 (1 - Phi(r)) = 5.76e-4.
    stats = pytest.importorskip("scipy.stats")
    z = batch.normals(11, 2_000_000)
    assert stats.kstest(z, "norm").pvalue > 1e-3
    se = 1 / math.sqrt(len(z))
    assert abs(z.mean()) < 5 * se and abs(z.var() - 1) < 5 * math.sqrt(2) * se
    assert abs(np.mean(z ** 4) - 3) < 5 * math.sqrt(96) * se
    tail = np.mean(np.abs(z) > 3.442619855899)
    expected = 2 * stats.norm.sf(3.442619855899)
    assert abs(tail - expected) < 5 * math.sqrt(expected / len(z))
    assert np.array_equal(batch.normals(11, 1000), z[:1000])   # the seed fixes them
