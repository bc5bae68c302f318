"""The tests at the level of seeds (bnfast/experiments/stats.py) against scipy.stats and
hand-computed cases."""

import math

import pytest

from bnfast.experiments import stats

scipy_stats = pytest.importorskip("scipy.stats")


@pytest.mark.parametrize("df", [1, 2, 3, 9, 29, 200])
def test_t_distribution_matches_scipy(df):
    for t in (-12.0, -2.5, -0.3, 0.0, 0.7, 1.9, 6.0):
        assert stats.t_cdf(t, df) == pytest.approx(scipy_stats.t.cdf(t, df), abs=1e-12)
    for p in (0.025, 0.05, 0.5, 0.9, 0.95, 0.975):
        assert stats.t_quantile(p, df) == pytest.approx(scipy_stats.t.ppf(p, df), abs=1e-8)


def test_sign_test_hand_cases_and_scipy():
    # 9 of 10 positive: P(X >= 9 | n = 10, 1/2) = 11/1024
    result = stats.sign_test([1.0] * 9 + [-1.0])
    assert result["p_greater"] == pytest.approx(11 / 1024)
    assert result["p_less"] == pytest.approx(1023 / 1024)
    assert result["p_greater"] == pytest.approx(
        scipy_stats.binomtest(9, 10, 0.5, alternative="greater").pvalue)
    # ties are dropped; infinities count by their sign
    result = stats.sign_test([0.0, math.inf, 2.0, -1.0])
    assert (result["n"], result["positive"], result["negative"]) == (3, 2, 1)
    assert stats.sign_test([-1.0, -2.0, -3.0])["p_less"] == 0.125
    assert not stats.sign_test_reachable(3, 0.05) and stats.sign_test_reachable(5, 0.05)
    with pytest.raises(ValueError):
        stats.sign_test([float("nan")])


def test_t_interval_matches_scipy():
    d = [0.3, -0.1, 0.25, 0.4, 0.05, 0.2]
    out = stats.t_interval(d, 0.95)
    low, high = scipy_stats.t.interval(0.95, len(d) - 1, loc=out["mean"],
                                       scale=scipy_stats.sem(d))
    assert (out["low"], out["high"]) == pytest.approx((low, high), abs=1e-10)
    assert stats.t_interval([1.0])["low"] is None
    assert stats.t_interval([1.0, math.inf])["mean"] == math.inf


def test_tost_against_two_scipy_one_sided_tests():
    d = [0.10, 0.20, 0.15, 0.12, 0.18, 0.09]
    margin = 0.3
    out = stats.tost(d, margin, alpha=0.05)
    p_lower = scipy_stats.ttest_1samp(d, -margin, alternative="greater").pvalue
    p_upper = scipy_stats.ttest_1samp(d, margin, alternative="less").pvalue
    assert out["p_lower"] == pytest.approx(p_lower, rel=1e-9)
    assert out["p_upper"] == pytest.approx(p_upper, rel=1e-9)
    assert out["outcome"] == "equivalent"
    # the same data against a margin below its mean: clearly above
    assert stats.tost(d, 0.05)["outcome"] == "above"
    assert stats.tost([-v for v in d], 0.05)["outcome"] == "below"
    # an interval that straddles the margin: undecided
    assert stats.tost([0.0, 0.4, 0.1, 0.35], 0.25)["outcome"] == "undecided"
    # one seed, or a diverged seed not all on one side: undecided
    assert stats.tost([0.01], 1.0)["outcome"] == "undecided"
    assert stats.tost([math.inf, 2.0], 1.0)["outcome"] == "above"
    assert stats.tost([math.inf, 0.0], 1.0)["outcome"] == "undecided"
    with pytest.raises(ValueError, match="margin must be positive"):
        stats.tost(d, 0.0)


def test_tost_equivalence_is_the_interval_inside_the_margin():
    d = [0.02, -0.01, 0.03, 0.0, 0.01, 0.015, -0.005, 0.02, 0.01, 0.0]
    out = stats.tost(d, 0.05)
    assert out["outcome"] == "equivalent"
    assert -0.05 < out["low"] and out["high"] < 0.05
    tight = stats.tost(d, 0.015)
    assert tight["outcome"] == "undecided" and tight["high"] > 0.015
