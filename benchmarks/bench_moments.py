"""Population statistics (bnfast.stats; docs/math/population_statistics.md, "Speed").

Streaming: bnfast.population_stats over a list of chunks (each reduced by the moments
kernel, merged pairwise in double-double) against np.copyto of one chunk, per chunk, 2
threads. track_bandwidth_vs_copy is copy time / reduction time per chunk: the reduction's
bandwidth (bytes of x per second) over np.copyto's (bytes copied per second); the target
of docs/design/performance.md is >= 0.8. A reduction reads each byte once where the copy
reads and writes it, so memory allows ~2; the kernel's arithmetic (two passes over a
cache-sized block in float64, the corrected sums) is what decides.

DaskBeyondMemory: population_stats of a dask.array 8 times one worker's memory limit
(2 worker processes of 256 MiB, 2 GiB of float64 normals made on the workers in 8 MiB
blocks): each block is reduced where it is made and only the small Moments travel, so
it completes with nothing spilled to disk (track_spilled_mib, target 0);
time_reduction is its wall time (mostly the workers' time to draw the normals).
"""

import numpy as np

import bnfast
from bnfast.stats import population_moments

from ._common import arrays, out_buffer, ratio

_TIMEOUT = 300

#: chunk shape, dtype, chunks per stream
_STREAM_CASES = {
    "(65536,256)-float32": ((65536, 256), "float32", 4),
    "(65536,256)-float64": ((65536, 256), "float64", 4),
    "(64,64,56,56)-float32": ((64, 64, 56, 56), "float32", 4),
    "(64,64,56,56)-float64": ((64, 64, 56, 56), "float64", 4),
}


class Streaming:
    """population_stats over a list of chunks against np.copyto, per chunk (2 threads)."""

    params = [list(_STREAM_CASES)]
    param_names = ["case"]
    timeout = _TIMEOUT
    number = 1
    repeat = (2, 5, 4.0)
    warmup_time = 0.0

    def setup(self, case):
        shape, dtype, chunks = _STREAM_CASES[case]
        bnfast.set_num_threads(2)
        x = arrays(shape, dtype)[0]
        self.out = out_buffer(shape, dtype)
        # the same array repeated: each chunk still streams from memory (64-100 MB each,
        # far beyond the caches), without building 4 of them per benchmark process
        self.stream = [x] * chunks
        self.x = x

    def time_stream(self, case):
        population_moments(self.stream)

    def time_copyto_chunk(self, case):
        np.copyto(self.out, self.x)

    def track_bandwidth_vs_copy(self, case):
        per_chunk = len(self.stream)
        return 1.0 / ratio(lambda: population_moments(self.stream),
                           lambda: [np.copyto(self.out, self.x) for _ in range(per_chunk)],
                           repeat=7)
    track_bandwidth_vs_copy.unit = "ratio"


class DaskBeyondMemory:
    """A dask.array 8 times a worker's memory limit, reduced on a LocalCluster."""

    timeout = _TIMEOUT
    number = 1
    repeat = (1, 3, 60.0)
    warmup_time = 0.0
    LIMIT = "256MiB"

    def setup(self):
        try:
            import dask.array as da
            from distributed import Client, LocalCluster
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise NotImplementedError(f"dask.distributed is not importable ({exc})") from exc
        self.cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                    dashboard_address=None, memory_limit=self.LIMIT)
        self.client = Client(self.cluster)
        self.x = da.random.default_rng(0).standard_normal((1 << 25, 8), chunks=(1 << 17, 8))

    def teardown(self):
        self.client.close()
        self.cluster.close()

    def time_reduction(self):
        population_moments(self.x, client=self.client)

    def track_spilled_mib(self):
        population_moments(self.x, client=self.client)
        spilled = self.client.run(lambda dask_worker: sum(dask_worker.data.spilled_total))
        return sum(spilled.values()) / 2**20
    track_spilled_mib.unit = "MiB"

    def track_array_over_worker_limit(self):
        return self.x.nbytes / (256 * 2**20)
    track_array_over_worker_limit.unit = "x"
