"""bnfast.search.theorem_4_1 / theorem_4_4 and `bnfast search theorem-4-1|theorem-4-4`:
the float verdicts agree with bnfast.claims' checkers, Theorem 4.1 as printed fails on
every random instance (its closed form), counterexamples are certified exactly, counts
do not depend on the executor."""

import concurrent.futures as cf
import json
from fractions import Fraction
import subprocess
import sys
import tempfile

import numpy as np
import pytest

from bnfast.claims import check_theorem_4_1, check_theorem_4_4
from bnfast.cli.search import render
from bnfast.search import sweeps, theorem_4_1, theorem_4_4, wilson_interval
from bnfast.search.theorems import DENOMINATORS, check_chunk

pytestmark = pytest.mark.timeout(300)


@pytest.mark.parametrize("statement, lam, samples", [("theorem-4-1", 1.0, 4),
                                                     ("theorem-4-4", 1.0, 3),
                                                     ("theorem-4-4", 0.5, 8),
                                                     ("theorem-4-4", 3.0, 5)])
def test_chunk_verdicts_match_the_claims_checkers(statement, lam, samples):
    task = {"chunk": 0, "seed": 17, "count": 300, "samples": samples, "lam": lam,
            "statement": statement}
    row = check_chunk(task)
    assert row["undecided"] == 0 and row["holds"] + row["fails"] == 300
    # Re-draw the chunk's instances (the same generator) and compare every verdict.
    rng = np.random.default_rng(17)
    h, g = rng.standard_normal((300, samples)), rng.standard_normal((300, samples))
    fails = 0
    for i in range(300):
        report = (check_theorem_4_1(h[i], g[i]) if statement == "theorem-4-1" else
                  check_theorem_4_4(h[i], g[i], lam=lam))
        fails += report.holds is False
    assert fails == row["fails"]
    kept = row["kept"]["fails"]
    assert len(kept) == min(4, fails)
    for inst in kept:
        assert np.array_equal(inst["h"], h[inst["index"]])


def test_theorem_4_1_as_printed_fails_everywhere():
    r = theorem_4_1(50_000, samples=5, seed=1, progress=False, counterexamples=3)
    assert r.premise == r.instances == 50_000
    assert r.holds == 0 and r.rate == 0.0 and r.predicted == 0.0
    assert r.ci[0] == 0.0 and r.ci[1] < 1e-4
    assert len(r.counterexamples) == 3
    for c in r.counterexamples:
        assert c["shrunk"] and c["size"] == 1.0
        report = check_theorem_4_1(np.array(c["h"], float), np.array(c["g"], float),
                                   exact=True)
        assert report.holds is False and str(report.lhs) == c["lhs"]


def test_theorem_4_4_as_printed_fails_sometimes_and_certificates_are_exact():
    r = theorem_4_4(50_000, samples=4, lam=1.0, seed=2, progress=False, counterexamples=2)
    assert 0.5 < r.rate < 0.95 and r.predicted is None
    for c in r.counterexamples:
        report = check_theorem_4_4(np.array(c["h"], float), np.array(c["g"], float),
                                   lam=1.0, exact=True)
        assert report.holds is False


@pytest.mark.parametrize("lam", [1e78, 1e300, 1e-200, 2.0 ** -600])
def test_extreme_lam_is_decided_without_overflow(lam):
    # Issue 23: --lam 1e78 raised OverflowError (lam ** 4 in Python floats). lam now
    # enters as lam_n * 2**e and each term carries its power of two; the verdicts agree
    # with the claims checker, itself checked against the exact one at such lam.
    task = {"chunk": 0, "seed": 5, "count": 40, "samples": 4, "lam": lam,
            "statement": "theorem-4-4"}
    row = check_chunk(task)
    rng = np.random.default_rng(5)
    h, g = rng.standard_normal((40, 4)), rng.standard_normal((40, 4))
    fails = sum(check_theorem_4_4(h[i], g[i], lam=lam).holds is False for i in range(40))
    assert row["undecided"] == 0 and row["fails"] == fails
    assert fails == (0 if lam > 1 else 40)     # lam^4 ||g||^4 dominates, or vanishes
    for inst in row["kept"]["fails"][:1]:
        report = check_theorem_4_4(np.array(inst["h"]), np.array(inst["g"]), lam=lam,
                                   exact=True)
        assert report.holds is False


