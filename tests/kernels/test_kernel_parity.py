"""Parity of bnfast's kernels with the pure-NumPy reference (bnfast.reference).

Tolerances are the elementwise error bounds of kernel_tolerances.py, derived from the
kernels' rounding: float64 within ~1e-12 relative to the normalized magnitudes (the
float64 statistics over up to ~1e3 terms per accumulator, with margin), float32
within 8 * 2**-24 of the normalized value plus the same statistics term.
"""

import numpy as np
import pytest

import bnfast
from bnfast import reference
from kernel_tolerances import (assert_within, backward_bound, forward_bound,
                               grad_param_bounds, stats_bounds, unit_roundoff)

# Small shapes for every branch, then shapes above the serial threshold (2**16
# elements) that the `threads` fixture runs with 1 and 2 threads:
#   (3, 30000)       rows path, row chunks, several 512-column tiles
#   (70000, 3)       rows path, many row blocks merged with Chan's formula, row chunks
#   (8, 4, 4096)     planes path, channels split across threads (fused forward)
#   (64, 1, 2048)    planes path, one channel: its samples split across threads
#   (4, 1, 20000)    planes longer than one 8192-value block, samples split
# (3, 5000) is wide but below the threshold: one thread, ten column tiles.
SHAPES = [(2, 3), (5, 1), (17, 4), (4, 3, 7), (3, 4, 5, 6), (6, 2, 1), (2, 3, 10000),
          (3, 5000), (3, 30000), (70000, 3), (8, 4, 4096), (64, 1, 2048), (4, 1, 20000)]
DTYPES = [np.float32, np.float64]


def make_input(rng, shape, dtype, offset=None):
    """Per-channel offsets and spreads, so channels differ."""
    c = shape[1]
    bshape = (1, c) + (1,) * (len(shape) - 2)
    loc = rng.uniform(-3, 3, c) if offset is None else np.full(c, offset)
    scale = rng.uniform(0.5, 2.0, c)
    x = loc.reshape(bshape) + scale.reshape(bshape) * rng.standard_normal(shape)
    return x.astype(dtype)


def make_affine(rng, c, affine):
    if not affine:
        return None, None
    return rng.normal(size=c), rng.normal(size=c)


def check_forward(x, y, mean, invstd, weight, bias):
    """bnfast's (y, mean, invstd) against the reference's, within the derived bounds."""
    ry, rmean, rinvstd = reference.batch_norm_forward(x, weight, bias)
    assert y.dtype == x.dtype and y.shape == x.shape
    assert mean.dtype == np.float64 and invstd.dtype == np.float64
    mean_bound, invstd_rtol = stats_bounds(x)
    assert_within(mean, rmean, mean_bound, "mean")
    assert_within(invstd, rinvstd, invstd_rtol * rinvstd, "invstd")
    ry64 = reference.batch_norm_forward(x.astype(np.float64), weight, bias)[0]
    return assert_within(y, ry64, forward_bound(x, rmean, rinvstd, weight, bias), "y")


