"""batch_norm_forward's and batch_norm_backward's one-step paths for the common call
(plain float32/float64 C-contiguous x (and grad_y), channels on axis 1, the (C,) vectors
None or plain float64; out None or plain): the same bits as the general path, and every
unusual argument falls through to the general path's errors."""

import numpy as np
import pytest

import bnfast
from bnfast import _core

SHAPES = [(3, 2), (2, 1), (64, 7, 9), (5, 3, 2, 2), (4096, 8)]


def general(x, out=None, eps=1e-5, weight=None, bias=None):
    # an np.float64 eps is not the fast path's exact float: the general path
    return bnfast.batch_norm_forward(x, weight, bias, eps=np.float64(eps), out=out)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("affine", [False, True])
def test_same_bits_as_the_general_path(shape, dtype, affine, rng):
    x = (rng.standard_normal(shape) * 2 + 3).astype(dtype)
    c = shape[1]
    weight, bias = (rng.standard_normal(c), rng.standard_normal(c)) if affine else (None, None)
    assert _core.forward_train_fast(x, weight, bias, 1e-5, None) is not None   # taken
    y, mean, invstd = bnfast.batch_norm_forward(x, weight, bias)
    y2, mean2, invstd2 = general(x, weight=weight, bias=bias)
    assert y.dtype == dtype and mean.dtype == invstd.dtype == np.float64
    np.testing.assert_array_equal(y, y2)
    np.testing.assert_array_equal(mean, mean2)
    np.testing.assert_array_equal(invstd, invstd2)
    out = np.empty_like(x)
    y3, _, _ = bnfast.batch_norm_forward(x, weight, bias, out=out)
    assert y3 is out
    np.testing.assert_array_equal(out, y2)
    inplace = x.copy()
    y4, _, _ = bnfast.batch_norm_forward(inplace, weight, bias, out=inplace)   # in place
    assert y4 is inplace
    np.testing.assert_array_equal(inplace, y2)


class Sub(np.ndarray):
    pass


@pytest.mark.parametrize("make", [
    lambda x: x.astype(np.float16),
    lambda x: x.astype(">f8"),                 # foreign byte order
    lambda x: np.asfortranarray(x),
    lambda x: x[:, ::2],
    lambda x: x.view(Sub),
    lambda x: x.astype(np.int64),
    lambda x: x.tolist(),
    lambda x: x[:1],                           # one value per channel
    lambda x: x.reshape(-1),                   # 1-D
])
def test_unusual_inputs_take_the_general_path(make, rng):
    x = make(rng.standard_normal((6, 4)))
    assert _core.forward_train_fast(x, None, None, 1e-5, None) is None


@pytest.mark.parametrize("make_out", [
    lambda x: np.empty(x.shape, np.float32),   # another dtype
    lambda x: np.empty((x.shape[0] + 1, x.shape[1])),
    lambda x: np.empty(x.shape, order="F"),
    lambda x: np.empty_like(x).view(Sub),
])
def test_unusual_outputs_take_the_general_path(make_out, rng):
    x = rng.standard_normal((6, 4))
    assert _core.forward_train_fast(x, None, None, 1e-5, make_out(x)) is None


@pytest.mark.parametrize("make", [
    lambda c: np.ones(c, np.float32),          # weight must be float64 here
    lambda c: np.ones(c + 1),
    lambda c: np.ones((c, 1)),
    lambda c: np.ones(2 * c)[::2],
    lambda c: [1.0] * c,
])
def test_unusual_weights_take_the_general_path(make, rng):
    x = rng.standard_normal((6, 4))
    assert _core.forward_train_fast(x, make(4), None, 1e-5, None) is None
    assert _core.forward_train_fast(x, None, make(4), 1e-5, None) is None


def test_partial_overlap_and_read_only_take_the_general_path_and_its_errors():
    base = np.arange(40.0)
    x = base[:24].reshape(6, 4)
    shifted = base[4:28].reshape(6, 4)
    assert _core.forward_train_fast(x, None, None, 1e-5, shifted) is None
    with pytest.raises(ValueError, match="overlaps an input"):
        bnfast.batch_norm_forward(x, out=shifted)
    ro = np.empty_like(x)
    ro.flags.writeable = False
    assert _core.forward_train_fast(x, None, None, 1e-5, ro) is None
    with pytest.raises(ValueError, match="out is read-only"):
        bnfast.batch_norm_forward(x, out=ro)


@pytest.mark.parametrize("eps", [-1.0, float("nan"), float("inf")])
def test_bad_eps_takes_the_general_path_and_its_error(eps):
    x = np.ones((4, 3))
    assert _core.forward_train_fast(x, None, None, eps, None) is None
    with pytest.raises(ValueError, match="eps"):
        bnfast.batch_norm_forward(x, eps=eps)


def test_errors_of_the_kernel_are_the_same():
    x = np.ones((4, 3))
    with pytest.raises(bnfast.ZeroVarianceError, match="channel 0"):
        bnfast.batch_norm_forward(x, eps=0.0)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        bnfast.batch_norm_forward(np.ones((1, 3)))


