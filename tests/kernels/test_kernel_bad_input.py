"""The kernel rows of docs/design/argument_rules.md: every bad input gets a clear exception naming the
argument, and a call that fails modifies nothing (running stats, out, x)."""

import re
import warnings

import numpy as np
import pytest

import bnfast
from bnfast import reference

# ---- one value per channel, ndim, empty -------------------------------------------


@pytest.mark.parametrize("shape", [(1, 3), (1, 3, 1), (1, 2, 1, 1)], ids=str)
def test_training_needs_more_than_one_value_per_channel(shape):
    x = np.ones(shape)
    message = re.escape("Expected more than 1 value per channel when training")
    with pytest.raises(ValueError, match=message):
        bnfast.batch_norm(x, training=True)
    with pytest.raises(ValueError, match=message):
        bnfast.batch_norm(x, np.zeros(shape[1]), np.ones(shape[1]), training=True)
    with pytest.raises(ValueError, match=message):
        bnfast.batch_norm_forward(x)
    with pytest.raises(ValueError, match=message):
        reference.batch_norm_forward(x)


def every_entry_point_raises(x, exc, match, channels, grad_y=None):
    """batch_norm (training and eval), batch_norm_forward and batch_norm_backward (with
    grad_y, default x) all raise exc matching `match` on x."""
    stats = (np.zeros(channels), np.ones(channels))
    calls = [lambda: bnfast.batch_norm(x, training=True), lambda: bnfast.batch_norm(x, *stats),
             lambda: bnfast.batch_norm_forward(x),
             lambda: bnfast.batch_norm_backward(x if grad_y is None else grad_y, x, *stats)]
    for call in calls:
        with pytest.raises(exc, match=match):
            call()


@pytest.mark.parametrize("x", [np.float64(1.0), np.ones(3), [1.0, 2.0]], ids=["0d", "1d", "list"])
def test_fewer_than_two_dimensions(x):
    every_entry_point_raises(x, ValueError, "x must have at least 2 dimensions", channels=1)


@pytest.mark.parametrize("shape", [(0, 3), (3, 0), (2, 3, 0), (0, 0)], ids=str)
def test_empty_input(shape):
    every_entry_point_raises(np.ones(shape), ValueError, "x must not be empty",
                             channels=shape[1])


# ---- per-channel arrays of the wrong length -----------------------------------------

def _both_shapes(name, got):
    """The message names the argument, the expected (3,) and the shape it got."""
    return re.escape(name) + r".*\(3,\).*" + re.escape(str(got))


WRONG_SHAPES = [(4,), (2,), (1, 3), ()]


@pytest.mark.parametrize("got", WRONG_SHAPES, ids=str)
@pytest.mark.parametrize("name", ["weight", "bias"])
def test_affine_of_the_wrong_length(name, got):
    x = np.arange(12.0).reshape(4, 3)
    bad = {name: np.ones(got)}
    with pytest.raises(ValueError, match=_both_shapes(name, got)):
        bnfast.batch_norm(x, training=True, **bad)
    with pytest.raises(ValueError, match=_both_shapes(name, got)):
        bnfast.batch_norm(x, np.zeros(3), np.ones(3), **bad)
    with pytest.raises(ValueError, match=_both_shapes(name, got)):
        bnfast.batch_norm_forward(x, **bad)
    if name == "weight":
        with pytest.raises(ValueError, match=_both_shapes(name, got)):
            bnfast.batch_norm_backward(x, x, np.zeros(3), np.ones(3), weight=np.ones(got))


@pytest.mark.parametrize("got", WRONG_SHAPES, ids=str)
@pytest.mark.parametrize("training", [True, False], ids=["training", "eval"])
@pytest.mark.parametrize("name", ["running_mean", "running_var"])
def test_running_stats_of_the_wrong_length(name, training, got):
    x = np.arange(12.0).reshape(4, 3)
    stats = {"running_mean": np.zeros(3), "running_var": np.ones(3)}
    stats[name] = np.ones(got)
    before = {k: v.copy() for k, v in stats.items()}
    with pytest.raises(ValueError, match=_both_shapes(name, got)):
        bnfast.batch_norm(x, training=training, **stats)
    for k in stats:
        np.testing.assert_array_equal(stats[k], before[k])