@pytest.mark.parametrize("affine", [False, True], ids=["plain", "affine"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_forward_and_backward_parity(rng, threads, shape, dtype, affine):
    x = make_input(rng, shape, dtype)
    weight, bias = make_affine(rng, shape[1], affine)
    y, mean, invstd = bnfast.batch_norm_forward(x, weight, bias)
    check_forward(x, y, mean, invstd, weight, bias)

    g = rng.standard_normal(shape).astype(dtype)
    _, rmean, rinvstd = reference.batch_norm_forward(x)
    gx, gw, gb = bnfast.batch_norm_backward(g, x, rmean, rinvstd, weight)
    rgx, rgw, rgb = reference.batch_norm_backward(g, x.astype(np.float64), rmean, rinvstd,
                                                  weight)
    assert gx.dtype == x.dtype and gx.shape == x.shape
    assert_within(gx, rgx, backward_bound(g, x, rmean, rinvstd, weight), "grad_x")
    gw_bound, gb_bound = grad_param_bounds(g, x, rmean, rinvstd)
    assert_within(gw, rgw, gw_bound, "grad_weight")
    assert_within(gb, rgb, gb_bound, "grad_bias")


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("shape", [(2, 3), (4, 3, 7), (3, 4, 5, 6), (3, 30000), (70000, 3),
                                   (8, 4, 4096), (64, 1, 2048)], ids=str)
def test_batch_norm_train_and_eval_parity(rng, threads, shape, dtype):
    x = make_input(rng, shape, dtype)
    c = shape[1]
    weight, bias = make_affine(rng, c, True)
    rm0, rv0 = rng.normal(size=c), rng.uniform(0.5, 2, c)
    rm, rv, ref_rm, ref_rv = rm0.copy(), rv0.copy(), rm0.copy(), rv0.copy()
    y = bnfast.batch_norm(x, rm, rv, weight, bias, training=True, momentum=0.2, eps=1e-3)
    ry, rmean, rinvstd = reference.batch_norm_forward(x.astype(np.float64), weight, bias, 1e-3)
    reference.batch_norm(x, ref_rm, ref_rv, weight, bias, training=True, momentum=0.2,
                         eps=1e-3)
    assert_within(y, ry, forward_bound(x, rmean, rinvstd, weight, bias), "y (training)")
    mean_bound, _ = stats_bounds(x)
    assert_within(rm, ref_rm, 0.2 * mean_bound + 1e-15 * np.abs(ref_rm), "running_mean")
    assert_within(rv, ref_rv, 1e-12 * np.abs(ref_rv), "running_var")

    # eval mode with the updated running statistics
    y = bnfast.batch_norm(x, rm, rv, weight, bias, training=False, eps=1e-3)
    ry = reference.batch_norm(x.astype(np.float64), rm, rv, weight, bias, eps=1e-3)
    # invstd = 1/sqrt(rv + eps) is computed in float64 (2 roundings): inside STAT_RTOL
    assert_within(y, ry, forward_bound(x, rm, 1 / np.sqrt(rv + 1e-3), weight, bias), "y (eval)")


def test_wide_float64_is_float64_accurate(rng, threads):
    """The reasoning behind STAT_RTOL, observed: on the largest inputs the float64
    statistics agree with the reference far inside 1e-12 (a bound we do not loosen)."""
    x = make_input(rng, (70000, 3), np.float64)
    _, mean, invstd = bnfast.batch_norm_forward(x)
    _, rmean, rinvstd = reference.batch_norm_forward(x)
    assert np.max(np.abs(mean - rmean) / np.max(np.abs(x), axis=0)) < 1e-14
    assert np.max(np.abs(invstd / rinvstd - 1)) < 1e-13


# ---- large offset: float32 data at mean 1e4, std 1 ---------------------------------

@pytest.mark.parametrize("shape", [(4096, 3), (16, 3, 8, 8), (70000, 3), (8, 4, 4096)],
                         ids=str)
def test_float32_large_offset_normalizes_to_float32_accuracy(rng, threads, shape):
    x = make_input(rng, shape, np.float32, offset=1e4)
    y, mean, invstd = bnfast.batch_norm_forward(x)
    ratio = check_forward(x, y, mean, invstd, None, None)
    assert ratio <= 1
    # In plain numbers: y ~ N(0, 1), and its error is a few float32 ulps of y, where
    # computing x * invstd - mean * invstd in float32 would be off by ~u32 * 1e4 = 6e-4.
    y64 = reference.batch_norm_forward(x.astype(np.float64))[0]
    assert np.max(np.abs(y - y64)) < 16 * unit_roundoff(np.float32) * np.max(np.abs(y64))

    g = rng.standard_normal(shape).astype(np.float32)
    _, rmean, rinvstd = reference.batch_norm_forward(x)
    gx = bnfast.batch_norm_backward(g, x, rmean, rinvstd)[0]
    rgx = reference.batch_norm_backward(g, x.astype(np.float64), rmean, rinvstd)[0]
    assert_within(gx, rgx, backward_bound(g, x, rmean, rinvstd), "grad_x")


# ---- layouts: non-contiguous, negative-stride, Fortran-order inputs -----------------

def _layouts(rng, shape, dtype):
    """(name, x) pairs of inputs of `shape` that are not C-contiguous."""
    big = make_input(rng, (shape[0] * 2, shape[1] * 3) + shape[2:], dtype)
    yield "slices", big[::2, 1::3]
    yield "negative strides", make_input(rng, shape, dtype)[::-1, ::-1]
    yield "fortran", np.asfortranarray(make_input(rng, shape, dtype))
    rev = make_input(rng, shape[::-1], dtype)
    yield "transposed", rev.transpose(tuple(range(len(shape)))[::-1])


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("shape", [(6, 3), (5, 3, 4), (3, 2, 4, 5), (70000, 3),
                                   (8, 4, 4096)], ids=str)
def test_layouts_match_contiguous(rng, threads, shape, dtype):
    c = shape[1]
    weight, bias = make_affine(rng, c, True)
    for name, x in _layouts(rng, shape, dtype):
        assert x.shape == shape and not x.flags.c_contiguous, name
        xc = np.ascontiguousarray(x)
        y, mean, invstd = bnfast.batch_norm_forward(x, weight, bias)
        yc, meanc, invstdc = bnfast.batch_norm_forward(xc, weight, bias)
        # the kernel sees the same contiguous values, so results are identical
        np.testing.assert_array_equal(y, yc, err_msg=name)
        np.testing.assert_array_equal(mean, meanc, err_msg=name)
        np.testing.assert_array_equal(invstd, invstdc, err_msg=name)
        check_forward(x, y, mean, invstd, weight, bias)

        g = np.asfortranarray(rng.standard_normal(shape).astype(dtype))[::-1]
        out = bnfast.batch_norm_backward(g, x, mean, invstd, weight)
        outc = bnfast.batch_norm_backward(np.ascontiguousarray(g), xc, mean, invstd, weight)
        for a, b in zip(out, outc):
            np.testing.assert_array_equal(a, b, err_msg=name)

        rm, rv = np.zeros(c), np.ones(c)
        rmc, rvc = np.zeros(c), np.ones(c)
        y = bnfast.batch_norm(x, rm, rv, weight, bias, training=True)
        yc = bnfast.batch_norm(xc, rmc, rvc, weight, bias, training=True)
        np.testing.assert_array_equal(y, yc, err_msg=name)
        np.testing.assert_array_equal(rm, rmc, err_msg=name)
        np.testing.assert_array_equal(rv, rvc, err_msg=name)
        np.testing.assert_array_equal(bnfast.batch_norm(x, rm, rv, weight, bias),
                                      bnfast.batch_norm(xc, rm, rv, weight, bias),
                                      err_msg=name)


def test_strided_running_stats_are_updated_in_place(rng):
    x = make_input(rng, (10, 3, 4), np.float64)
    buf = np.arange(12, dtype=np.float64)
    rm, rv = buf[::4], buf[::-4]  # strided and negative-stride views into one buffer
    before = buf.copy()
    ref_rm, ref_rv = rm.copy(), rv.copy()
    bnfast.batch_norm(x, rm, rv, training=True, momentum=0.3)
    reference.batch_norm(x, ref_rm, ref_rv, training=True, momentum=0.3)
    assert_within(rm, ref_rm, 1e-12 * (np.abs(ref_rm) + 1), "running_mean")
    assert_within(rv, ref_rv, 1e-12 * (np.abs(ref_rv) + 1), "running_var")
    untouched = np.ones(12, bool)
    untouched[::4] = untouched[::-4] = False
    np.testing.assert_array_equal(buf[untouched], before[untouched])


# ---- out= ----------------------------------------------------------------------------

def _out_buffers(shape, dtype):
    """(name, out, base) with base the array out is a view of (to check the rest of it
    is untouched)."""
    base = np.full((shape[0], 2 * shape[1]) + shape[2:], np.nan, dtype=dtype)
    yield "contiguous", np.empty(shape, dtype), None
    yield "strided", base[:, ::2], base
    yield "fortran", np.empty(shape, dtype, order="F"), None


def _forward_backward(rng, shape, dtype):
    """Random x, grad_y, weight, bias and what bnfast returns for them without out=:
    (x, g, weight, bias, (y, mean, invstd), (grad_x, grad_weight, grad_bias))."""
    x = make_input(rng, shape, dtype)
    g = rng.standard_normal(shape).astype(dtype)
    weight, bias = make_affine(rng, shape[1], True)
    forward = bnfast.batch_norm_forward(x, weight, bias)
    backward = bnfast.batch_norm_backward(g, x, forward[1], forward[2], weight)
    return x, g, weight, bias, forward, backward


@pytest.mark.parametrize("dtype", DTYPES + [np.float16], ids=["float32", "float64", "float16"])
@pytest.mark.parametrize("shape", [(7, 3), (4, 3, 5), (70000, 3), (8, 4, 4096)], ids=str)
def test_out_arrays(rng, threads, shape, dtype):
    x, g, weight, bias, (y, mean, invstd), (gx, gw, gb) = _forward_backward(rng, shape, dtype)
    assert y.dtype == dtype and gx.dtype == dtype
    for name, out, base in _out_buffers(shape, dtype):
        res = bnfast.batch_norm_forward(x, weight, bias, out=out)
        assert res[0] is out, name
        np.testing.assert_array_equal(out, y, err_msg=name)
        np.testing.assert_array_equal(res[1], mean, err_msg=name)
        if base is not None:
            assert np.all(np.isnan(base[:, 1::2])), name
        res = bnfast.batch_norm_backward(g, x, mean, invstd, weight, out=out)
        assert res[0] is out, name
        np.testing.assert_array_equal(out, gx, err_msg=name)
        np.testing.assert_array_equal(res[1], gw, err_msg=name)
        np.testing.assert_array_equal(res[2], gb, err_msg=name)
        if base is not None:
            assert np.all(np.isnan(base[:, 1::2])), name


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("shape", [(7, 3), (4, 3, 5), (70000, 3), (8, 4, 4096),
                                   (64, 1, 2048)], ids=str)
def test_in_place(rng, threads, shape, dtype):
    x, g, weight, bias, (y, mean, invstd), (gx, _, _) = _forward_backward(rng, shape, dtype)

    xi = x.copy()
    assert bnfast.batch_norm_forward(xi, weight, bias, out=xi)[0] is xi
    np.testing.assert_array_equal(xi, y)

    gi = g.copy()
    assert bnfast.batch_norm_backward(gi, x, mean, invstd, weight, out=gi)[0] is gi
    np.testing.assert_array_equal(gi, gx)

    xi = x.copy()
    assert bnfast.batch_norm_backward(g, xi, mean, invstd, weight, out=xi)[0] is xi
    np.testing.assert_array_equal(xi, gx)

    # a non-contiguous x written in place through its own view
    base = np.zeros((shape[0], 2 * shape[1]) + shape[2:], dtype)
    xs = base[:, ::2]
    xs[...] = x
    assert bnfast.batch_norm_forward(xs, weight, bias, out=xs)[0] is xs
    np.testing.assert_array_equal(xs, y)
    assert not base[:, 1::2].any()


def test_results_are_deterministic_for_a_thread_count(rng, threads):
    x = make_input(rng, (70000, 3), np.float32)
    first = bnfast.batch_norm_forward(x)
    for _ in range(3):
        again = bnfast.batch_norm_forward(x)
        for a, b in zip(first, again):
            np.testing.assert_array_equal(a, b)


def test_reference_does_not_import_the_core():
    """bnfast.reference is an independent oracle: no use of the compiled core."""
    import ast
    import inspect

    import bnfast.reference.batchnorm as ref_module
    imported = set()
    for node in ast.walk(ast.parse(inspect.getsource(ref_module))):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add("." * node.level + (node.module or ""))
    assert imported == {"numpy", "warnings"}
