"""BN kernels: bnfast against bnfast.reference (NumPy), PyTorch CPU and np.copyto.

Parameters: shape in SHAPES, dtype in DTYPES and, where the code uses threads, the
thread count (bnfast.set_num_threads / torch.set_num_threads). All calls are training
mode with per-channel weight and bias. The reference ignores threads, so it is not
parametrized over them. PyTorch benchmarks are skipped when torch is not importable.

Compare classes at the same parameters, e.g. BnfastKernels.time_forward_out against
Copy.time_copyto (the memory-bandwidth yardstick: 2 passes over the array, where a
training forward needs at least 3). The Ratios class measures the targets of
docs/design/performance.md in one process (ChannelsLast: axis=-1 against axis=1 on
the same values), and Parity checks that bnfast agrees with
the reference (a failed Parity benchmark means wrong numbers).
"""

import functools

import numpy as np

import bnfast
import bnfast.reference as reference

from ._common import (DTYPES, SHAPES, THREADS, TINY_NUMBER, arrays, batch_stats,
                      configure_timing, import_torch, is_tiny, min_time, out_buffer,
                      ratio)

_TIMEOUT = 300  # seconds per parameter combination; the full suite takes ~8-10 min when quiet


class Copy:
    """np.copyto(dst, x) of the same array: reads S bytes and writes S bytes."""

    params = [SHAPES, DTYPES]
    param_names = ["shape", "dtype"]
    timeout = _TIMEOUT

    def setup(self, shape, dtype):
        configure_timing(self, shape)
        self.x = arrays(shape, dtype)[0]
        self.out = out_buffer(shape, dtype)

    def time_copyto(self, shape, dtype):
        np.copyto(self.out, self.x)


class BnfastKernels:
    """bnfast.batch_norm_forward / batch_norm_backward (the C++ kernels)."""

    params = [SHAPES, DTYPES, THREADS]
    param_names = ["shape", "dtype", "threads"]
    timeout = _TIMEOUT

    def setup(self, shape, dtype, threads):
        configure_timing(self, shape)
        bnfast.set_num_threads(threads)
        self.x, self.dy, self.w, self.b = arrays(shape, dtype)
        self.out = out_buffer(shape, dtype)
        self.mean, self.invstd = batch_stats(shape, dtype, bnfast)

    def time_forward_out(self, shape, dtype, threads):
        """Forward into a preallocated output (the 3S memory-bound case)."""
        bnfast.batch_norm_forward(self.x, self.w, self.b, out=self.out)

    def time_forward(self, shape, dtype, threads):
        """Forward allocating its output (what a NumPy caller usually does)."""
        bnfast.batch_norm_forward(self.x, self.w, self.b)

    def time_backward(self, shape, dtype, threads):
        bnfast.batch_norm_backward(self.dy, self.x, self.mean, self.invstd, self.w)

    def time_forward_backward(self, shape, dtype, threads):
        _, mean, invstd = bnfast.batch_norm_forward(self.x, self.w, self.b)
        bnfast.batch_norm_backward(self.dy, self.x, mean, invstd, self.w)


class ReferenceKernels:
    """The pure-NumPy reference (float64 internally, single threaded: no threads
    parameter). ~0.3-1.5 s per call on the large shapes, hence few samples."""

    params = [SHAPES, DTYPES]
    param_names = ["shape", "dtype"]
    timeout = _TIMEOUT

    def setup(self, shape, dtype):
        configure_timing(self, shape, large_repeat=(1, 2, 1.0))
        self.x, self.dy, self.w, self.b = arrays(shape, dtype)
        self.mean, self.invstd = batch_stats(shape, dtype, reference)

    def time_forward(self, shape, dtype):
        reference.batch_norm_forward(self.x, self.w, self.b)

    def time_backward(self, shape, dtype):
        reference.batch_norm_backward(self.dy, self.x, self.mean, self.invstd, self.w)

    def time_forward_backward(self, shape, dtype):
        _, mean, invstd = reference.batch_norm_forward(self.x, self.w, self.b)
        reference.batch_norm_backward(self.dy, self.x, mean, invstd, self.w)