@pytest.mark.parametrize("name", ["mean", "invstd"])
def test_backward_statistics_of_the_wrong_length(name):
    x = np.arange(12.0).reshape(4, 3)
    args = {"mean": np.zeros(3), "invstd": np.ones(3)}
    args[name] = np.ones(5)
    with pytest.raises(ValueError, match=_both_shapes(name, (5,))):
        bnfast.batch_norm_backward(x, x, **args)
    args[name] = None
    with pytest.raises(ValueError, match=f"{name} is required"):
        bnfast.batch_norm_backward(x, x, **args)


def test_backward_grad_y_of_the_wrong_shape():
    x = np.arange(12.0).reshape(4, 3)
    with pytest.raises(ValueError, match=re.escape("grad_y must have the shape of x (4, 3)")):
        bnfast.batch_norm_backward(x[:2], x, np.zeros(3), np.ones(3))


def test_running_stats_must_come_together():
    x = np.arange(12.0).reshape(4, 3)
    rm = np.zeros(3)
    with pytest.raises(ValueError, match="running_mean and running_var"):
        bnfast.batch_norm(x, rm, None, training=True)
    with pytest.raises(ValueError, match="running_mean and running_var"):
        bnfast.batch_norm(x, None, np.ones(3), training=True)
    with pytest.raises(ValueError, match="running_mean and running_var are required"):
        bnfast.batch_norm(x, rm, None, training=False)
    np.testing.assert_array_equal(rm, 0)


# ---- eps and momentum -----------------------------------------------------------------

@pytest.mark.parametrize("eps", [-1e-5, -np.inf, np.nan, np.inf], ids=str)
def test_bad_eps(eps):
    x = np.arange(12.0).reshape(4, 3)
    with pytest.raises(ValueError, match="eps must be a finite number >= 0"):
        bnfast.batch_norm(x, training=True, eps=eps)
    with pytest.raises(ValueError, match="eps must be a finite number >= 0"):
        bnfast.batch_norm(x, np.zeros(3), np.ones(3), eps=eps)
    with pytest.raises(ValueError, match="eps must be a finite number >= 0"):
        bnfast.batch_norm_forward(x, eps=eps)


@pytest.mark.parametrize("eps", ["1e-5", None, True, 1j], ids=repr)
def test_eps_of_the_wrong_type(eps):
    with pytest.raises(TypeError, match="eps must be a real number"):
        bnfast.batch_norm_forward(np.arange(12.0).reshape(4, 3), eps=eps)


@pytest.mark.parametrize("momentum", [-0.1, 1.0 + 1e-9, 10.0, np.nan, -np.inf], ids=str)
def test_bad_momentum(momentum):
    x = np.arange(12.0).reshape(4, 3)
    rm, rv = np.zeros(3), np.ones(3)
    with pytest.raises(ValueError, match=re.escape("momentum must be in [0, 1]")):
        bnfast.batch_norm(x, rm, rv, training=True, momentum=momentum)
    np.testing.assert_array_equal(rm, 0)
    np.testing.assert_array_equal(rv, 1)


def test_momentum_none_explains_the_cumulative_average():
    x = np.arange(12.0).reshape(4, 3)
    rm, rv = np.zeros(3), np.ones(3)
    with pytest.raises(ValueError, match="momentum=1/k"):
        bnfast.batch_norm(x, rm, rv, training=True, momentum=None)
    np.testing.assert_array_equal(rm, 0)
    np.testing.assert_array_equal(rv, 1)


# ---- eps == 0 and a zero-variance channel --------------------------------------------

