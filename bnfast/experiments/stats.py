"""Tests at the level of seeds, written once for every experiment (issue 28, item 4).

The unit of evidence is the seed: one number per seed (a paired difference between two
configurations that share the seed's data and initial weights), never a checkpoint of an
autocorrelated run. Three tests:

- ``sign_test(d)``: exact one-sided binomial test of "d > 0 more often than not" (ties
  dropped); no assumption on the distribution of d;
- ``t_interval(d, level)``: the mean of d with its Student-t interval over seeds;
- ``tost(d, margin, alpha)``: two one-sided tests of |mean d| < margin (equivalence,
  "comparable"), and which side of the margin the interval lies on when it is not.

No SciPy needed (the Student-t distribution through the regularised incomplete beta
function, Numerical Recipes' continued fraction); tests/experiments/test_stats.py checks
them against scipy.stats.
"""

import math

import numpy as np

__all__ = ["decide_side", "sign_test", "sign_test_reachable", "t_cdf", "t_interval",
           "t_quantile", "tost"]


def _betacf(a, b, x):
    """The continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def _betainc(a, b, x):
    """The regularised incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                     + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t, df):
    """P(T <= t) for Student's t with ``df`` degrees of freedom."""
    if df <= 0:
        raise ValueError(f"df must be positive, got {df}")
    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    if t * t < df:         # near the centre: the complementary form keeps precision
        tail = 0.5 * (1.0 - _betainc(0.5, df / 2.0, t * t / (df + t * t)))
    else:
        tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def t_quantile(p, df):
    """The t such that P(T <= t) = p (bisection on t_cdf, to 1e-12)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p}")
    lo, hi = -1.0, 1.0
    while t_cdf(lo, df) > p:
        lo *= 2.0
    while t_cdf(hi, df) < p:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, abs(mid)):
            break
    return 0.5 * (lo + hi)


def _clean(values):
    values = [float(v) for v in values]
    if any(math.isnan(v) for v in values):
        raise ValueError("a per-seed value is NaN")
    return values


def sign_test(differences):
    """Exact one-sided sign test over seeds.

    differences : one number per seed (paired differences; +-inf allowed: a diverged
        run counts by its sign).
    Returns {"n" (seeds that are not ties), "positive", "negative", "p_greater"
    (P(at least `positive` positives | no effect)), "p_less" (the same for negatives)}.
    """
    values = _clean(differences)
    positive = sum(v > 0 for v in values)
    negative = sum(v < 0 for v in values)
    n = positive + negative

    def tail(k):
        return sum(math.comb(n, i) for i in range(k, n + 1)) / 2.0 ** n if n else 1.0
    return {"n": n, "positive": positive, "negative": negative,
            "p_greater": tail(positive), "p_less": tail(negative)}


def sign_test_reachable(seeds, alpha):
    """Whether ``seeds`` untied seeds can reach one-sided significance ``alpha`` at all
    (all of one sign: p = 2^-seeds). With 3 seeds the smallest p is 0.125."""
    return seeds > 0 and 0.5 ** seeds <= alpha


def t_interval(differences, level=0.95):
    """The mean of per-seed differences and its two-sided Student-t interval at
    ``level``: {"n", "mean", "sd", "se", "low", "high"}; low/high None for fewer than 2
    seeds or a non-finite value (a diverged run: the interval is undefined)."""
    values = _clean(differences)
    n = len(values)
    out = {"n": n, "mean": None, "sd": None, "se": None, "low": None, "high": None}
    if n == 0 or not all(math.isfinite(v) for v in values):
        if n and all(v > 0 for v in values if not math.isfinite(v)):
            out["mean"] = math.inf if any(math.isinf(v) for v in values) else None
        return out
    mean = sum(values) / n
    out["mean"] = mean
    if n < 2:
        return out
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    se = sd / math.sqrt(n)
    q = t_quantile(0.5 + level / 2.0, n - 1)
    out.update(sd=sd, se=se, low=mean - q * se, high=mean + q * se)
    return out


def tost(differences, margin, alpha=0.05):
    """Two one-sided tests of equivalence of per-seed differences d to 0 within
    (-margin, margin).

    H0-: mean d <= -margin and H0+: mean d >= margin, each by a one-sided t test at
    ``alpha``; equivalence ("comparable") when both are rejected, i.e. the two-sided
    (1 - 2 alpha) t interval lies inside (-margin, margin).
    Returns {"n", "mean", "se", "margin", "low", "high" (the 1 - 2 alpha interval),
    "p_lower", "p_upper" (the one-sided p-values), "p" (their max), "outcome"}:
    outcome "equivalent" (both rejected), "above" (the interval lies above +margin:
    larger by more than the margin), "below" (below -margin), else "undecided"
    (fewer than 2 seeds, zero spread with the mean on the margin, or an interval that
    straddles a margin). A seed with +inf (-inf) makes the outcome "above" ("below")
    when every seed is on that side of the margin, else "undecided".
    """
    if not margin > 0:
        raise ValueError(f"the equivalence margin must be positive, got {margin}")
    values = _clean(differences)
    n = len(values)
    out = {"n": n, "mean": None, "se": None, "margin": float(margin), "low": None,
           "high": None, "p_lower": None, "p_upper": None, "p": None,
           "outcome": "undecided"}
    if n and not all(math.isfinite(v) for v in values):
        if all(v > margin for v in values):
            out["outcome"] = "above"
        elif all(v < -margin for v in values):
            out["outcome"] = "below"
        return out
    interval = t_interval(values, 1.0 - 2.0 * alpha)
    out.update(mean=interval["mean"], se=interval["se"], low=interval["low"],
               high=interval["high"])
    if n < 2:
        return out
    mean, se = interval["mean"], interval["se"]
    if se == 0.0:
        p_lower = 0.0 if mean > -margin else 1.0
        p_upper = 0.0 if mean < margin else 1.0
    else:
        p_lower = 1.0 - t_cdf((mean + margin) / se, n - 1)     # H0: mean <= -margin
        p_upper = t_cdf((mean - margin) / se, n - 1)           # H0: mean >= +margin
    out.update(p_lower=p_lower, p_upper=p_upper, p=max(p_lower, p_upper))
    if p_lower < alpha and p_upper < alpha:
        out["outcome"] = "equivalent"
    elif interval["low"] > margin:
        out["outcome"] = "above"
    elif interval["high"] < -margin:
        out["outcome"] = "below"
    return out


def decide_side(values, bar, level=0.90, test="t", above=True):
    """The outcome of "the seeds' values lie above ``bar``" (below it, with above=False),
    one number per seed: "supported" if they do, "refuted" if they lie on the other
    side, else "undecided"; by the two-sided ``level`` t interval of the mean (test "t")
    or the exact one-sided sign test at 5% (test "sign"). Returns (outcome, {"mean",
    "low", "high"}), low and high None for the sign test or when the interval is
    undefined (fewer than two finite values)."""
    if test == "sign":
        counts = sign_test([v - bar for v in values])
        good, bad = ("p_greater", "p_less") if above else ("p_less", "p_greater")
        label = ("supported" if counts[good] <= 0.05 else
                 "refuted" if counts[bad] <= 0.05 else "undecided")
        return label, {"mean": float(np.mean(values)), "low": None, "high": None}
    ci = t_interval(values, level)
    if ci["low"] is None:
        return "undecided", {"mean": ci["mean"], "low": None, "high": None}
    low, high = ci["low"], ci["high"]
    claim_side, other_side = (low > bar, high < bar) if above else (high < bar, low > bar)
    label = "supported" if claim_side else "refuted" if other_side else "undecided"
    return label, {"mean": ci["mean"], "low": low, "high": high}

