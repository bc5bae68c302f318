"""Running a grid of independent tasks: in this process, on local worker processes, on
any concurrent.futures.Executor, or on a Dask cluster (dask.distributed.Client).

The experiments and the sweeps send their work through ``map_tasks``. Results come back
in task order whatever the executor, and every task runs with the kernels on one thread
(results of the kernels are deterministic for a given thread count, so a task gives the
same bits in this process, in a worker process and on a Dask worker; the parallelism is
across tasks). Ctrl-C cancels what has not started, stops the local workers, and raises
``Interrupted`` carrying the results that finished.

No worker outlives this process: the local worker processes (``_local_pool``, one pool
that Ctrl-C and SIGTERM stop cleanly) exit when their parent dies, however it dies
(SIGKILL included).
"""

import concurrent.futures as cf
import os
import sys
import threading
import time

from . import _local_pool

__all__ = ["Interrupted", "connect", "dask_result", "derived_seed", "is_dask_client",
           "local_workers", "map_tasks", "one_blas_thread"]

#: How often the waiting loop wakes up (Ctrl-C is seen at the latest after this).
_POLL_SECONDS = 0.1


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during ``map_tasks``: ``finished`` maps task index -> result for the tasks
    that completed; ``total`` is the number of tasks."""

    def __init__(self, finished, total):
        super().__init__(f"interrupted after {len(finished)} of {total} tasks")
        self.finished, self.total = finished, total


def derived_seed(seed, *keys):
    """A 63-bit seed from (seed, keys...): independent streams for every task, identical
    on every machine and executor (NumPy's SeedSequence hashing)."""
    import numpy as np
    words = [int(seed)] + [int(k) for k in keys]
    return int(np.random.SeedSequence(words).generate_state(2, np.uint64)[0] >> np.uint64(1))


def is_dask_client(executor):
    """Whether ``executor`` is a dask.distributed.Client (checked without importing dask)."""
    return type(executor).__module__.startswith("distributed") and hasattr(executor, "gather")


def local_workers():
    """The number of local worker processes: the cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:   # not on Linux
        return max(1, os.cpu_count() or 1)


#: The schemes ``connect`` takes (Dask's plain TCP comm; a bare HOST:PORT means tcp).
SCHEDULER_SCHEMES = ("tcp",)


def connect(address, timeout=10.0):
    """A dask.distributed.Client connected to the scheduler at ``address``
    ("tcp://HOST:PORT" or "HOST:PORT"). ValueError for a malformed address or another
    scheme (tls://, ...), ImportError without dask, OSError ("no Dask scheduler
    answered") when nothing at ``address`` completes Dask's handshake within
    ``timeout`` seconds: nothing listening, or a server that is not Dask (one that says
    nothing, or an HTTP server), which would otherwise hang Client() for minutes."""
    if not isinstance(address, str) or not address.strip():
        raise ValueError(f"scheduler address must be a non-empty string like "
                         f"tcp://HOST:PORT, got {address!r}")
    address = address.strip()
    scheme, hostport = address.split("://", 1) if "://" in address else ("tcp", address)
    if scheme.lower() not in SCHEDULER_SCHEMES:
        raise ValueError(f"scheduler address {address!r}: the scheme {scheme + '://'!r} is "
                         "not supported; the supported scheme is tcp:// "
                         "(tcp://HOST:PORT, or HOST:PORT)")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"scheduler address {address!r} is not of the form tcp://HOST:PORT")
    try:
        from distributed import Client
    except ImportError as exc:
        raise ImportError("a Dask scheduler needs dask.distributed: "
                          "pip install 'bnfast[dask]'") from exc
    address = f"tcp://{hostport}"
    deadline = time.monotonic() + timeout
    try:
        _handshake(address, timeout)
        left = max(1.0, deadline - time.monotonic())
        return Client(address, timeout=f"{left}s")
    except Exception as exc:      # a peer that is not Dask can raise anything (MemoryError)
        why = f"{type(exc).__name__}: {exc}" if isinstance(exc, (OSError, TimeoutError)) \
            else "what answered does not speak Dask's protocol"
        raise OSError(f"no Dask scheduler answered at {address} within {timeout:g} s "
                      f"({why})") from None


def _handshake(address, timeout):
    """Opens a Dask comm to ``address`` and completes its handshake, all within
    ``timeout`` seconds (Dask bounds the TCP connect but not the handshake's read: a
    server that accepts and says nothing would hold Client() for minutes). Runs on its
    own thread and event loop, so it works whatever loop the caller has; raises what
    the attempt raised, TimeoutError when the time is up."""
    import asyncio

    from distributed.comm import connect as comm_connect

    async def attempt():
        comm = await asyncio.wait_for(comm_connect(address, timeout=timeout), timeout)
        await comm.close()

    outcome = {}

    def target():
        try:
            asyncio.run(attempt())
        except BaseException as exc:   # handed to the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="bnfast-dask-handshake", daemon=True)
    thread.start()
    thread.join(timeout + 5.0)
    if thread.is_alive():
        raise TimeoutError(f"no handshake within {timeout:g} s")
    if "error" in outcome:
        error = outcome["error"]
        if isinstance(error, asyncio.TimeoutError):
            raise TimeoutError(f"no handshake within {timeout:g} s") from None
        raise error


# The kernels' thread count is one setting per process: tasks running concurrently on a
# thread pool share it, so the first task in sets it to 1 and the last one out restores it.
_pin_lock = threading.Lock()
_pin = {"tasks": 0, "threads": None}


def _one_thread_call(fn, task):
    """Runs fn(task) with the kernels on one thread (see the module docstring)."""
    from . import runtime
    with _pin_lock:
        if _pin["tasks"] == 0:
            _pin["threads"] = runtime.get_num_threads()
            runtime.set_num_threads(1)
        _pin["tasks"] += 1
    try:
        return fn(task)
    finally:
        with _pin_lock:
            _pin["tasks"] -= 1
            if _pin["tasks"] == 0:
                runtime.set_num_threads(_pin["threads"])


def one_blas_thread():
    """A context that keeps NumPy's BLAS on one thread while a task runs: a task has
    one core (the kernels are pinned to one thread by map_tasks), and a multi-threaded
    BLAS in every worker process oversubscribes the cores (a width-4096 gradient draw
    ran ~10x slower with two workers on 2 cores). threadpoolctl ships with
    scikit-learn (the experiments extra); without it, a no-op."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:                                     # pragma: no cover
        import contextlib
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def map_tasks(fn, tasks, executor=None, progress=True, desc=None, on_result=None):
    """[fn(task) for task in tasks], computed by ``executor``, in task order.

    fn : a module-level function (it is pickled to worker processes).
    tasks : a sequence of picklable arguments.
    executor : None (local: worker processes, one per core, or this process when there
        is one task or one core), a concurrent.futures.Executor, or a
        dask.distributed.Client.
    progress : a tqdm bar over tasks on stderr, shown once the run takes over a second.
    desc : the bar's label.
    on_result : optional callable(index, result), called in this process as each task
        finishes (e.g. to save partial results).

    Raises ``Interrupted`` (a KeyboardInterrupt) on Ctrl-C, with the finished results.
    An exception in a task is raised here, after the other tasks are cancelled.
    """
    tasks = list(tasks)
    bar = _progress_bar(len(tasks), progress, desc)
    finished = _Finished(on_result)
    try:
        if executor is None and (len(tasks) <= 1 or local_workers() == 1):
            for index, task in enumerate(tasks):
                finished[index] = _one_thread_call(fn, task)
                bar.update(1)
        elif executor is None:
            _run_local_pool(fn, tasks, finished, bar)
        elif is_dask_client(executor):
            _run_dask(executor, fn, tasks, finished, bar)
        elif isinstance(executor, cf.Executor):
            _run_futures(executor, fn, tasks, finished, bar)
        else:
            raise TypeError("executor must be None, a concurrent.futures.Executor or a "
                            f"dask.distributed.Client, got {type(executor).__name__}")
    except KeyboardInterrupt:
        raise Interrupted(dict(finished), len(tasks)) from None
    finally:
        bar.close()
    return [finished[i] for i in range(len(tasks))]


class _Finished(dict):
    """Results by task index; tells ``on_result`` about each one before storing it."""

    def __init__(self, on_result):
        super().__init__()
        self._on_result = on_result

    def __setitem__(self, index, result):
        # stored only once on_result returned: a Ctrl-C or SIGTERM inside it (a results
        # file being written) must not count a task its file does not hold
        if self._on_result is not None:
            self._on_result(index, result)
        super().__setitem__(index, result)


def _progress_bar(total, progress, desc):
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, unit="task", file=sys.stderr,
                disable=not progress, delay=1.0, dynamic_ncols=True)


def _collect(futures, finished, bar, done_of, cancel):
    """Waits for ``futures`` (future -> task index), polling so that Ctrl-C is seen."""
    pending = set(futures)
    try:
        while pending:
            done, pending = done_of(pending)
            for future in done:
                finished[futures[future]] = future.result()
                bar.update(1)
    except BaseException:
        cancel(pending)
        raise


def _run_futures(executor, fn, tasks, finished, bar):
    futures = {executor.submit(_one_thread_call, fn, task): i for i, task in enumerate(tasks)}

    def done_of(pending):
        done, rest = cf.wait(pending, timeout=_POLL_SECONDS, return_when=cf.FIRST_COMPLETED)
        return done, rest

    def cancel(rest):
        for future in rest:
            future.cancel()

    _collect(futures, finished, bar, done_of, cancel)


def _run_local_pool(fn, tasks, finished, bar):
    def on_result(index, result):
        finished[index] = result
        bar.update(1)

    _local_pool.run(_one_thread_call, fn, tasks, min(local_workers(), len(tasks)),
                    on_result, _POLL_SECONDS)


def _run_dask(client, fn, tasks, finished, bar):
    from distributed import wait as dask_wait
    # pure=False: two equal tasks are still two runs; retries: a lost worker's tasks are
    # recomputed elsewhere by the scheduler (each task counted once: results are keyed
    # by task index).
    futures = {client.submit(_one_thread_call, fn, task, pure=False, key=f"bnfast-{i}-"
                             f"{time.monotonic_ns()}", retries=2): i
               for i, task in enumerate(tasks)}

    def done_of(pending):
        try:
            result = dask_wait(list(pending), timeout=_POLL_SECONDS,
                               return_when="FIRST_COMPLETED")
        except TimeoutError:
            return set(), pending
        return set(result.done), set(result.not_done)

    _collect(futures, finished, bar, done_of, lambda rest: client.cancel(list(rest)))


def dask_result(client, future):
    """The result of one Dask future (a reduction: bnfast.stats, Network.recalibrate),
    waited for by polling so that Ctrl-C is seen: it cancels the future (and what it
    still needs) and raises KeyboardInterrupt."""
    from distributed import wait as dask_wait
    try:
        while True:
            try:
                dask_wait([future], timeout=_POLL_SECONDS)
                break
            except TimeoutError:
                continue
    except BaseException:
        client.cancel([future], force=True)
        raise
    return future.result()