class TorchKernels:
    """PyTorch CPU: F.batch_norm(training=True), and forward + autograd backward with
    gradients for x, weight and bias (what bnfast's backward returns). Skipped when
    torch is not importable."""

    params = [SHAPES, DTYPES, THREADS]
    param_names = ["shape", "dtype", "threads"]
    timeout = _TIMEOUT

    def setup(self, shape, dtype, threads):
        torch = import_torch()
        configure_timing(self, shape)
        torch.set_num_threads(threads)
        self.F = torch.nn.functional
        x, dy, w, b = arrays(shape, dtype)
        self.x = torch.from_numpy(x).requires_grad_()
        self.dy = torch.from_numpy(dy)
        self.w = torch.from_numpy(w.astype(dtype)).requires_grad_()
        self.b = torch.from_numpy(b.astype(dtype)).requires_grad_()
        self.no_grad = torch.no_grad

    def time_forward(self, shape, dtype, threads):
        with self.no_grad():
            self.F.batch_norm(self.x, None, None, self.w, self.b, training=True)

    def time_forward_backward(self, shape, dtype, threads):
        self.x.grad = self.w.grad = self.b.grad = None
        y = self.F.batch_norm(self.x, None, None, self.w, self.b, training=True)
        y.backward(self.dy)


def _max_rel_error(got, want):
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    return float(np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-300))


class Parity:
    """bnfast against bnfast.reference at every shape and dtype: the largest error of
    any output relative to the largest magnitude of that output (max over y, mean,
    invstd; over grad_x, grad_weight, grad_bias). Fails (AssertionError) above a loose
    bound that only catches wrong maths, or when a repeated call at the same thread
    count is not bitwise identical. The tight bounds live in the pytest suite."""

    params = [SHAPES, DTYPES]
    param_names = ["shape", "dtype"]
    unit = "relative error"
    timeout = _TIMEOUT

    def setup(self, shape, dtype):
        bnfast.set_num_threads(2)
        self.x, self.dy, self.w, self.b = arrays(shape, dtype)
        self.tol = 1e-5 if dtype == "float32" else 1e-11

    def track_forward(self, shape, dtype):
        got = bnfast.batch_norm_forward(self.x, self.w, self.b)
        again = bnfast.batch_norm_forward(self.x, self.w, self.b)
        want = reference.batch_norm_forward(self.x, self.w, self.b)
        assert got[0].dtype == self.x.dtype
        assert all(np.array_equal(a, b) for a, b in zip(got, again)), "not deterministic"
        err = max(_max_rel_error(g, r) for g, r in zip(got, want))
        assert err <= self.tol, f"forward differs from the reference: {err:.3g}"
        return err

    def track_backward(self, shape, dtype):
        _, mean, invstd = reference.batch_norm_forward(self.x, self.w, self.b)
        got = bnfast.batch_norm_backward(self.dy, self.x, mean, invstd, self.w)
        again = bnfast.batch_norm_backward(self.dy, self.x, mean, invstd, self.w)
        want = reference.batch_norm_backward(self.dy, self.x, mean, invstd, self.w)
        assert got[0].dtype == self.x.dtype
        assert all(np.array_equal(a, b) for a, b in zip(got, again)), "not deterministic"
        err = max(_max_rel_error(g, r) for g, r in zip(got, want))
        assert err <= self.tol, f"backward differs from the reference: {err:.3g}"
        return err


_RATIO_CASES = {
    "(65536, 256) float32": ((65536, 256), "float32"),
    "(64, 64, 56, 56) float32": ((64, 64, 56, 56), "float32"),
    "(3, 2) float64": ((3, 2), "float64"),
}


