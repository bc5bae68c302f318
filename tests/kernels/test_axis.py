"""Channels on any axis (issue 14): axis=-1 is channels-last (N, *, C), the layout of
Keras/Flax/TensorFlow and of PyTorch's channels_last memory format. Results equal those
of the channels-first call on the transposed array (reference and PyTorch), for the
forward pass, the backward pass and the running statistics; no transposed copy is made
(the kernels see channels-last data as an (N * prod(*), C) matrix)."""

import numpy as np
import pytest

import bnfast
from bnfast import reference as ref

RNG = np.random.default_rng(14)
# (shape with channels on axis 1, axis to move them to)
CASES = [((6, 3), -1), ((6, 3), 0), ((4, 3, 5, 5), -1), ((4, 3, 5, 5), 2), ((4, 3, 5, 5), 0),
         ((2, 5, 7), -1), ((3, 4, 2, 3, 2), 3), ((64, 8, 7, 7), -1)]
DTYPES = [np.float32, np.float64]
TOL = {np.float32: 2e-6, np.float64: 1e-13}


def moved(shape, axis, dtype):
    """A channels-first array and the same values with channels moved to `axis`
    (C-contiguous: the layout a channels-last user has)."""
    x = (2.0 + 3.0 * RNG.standard_normal(shape)).astype(dtype)
    return x, np.ascontiguousarray(np.moveaxis(x, 1, axis))


def close(a, b, dtype):
    scale = max(1.0, float(np.max(np.abs(b))))
    np.testing.assert_allclose(a, b, rtol=0, atol=TOL[dtype] * scale)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("shape,axis", CASES)
