"""Agreement with torch.nn.functional.batch_norm (same semantics and defaults), forward
in training and eval mode, autograd backward, and the running-statistics update.

PyTorch uses its own algorithms (Welford statistics, float32 accumulation in places),
so agreement is normwise: max|bnfast - torch| <= RTOL * max|torch| per array, with
RTOL = 2e-4 for float32 (PyTorch's float32 accumulations over ~1e4 values) and 1e-10
for float64. Only this file needs torch; without it, just these tests skip.
"""

import numpy as np
import pytest

import bnfast

torch = pytest.importorskip("torch")
F = torch.nn.functional

RTOL = {np.float32: 2e-4, np.float64: 1e-10}
SHAPES = [(2, 3), (16, 5), (7, 3, 11), (4, 3, 6, 5), (3, 2, 1), (300, 64), (8, 4, 4096)]


def agree(ours, theirs, dtype, what):
    theirs = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else theirs
    ours = np.asarray(ours, dtype=np.float64)
    theirs = np.asarray(theirs, dtype=np.float64)
    assert ours.shape == theirs.shape, what
    err = np.max(np.abs(ours - theirs))
    scale = np.max(np.abs(theirs))
    assert err <= RTOL[dtype] * scale, f"{what}: {err:.3e} > {RTOL[dtype]:.0e} * {scale:.3e}"


def make(rng, shape, dtype):
    c = shape[1]
    loc = rng.uniform(-3, 3, (1, c) + (1,) * (len(shape) - 2))
    x = (loc + rng.uniform(0.5, 2) * rng.standard_normal(shape)).astype(dtype)
    return x, rng.normal(size=c).astype(dtype), rng.normal(size=c).astype(dtype)


@pytest.mark.parametrize("affine", [False, True], ids=["plain", "affine"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_training_forward_backward_and_running_stats(rng, threads, shape, dtype, affine):
    x, weight, bias = make(rng, shape, dtype)
    if not affine:
        weight = bias = None
    c = shape[1]
    rm, rv = rng.normal(size=c).astype(dtype), rng.uniform(0.5, 2, c).astype(dtype)
    t_rm, t_rv = torch.from_numpy(rm.copy()), torch.from_numpy(rv.copy())
    momentum, eps = 0.3, 1e-3

    tx = torch.from_numpy(x).requires_grad_()
    tw = None if weight is None else torch.from_numpy(weight).requires_grad_()
    tb = None if bias is None else torch.from_numpy(bias).requires_grad_()
    ty = F.batch_norm(tx, t_rm, t_rv, tw, tb, training=True, momentum=momentum, eps=eps)
    y = bnfast.batch_norm(x, rm, rv, weight, bias, training=True, momentum=momentum, eps=eps)
    assert y.dtype == dtype
    agree(y, ty, dtype, "y")
    agree(rm, t_rm, dtype, "running_mean")
    agree(rv, t_rv, dtype, "running_var")

    g = rng.standard_normal(shape).astype(dtype)
    ty.backward(torch.from_numpy(g))
    y2, mean, invstd = bnfast.batch_norm_forward(x, weight, bias, eps)
    np.testing.assert_array_equal(y2, y)
    gx, gw, gb = bnfast.batch_norm_backward(g, x, mean, invstd, weight)
    agree(gx, tx.grad, dtype, "grad_x")
    if affine:
        agree(gw, tw.grad, dtype, "grad_weight")
        agree(gb, tb.grad, dtype, "grad_bias")
    else:  # our grad_weight / grad_bias are those of an implicit weight 1, bias 0
        tw1 = torch.ones(c, dtype=tx.dtype, requires_grad=True)
        tb0 = torch.zeros(c, dtype=tx.dtype, requires_grad=True)
        F.batch_norm(tx.detach(), None, None, tw1, tb0, training=True, eps=eps).backward(
            torch.from_numpy(g))
        agree(gw, tw1.grad, dtype, "grad_weight")
        agree(gb, tb0.grad, dtype, "grad_bias")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_eval_forward(rng, shape, dtype):
    x, weight, bias = make(rng, shape, dtype)
    c = shape[1]
    rm, rv = rng.normal(size=c).astype(dtype), rng.uniform(0.5, 2, c).astype(dtype)
    ty = F.batch_norm(torch.from_numpy(x), torch.from_numpy(rm), torch.from_numpy(rv),
                      torch.from_numpy(weight), torch.from_numpy(bias), training=False)
    agree(bnfast.batch_norm(x, rm, rv, weight, bias), ty, dtype, "y (eval)")
    ty = F.batch_norm(torch.from_numpy(x), torch.from_numpy(rm), torch.from_numpy(rv))
    agree(bnfast.batch_norm(x, rm, rv), ty, dtype, "y (eval, no affine)")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_running_stats_over_several_batches(rng, dtype):
    c = 4
    rm, rv = np.zeros(c, dtype), np.ones(c, dtype)
    t_rm, t_rv = torch.from_numpy(rm.copy()), torch.from_numpy(rv.copy())
    for momentum in [0.1, 0.5, 1.0, 0.0, 0.25]:
        x, _, _ = make(rng, (6, c, 3), dtype)
        bnfast.batch_norm(x, rm, rv, training=True, momentum=momentum)
        F.batch_norm(torch.from_numpy(x), t_rm, t_rv, training=True, momentum=momentum)
        agree(rm, t_rm, dtype, f"running_mean, momentum {momentum}")
        agree(rv, t_rv, dtype, f"running_var, momentum {momentum}")


def test_the_same_inputs_are_rejected(rng):
    """Where PyTorch refuses an input (one value per channel when training), so do we."""
    x = rng.normal(size=(1, 3)).astype(np.float32)
    with pytest.raises(ValueError, match="more than 1 value per channel") as torch_error:
        F.batch_norm(torch.from_numpy(x), None, None, training=True)
    with pytest.raises(ValueError, match="more than 1 value per channel") as our_error:
        bnfast.batch_norm(x, training=True)
    assert str(torch_error.value).split(",")[0] == str(our_error.value).split(",")[0]