class _RatioSetup:
    """The operations of one case as closures, timed against each other in one process
    at 2 threads (minimum of repeats, the two sides interleaved)."""

    params = [list(_RATIO_CASES)]
    param_names = ["case"]
    timeout = _TIMEOUT

    def setup(self, case):
        shape, dtype = _RATIO_CASES[case]
        bnfast.set_num_threads(2)
        x, dy, w, b = arrays(shape, dtype)
        out = out_buffer(shape, dtype)
        tiny = is_tiny(shape)
        self.number = TINY_NUMBER if tiny else 1
        self.samples = 40 if tiny else 7
        self.ref_samples = 40 if tiny else 3

        def forward_backward():
            _, mean, invstd = bnfast.batch_norm_forward(x, w, b)
            bnfast.batch_norm_backward(dy, x, mean, invstd, w)

        def ref_forward_backward():
            _, mean, invstd = reference.batch_norm_forward(x, w, b)
            reference.batch_norm_backward(dy, x, mean, invstd, w)

        mean, invstd = batch_stats(shape, dtype, bnfast)
        self.ops = {
            "copy": lambda: np.copyto(out, x),
            "forward_out": lambda: bnfast.batch_norm_forward(x, w, b, out=out),
            "backward_out": lambda: bnfast.batch_norm_backward(dy, x, mean, invstd, w,
                                                               out=out),
            "forward": lambda: bnfast.batch_norm_forward(x, w, b),
            "forward_backward": forward_backward,
            "ref_forward": lambda: reference.batch_norm_forward(x, w, b),
            "ref_forward_backward": ref_forward_backward,
        }
        self.arrays = (x, dy, w, b, dtype)

    def _ratio(self, a, b):
        return ratio(self.ops[a], self.ops[b], number=self.number, repeat=self.samples)


class Ratios(_RatioSetup):
    """bnfast against the copy yardstick and the NumPy reference.

    forward_out_over_copy: time of forward with out= / time of np.copyto (lower is
    better; target <= 2.0, aim 1.6). backward_out_over_copy: likewise the backward
    with out= (grad_x into a preallocated array; it reads x and dy, 5S at worst
    against the copy's 2S). speedup_vs_reference_*: reference time / bnfast time
    (higher is better; targets >= 8 on large arrays, >= 5 on (3, 2)).
    """

    def track_forward_out_over_copy(self, case):
        return self._ratio("forward_out", "copy")
    track_forward_out_over_copy.unit = "ratio"

    def track_backward_out_over_copy(self, case):
        return self._ratio("backward_out", "copy")
    track_backward_out_over_copy.unit = "ratio"

    def track_speedup_vs_reference_forward(self, case):
        ref = min_time(self.ops["ref_forward"], self.number, repeat=self.ref_samples)
        return ref / min_time(self.ops["forward"], self.number, repeat=self.samples)
    track_speedup_vs_reference_forward.unit = "x"

    def track_speedup_vs_reference_forward_backward(self, case):
        ref = min_time(self.ops["ref_forward_backward"], self.number, repeat=self.ref_samples)
        return ref / min_time(self.ops["forward_backward"], self.number, repeat=self.samples)
    track_speedup_vs_reference_forward_backward.unit = "x"


@functools.lru_cache(maxsize=1)
def _channels_last_case():
    """The float32 (64, 64, 56, 56) x of ``arrays`` and the same values channels-last,
    (64, 56, 56, 64) C-contiguous, with output buffers and the bnfast statistics."""
    shape, dtype = (64, 64, 56, 56), "float32"
    x, dy, w, b = arrays(shape, dtype)
    mean, invstd = batch_stats(shape, dtype, bnfast)
    x_last = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    dy_last = np.ascontiguousarray(dy.transpose(0, 2, 3, 1))
    out, out_last = out_buffer(shape, dtype), np.zeros_like(x_last)
    return (x, dy, out), (x_last, dy_last, out_last), w, b, mean, invstd