# Constant channels of 0.1: their float sum / count is not exactly 0.1, so only an exact
# mean gives variance exactly 0 (the kernel shifts its sums by a value of the block).
# The large shapes take the threaded and multi-block paths.
@pytest.mark.parametrize("shape", [(7, 3), (2, 3), (5, 3, 9), (70000, 3), (3, 3, 20000),
                                   (64, 3, 1024)], ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_eps_zero_with_a_constant_channel(rng, threads, shape, dtype):
    x = rng.normal(size=shape).astype(dtype)
    x[:, 1] = dtype(0.1)
    with pytest.raises(bnfast.ZeroVarianceError, match="channel 1 has variance 0"):
        bnfast.batch_norm_forward(x, eps=0.0)
    with pytest.raises(ValueError, match="channel 1 has variance 0"):
        bnfast.batch_norm(x, training=True, eps=0.0)
    with pytest.raises(ValueError, match="channel 1"):
        reference.batch_norm_forward(x, eps=0.0)
    # with eps > 0 the constant channel normalizes to exactly beta (x - mean == 0)
    bias = np.array([0.0, 0.375, 0.0])
    y, mean, _ = bnfast.batch_norm_forward(x, bias=bias)
    assert mean[1] == float(dtype(0.1))
    assert np.all(y[:, 1] == dtype(0.375))


def test_zero_variance_error_is_a_value_error_naming_the_first_channel():
    assert issubclass(bnfast.ZeroVarianceError, ValueError)
    x = np.array([[1.0, 2.0, 3.0, 4.0], [5.0, 2.0, 7.0, 4.0]])
    with pytest.raises(bnfast.ZeroVarianceError, match="channel 1 ") as info:
        bnfast.batch_norm_forward(x, eps=0)
    assert "eps == 0" in str(info.value)
    y = bnfast.batch_norm_forward(x[:, [0, 2]], eps=0)[0]  # no constant channel: fine
    np.testing.assert_array_equal(y, [[-1, -1], [1, 1]])


def test_eps_zero_with_a_zero_running_variance():
    x = np.arange(12.0).reshape(4, 3)
    with pytest.raises(bnfast.ZeroVarianceError, match="channel 2 has running variance 0"):
        bnfast.batch_norm(x, np.zeros(3), np.array([1.0, 2.0, 0.0]), eps=0)
    with pytest.raises(ValueError, match="channel 2"):
        reference.batch_norm(x, np.zeros(3), np.array([1.0, 2.0, 0.0]), eps=0)


# ---- dtypes ----------------------------------------------------------------------------

BAD_DTYPES = [np.complex128, np.complex64, object, "U8", "S8", np.longdouble,
              "datetime64[s]"]


def _as(dtype, shape=(4, 3)):
    return np.arange(int(np.prod(shape))).reshape(shape).astype(dtype)


@pytest.mark.parametrize("dtype", BAD_DTYPES, ids=str)
def test_unsupported_x_dtypes(dtype):
    x = _as(dtype)
    every_entry_point_raises(x, TypeError, "x ", channels=3, grad_y=np.ones((4, 3)))
    with pytest.raises(TypeError, match="grad_y"):
        bnfast.batch_norm_backward(x, np.ones((4, 3)), np.zeros(3), np.ones(3))


@pytest.mark.parametrize("dtype", [np.complex128, object, "U8"], ids=str)
@pytest.mark.parametrize("name", ["weight", "bias", "running_mean", "running_var"])
@pytest.mark.parametrize("training", [True, False], ids=["training", "eval"])
def test_unsupported_per_channel_dtypes(dtype, name, training):
    x = np.arange(12.0).reshape(4, 3)
    args = {"running_mean": np.zeros(3), "running_var": np.ones(3)}
    args[name] = _as(dtype, (3,))
    with pytest.raises(TypeError, match=name):
        bnfast.batch_norm(x, training=training, **args)


@pytest.mark.parametrize("name", ["mean", "invstd", "weight"])
def test_unsupported_backward_dtypes(name):
    x = np.arange(12.0).reshape(4, 3)
    args = {"mean": np.zeros(3), "invstd": np.ones(3)}
    args[name] = np.ones(3, np.complex128)
    with pytest.raises(TypeError, match=name):
        bnfast.batch_norm_backward(x, x, **args)


def test_strings_are_not_arrays():
    with pytest.raises(TypeError, match="x must be an array of real numbers"):
        bnfast.batch_norm_forward("1 2 3 4")


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64, np.uint16, bool], ids=str)
def test_integers_and_bools_are_converted_to_float64(rng, dtype):
    x = (rng.integers(0, 2, (6, 3, 2)) if dtype is bool else rng.integers(0, 50, (6, 3, 2)))
    x = x.astype(dtype)
    x64 = x.astype(np.float64)
    rm, rv, rm64, rv64 = np.zeros(3), np.ones(3), np.zeros(3), np.ones(3)
    y = bnfast.batch_norm(x, rm, rv, training=True)
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y, bnfast.batch_norm(x64, rm64, rv64, training=True))
    np.testing.assert_array_equal(rm, rm64)
    y = bnfast.batch_norm(x, rm, rv)
    np.testing.assert_array_equal(y, bnfast.batch_norm(x64, rm, rv))
    assert y.dtype == np.float64
    y, mean, invstd = bnfast.batch_norm_forward(x, np.ones(3, dtype), np.zeros(3, dtype))
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y, bnfast.batch_norm_forward(x64)[0])
    gx = bnfast.batch_norm_backward(x, x, mean, invstd)[0]
    assert gx.dtype == np.float64
    np.testing.assert_array_equal(gx, bnfast.batch_norm_backward(x64, x64, mean, invstd)[0])