def test_a_failed_call_writes_nothing():
    x = np.ones((4, 3))
    out = np.full_like(x, 7.0)
    with pytest.raises(bnfast.ZeroVarianceError):
        bnfast.batch_norm_forward(x, eps=0.0, out=out)
    assert np.all(out == 7.0)


# ---------------------------------------------------------------- batch_norm_backward

def backward_case(rng, shape=(6, 4), dtype=np.float64):
    x = (rng.standard_normal(shape) * 2 + 3).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    _, mean, invstd = bnfast.batch_norm_forward(x)
    return dy, x, mean, invstd


def general_backward(dy, x, mean, invstd, weight=None, out=None):
    # an np.int64 axis is not the fast path's exact int: the general path
    return bnfast.batch_norm_backward(dy, x, mean, invstd, weight, out=out, axis=np.int64(1))


@pytest.mark.parametrize("shape", SHAPES + [(1, 3)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("affine", [False, True])
def test_backward_same_bits_as_the_general_path(shape, dtype, affine, rng):
    dy, x, mean, invstd = backward_case(rng, shape, dtype) if shape[0] > 1 else (
        rng.standard_normal(shape).astype(dtype), rng.standard_normal(shape).astype(dtype),
        np.zeros(shape[1]), np.ones(shape[1]))
    weight = rng.standard_normal(shape[1]) if affine else None
    assert _core.backward_fast(dy, x, mean, invstd, weight, None) is not None   # taken
    want = general_backward(dy, x, mean, invstd, weight)
    got = bnfast.batch_norm_backward(dy, x, mean, invstd, weight)
    assert got[0].dtype == dtype and got[1].dtype == got[2].dtype == np.float64
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    out = np.empty_like(x)
    assert bnfast.batch_norm_backward(dy, x, mean, invstd, weight, out=out)[0] is out
    np.testing.assert_array_equal(out, want[0])
    for which in ("grad_y", "x"):                                     # in place
        dy2, x2 = dy.copy(), x.copy()
        target = dy2 if which == "grad_y" else x2
        gx = bnfast.batch_norm_backward(dy2, x2, mean, invstd, weight, out=target)[0]
        assert gx is target
        np.testing.assert_array_equal(target, want[0])


@pytest.mark.parametrize("make", [
    lambda a: a.astype(np.float16),
    lambda a: a.astype(">f8"),
    lambda a: np.asfortranarray(a),
    lambda a: a[:, ::2],
    lambda a: a.view(Sub),
    lambda a: a.astype(np.int64),
    lambda a: a.tolist(),
    lambda a: a.reshape(-1),
    lambda a: a.astype(np.float32),           # the other one stays float64
    lambda a: a[:-1],                         # another shape
])
@pytest.mark.parametrize("which", ["grad_y", "x"])
def test_backward_unusual_arrays_take_the_general_path(make, which, rng):
    dy, x, mean, invstd = backward_case(rng)
    if which == "grad_y":
        dy = make(dy)
    else:
        x = make(x)
    assert _core.backward_fast(dy, x, mean, invstd, None, None) is None


@pytest.mark.parametrize("make", [
    lambda c: np.ones(c, np.float32),
    lambda c: np.ones(c + 1),
    lambda c: np.ones((c, 1)),
    lambda c: np.ones(2 * c)[::2],
    lambda c: [1.0] * c,
])
@pytest.mark.parametrize("which", ["mean", "invstd", "weight"])
def test_backward_unusual_vectors_take_the_general_path(make, which, rng):
    dy, x, mean, invstd = backward_case(rng)
    args = dict(mean=mean, invstd=invstd, weight=None)
    args[which] = make(4)
    assert _core.backward_fast(dy, x, args["mean"], args["invstd"], args["weight"],
                               None) is None


def test_backward_missing_statistics_take_the_general_path_and_its_error(rng):
    dy, x, mean, invstd = backward_case(rng)
    assert _core.backward_fast(dy, x, None, invstd, None, None) is None
    with pytest.raises(ValueError, match="mean"):
        bnfast.batch_norm_backward(dy, x, None, invstd)


def test_backward_partial_overlap_and_read_only_take_the_general_path_and_its_errors(rng):
    _, _, mean, invstd = backward_case(rng)
    base = np.arange(40.0)
    x = base[:24].reshape(6, 4)
    dy = np.ones((6, 4))
    shifted = base[4:28].reshape(6, 4)
    assert _core.backward_fast(dy, x, mean, invstd, None, shifted) is None
    with pytest.raises(ValueError, match="overlaps an input"):
        bnfast.batch_norm_backward(dy, x, mean, invstd, out=shifted)
    ro = np.empty_like(x)
    ro.flags.writeable = False
    assert _core.backward_fast(dy, x, mean, invstd, None, ro) is None
    with pytest.raises(ValueError, match="out is read-only"):
        bnfast.batch_norm_backward(dy, x, mean, invstd, out=ro)
