"""bnfast.executors.map_tasks: the same results, in task order, whatever runs them (this
process, local worker processes, a thread or process pool, a Dask LocalCluster); Ctrl-C
stops within a second and keeps the finished results; errors name what is wrong."""

import concurrent.futures as cf
import os
import signal
import sys
import time

import numpy as np
import pytest

import bnfast
from bnfast.executors import Interrupted, connect, is_dask_client, local_workers, map_tasks
from sigint_helpers import python_sigint_handler  # noqa: E402  (tests/ is on sys.path)

pytestmark = pytest.mark.timeout(120)


def train_task(seed):
    """A small BN network trained from ``seed``: its final params (floats depend on
    every bit of the run)."""
    rng = np.random.default_rng(seed)
    X, y = rng.standard_normal((64, 8)), rng.standard_normal((64, 2))
    net = bnfast.Network([bnfast.Dense(8, 16, "tanh", batch_norm=bnfast.BatchNorm()),
                          bnfast.Dense(16, 2)], seed=seed)
    bnfast.train(net, X, y, lr=1e-3, steps=20, batch_size=16, seed=seed)
    return {"seed": seed, "params": net.params.tolist(), "threads": bnfast.get_num_threads()}


def sleepy_task(seconds):
    time.sleep(seconds)
    return seconds


def failing_task(value):
    if value == 2:
        raise ValueError("task 2 fails")
    return value


SEEDS = [3, 1, 4, 1, 5]


@pytest.fixture(scope="module")
def expected():
    return [train_task(s) | {"threads": 1} for s in SEEDS]


def test_in_process_matches_and_pins_one_thread(expected):
    results = map_tasks(train_task, SEEDS[:1], progress=False)
    assert results == expected[:1]
    assert results[0]["threads"] == 1   # every task runs on one kernel thread


def test_local_processes(expected):
    assert map_tasks(train_task, SEEDS, progress=False) == expected


@pytest.mark.parametrize("pool", [cf.ThreadPoolExecutor, cf.ProcessPoolExecutor])
def test_concurrent_futures_executors(expected, pool):
    threads = bnfast.get_num_threads()
    with pool(2) as executor:
        assert map_tasks(train_task, SEEDS, executor=executor, progress=False) == expected
    assert bnfast.get_num_threads() == threads   # restored once every task is done


def test_dask_local_cluster(expected):
    distributed = pytest.importorskip("distributed")
    import cloudpickle
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # tests are not installed
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        assert is_dask_client(client)
        assert map_tasks(train_task, SEEDS, executor=client, progress=False) == expected


def test_results_keep_task_order_when_tasks_finish_out_of_order():
    with cf.ThreadPoolExecutor(3) as executor:
        assert map_tasks(sleepy_task, [0.3, 0.0, 0.1], executor=executor,
                         progress=False) == [0.3, 0.0, 0.1]


@pytest.mark.parametrize("executor", [None, "threads"])
def test_a_task_error_is_raised(executor):
    with cf.ThreadPoolExecutor(2) as pool:
        with pytest.raises(ValueError, match="task 2 fails"):
            map_tasks(failing_task, [0, 1, 2, 3], progress=False,
                      executor=pool if executor == "threads" else None)


def test_ctrl_c_stops_within_a_second_and_keeps_what_finished():
    # Two quick tasks, then tasks that would sleep for a minute; SIGINT once the quick
    # ones have reported (spawned workers take a moment to start on a busy machine).
    reported, sent = [], []

    def interrupt_after_two(index, result):
        reported.append(index)
        if len(reported) == 2:
            sent.append(time.perf_counter())
            os.kill(os.getpid(), signal.SIGINT)

    with python_sigint_handler(), pytest.raises(Interrupted) as info:
        map_tasks(sleepy_task, [0.01, 0.01, 60, 60, 60], progress=False,
                  on_result=interrupt_after_two)
    assert time.perf_counter() - sent[0] < 1.0
    # the interrupt landed inside the second on_result: that result is not counted, as
    # a results file being written there would not hold it (issue 23)
    assert info.value.finished == {reported[0]: 0.01}
    assert info.value.total == 5
    assert isinstance(info.value, KeyboardInterrupt)


def test_on_result_sees_every_result_once():
    seen = []
    with cf.ThreadPoolExecutor(2) as pool:
        results = map_tasks(sleepy_task, [0.05, 0.0, 0.02], executor=pool, progress=False,
                            on_result=lambda i, r: seen.append((i, r)))
    assert sorted(seen) == [(0, 0.05), (1, 0.0), (2, 0.02)]
    assert results == [0.05, 0.0, 0.02]


def test_bad_executor():
    with pytest.raises(TypeError, match="executor must be"):
        map_tasks(sleepy_task, [0, 0], executor="dask", progress=False)


@pytest.mark.parametrize("address", ["", "nohost", "tcp://host:notaport", "tcp://:8786",
                                     "host:70000", 8786])
def test_malformed_scheduler_address(address):
    with pytest.raises(ValueError, match="scheduler address"):
        connect(address)


def test_unreachable_scheduler_fails_within_its_timeout():
    pytest.importorskip("distributed")
    start = time.perf_counter()
    with pytest.raises(OSError, match="no Dask scheduler answered at tcp://127.0.0.1:9"):
        connect("tcp://127.0.0.1:9", timeout=2)
    assert time.perf_counter() - start < 10


def dying_task(value):
    if value == 1:
        os._exit(7)
    time.sleep(0.05)
    return value


def unpicklable_result(value):
    return (lambda: value) if value == 1 else value


needs_workers = pytest.mark.skipif(local_workers() < 2,
                                   reason="one core: tasks run in this process")


@needs_workers
def test_a_local_task_error_carries_the_worker_traceback():
    from bnfast._local_pool import RemoteTraceback
    with pytest.raises(ValueError, match="task 2 fails") as info:
        map_tasks(failing_task, [0, 1, 2, 3], progress=False)
    assert isinstance(info.value.__cause__, RemoteTraceback)
    assert "failing_task" in str(info.value.__cause__)


@needs_workers
def test_a_worker_that_dies_is_an_error_naming_the_task():
    from bnfast._local_pool import WorkerDied
    with pytest.raises(WorkerDied, match=r"exit code 7\) while it ran task 1"):
        map_tasks(dying_task, [0, 1, 2, 3], progress=False)


@needs_workers
def test_an_unpicklable_result_is_an_error_not_a_hang():
    with pytest.raises(RuntimeError, match="could not be sent back"):
        map_tasks(unpicklable_result, [0, 1, 2], progress=False)


def test_the_local_workers_are_gone_after_a_run():
    import multiprocessing
    assert map_tasks(sleepy_task, [0.0, 0.01, 0.0], progress=False) == [0.0, 0.01, 0.0]
    assert multiprocessing.active_children() == []