def test_float16_computes_in_float32_and_returns_float16(rng):
    x16 = (3 + 2 * rng.standard_normal((50, 3, 4))).astype(np.float16)
    x32 = x16.astype(np.float32)
    weight, bias = rng.normal(size=3), rng.normal(size=3)

    y, mean, invstd = bnfast.batch_norm_forward(x16, weight, bias)
    y32, mean32, invstd32 = bnfast.batch_norm_forward(x32, weight, bias)
    assert y.dtype == np.float16 and mean.dtype == invstd.dtype == np.float64
    np.testing.assert_array_equal(y, y32.astype(np.float16))
    np.testing.assert_array_equal(mean, mean32)
    # against float64: the float16 rounding of the result (u16 = 2**-11 relative, or half
    # the subnormal spacing 2**-25 absolute) on top of the float32 computation's error
    ref = reference.batch_norm_forward(x16.astype(np.float64), weight, bias)[0]
    scale = np.abs(ref - bias.reshape(1, 3, 1)) + np.abs(bias.reshape(1, 3, 1))
    bound = 2**-11 * np.abs(ref) + 2**-25 + 8 * 2**-24 * scale
    np.testing.assert_array_less(np.abs(y.astype(np.float64) - ref), bound)
    # the reference keeps the dtype too
    assert reference.batch_norm_forward(x16)[0].dtype == np.float16

    g16 = rng.standard_normal(x16.shape).astype(np.float16)
    gx = bnfast.batch_norm_backward(g16, x16, mean, invstd, weight)
    gx32 = bnfast.batch_norm_backward(g16.astype(np.float32), x32, mean, invstd, weight)
    assert gx[0].dtype == np.float16
    np.testing.assert_array_equal(gx[0], gx32[0].astype(np.float16))
    np.testing.assert_array_equal(gx[1], gx32[1])

    rm, rv, rm32, rv32 = np.zeros(3), np.ones(3), np.zeros(3), np.ones(3)
    y = bnfast.batch_norm(x16, rm, rv, weight, bias, training=True)
    assert y.dtype == np.float16
    np.testing.assert_array_equal(y, bnfast.batch_norm(x32, rm32, rv32, weight, bias,
                                                       training=True).astype(np.float16))
    np.testing.assert_array_equal(rm, rm32)
    y = bnfast.batch_norm(x16, rm, rv, weight, bias)
    assert y.dtype == np.float16
    np.testing.assert_array_equal(y, bnfast.batch_norm(x32, rm, rv, weight, bias)
                                  .astype(np.float16))


# ---- read-only running stats -----------------------------------------------------------

