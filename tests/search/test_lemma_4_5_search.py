"""bnfast.search.lemma_4_5 and `bnfast search lemma-4-5`: counts identical for a seed
whatever the executor, the rate against the closed form, exact certificates, the
Parquet file (valid after Ctrl-C, resumable), errors."""

import concurrent.futures as cf
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest

from bnfast.claims import check_lemma_4_5
from bnfast.search import lemma_4_5, wilson_interval
from bnfast.search.lemma_4_5 import CHUNK_SIZE, EXAMPLE_3_2
from sigint_helpers import default_sigint  # noqa: E402  (tests/ is on sys.path)

pytestmark = pytest.mark.timeout(300)

FIELDS = ["statement", "instances", "premise", "holds", "rate", "predicted", "ci",
          "counterexamples", "seconds", "settings"]


def counts(result):
    return (result.instances, result.premise, result.holds, result.predicted,
            result.settings["degenerate"])


@pytest.fixture(scope="module")
def example_sweep():
    return lemma_4_5(3 * CHUNK_SIZE + 1000, data="example-3-2", seed=4, progress=False)


def test_example_3_2_rate_agrees_with_the_closed_form(example_sweep):
    r = example_sweep
    low, high = r.ci
    assert low < r.rate < high
    assert r.predicted == pytest.approx(0.4872946631669, abs=1e-10)
    # 4 standard errors: the interval above is 1.96.
    assert abs(r.rate - r.predicted) < 4 * math.sqrt(0.25 / r.premise)
    assert abs(r.premise / r.instances - 0.5) < 4 * math.sqrt(0.25 / r.instances)
    assert r.settings["chunks"] == 4 and r.settings["degenerate"] == 0


def test_counterexamples_are_certified_and_smallest_first(example_sweep):
    found = example_sweep.counterexamples
    assert 1 <= len(found) <= 5
    sizes = [c["size"] for c in found]
    assert sizes == sorted(sizes) and sizes[0] == 1   # e.g. w0 = (1, 1)
    X, y = EXAMPLE_3_2
    for c in found:
        assert set(c) == {"w0", "lhs", "rhs", "size", "shrunk"}
        report = check_lemma_4_5(X, y, np.array(c["w0"], dtype=float), exact=True,
                                 cross_check=False)
        assert report.premise and report.holds is False
        assert str(report.lhs) == c["lhs"] and str(report.rhs) == c["rhs"]


def test_random_data_counterexamples_carry_their_data():
    r = lemma_4_5(20_000, dim=3, samples=5, seed=2, progress=False, counterexamples=3)
    assert len(r.counterexamples) == 3
    for c in r.counterexamples:
        report = check_lemma_4_5(np.array(c["X"], float), np.array(c["y"], float),
                                 np.array(c["w0"], float), exact=True, cross_check=False)
        assert report.holds is False
    assert abs(r.rate - r.predicted) < 4 * math.sqrt(0.25 / r.premise)


@pytest.mark.parametrize("executor", ["threads", "processes"])
def test_counts_are_identical_whatever_the_executor(executor):
    args = dict(instances=2 * CHUNK_SIZE + 7, dim=3, samples=6, seed=9, progress=False,
                counterexamples=0)
    local = lemma_4_5(**args)
    pool = cf.ThreadPoolExecutor(3) if executor == "threads" else cf.ProcessPoolExecutor(2)
    with pool:
        other = lemma_4_5(**args, executor=pool)
    assert counts(other) == counts(local)


def test_a_dask_cluster_gives_the_same_counts():
    distributed = pytest.importorskip("distributed")
    args = dict(instances=CHUNK_SIZE + 5, data="example-3-2", seed=3, progress=False,
                counterexamples=1)
    local = lemma_4_5(**args)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        remote = lemma_4_5(**args, executor=client)
    assert counts(remote) == counts(local)
    assert remote.counterexamples == local.counterexamples


def test_wilson_interval():
    assert wilson_interval(0, 0) == (0.0, 1.0)
    low, high = wilson_interval(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-4) and high == pytest.approx(0.5962, abs=1e-4)
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and 0.27 < high < 0.28