class ChannelsLast:
    """Channels-last against channels-first on the same values (issue 14's target:
    the same speed): time of the (64, 56, 56, 64) float32 call with axis=-1 / time of
    the (64, 64, 56, 56) call with axis=1, both with out=, 2 threads, interleaved in
    one process (minimum of repeats). Lower is better; 1.0 is the target."""

    timeout = _TIMEOUT
    unit = "ratio"

    def setup(self):
        bnfast.set_num_threads(2)
        first, last, self.w, self.b, self.mean, self.invstd = _channels_last_case()
        self.first, self.last = first, last

    def _forward(self, data, axis):
        x, _, out = data
        return lambda: bnfast.batch_norm_forward(x, self.w, self.b, out=out, axis=axis)

    def _backward(self, data, axis):
        x, dy, out = data
        return lambda: bnfast.batch_norm_backward(dy, x, self.mean, self.invstd, self.w,
                                                  out=out, axis=axis)

    def track_channels_last_to_first(self):
        return ratio(self._forward(self.last, -1), self._forward(self.first, 1), repeat=7)
    track_channels_last_to_first.unit = "ratio"

    def track_backward_channels_last_to_first(self):
        return ratio(self._backward(self.last, -1), self._backward(self.first, 1),
                     repeat=7)
    track_backward_channels_last_to_first.unit = "ratio"


class TorchRatios(_RatioSetup):
    """bnfast time / PyTorch CPU time, both allocating their outputs (lower is better;
    target <= 0.6, aim 0.4). Skipped when torch is not importable."""

    def setup(self, case):
        torch = import_torch()
        super().setup(case)
        torch.set_num_threads(2)
        F = torch.nn.functional
        x, dy, w, b, dtype = self.arrays
        tx = torch.from_numpy(x).requires_grad_()
        tdy = torch.from_numpy(dy)
        tw = torch.from_numpy(w.astype(dtype)).requires_grad_()
        tb = torch.from_numpy(b.astype(dtype)).requires_grad_()

        def torch_forward():
            with torch.no_grad():
                F.batch_norm(tx, None, None, tw, tb, training=True)

        def torch_forward_backward():
            tx.grad = tw.grad = tb.grad = None
            F.batch_norm(tx, None, None, tw, tb, training=True).backward(tdy)

        self.ops["torch_forward"] = torch_forward
        self.ops["torch_forward_backward"] = torch_forward_backward

    def track_forward_over_torch(self, case):
        return self._ratio("forward", "torch_forward")
    track_forward_over_torch.unit = "ratio"

    def track_forward_backward_over_torch(self, case):
        return self._ratio("forward_backward", "torch_forward_backward")
    track_forward_backward_over_torch.unit = "ratio"


class TinyCall:
    """One Python -> C++ call on a (3, 2) float64 array, in nanoseconds (issue 14's
    target: <= 1000 ns; NumPy's reference ~10 us). Overhead bound: the fast paths of
    batch_norm_forward and batch_norm_backward decide and run the common call in one
    step."""

    unit = "ns"

    def setup(self):
        self.x, self.dy = arrays((3, 2), "float64")[:2]
        self.out = np.empty_like(self.x)
        _, self.mean, self.invstd = bnfast.batch_norm_forward(self.x)

    def _min_ns(self, call):
        return 1e9 * min_time(call, number=20000, repeat=7, budget=3.0)

    def track_forward_ns(self):
        return self._min_ns(lambda: bnfast.batch_norm_forward(self.x))
    track_forward_ns.unit = "ns"

    def track_forward_out_ns(self):
        return self._min_ns(lambda: bnfast.batch_norm_forward(self.x, out=self.out))
    track_forward_out_ns.unit = "ns"

    def track_backward_ns(self):
        return self._min_ns(lambda: bnfast.batch_norm_backward(self.dy, self.x, self.mean,
                                                                self.invstd))
    track_backward_ns.unit = "ns"