@pytest.mark.parametrize("which", ["running_mean", "running_var"])
def test_read_only_running_stats_while_training(which):
    x = np.arange(12.0).reshape(4, 3)
    stats = {"running_mean": np.zeros(3), "running_var": np.ones(3)}
    stats[which].flags.writeable = False
    with pytest.raises(ValueError, match=f"{which} is read-only"):
        bnfast.batch_norm(x, training=True, **stats)
    np.testing.assert_array_equal(stats["running_mean"], 0)
    np.testing.assert_array_equal(stats["running_var"], 1)


@pytest.mark.parametrize("bad", ["list", "int64", "float16", "mixed"])
def test_running_stats_must_be_float_arrays_while_training(bad):
    x = np.arange(12.0).reshape(4, 3)
    rm = np.zeros(3)
    rv = {"list": [1.0, 1.0, 1.0], "int64": np.ones(3, np.int64),
          "float16": np.ones(3, np.float16), "mixed": np.ones(3, np.float32)}[bad]
    with pytest.raises(TypeError, match="running_"):
        bnfast.batch_norm(x, rm, rv, training=True)
    np.testing.assert_array_equal(rm, 0)


# ---- NaN and inf -------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5), (70000, 3), (8, 3, 4096),
                                   (64, 3, 512)], ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_nan_and_inf_propagate_and_spare_the_running_stats(rng, threads, shape, dtype):
    x = rng.normal(size=shape).astype(dtype)
    x[-1, 1] = np.nan
    x[0, 2] = -np.inf
    rm, rv = np.full(3, 0.5), np.full(3, 2.0)
    ref_rm, ref_rv = rm.copy(), rv.copy()
    with pytest.warns(RuntimeWarning, match="2 channel.*left unchanged"):
        y = bnfast.batch_norm(x, rm, rv, training=True)
    with pytest.warns(RuntimeWarning, match="2 channel"):
        reference.batch_norm(x, ref_rm, ref_rv, training=True)
    assert np.all(np.isnan(y[:, 1:])) and np.all(np.isfinite(y[:, 0]))
    np.testing.assert_array_equal(rm[1:], 0.5)
    np.testing.assert_array_equal(rv[1:], 2.0)
    np.testing.assert_allclose(rm, ref_rm, rtol=1e-12)
    np.testing.assert_allclose(rv, ref_rv, rtol=1e-12)

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no running stats, nothing to warn about
        y, mean, invstd = bnfast.batch_norm_forward(x)
        assert np.all(np.isnan(y[:, 1:])) and np.all(np.isfinite(y[:, 0]))
        assert np.isfinite(mean[0]) and not np.isfinite(mean[1:]).any()
        assert np.isfinite(invstd[0]) and not np.isfinite(invstd[1:]).any()
        y = bnfast.batch_norm(x, training=True)
        assert np.all(np.isnan(y[:, 1:])) and np.all(np.isfinite(y[:, 0]))

        # eval mode: only the bad values themselves are not finite
        y = bnfast.batch_norm(x, rm, rv)
        assert np.isnan(y[-1, 1]).all() and np.isneginf(y[0, 2]).all()
        assert np.count_nonzero(~np.isfinite(y)) == 2 * x[0, 0].size

        gx = bnfast.batch_norm_backward(np.ones_like(x), x, np.zeros(3), np.ones(3))[0]
        assert np.all(np.isfinite(gx[:, 0]))


# ---- a call that fails modifies nothing -------------------------------------------------

def _zero_channel_1(x):
    """x with channel 1 set to 0 (a copy)."""
    return x * np.array([1.0, 0.0, 1.0]).reshape((1, 3) + (1,) * (x.ndim - 2))


