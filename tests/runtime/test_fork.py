"""A process forked after a multi-threaded kernel (multiprocessing's default start on
Linux) runs kernels too: OpenMP's pool does not survive fork(), so the child runs its
chunks on one thread. Run in a subprocess with a timeout: a regression hangs the child,
and must fail this test, not stall the suite."""

import os
import subprocess
import sys
import tempfile
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

SCRIPT = textwrap.dedent("""
    import os, multiprocessing as mp
    import numpy as np, bnfast

    x = np.random.default_rng(0).normal(size=(200_000, 8))
    bnfast.set_num_threads(2)
    parent = bnfast.batch_norm_forward(x)[0]          # the thread pool is started

    pid = os.fork()
    if pid == 0:
        child = bnfast.batch_norm_forward(x)[0]
        os._exit(0 if np.array_equal(child, parent) else 3)
    _, status = os.waitpid(pid, 0)
    assert status == 0, status

    def work(_):
        return float(bnfast.batch_norm_forward(x)[0].sum())
    with mp.get_context("fork").Pool(2) as pool:
        print(pool.map(work, range(4)))
    print("ok")
""")


def test_kernels_run_in_a_forked_child():
    p = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                       timeout=120, cwd=tempfile.gettempdir())
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().endswith("ok")