def test_cli_huge_lam():
    p = subprocess.run([sys.executable, "-m", "bnfast", "search", "theorem-4-4", "--lam",
                        "1e78", "--instances", "2000", "--no-progress"],
                       capture_output=True, text=True, timeout=120,
                       cwd=tempfile.gettempdir())
    assert p.returncode == 0, p.stderr
    assert "the bound holds:         2,000  rate 1.00000" in p.stdout


def test_theorem_4_4_certificates_are_small_integers_and_short_fractions():
    # Issue 23: at lam = 2 the certificates were the float instances (17-digit floats,
    # 100-digit rationals): h and g were rescaled together, but the printed verdict
    # depends on g's scale. h is now shrunk to integers alone (the verdict does not see
    # its scale or shift) and g rounded to multiples of 1/q, q = 1, 2, 4, ...
    r = theorem_4_4(20_000, samples=8, lam=2.0, seed=0, progress=False, counterexamples=3)
    assert len(r.counterexamples) == 3
    for c in r.counterexamples:
        q = c["denominator"]
        assert c["shrunk"] and q in DENOMINATORS and q <= 64
        assert all(type(v) is int and abs(v) <= 100 for v in c["h"])
        g = [Fraction(v) for v in c["g"]]            # the floats are the rationals
        assert all((v * q).denominator == 1 and abs(v * q) <= 100 for v in g)
        assert c["size"] == max(max(map(abs, c["h"])), max(abs(v * q) for v in g), q)
        report = check_theorem_4_4(c["h"], g, lam=2, exact=True)
        assert report.holds is False
        assert (str(report.lhs), str(report.rhs)) == (c["lhs"], c["rhs"])
        assert len(c["lhs"]) < 30 and len(c["rhs"]) < 30
        text = "\n".join(sweeps()["theorem-4-4"].example(c))
        assert "g = [" + ", ".join(str(v) for v in g) + "]" in text


def test_a_rate_of_zero_is_inside_its_interval():
    # Issue 23: Theorem 4.1's closed form 0 was printed "OUTSIDE the interval": the
    # Wilson lower end at 0 successes came out as 2e-19 (centre - half in floats).
    assert all(wilson_interval(0, n)[0] == 0.0 for n in range(1, 3000))
    assert all(wilson_interval(n, n)[1] == 1.0 for n in range(1, 3000))
    r = theorem_4_1(1000, samples=4, seed=0, progress=False, counterexamples=0)
    assert r.ci[0] == 0.0 and r.predicted == 0.0
    assert "inside the interval" in render(r)


def test_counts_do_not_depend_on_the_executor():
    args = dict(instances=150_000, samples=6, lam=0.7, seed=4, progress=False,
                counterexamples=0)
    local = theorem_4_4(**args)
    with cf.ThreadPoolExecutor(2) as pool:
        threads = theorem_4_4(**args, executor=pool)
    assert (threads.holds, threads.premise) == (local.holds, local.premise)


@pytest.mark.parametrize("call, kwargs, match", [
    (theorem_4_1, {"samples": 1}, "samples must be >= 2"),
    (theorem_4_1, {"samples": 2000}, "samples must be <= 1024"),
    (theorem_4_4, {"lam": 0.0}, "lam must be a finite number > 0"),
    (theorem_4_4, {"lam": float("inf")}, "lam must be a finite number > 0"),
    (theorem_4_1, {"instances": 0}, "instances must be >= 1"),
])
def test_bad_arguments(call, kwargs, match):
    with pytest.raises(ValueError, match=match):
        call(**{"instances": 10, "progress": False, **kwargs})


def test_cli_theorem_json():
    p = subprocess.run([sys.executable, "-m", "bnfast", "search", "theorem-4-4",
                        "--instances", "20000", "--samples", "8", "--lam", "2", "--json"],
                       capture_output=True, text=True, timeout=240,
                       cwd=tempfile.gettempdir())
    assert p.returncode == 0, p.stderr
    fields = json.loads(p.stdout)
    assert fields["statement"] == "theorem-4-4" and fields["settings"]["lam"] == 2.0
    assert all("h" in c and "g" in c for c in fields["counterexamples"])


def test_cli_bad_lam():
    p = subprocess.run([sys.executable, "-m", "bnfast", "search", "theorem-4-4", "--lam",
                        "x"], capture_output=True, text=True, timeout=60,
                       cwd=tempfile.gettempdir())
    assert p.returncode == 2 and "--lam must be a number" in p.stderr
