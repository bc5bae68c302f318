"""Sweeps: Lemma 4.5 instances checked per second (the native batched checker), on one
core and through bnfast.search.lemma_4_5 on two worker processes; the 4-million-instance
Example 3.2 sweep end to end (issue 13's targets: >= 1e6 instances/s on 2 cores for
dim <= 4, samples <= 16; 4e6 Example 3.2 instances in a few seconds)."""

import concurrent.futures as cf
import multiprocessing
import time

import numpy as np

from bnfast.search import _lemma_4_5_batch as native
from bnfast.search import lemma_4_5
from bnfast.search.lemma_4_5 import EXAMPLE_3_2

from ._common import min_time

#: (data, dim, samples): the smallest and the largest random instances of the target,
#: and Example 3.2's data.
CASES = ["random-2-3", "random-4-16", "example-3-2"]


def _case(name):
    data, dim, samples = ("example-3-2", 2, 3) if name == "example-3-2" else \
        ("random", *map(int, name.split("-")[1:]))
    return data, dim, samples


class Lemma45Throughput:
    """Instances per second: the native loop on one core, and the sweep on a warm pool
    of two worker processes (steady state: worker start-up is not counted)."""

    params = [CASES]
    param_names = ["case"]
    timeout = 300
    number = 1
    repeat = 1

    def setup(self, case):
        self.data, self.dim, self.samples = _case(case)
        self.pool = cf.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn"))
        lemma_4_5(1000, data=self.data, dim=self.dim, samples=self.samples,
                  executor=self.pool, progress=False, counterexamples=0)   # warm workers

    def teardown(self, case):
        self.pool.shutdown()

    def track_native_one_core(self, case):
        fixed = EXAMPLE_3_2 if self.data == "example-3-2" else (None, None)
        n = 1 << 18
        seconds = min_time(lambda: native.check_chunk(1, n, self.dim, self.samples, *fixed,
                                                      keep=0), repeat=3, budget=20.0)
        return n / seconds
    track_native_one_core.unit = "instances/s"

    def track_sweep_two_workers(self, case):
        n = 16 << 18     # 16 chunks: 8 per worker
        best = np.inf
        for _ in range(3):
            start = time.perf_counter()
            lemma_4_5(n, data=self.data, dim=self.dim, samples=self.samples,
                      executor=self.pool, progress=False, counterexamples=0)
            best = min(best, time.perf_counter() - start)
        return n / best
    track_sweep_two_workers.unit = "instances/s"


class Example32Sweep:
    """bnfast.search.lemma_4_5(4_000_000, data="example-3-2") as a user calls it: local
    worker processes started by the call, 5 counterexamples certified exactly."""

    timeout = 300
    number = 1
    repeat = (1, 3, 60.0)

    def time_four_million(self):
        lemma_4_5(4_000_000, data="example-3-2", progress=False)
