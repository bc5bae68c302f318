"""No process outlives its parent (issue 23, second round): the parent of a local sweep
(`bnfast search`) or experiment (`bnfast run`) killed with SIGKILL leaves no worker behind; SIGTERM is handled like
Ctrl-C (exit status 130, a sweep's --out file kept). The commands run in subprocesses, every wait has a timeout, and any
survivor is killed by the test, so a regression fails instead of stalling CI."""

import os
import re
import signal
import subprocess
import sys
import tempfile
import time

import pytest

pytestmark = [pytest.mark.timeout(120),
              pytest.mark.skipif(not sys.platform.startswith("linux"),
                                 reason="reads the process tree from /proc")]

#: Long enough to be under way when the signal comes (minutes when left alone).
SEARCH = ["search", "theorem-4-1", "--instances", str(2000 * 65536), "--samples", "32",
          "--no-progress"]
RUN = ["run", "explosion", "--no-progress"]
#: Chunks of ~1 min each (65536 instances of batch 1024): a worker killed in the middle of
#: one would outlive the 5 s window unless the parent-death guard ends it. With SEARCH's
#: ~1 s chunks a worker without the guard exits anyway, on pipe EOF after its chunk.
SLOW_SEARCH = ["search", "theorem-4-1", "--instances", str(8 * 65536), "--samples",
               "1024", "--no-progress"]


def _stat(pid):
    """(parent pid, state, start time) of a process from /proc, or None once gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return int(fields[1]), fields[0], fields[19]


def _descendants(root):
    """{pid: start time} of every living descendant of ``root``."""
    children = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            stat = _stat(int(name))
            if stat is not None and stat[1] != "Z":
                children.setdefault(stat[0], []).append((int(name), stat[2]))
    found, todo = {}, [root]
    while todo:
        for pid, start in children.get(todo.pop(), []):
            found[pid] = start
            todo.append(pid)
    return found


def _living(processes):
    """Those of ``processes`` ({pid: start time}) still running (not zombies, not a new
    process that reused the pid)."""
    alive = {}
    for pid, start in processes.items():
        stat = _stat(pid)
        if stat is not None and stat[1] != "Z" and stat[2] == start:
            alive[pid] = start
    return alive


def _workers(processes):
    """The spawn workers among ``processes``."""
    out = []
    for pid in processes:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if b"spawn_main" in fh.read():
                    out.append(pid)
        except OSError:
            pass
    return out


def _start(args, ready=lambda: True):
    """Starts `bnfast ARGS`; returns (process, its descendants) once two local workers
    run and ``ready()`` holds."""
    process = subprocess.Popen([sys.executable, "-m", "bnfast", *args],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               cwd=tempfile.gettempdir())
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        tree = _descendants(process.pid)
        if len(_workers(tree)) >= 2 and ready():
            return process, tree
        assert process.poll() is None, process.communicate()
        time.sleep(0.1)
    process.kill()
    pytest.fail(f"bnfast {' '.join(args)}: no two workers within 60 s")


def _assert_none_survive(process, tree):
    """Every process of ``tree`` gone within 5 s of the parent's end; kills survivors."""
    deadline = time.monotonic() + 5
    while _living(tree) and time.monotonic() < deadline:
        time.sleep(0.05)
    survivors = _living(tree)
    for pid in survivors:
        os.kill(pid, signal.SIGKILL)
    if process.poll() is None:
        process.kill()
    process.communicate(timeout=30)
    assert not survivors, f"outlived their parent: {survivors}"


@pytest.mark.parametrize("args", [SEARCH, SLOW_SEARCH, RUN],
                         ids=["search", "search-slow-chunks", "run"])
def test_sigkill_of_the_parent_leaves_no_process_behind(args):
    if not (os.cpu_count() or 1) >= 2:
        pytest.skip("local workers need two cores")
    process, tree = _start(args)
    assert len(_workers(tree)) >= 2
    process.kill()
    process.wait(timeout=30)
    _assert_none_survive(process, tree)


def _sigterm(process, tree):
    """SIGTERM to a started command: it must exit 130 (as after Ctrl-C) within 30 s,
    leaving no process behind; returns its stderr."""
    process.send_signal(signal.SIGTERM)
    try:
        _, err = process.communicate(timeout=30)
    finally:
        _assert_none_survive(process, tree)
    assert process.returncode == 130, err
    return err


def test_sigterm_of_a_sweep_is_ctrl_c_and_keeps_its_file(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    if not (os.cpu_count() or 1) >= 2:
        pytest.skip("local workers need two cores")
    path = tmp_path / "sweep.parquet"
    err = _sigterm(*_start([*SEARCH, "--out", str(path)], ready=path.exists))
    assert "interrupted;" in err and str(path) in err and "Traceback" not in err
    said = re.search(r"interrupted; (\d+) of 2000 chunks had finished", err)
    assert said, err
    # the count said is the file's: a chunk counts once its write succeeded
    assert 1 <= int(said[1]) == pq.read_table(path).num_rows < 2000


def test_sigterm_of_an_experiment_is_ctrl_c():
    if not (os.cpu_count() or 1) >= 2:
        pytest.skip("local workers need two cores")
    err = _sigterm(*_start(RUN))
    assert "interrupted;" in err and "runs had finished" in err and "Traceback" not in err