def test_forward_and_backward_equal_the_transposed_call(shape, axis, dtype):
    x, xa = moved(shape, axis, dtype)
    c = shape[1]
    w, b = RNG.uniform(0.5, 1.5, c), RNG.normal(size=c)
    y, mean, invstd = bnfast.batch_norm_forward(xa, w, b, axis=axis)
    y1, mean1, invstd1 = bnfast.batch_norm_forward(x, w, b)
    close(y, np.moveaxis(y1, 1, axis), dtype)
    np.testing.assert_allclose(mean, mean1, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(invstd, invstd1, rtol=1e-12)
    yr, mr, ir = ref.batch_norm_forward(xa, w, b, axis=axis)
    close(y, yr, dtype)
    g = RNG.standard_normal(xa.shape).astype(dtype)
    gx, gw, gb = bnfast.batch_norm_backward(g, xa, mean, invstd, w, axis=axis)
    gxr, gwr, gbr = ref.batch_norm_backward(g, xa, mean, invstd, w, axis=axis)
    close(gx, gxr, dtype)
    np.testing.assert_allclose(gw, gwr, rtol=1e-5 if dtype == np.float32 else 1e-11, atol=1e-9)
    np.testing.assert_allclose(gb, gbr, rtol=1e-5 if dtype == np.float32 else 1e-11, atol=1e-9)
    gx1 = bnfast.batch_norm_backward(np.ascontiguousarray(np.moveaxis(g, axis, 1)), x, mean,
                                     invstd, w)[0]
    close(gx, np.moveaxis(gx1, 1, axis), dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("shape,axis", CASES)
def test_running_statistics_and_eval_on_any_axis(shape, axis, dtype):
    x, xa = moved(shape, axis, dtype)
    c = shape[1]
    rm, rv = np.zeros(c), np.ones(c)
    rm1, rv1 = rm.copy(), rv.copy()
    y = bnfast.batch_norm(xa, rm, rv, training=True, momentum=0.3, axis=axis)
    y1 = bnfast.batch_norm(x, rm1, rv1, training=True, momentum=0.3)
    close(y, np.moveaxis(y1, 1, axis), dtype)
    np.testing.assert_allclose(rm, rm1, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(rv, rv1, rtol=1e-12)
    rmr, rvr = np.zeros(c), np.ones(c)
    ref.batch_norm(xa, rmr, rvr, training=True, momentum=0.3, axis=axis)
    np.testing.assert_allclose(rm, rmr, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(rv, rvr, rtol=1e-12)
    ye = bnfast.batch_norm(xa, rm, rv, training=False, axis=axis)
    close(ye, ref.batch_norm(xa, rm, rv, training=False, axis=axis), dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_channels_last_against_pytorch(dtype):
    torch = pytest.importorskip("torch")
    x = (1.0 + 2.0 * RNG.standard_normal((8, 6, 5, 4))).astype(dtype)
    x_cl = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    w, b = RNG.uniform(0.5, 1.5, 6), RNG.normal(size=6)
    rm, rv = np.zeros(6), np.ones(6)
    y = bnfast.batch_norm(x_cl, rm, rv, w, b, training=True, momentum=0.2, axis=-1)
    tx = torch.tensor(x, requires_grad=True)
    trm, trv = torch.zeros(6, dtype=tx.dtype), torch.ones(6, dtype=tx.dtype)
    ty = torch.nn.functional.batch_norm(tx, trm, trv, torch.tensor(w, dtype=tx.dtype),
                                        torch.tensor(b, dtype=tx.dtype), training=True,
                                        momentum=0.2)
    close(y, ty.detach().numpy().transpose(0, 2, 3, 1), dtype)
    np.testing.assert_allclose(rm, trm.numpy(), rtol=1e-6 if dtype == np.float32 else 1e-12)
    np.testing.assert_allclose(rv, trv.numpy(), rtol=1e-6 if dtype == np.float32 else 1e-12)
    g = RNG.standard_normal(x.shape).astype(dtype)
    ty.backward(torch.tensor(g))
    _, mean, invstd = bnfast.batch_norm_forward(x_cl, w, b, axis=-1)
    gx = bnfast.batch_norm_backward(np.ascontiguousarray(g.transpose(0, 2, 3, 1)), x_cl, mean,
                                    invstd, w, axis=-1)[0]
    close(gx, tx.grad.numpy().transpose(0, 2, 3, 1), dtype)


@pytest.mark.parametrize("axis,exc,match", [
    (4, ValueError, "axis 4 is out of range for x with 4 dimensions"),
    (-5, ValueError, "axis -5 is out of range for x with 4 dimensions"),
    (2**70, ValueError, "axis 1180591620717411303424 is out of range"),
    (1.0, TypeError, "axis must be an int, got float"),
    (True, TypeError, "axis must be an int, got bool"),
    ("1", TypeError, "axis must be an int, got str"),
    (None, TypeError, "axis must be an int, got NoneType"),
])
def test_bad_axis(axis, exc, match):
    x = RNG.standard_normal((2, 3, 4, 5))
    rm, rv = np.zeros(3), np.ones(3)
    for call in (lambda: bnfast.batch_norm(x, rm, rv, training=True, axis=axis),
                 lambda: bnfast.batch_norm(x, rm, rv, training=False, axis=axis),
                 lambda: bnfast.batch_norm_forward(x, axis=axis),
                 lambda: bnfast.batch_norm_backward(x, x, np.zeros(3), np.ones(3), axis=axis)):
        with pytest.raises(exc, match=match):
            call()
    assert np.all(rm == 0) and np.all(rv == 1)


def test_running_statistics_must_fit_the_chosen_axis():
    x = RNG.standard_normal((2, 3, 4, 5))
    rm, rv = np.zeros(3), np.ones(3)
    with pytest.raises(ValueError, match=r"running_mean must have shape \(5,\).*got shape \(3,\)"):
        bnfast.batch_norm(x, rm, rv, training=True, axis=-1)
    with pytest.raises(ValueError, match=r"weight must have shape \(4,\).*got shape \(3,\)"):
        bnfast.batch_norm_forward(x, weight=np.ones(3), axis=2)
    assert np.all(rm == 0) and np.all(rv == 1)


def test_one_value_per_channel_on_the_chosen_axis():
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        bnfast.batch_norm_forward(np.ones((1, 1, 3)), axis=-1)
    bnfast.batch_norm_forward(RNG.standard_normal((1, 2, 3)), axis=0)   # 6 values each
