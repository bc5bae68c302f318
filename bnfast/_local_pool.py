"""The local worker processes behind ``executors.map_tasks`` (executor=None).

A small pool of spawn processes, each with its own pipe to this process, written here
instead of using concurrent.futures.ProcessPoolExecutor because that pool cannot be
stopped safely from Ctrl-C or SIGTERM: the KeyboardInterrupt lands in the main thread
at any bytecode, and when it lands inside ``concurrent.futures.wait`` while that holds
some futures' locks, the locks are never released; the pool's manager thread then
blocks on one of them for ever and the interpreter hangs at exit (seen about once in
twenty SIGTERMs of ``bnfast search``). Here nothing is shared between threads: the
waiting loop runs in the calling thread, a task's result is read from its worker's own
pipe, and on any exception the workers are killed and joined, whatever state the loop
was left in.

No worker outlives this process, however it dies (SIGKILL included): each worker asks
for the parent-death signal (Linux prctl PR_SET_PDEATHSIG) and runs a watchdog thread
that exits when its parent is gone (everywhere). Workers ignore SIGINT (Ctrl-C goes to
the whole process group; the parent decides).
"""

import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
import time
import traceback

#: How often a worker's watchdog checks that its parent is alive.
_WATCHDOG_SECONDS = 0.5
#: prctl's option that asks for a signal when the parent dies (linux/prctl.h).
_PR_SET_PDEATHSIG = 1
#: How long a worker told to stop may take to exit before it is killed.
_STOP_SECONDS = 2.0


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker process (set as the cause of
    the exception re-raised here)."""

    def __str__(self):
        return self.args[0]


class WorkerDied(RuntimeError):
    """A local worker process ended while it ran a task (killed, out of memory, a
    crash in native code)."""


def run(call, fn, tasks, workers, on_result, poll_seconds):
    """Computes ``call(fn, task)`` for every task on ``workers`` spawn processes.

    on_result(index, result) is called here as each task finishes. The loop wakes up
    every ``poll_seconds`` (so that Ctrl-C is seen). A task's exception is raised here
    with its worker's traceback as its cause; any exception (Ctrl-C included) kills the
    workers before it propagates. Returns nothing; results go to on_result.
    """
    context = multiprocessing.get_context("spawn")
    pool = []
    try:
        for _ in range(workers):
            pool.append(_Worker(context, call))
            pool[-1].start()
        pending = list(enumerate(tasks))[::-1]       # popped from the end, in order
        busy = {}                                    # worker -> task index
        for worker in pool:
            if pending:
                busy[worker] = worker.give(fn, *pending.pop())
        while busy:
            waits = {}
            for worker in busy:
                waits[worker.conn] = worker
                waits[worker.process.sentinel] = worker
            ready = multiprocessing.connection.wait(list(waits), timeout=poll_seconds)
            for worker in {waits[handle] for handle in ready}:
                index = busy.pop(worker)
                on_result(index, worker.result(index))
                if pending:
                    busy[worker] = worker.give(fn, *pending.pop())
        for worker in pool:
            worker.stop()
    finally:
        for worker in pool:
            worker.kill()


class _Worker:
    """One spawn process and this side of its pipe."""

    def __init__(self, context, call):
        self.conn, child = context.Pipe(duplex=True)
        # spawn: the parent has the kernels' thread pool running, which fork would copy
        # half-way through; spawned workers start clean. daemon: multiprocessing's own
        # exit handler also stops them.
        self.process = context.Process(target=_worker_main, daemon=True,
                                       args=(child, os.getpid(), call),
                                       name="bnfast-worker")
        self._child = child

    def start(self):
        self.process.start()
        self._child.close()  # only the worker holds its end: its death reads as EOF here

    def give(self, fn, index, task):
        self.conn.send((fn, task))
        return index

    def result(self, index):
        """The outcome of task ``index``: its result, or its exception raised here."""
        try:
            status, payload, text = self.conn.recv()
        except (EOFError, OSError):
            self.process.join(_STOP_SECONDS)
            raise WorkerDied(f"a local worker process ended (exit code "
                             f"{self.process.exitcode}) while it ran task {index}") from None
        if status == "ok":
            return payload
        payload.__cause__ = RemoteTraceback(text)
        raise payload

    def stop(self):
        """Asks the worker to exit (it has no task); it is killed if it does not."""
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.process.join(_STOP_SECONDS)

    def kill(self):
        if self.process.pid is None:        # never started
            return
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        self.conn.close()


def _worker_main(conn, parent, call):
    """A worker's loop: (fn, task) in, ("ok", result, "") or ("error", exception,
    traceback text) out, until None or the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent)
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        fn, task = message
        try:
            reply = ("ok", call(fn, task), "")
        except Exception as exc:             # noqa: BLE001 -- re-raised in the parent
            reply = ("error", exc, traceback.format_exc())
        try:
            conn.send(reply)
        except Exception as exc:             # noqa: BLE001 -- e.g. an unpicklable result
            text = "".join(traceback.format_exception(exc))
            conn.send(("error", RuntimeError(f"a task's outcome could not be sent back "
                                             f"from its worker: {exc!r}"), text))


def _die_with_parent(parent):
    """Makes this process exit when process ``parent`` is no longer its parent."""
    if sys.platform.startswith("linux"):
        import ctypes
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):   # no prctl: the watchdog alone
            pass

    def watchdog():
        while os.getppid() == parent:
            time.sleep(_WATCHDOG_SECONDS)
        os._exit(1)

    # Started after prctl: a parent that died before it is seen here at once.
    threading.Thread(target=watchdog, name="bnfast-parent-watchdog", daemon=True).start()
