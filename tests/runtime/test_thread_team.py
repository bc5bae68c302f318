"""The thread team behind the kernels' parallel regions (csrc/core/runtime/thread_team.cpp):
the same bits whoever runs a chunk, no deadlock when Python threads call at once, workers
that wake after sleeping, and no CPU burnt by an idle process. Each check runs in a
subprocess with a timeout: a deadlock must fail the test, not stall the suite."""

import subprocess
import sys
import tempfile
import textwrap

import pytest

PRELUDE = textwrap.dedent("""
    import os, threading, time, resource
    import numpy as np, bnfast

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40_000, 16))
    dy = rng.normal(size=x.shape)

    def forward_backward():
        y, mean, invstd = bnfast.batch_norm_forward(x)[:3]
        dx = bnfast.batch_norm_backward(dy, x, mean, invstd)[0]
        return y, dx

    def same(a, b):
        return all(np.array_equal(u, v) for u, v in zip(a, b))
""")


def run(body, timeout=120):
    p = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(body)],
                       capture_output=True, text=True, timeout=timeout,
                       cwd=tempfile.gettempdir())
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.strip().endswith("ok"), p.stdout


def test_python_threads_calling_at_once_get_the_single_caller_bits():
    """Four Python threads (the kernels release the GIL) share one team: a caller that
    finds it busy runs its chunks itself, with the same chunk count, so every result
    is bit-identical to a lone call's."""
    run("""
        bnfast.set_num_threads(2)
        want = forward_backward()
        bad = []
        def worker():
            for _ in range(40):
                if not same(forward_backward(), want):
                    bad.append(1)
        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads: t.start()
        for t in threads: t.join()
        assert not bad, len(bad)
        print("ok")
    """)


@pytest.mark.parametrize("threads", [3, 8])
def test_more_threads_than_cores(threads):
    """More workers than cores (they spin, then sleep): results still repeat bit for
    bit for the thread count, and the run ends."""
    run(f"""
        bnfast.set_num_threads({threads})
        want = forward_backward()
        for _ in range(20):
            assert same(forward_backward(), want)
        print("ok")
    """)


def test_workers_wake_after_sleeping():
    """After an idle spell the workers are asleep on their condition: the next call
    wakes them (a lost wake-up would hang here) and gets the same bits."""
    run("""
        bnfast.set_num_threads(2)
        want = forward_backward()
        for pause in (0.0, 0.01, 0.05, 0.2, 0.0, 0.2):
            time.sleep(pause)
            assert same(forward_backward(), want)
        print("ok")
    """)


def test_an_idle_process_burns_no_cpu():
    """Workers spin only briefly after a job, then sleep: half a second of idling after
    a parallel call costs (nearly) no CPU time."""
    run("""
        bnfast.set_num_threads(2)
        forward_backward()
        time.sleep(0.05)        # past the spin
        before = resource.getrusage(resource.RUSAGE_SELF)
        time.sleep(0.5)
        after = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        assert cpu < 0.05, cpu
        print("ok")
    """)


def test_thread_count_changes_between_calls():
    """1 -> 2 -> 3 -> 2 -> 1 threads: each count gives its own repeatable bits (the team
    grows on demand; fewer chunks leave the extra workers out of the job)."""
    run("""
        first = {}
        for n in (1, 2, 3, 2, 1, 3):
            bnfast.set_num_threads(n)
            got = forward_backward()
            first.setdefault(n, got)
            assert same(got, first[n]), n
        print("ok")
    """)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/task")
def test_workers_left_out_of_the_jobs_stay_asleep():
    """A team grown to 64 workers, then given jobs of 2 chunks (set_num_threads(64), then
    2): the 62 workers no job needs stay asleep. Each job used to wake them all (one
    condition for the team) and set them spinning again, so a 2-chunk job cost time in
    proportion to the team's size (~20 ms a job for a team of 1024 on 2 cores)."""
    run("""
        def activity():
            # per thread but the main one: (voluntary context switches, CPU ticks)
            out = {}
            for tid in os.listdir("/proc/self/task"):
                if int(tid) == os.getpid():
                    continue
                try:
                    with open(f"/proc/self/task/{tid}/status") as f:
                        sw = [int(l.split()[1]) for l in f if l.startswith("voluntary_ctxt")][0]
                    with open(f"/proc/self/task/{tid}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                    out[tid] = (sw, int(fields[11]) + int(fields[12]))
                except (OSError, IndexError):
                    pass
            return out

        bnfast.set_num_threads(64)
        big = rng.normal(size=(131_072, 16))    # 64 chunks: the team grows to 63 workers
        bnfast.batch_norm_forward(big)
        bnfast.set_num_threads(2)
        want = forward_backward()
        time.sleep(0.2)                          # every worker past its spin, asleep
        before = activity()
        for i in range(60):
            assert same(forward_backward(), want)
            if i % 2:
                time.sleep(0.002)                # worker 0 too falls asleep at times
        after = activity()
        busy = [t for t in after if t in before and
                (after[t][0] - before[t][0] > 5 or after[t][1] - before[t][1] > 2)]
        assert len(before) >= 63, len(before)
        assert len(busy) <= 2, (len(busy), [(after[t][0] - before[t][0], after[t][1] - before[t][1]) for t in busy][:8])
        print("ok")
    """)
