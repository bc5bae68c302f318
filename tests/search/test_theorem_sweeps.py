"""bnfast.search.theorem_4_1 / theorem_4_4 and `bnfast search theorem-4-1|theorem-4-4`:
the float verdicts agree with bnfast.claims' checkers, Theorem 4.1 as printed fails on
every random instance (its closed form), counterexamples are certified exactly, counts
do not depend on the executor."""

import concurrent.futures as cf
import json
import subprocess
import sys
import tempfile

import numpy as np
import pytest

from bnfast.claims import check_theorem_4_1, check_theorem_4_4
from bnfast.search import theorem_4_1, theorem_4_4
from bnfast.search.theorems import check_chunk

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
