"""Sweeps on real Dask clusters: a worker killed mid-sweep loses nothing and counts
nothing twice; the CLI against a `dask scheduler` and a `dask worker` started as
separate processes gives the local counts."""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest

from bnfast.search import lemma_4_5
from bnfast.search.lemma_4_5 import CHUNK_SIZE

distributed = pytest.importorskip("distributed")
pytestmark = pytest.mark.timeout(300)

# Chunks of about a second each (dim 4, 16 samples), so a worker dies mid-sweep.
SWEEP = dict(instances=8 * CHUNK_SIZE, dim=4, samples=16, seed=12, progress=False,
             counterexamples=1)


def totals(result):
    return (result.instances, result.premise, result.holds, result.predicted,
            result.settings["degenerate"], result.counterexamples)


@pytest.fixture(scope="module")
def local():
    return totals(lemma_4_5(**SWEEP))


def test_a_killed_worker_loses_nothing_and_counts_nothing_twice(local):
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        victim = sorted(client.scheduler_info()["workers"])[0]
        pid = client.run(os.getpid, workers=[victim])[victim]

        def kill_when_busy():
            # Once the victim is running a chunk, SIGKILL its process; the nanny starts
            # a new worker and the scheduler recomputes the lost chunks.
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if client.processing(workers=[victim]).get(victim):
                    time.sleep(0.3)
                    os.kill(pid, signal.SIGKILL)
                    return
                time.sleep(0.05)

        killer = threading.Thread(target=kill_when_busy, daemon=True)
        killer.start()
        remote = totals(lemma_4_5(**SWEEP, executor=client))
        killer.join(timeout=5)
        assert victim not in client.scheduler_info()["workers"]   # it did die
    assert remote == local


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_on_a_separately_started_scheduler_and_worker(local):
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = dict(os.environ, DASK_DISTRIBUTED__WORKER__DAEMON="False")
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler",
                               "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard"], env=env, cwd=tempfile.gettempdir(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nworkers",
             "2", "--nthreads", "1", "--no-dashboard"], env=env,
            cwd=tempfile.gettempdir(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        with distributed.Client(address, timeout="60s") as client:
            client.wait_for_workers(2, timeout=120)
        p = subprocess.run(
            [sys.executable, "-m", "bnfast", "search", "lemma-4-5", "--instances",
             str(SWEEP["instances"]), "--dim", "4", "--samples", "16", "--seed", "12",
             "--scheduler", address, "--json"],
            capture_output=True, text=True, timeout=240, cwd=tempfile.gettempdir())
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
    assert p.returncode == 0, p.stderr
    fields = json.loads(p.stdout)
    remote = (fields["instances"], fields["premise"], fields["holds"], fields["predicted"],
              fields["settings"]["degenerate"])
    assert remote == local[:5]
    assert fields["counterexamples"]