def _failing_calls():
    """(name, exception, message pattern, call(x, rm, rv, out)) for calls that must fail."""
    ro = np.ones(3)
    ro.flags.writeable = False
    yield ("one value per channel", ValueError, "more than 1 value per channel",
           lambda x, rm, rv, out: bnfast.batch_norm(x[:1, :, None][..., :1], rm, rv,
                                                    training=True))
    yield ("weight length", ValueError, "weight must have shape",
           lambda x, rm, rv, out: bnfast.batch_norm(x, rm, rv, np.ones(4), training=True))
    yield ("bias length", ValueError, "bias must have shape",
           lambda x, rm, rv, out: bnfast.batch_norm(x, rm, rv, bias=np.ones(2), training=True))
    yield ("running_var length", ValueError, "running_var must have shape",
           lambda x, rm, rv, out: bnfast.batch_norm(x, rm, np.ones(4), training=True))
    yield ("eps < 0", ValueError, "eps must be",
           lambda x, rm, rv, out: bnfast.batch_norm(x, rm, rv, training=True, eps=-1.0))
    yield ("momentum", ValueError, "momentum must be",
           lambda x, rm, rv, out: bnfast.batch_norm(x, rm, rv, training=True, momentum=2.0))
    yield ("zero variance", bnfast.ZeroVarianceError, "channel 1",
           lambda x, rm, rv, out: bnfast.batch_norm(_zero_channel_1(x), rm, rv, training=True,
                                                    eps=0))
    yield ("complex weight", TypeError, "weight",
           lambda x, rm, rv, out: bnfast.batch_norm(x, rm, rv, np.ones(3, complex),
                                                    training=True))
    yield ("read-only running_var", ValueError, "running_var is read-only",
           lambda x, rm, rv, out: bnfast.batch_norm(x, rm, ro, training=True))
    yield ("int running_var", TypeError, "running_var",
           lambda x, rm, rv, out: bnfast.batch_norm(x, rm, np.ones(3, int), training=True))
    yield ("mixed running dtypes", TypeError, "same dtype",
           lambda x, rm, rv, out: bnfast.batch_norm(x, rm, rv.astype(np.float32),
                                                    training=True))
    yield ("forward zero variance, out", bnfast.ZeroVarianceError, "channel 1",
           lambda x, rm, rv, out: bnfast.batch_norm_forward(_zero_channel_1(x), eps=0,
                                                            out=out))
    yield ("forward bad weight, out", ValueError, "weight must have shape",
           lambda x, rm, rv, out: bnfast.batch_norm_forward(x, np.ones(5), out=out))
    yield ("forward out overlaps x", ValueError, "overlaps",
           lambda x, rm, rv, out: bnfast.batch_norm_forward(x, out=x[::-1]))
    yield ("forward out of the wrong dtype", TypeError, "out must have dtype",
           lambda x, rm, rv, out: bnfast.batch_norm_forward(x, out=out.astype(np.float32)))
    yield ("backward bad mean, out", ValueError, "mean must have shape",
           lambda x, rm, rv, out: bnfast.batch_norm_backward(x, x, np.zeros(2), np.ones(3),
                                                             out=out))
    yield ("backward bad grad_y, out", ValueError, "grad_y must have the shape",
           lambda x, rm, rv, out: bnfast.batch_norm_backward(x[:3], x, np.zeros(3),
                                                             np.ones(3), out=out))
    yield ("backward complex weight, out", TypeError, "weight",
           lambda x, rm, rv, out: bnfast.batch_norm_backward(x, x, np.zeros(3), np.ones(3),
                                                             np.ones(3, complex), out=out))


FAILING = list(_failing_calls())


@pytest.mark.parametrize("name, exception, pattern, call", FAILING,
                         ids=[f[0] for f in FAILING])
@pytest.mark.parametrize("shape", [(5, 3), (70000, 3), (8, 3, 4096)], ids=str)
def test_a_failing_call_modifies_nothing(rng, threads, shape, name, exception, pattern, call):
    x = rng.normal(size=shape)
    rm, rv = rng.normal(size=3), rng.uniform(1, 2, 3)
    out = rng.normal(size=shape)
    saved = [a.copy() for a in (x, rm, rv, out)]
    with pytest.raises(exception, match=pattern):
        call(x, rm, rv, out)
    for before, after in zip(saved, (x, rm, rv, out)):
        np.testing.assert_array_equal(after, before)


