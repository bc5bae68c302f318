"""Population statistics and precise BN on a real Dask LocalCluster with two worker
processes: the same bits as in one process for the same chunks (population_moments of a
dask.array chunked along rows and channels; Network.recalibrate from an array sent to
the workers and from a dask.array), and a reduction over a dask.array 4 times the
workers' memory limit completes with nothing spilled. Run in a subprocess with a
timeout: a cluster that hangs must fail this test, not stall the suite."""

import json
import os
import subprocess
import sys
import tempfile
import textwrap

import pytest

pytest.importorskip("distributed")
pytestmark = pytest.mark.timeout(400)

SCRIPT = textwrap.dedent("""
    import copy, json
    import numpy as np
    import dask, dask.array as da
    from distributed import Client, LocalCluster
    import bnfast
    from bnfast.stats import population_moments

    FIELDS = ("mean", "m2", "mean_low", "m2_low")

    def same(a, b):
        return a.count == b.count and all(
            np.array_equal(getattr(a, f), getattr(b, f)) for f in FIELDS)

    def main():
        out = {}
        rng = np.random.default_rng(0)
        x = 1e8 + 1e-4 * rng.standard_normal((60_000, 6))
        chunked = da.from_array(x, chunks=(1_700, 4))          # rows and channels
        blocks = [x[i:i + 1_700] for i in range(0, len(x), 1_700)]
        with dask.config.set(scheduler="synchronous"):
            local = population_moments(chunked)
        streamed = [population_moments([b[:, :4] for b in blocks]),
                    population_moments([b[:, 4:] for b in blocks])]
        net = bnfast.Network([
            bnfast.Conv1d(2, 6, 3, activation="relu", batch_norm=bnfast.BatchNorm()),
            bnfast.Flatten(),
            bnfast.Dense(6 * 30, 16, "tanh", batch_norm=bnfast.BatchNorm(norm="linf")),
            bnfast.Dense(16, 3)], seed=3)
        X = rng.standard_normal((3_000, 2, 32))
        one_process = copy.deepcopy(net).recalibrate(X, batch_size=250)._running
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                          dashboard_address=None, memory_limit="256MiB") as cluster, \\
                Client(cluster) as client:
            workers = sorted(client.scheduler_info()["workers"])
            out["workers"] = len(workers)
            remote = population_moments(chunked, client=client)
            out["moments_same_bits"] = same(remote, local)
            out["stream_same_bits"] = all(
                np.array_equal(getattr(remote, f)[:4], getattr(streamed[0], f)) and
                np.array_equal(getattr(remote, f)[4:], getattr(streamed[1], f))
                for f in FIELDS)
            sent = copy.deepcopy(net).recalibrate(X, batch_size=250, client=client)._running
            dask_x = da.from_array(X, chunks=(250, 2, 32))
            from_dask = copy.deepcopy(net).recalibrate(dask_x, client=client)._running
            out["recalibrate_same_bits"] = bool(np.array_equal(sent, one_process) and
                                                np.array_equal(from_dask, one_process))
            # 1 GiB of normals in 8 MiB blocks, made and reduced on the workers
            big = da.random.default_rng(1).standard_normal((1 << 24, 8), chunks=(1 << 17, 8))
            m = population_moments(big, client=client)
            out["big_gib"] = big.nbytes / 2**30
            out["big_var"] = m.var().tolist()
            spilled = client.run(lambda dask_worker: tuple(dask_worker.data.spilled_total))
            out["spilled"] = [list(v) for v in spilled.values()]
            out["same_workers"] = sorted(client.scheduler_info()["workers"]) == workers
        print(json.dumps(out))

    if __name__ == "__main__":
        main()
""")


def test_two_worker_processes_give_the_bits_of_one_process(tmp_path):
    script = tmp_path / "cluster_script.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, DASK_DISTRIBUTED__WORKER__DAEMON="False")
    p = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                       timeout=360, cwd=tempfile.gettempdir(), env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["workers"] == 2
    assert out["moments_same_bits"] and out["stream_same_bits"]
    assert out["recalibrate_same_bits"]
    # 4 times one worker's 256 MiB limit: completed, no worker lost, nothing spilled
    assert out["big_gib"] == 1.0 and out["same_workers"]
    assert all(v == [0, 0] for v in out["spilled"]), out["spilled"]
    # N(0, 1): the variance of 2**24 values is 1 within ~4 / sqrt(2**24) = 1e-3
    assert all(abs(v - 1) < 2e-3 for v in out["big_var"])


def _sleep(seconds):
    import time
    time.sleep(seconds)
    return seconds


def test_ctrl_c_cancels_a_dask_reduction_within_a_second():
    """bnfast.executors.dask_result (what population_moments and recalibrate wait with)
    polls, so Ctrl-C raises KeyboardInterrupt at once and cancels the work."""
    import signal
    import threading
    import time

    import distributed

    from bnfast.executors import dask_result
    from sigint_helpers import python_sigint_handler

    with distributed.Client(processes=False, n_workers=1, threads_per_worker=1,
                            dashboard_address=None) as client, python_sigint_handler():
        future = client.submit(_sleep, 2, pure=False)   # a thread: close() waits for it
        timer = threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT))
        timer.start()
        start = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            dask_result(client, future)
        assert time.monotonic() - start < 1.0   # before the task ends (2 s)
        deadline = time.monotonic() + 5
        while future.status != "cancelled" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert future.status == "cancelled"