def test_parquet_file_holds_every_chunk_and_resumes(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "sweep.parquet"
    args = dict(instances=3 * CHUNK_SIZE, dim=2, samples=4, seed=5, progress=False,
                counterexamples=2)
    full = lemma_4_5(**args, out=path)
    table = pq.read_table(path)
    assert table.num_rows == 3 and sorted(table.column("chunk").to_pylist()) == [0, 1, 2]
    assert sum(table.column("count").to_pylist()) == 3 * CHUNK_SIZE
    # An interrupted sweep: keep only chunk 1, resume, and get the same counts.
    pq.write_table(table.filter(table.column("chunk").to_numpy() == 1), path)
    resumed = lemma_4_5(**args, out=path, resume=True)
    assert counts(resumed) == counts(full)
    assert pq.read_table(path).num_rows == 3
    with pytest.raises(ValueError, match="holds another sweep"):
        lemma_4_5(**dict(args, seed=6), out=path, resume=True)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"instances": 0}, ValueError, "instances must be >= 1"),
    ({"instances": 1.5}, TypeError, "instances must be an int"),
    ({"dim": 0}, ValueError, "dim must be >= 1"),
    ({"dim": 3, "samples": 3}, ValueError, "samples must be >= dim \\+ 1 = 4"),
    ({"dim": 9, "samples": 12}, ValueError, "dim must be <= 8"),
    ({"samples": 65}, ValueError, "samples must be <= 64"),
    ({"data": "mnist"}, ValueError, "data must be one of 'random', 'example-3-2'"),
    ({"data": "example-3-2", "dim": 3, "samples": 4}, ValueError, "has dim=2 and samples=3"),
    ({"seed": -1}, ValueError, "seed must be in \\[0, 2\\*\\*63\\), got -1"),
    ({"resume": True}, ValueError, "resume=True needs out="),
    ({"out": "/nonexistent-folder/x.parquet"}, OSError, "not a writable folder"),
])
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        lemma_4_5(**{"instances": 10, "progress": False, **kwargs})


def cli(*args, timeout=240):
    return subprocess.run([sys.executable, "-m", "bnfast", "search", *args],
                          capture_output=True, text=True, timeout=timeout,
                          cwd=tempfile.gettempdir())


def test_cli_json_is_one_object():
    p = cli("lemma-4-5", "--instances", "5000", "--data", "example-3-2", "--json")
    assert p.returncode == 0, p.stderr
    fields = json.loads(p.stdout)
    assert list(fields) == FIELDS
    assert fields["instances"] == 5000 and fields["settings"]["data"] == "example-3-2"
    assert all("w0" in c for c in fields["counterexamples"])


def test_cli_text_report():
    p = cli("lemma-4-5", "--instances", "5000", "--dim", "3", "--samples", "4",
            "--no-progress")
    assert p.returncode == 0, p.stderr
    assert "premise <w0, W*> > 0" in p.stdout and "closed form:" in p.stdout
    assert "certified in exact arithmetic" in p.stdout


@pytest.mark.parametrize("args, message", [
    (("--instances", "0"), "--instances must be >= 1"),
    (("--instances", "many"), "--instances must be an integer"),
    (("--dim", "2", "--samples", "2"), "--samples must be >= dim + 1"),
    (("--out", "/nonexistent-folder/x.parquet"), "--out: cannot write"),
    (("--resume",), "--resume needs --out"),
    (("--scheduler", "tcp://127.0.0.1:9"), "no Dask scheduler answered"),
])
def test_cli_errors_exit_2(args, message):
    p = cli("lemma-4-5", *args)
    assert p.returncode == 2, p.stdout + p.stderr
    assert message in p.stderr and p.stdout == ""


def test_ctrl_c_keeps_a_valid_file(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "big.parquet"
    process = subprocess.Popen(
        [sys.executable, "-m", "bnfast", "search", "lemma-4-5", "--instances",
         str(400 * CHUNK_SIZE), "--dim", "4", "--samples", "16", "--out", str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=tempfile.gettempdir(), preexec_fn=default_sigint)
    try:
        deadline = time.monotonic() + 120
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert path.exists(), "no chunk finished in time"
        sent = time.perf_counter()
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
        assert time.perf_counter() - sent < 1.5
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
    assert process.returncode == 130, err
    assert "interrupted;" in err and str(path) in err and "Traceback" not in err
    rows = pq.read_table(path).num_rows
    assert 1 <= rows < 400


def test_memory_stays_flat_however_many_instances():
    # Results are aggregated per chunk: eight times the instances must not need more
    # memory (tracemalloc sees NumPy's allocations; one worker thread, in process).
    import tracemalloc

    def peak(instances):
        with cf.ThreadPoolExecutor(1) as pool:
            tracemalloc.start()
            lemma_4_5(instances, dim=4, samples=16, seed=1, executor=pool,
                      progress=False, counterexamples=0)
            _, top = tracemalloc.get_traced_memory()
            tracemalloc.stop()
        return top

    one, eight = peak(CHUNK_SIZE), peak(8 * CHUNK_SIZE)
    assert eight < 1.5 * one + 1_000_000, (one, eight)