@pytest.mark.parametrize("shape", [(5, 3), (70000, 3), (8, 3, 4096), (64, 3, 512)], ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_a_failing_in_place_call_leaves_x_unchanged(rng, threads, shape, dtype):
    """out=x with eps == 0 and a constant last channel: the error comes after the
    statistics of every channel, and no channel of x may have been normalized."""
    x = rng.normal(size=shape).astype(dtype)
    x[:, 2] = 0.25
    saved = x.copy()
    with pytest.raises(bnfast.ZeroVarianceError, match="channel 2"):
        bnfast.batch_norm_forward(x, eps=0.0, out=x)
    np.testing.assert_array_equal(x, saved)


def test_training_must_be_a_bool():
    x = np.arange(12.0).reshape(4, 3)
    for bad in ("no", 1, None):
        with pytest.raises(TypeError, match="training must be a bool"):
            bnfast.batch_norm(x, np.zeros(3), np.ones(3), training=bad)
    bnfast.batch_norm(x, np.zeros(3), np.ones(3), training=np.bool_(False))


def test_a_read_only_grad_y_is_fine():
    x = np.random.default_rng(0).normal(size=(4, 3))
    _, mean, invstd = bnfast.batch_norm_forward(x)
    g = np.ones_like(x)
    g.setflags(write=False)
    gx, _, _ = bnfast.batch_norm_backward(g, x, mean, invstd)
    np.testing.assert_allclose(gx, 0.0, atol=1e-15)    # a constant grad_y has no effect


def test_running_stats_that_share_memory_are_refused():
    x = np.random.default_rng(0).normal(size=(6, 4))
    both = np.zeros(4)
    with pytest.raises(ValueError, match="running_mean and running_var overlap"):
        bnfast.batch_norm(x, both, both, training=True)
    buffer = np.zeros(6)
    with pytest.raises(ValueError, match="overlap"):
        bnfast.batch_norm(x, buffer[:4], buffer[2:], training=True)
    np.testing.assert_array_equal(buffer, 0)
    flat = np.zeros(8)
    bnfast.batch_norm(x, flat[::2], flat[1::2], training=True)   # interleaved, disjoint
    zero_stride = np.lib.stride_tricks.as_strided(np.zeros(1), (4,), (0,), writeable=True)
    with pytest.raises(ValueError, match="running_var has stride 0"):
        bnfast.batch_norm(x, np.zeros(4), zero_stride, training=True)


@pytest.mark.parametrize("impl", [bnfast, reference], ids=["native", "reference"])
def test_float32_running_var_is_kept_when_the_batch_variance_overflows_float32(impl):
    # finite float32 data whose variance (~1e60) does not fit float32: the update would
    # turn running_var into inf; the documented rule keeps it, with a RuntimeWarning
    x = np.zeros((4, 2), dtype=np.float32)
    x[:, 0] = [1e30, -1e30, 2e30, -2e30]
    x[:, 1] = [1, 2, 3, 4]
    rm, rv = np.zeros(2, dtype=np.float32), np.ones(2, dtype=np.float32)
    with pytest.warns(RuntimeWarning, match="1 channel.*overflow"):
        y = impl.batch_norm(x, rm, rv, training=True)
    assert np.all(np.isfinite(y))
    assert rm[0] == 0 and rv[0] == 1
    np.testing.assert_allclose([rm[1], rv[1]], [0.25, 0.9 + 0.1 * 5 / 3], rtol=1e-6)


def test_a_warning_turned_error_leaves_every_running_stat_unchanged():
    x = np.random.default_rng(0).normal(size=(6, 4))
    x[2, 1] = np.nan
    rm, rv = np.zeros(4), np.ones(4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(RuntimeWarning, match="1 channel"):
            bnfast.batch_norm(x, rm, rv, training=True)
    np.testing.assert_array_equal(rm, 0)
    np.testing.assert_array_equal(rv, 1)
    with pytest.warns(RuntimeWarning, match="1 channel"):
        bnfast.batch_norm(x, rm, rv, training=True)
    assert rm[1] == 0 and rv[1] == 1 and np.all(rm[[0, 2, 3]] != 0)
