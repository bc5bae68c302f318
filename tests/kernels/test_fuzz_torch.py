"""Hypothesis fuzz of the BN kernels against PyTorch (issue 15, item 2).

Targets, each 1000 derandomized examples (no example database, so CI sees the same
examples on every run):
* test_training_matches_torch: bnfast.batch_norm(training=True) against
  torch.nn.functional.batch_norm: y, and running_mean / running_var updated in place
  (momentum 0, 1 or anything between; running statistics absent, contiguous or strided);
  bnfast raises ValueError exactly where torch does (one value per channel), and
  ZeroVarianceError for eps = 0 with a constant channel, changing nothing.
* test_eval_matches_torch: training=False against torch's eval mode.
* test_forward_backward_match_torch_autograd: batch_norm_forward (y, mean, invstd)
  against torch.native_batch_norm, and batch_norm_backward (grad_x, grad_weight,
  grad_bias) against torch autograd.

Inputs: float32 and float64, 2-D to 4-D, N * prod(trailing) = 1, 2, ... up to 96 values
per channel, 1 to 4 channels, C-contiguous or a view (axes permuted, e.g. channels-last
4-D; every 2nd/3rd entry along an axis; a negative stride, which torch.from_numpy
refuses, so torch gets a copy there), weight / bias None or given (0 included),
eps in {0, 1e-5, 0.1}. Channel c is offset_c + spread_c * z with z in [-1, 1] of one
of six kinds (normal, uniform, five values with ties, +-1, one outlier, constant),
|offset| <= 100 and spread in [1e-2, 1e2] (log-uniform), so per channel the ratio
max|x| / std, the condition number below, runs from 1 to ~1e4 and beyond (constant and
nearly constant channels included).

eps = 0 in training: torch 2.13's F.batch_norm refuses it ("eps must be positive during
training"), bnfast takes it (the exact transform of the theory, docs/math/batch_norm.md
section 1). For eps = 0 the torch oracle is therefore the ATen op under F.batch_norm,
torch.batch_norm, preceded by F.batch_norm's own batch-size check (so "torch raises"
still means torch's rule).

A PyTorch bug this fuzz found (torch 2.13, CPU): batch_norm's backward is wrong by O(1)
when the input or grad_output is channels-last contiguous with a non-canonical stride
on a size-1 dim (see ambiguous_channels_last for the reproductions). For such draws
torch gets NCHW copies (bnfast keeps the drawn layouts), and
test_ambiguous_channels_last_gradients checks bnfast there against the formulas.

Tolerances: elementwise (per entry for y and grad_x, per channel for the statistics),
first-order rounding-error bounds of the computations both libraries perform, with
u = 2^-24 (float32) or 2^-53 (float64). Symbols per channel: m the values per channel,
mu and sigma the exact batch mean and biased std, invstd = 1/sqrt(sigma^2 + eps),
xmax = max|x|, A = xmax * invstd (the condition number: the mean's absolute error,
a fraction of xmax, is amplified by invstd), xhat = (x - mu) * invstd, gamma / beta the
weight / bias (1 / 0 when None).

* Mean. Any summation order of m terms errs by <= (m - 1) u sum|x| (Higham, Accuracy
  and Stability, section 4.2), so the computed mean errs by dmu <= m u xmax. PyTorch
  sums float32 in float32 (vectorized; Welford on some strided paths), bnfast in float64:
  the bound is PyTorch's; bnfast's own error is ~u * (roundings of one element).
* Variance. Two-pass: sum (x - mu')^2 = sum (x - mu)^2 + m dmu^2 (the cross term
  vanishes), plus (m + 3) u relative for the squares and their sum; Welford adds
  ~m u sigma xmax (Chan, Golub, LeVeque 1983). Together
  dvar <= (m + 4) u sigma (sigma + xmax) + dmu^2, and invstd has relative error
  <= dvar * invstd^2 / 2 + 2 u.
* y = (x - mu) invstd gamma + beta. PyTorch folds it into y = x * a + b with
  a = gamma invstd, b = beta - mu a, rounding x * a at the scale |gamma| A. Adding up:
  |y_bnfast - y_torch| <= 2 u [(m + 4) |gamma| (1 + A) (1 + |xhat|) + |beta| + |y|]
  + (m u A)^2 |gamma| (1 + |xhat|); the factor 2 covers the two libraries' element
  roundings (bnfast: <= 8 u (|gamma xhat| + |beta|), tests/kernels/kernel_tolerances.py)
  and the first-order slack. Relative to max|y| ~ |gamma| sqrt(m) this is
  ~2 (m + 4) u (1 + A) / sqrt(m): 6e-5 for float32 at m = 96, A = 3, one ulp being 6e-8;
  a wrong transform (e.g. the unbiased variance, off by |gamma xhat| / (2m) = 5e-3
  |gamma xhat| at m = 96) is far outside it.
* Running statistics (momentum f; PyTorch rounds f, 1 - f, both products and the sum):
  |drm| <= 4 u [f (m + 3) xmax + |rm_old| + |rm_new|],
  |drv| <= 4 u [|rv_old| + |rv_new|] + f m/(m-1) [4 u (m + 4) sigma (sigma + xmax) + 2 dmu^2].
  f = 0 and f = 1 are in the draws (the bound then is the old value's / the batch's).
* Eval, y = gamma (x - rm) / sqrt(rv + eps) + beta with alpha = |gamma| / sqrt(rv + eps):
  <= 2 u [4 alpha (|x| + |rm|) + 2 |beta| + |y|]: a fixed affine map per channel, a
  handful of roundings each relative to the terms it adds (no reduction, no m).
* Backward: grad_x = gamma invstd (g - mean(g) - xhat mean(g xhat)). Its terms are
  bounded by T = |gamma| invstd (|g| + (1 + |xhat|) (mean|g| + mean|g xhat|)); the two
  reductions err by (m + 2) u relative to their magnitude, the mean's error shifts xhat
  by m u A, invstd errs as above: |dgrad_x| <= 2 u (m + 6) (1 + A) (1 + m u A) T.
  grad_weight = sum g xhat: 2 u (m + 6) (1 + A) (1 + m u A) sum |g| (1 + |xhat|);
  grad_bias = sum g: 2 u (m + 2) sum |g|.
* batch_norm_forward's mean and invstd (float64) against torch's save_mean / save_invstd
  (in x's dtype): 2 u (m + 2) xmax, and 2 (dvar invstd^2 / 2 + 2 u) invstd.
* Underflow: a rounding to a subnormal result errs by up to eta = half the smallest
  subnormal, absolutely, not relatively (fl(v) = v (1 + d) + e, |d| <= u, |e| <= eta).
  Every bound gets (m + 8) eta (a result goes through at most that many roundings), and
  where a rounded per-channel coefficient multiplies data, eta times that data: the
  folded a = gamma invstd (bnfast: scale = gamma / s) and b = beta - mu a multiply |x|
  and |mu| <= xmax, so y gets 4 eta (|x| + xmax), eval y 4 eta (|x| + |rm|), grad_x
  (coefficients of g, x - mu and 1) 4 eta (|g| + |x| + xmax). This matters only for a
  subnormal gamma: gamma = 1e-45 (float32), rv = 2, x = -42.18 has the exact y =
  -29.8 subnormal ulps; torch (contiguous x) and bnfast both give -42 (a rounds from
  0.71 to 1 ulp), torch on a strided view of x -30 (found by this fuzz).

Run with -s to see the worst error / bound ratio per quantity (a ratio near 1 would be
a bound that is just barely holding; they are <= 0.37 on the CI examples and <= 0.5
in 2 x 10000 random ones).
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import bnfast

torch = pytest.importorskip("torch")
from torch_helpers import check_within, one_torch_thread_and_report  # noqa: E402
F = torch.nn.functional

FUZZ = settings(max_examples=1000, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                       HealthCheck.data_too_large])

DTYPES = {np.float32: torch.float32, np.float64: torch.float64}
EPS = [0.0, 1e-5, 0.1]
LAYOUTS = ["contiguous", "permuted", "strided", "negative"]

_WORST = {}


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    with one_torch_thread_and_report(torch, _WORST, "kernels"):
        yield


def unit_roundoff(dtype):
    return float(np.finfo(dtype).eps) / 2


def underflow(dtype):
    """eta: the absolute error of one rounding to dtype in the subnormal range."""
    return float(np.finfo(dtype).smallest_subnormal) / 2


def within(what, ours, theirs, bound):
    """|ours - theirs| <= bound elementwise (both compared in float64)."""
    ours = np.asarray(ours, dtype=np.float64)
    theirs = (theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else
              np.asarray(theirs)).astype(np.float64)
    assert ours.shape == theirs.shape, (what, ours.shape, theirs.shape)
    assert np.all(np.isfinite(ours)) and np.all(np.isfinite(theirs)), what
    check_within(_WORST, what, ours, theirs, bound)


# ---------------------------------------------------------------- the inputs

def axes_but_1(ndim):
    return (0,) + tuple(range(2, ndim))


def per_channel(v, ndim):
    return np.asarray(v, dtype=np.float64).reshape((1, -1) + (1,) * (ndim - 2))


def lay_out(values, layout, draw):
    """values (C-contiguous) as an array of equal values in the given memory layout."""
    shape, nd = values.shape, values.ndim
    if layout == "contiguous":
        return values.copy()
    if layout == "permuted":  # memory order of the axes drawn, e.g. channels-last
        perm = draw(st.permutations(range(nd)))
        base = np.empty([shape[p] for p in perm], values.dtype)
        x = base.transpose(np.argsort(perm))
    elif layout == "strided":  # every step-th entry along one axis
        axis = draw(st.integers(0, nd - 1))
        step, start = draw(st.integers(2, 3)), draw(st.integers(0, 1))
        base_shape = list(shape)
        base_shape[axis] = start + step * shape[axis]
        base = np.full(base_shape, np.nan, values.dtype)
        x = base[(slice(None),) * axis + (slice(start, None, step),)]
    else:  # negative stride along one axis
        axis = draw(st.integers(0, nd - 1))
        flip = (slice(None),) * axis + (slice(None, None, -1),)
        x = np.empty_like(values)[flip]
    x[...] = values
    return x


def torch_tensor(a):
    """torch.from_numpy shares memory and strides; it refuses negative strides."""
    if any(s < 0 for s in a.strides):
        a = a.copy(order="C")  # (ascontiguousarray keeps a size-1 axis's stride)
    return torch.from_numpy(a)


# How the values z in [-1, 1] of one channel are drawn (x = offset + spread * z).
# Drawn from a numpy generator seeded by hypothesis: hypothesis picks the kinds, the
# shape and the seed (cheap), numpy the up to 96 values per channel (hnp.arrays of that
# size costs ~10x more per example).
Z_KINDS = {
    "normal": lambda rng, k: np.clip(rng.standard_normal(k) / 3, -1, 1),
    "uniform": lambda rng, k: rng.uniform(-1, 1, k),
    "ties": lambda rng, k: rng.integers(-2, 3, k) / 2.0,       # five values, repeated
    "two-point": lambda rng, k: rng.choice([-1.0, 1.0], k),    # may come out constant
    "outlier": lambda rng, k: np.where(np.arange(k) == rng.integers(k), 1.0, 0.0),
    "constant": lambda rng, k: np.zeros(k),
}


@st.composite
def batches(draw, min_values=1):
    """(x, weight, bias): x of a drawn dtype, shape and memory layout."""
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    ndim = draw(st.integers(2, 4))
    n, c = draw(st.integers(1, 6)), draw(st.integers(1, 4))
    shape = (n, c) + tuple(draw(st.integers(1, 4)) for _ in range(ndim - 2))
    assume(n * int(np.prod(shape[2:])) >= min_values)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kinds = [draw(st.sampled_from(list(Z_KINDS))) for _ in range(c)]
    z = np.empty(shape)
    for j, kind in enumerate(kinds):
        z[:, j] = Z_KINDS[kind](rng, z[:, j].size).reshape(z[:, j].shape)
    offset = np.array([draw(st.floats(-100, 100) | st.sampled_from([0.0, 1.0, -3.0, 100.0]))
                       for _ in range(c)])
    spread = 10.0 ** np.array([draw(st.floats(-2, 2)) for _ in range(c)])
    values = (per_channel(offset, ndim) + per_channel(spread, ndim) * z).astype(dtype)
    layout = draw(st.sampled_from(LAYOUTS))
    x = lay_out(values, layout, draw)
    m = n * int(np.prod(shape[2:]))
    event(f"{np.dtype(dtype).name}, {ndim}-D, {layout}")
    event(f"values per channel: {m if m <= 2 else '3-9' if m < 10 else '10-96'}")
    params = hnp.arrays(dtype, c, elements=st.floats(-3, 3, width=32)
                        | st.sampled_from([0.0, 1.0, -1.0]))
    weight = draw(st.none() | params)
    bias = draw(st.none() | params)
    return x, weight, bias


@st.composite
def running_stats(draw, dtype, c):
    """(running_mean, running_var): contiguous, or strided views of a larger buffer."""
    rm = draw(hnp.arrays(dtype, c, elements=st.floats(-5, 5, width=32)))
    rv = draw(hnp.arrays(dtype, c, elements=st.floats(0.0625, 10, width=32)))
    if draw(st.booleans()):
        rm2, rv2 = np.full(2 * c, np.nan, dtype), np.full(2 * c, np.nan, dtype)
        rm2[::2], rv2[::2] = rm, rv
        rm, rv = rm2[::2], rv2[::2]
    return rm, rv


class Oracle:
    """Exact-enough (float64) per-channel quantities of x that the bounds are built from."""

    def __init__(self, x, eps, weight=None, bias=None):
        x64 = np.asarray(x, dtype=np.float64)
        axes = axes_but_1(x64.ndim)
        nd = x64.ndim
        self.m = x64.size // x64.shape[1]
        # exactly constant channels (numpy's variance of three equal values need not be
        # 0: their mean (a + a + a) / 3 need not be a)
        flat = np.max(x64, axis=axes, keepdims=True) == np.min(x64, axis=axes, keepdims=True)
        self.constant = bool(np.any(flat))
        self.mu = x64.mean(axis=axes, keepdims=True)
        self.var = np.where(flat, 0.0, np.square(x64 - self.mu).mean(axis=axes, keepdims=True))
        self.sigma = np.sqrt(self.var)
        self.absx = np.abs(x64)
        self.xmax = np.max(self.absx, axis=axes, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):  # inf/NaN: constant, eps 0
            self.invstd = 1.0 / np.sqrt(self.var + eps)
            self.A = self.xmax * self.invstd
            self.xhat = (x64 - self.mu) * self.invstd
        self.gamma = np.abs(per_channel(1.0 if weight is None else weight, nd))
        self.beta = np.abs(per_channel(0.0 if bias is None else bias, nd))
        self.axes = axes

    def dmu(self, u):
        return self.m * u * self.xmax

    def dvar(self, u):
        return (self.m + 4) * u * self.sigma * (self.sigma + self.xmax) + self.dmu(u) ** 2

    def y_bound(self, y, u, eta):
        m, A, g, xh = self.m, self.A, self.gamma, np.abs(self.xhat)
        return (2 * u * ((m + 4) * g * (1 + A) * (1 + xh) + self.beta + np.abs(y))
                + (m * u * A) ** 2 * g * (1 + xh)
                + eta * (4 * (self.absx + self.xmax) + m + 8))


def torch_batch_norm(tx, rm, rv, w, b, training, momentum, eps):
    """F.batch_norm; for eps = 0 in training (which F refuses since torch 2.x) the ATen
    op it calls, after F's own check of the batch size."""
    if training and eps == 0.0:
        F._verify_batch_size(tx.size())
        return torch.batch_norm(tx, w, b, rm, rv, True, momentum, 0.0, False)
    return F.batch_norm(tx, rm, rv, w, b, training=training, momentum=momentum, eps=eps)


def ambiguous_channels_last(t):
    """A 4-D tensor that is channels-last contiguous for is_contiguous(memory_format=
    torch.channels_last) but not with the canonical channels-last strides (a size-1 dim
    with another stride) and not NCHW contiguous either.

    PyTorch 2.13's CPU batch_norm backward is wrong (grad_input, grad_weight and even
    grad_bias = sum(grad_output), all off by O(1)) when the input or grad_output is such
    a tensor and the other is not in the same strides: it reads one of them in the
    other's memory order. Found by this fuzz; minimal reproductions:

        F = torch.nn.functional
        # (a) input (4, 3, 5, 1) with strides (15, 1, 3, 1), grad_output contiguous
        x = torch.randn(4, 5, 3, dtype=torch.float64).transpose(1, 2).unsqueeze(-1)
        g = torch.randn(4, 3, 5, 1, dtype=torch.float64)
        # (b) input (1, 4, 2, 2) contiguous, grad_output strides (8, 1, 8, 4)
        x = torch.randn(1, 4, 2, 2, dtype=torch.float64)
        g = torch.randn(2, 1, 2, 4, dtype=torch.float64).permute(1, 3, 0, 2)
        # both: with w = torch.ones(C, requires_grad=True), b likewise zeros,
        # F.batch_norm(x.requires_grad_(), None, None, w, b, training=True).backward(g)
        # gives x.grad, w.grad, b.grad that differ from those with x.contiguous() and
        # g.contiguous() by O(1); b.grad != g.sum((0, 2, 3))

    The canonical channels-last strides ((15, 1, 3, 3), (16, 1, 8, 4)) are fine, and so
    is a grad_output in the input's own strides."""
    if t.ndim != 4 or t.is_contiguous() or \
            not t.is_contiguous(memory_format=torch.channels_last):
        return False
    _, c, h, w = t.shape
    return tuple(t.stride()) != (h * w * c, 1, w * c, c)


def tensor_or_none(a):
    """A torch copy (torch updates running statistics in place: it must not share
    bnfast's arrays)."""
    return None if a is None else torch.from_numpy(np.array(a, order="C"))


def values_per_channel(x):
    return x.size // x.shape[1]


MOMENTA = st.sampled_from([0.0, 1.0, 0.1]) | st.floats(0.0, 1.0)


# ---------------------------------------------------------------- training mode

@FUZZ
@given(batches(), st.sampled_from(EPS), MOMENTA, st.booleans(), st.data())
def test_training_matches_torch(batch, eps, momentum, tracking, data):
    x, weight, bias = batch
    dtype, c, m = x.dtype.type, x.shape[1], values_per_channel(x)
    rm = rv = None
    if tracking:
        rm, rv = data.draw(running_stats(dtype, c))
    rm_old = None if rm is None else rm.copy()
    rv_old = None if rv is None else rv.copy()
    t_rm, t_rv = tensor_or_none(rm), tensor_or_none(rv)
    oracle = Oracle(x, eps, weight, bias)

    torch_error = ours_error = None
    try:
        ty = torch_batch_norm(torch_tensor(x), t_rm, t_rv, tensor_or_none(weight),
                              tensor_or_none(bias), True, momentum, eps)
    except ValueError as exc:
        torch_error = exc
    try:
        y = bnfast.batch_norm(x, rm, rv, weight, bias, training=True, momentum=momentum,
                              eps=eps)
    except ValueError as exc:
        ours_error = exc

    # torch raises exactly for one value per channel; so must we (same message)
    assert (torch_error is not None) == (m == 1)
    zero_variance = eps == 0.0 and oracle.constant
    event("outcome: " + ("one value per channel" if m == 1 else
                         "zero variance at eps = 0" if zero_variance else "compared"))
    if m == 1:
        assert ours_error is not None, "torch refuses one value per channel, bnfast did not"
        assert "Expected more than 1 value per channel when training" in str(ours_error)
    elif zero_variance:  # torch divides by zero here; bnfast refuses (documented)
        assert isinstance(ours_error, bnfast.ZeroVarianceError), ours_error
    else:
        assert ours_error is None, f"bnfast raised where torch did not: {ours_error!r}"
    if ours_error is not None:  # a call that raises changes nothing
        if tracking:
            np.testing.assert_array_equal(rm, rm_old)
            np.testing.assert_array_equal(rv, rv_old)
        return

    u, tiny = unit_roundoff(dtype), (m + 8) * underflow(dtype)
    assert y.dtype == x.dtype and y.shape == x.shape
    ty64 = ty.numpy().astype(np.float64)
    within("train y", y, ty, oracle.y_bound(ty64, u, underflow(dtype)))
    if tracking:
        f = momentum
        rm_new, rv_new = t_rm.numpy().astype(np.float64), t_rv.numpy().astype(np.float64)
        xmax, sigma = oracle.xmax.ravel(), oracle.sigma.ravel()
        within("running_mean", rm, t_rm,
               4 * u * (f * (m + 3) * xmax + np.abs(rm_old) + np.abs(rm_new)) + tiny)
        dvar = (m / (m - 1)) * (4 * u * (m + 4) * sigma * (sigma + xmax)
                                + 2 * oracle.dmu(u).ravel() ** 2)
        within("running_var", rv, t_rv,
               4 * u * (np.abs(rv_old) + np.abs(rv_new)) + f * dvar + tiny)


# ---------------------------------------------------------------- eval mode

@FUZZ
@given(batches(), st.sampled_from(EPS), MOMENTA, st.data())
def test_eval_matches_torch(batch, eps, momentum, data):
    x, weight, bias = batch
    dtype, nd = x.dtype.type, x.ndim
    rm, rv = data.draw(running_stats(dtype, x.shape[1]))
    rm_old, rv_old = rm.copy(), rv.copy()
    ty = torch_batch_norm(torch_tensor(x), tensor_or_none(rm), tensor_or_none(rv),
                          tensor_or_none(weight), tensor_or_none(bias), False, momentum,
                          eps)
    y = bnfast.batch_norm(x, rm, rv, weight, bias, training=False, momentum=momentum,
                          eps=eps)
    np.testing.assert_array_equal(rm, rm_old)  # eval never moves them
    np.testing.assert_array_equal(rv, rv_old)
    assert y.dtype == x.dtype and y.shape == x.shape
    u = unit_roundoff(dtype)
    gamma = np.abs(per_channel(1.0 if weight is None else weight, nd))
    beta = np.abs(per_channel(0.0 if bias is None else bias, nd))
    alpha = gamma / np.sqrt(per_channel(rv, nd) + eps)
    x64 = np.asarray(x, dtype=np.float64)
    absrm = np.abs(per_channel(rm, nd))
    bound = (2 * u * (4 * alpha * (np.abs(x64) + absrm) + 2 * beta
                      + np.abs(ty.numpy().astype(np.float64)))
             + underflow(dtype) * (4 * (np.abs(x64) + absrm) + 8))
    within("eval y", y, ty, bound)


# ---------------------------------------------------------------- forward + backward

@FUZZ
@given(batches(min_values=2), st.sampled_from(EPS), st.data())
def test_forward_backward_match_torch_autograd(batch, eps, data):
    x, weight, bias = batch
    dtype, c, m = x.dtype.type, x.shape[1], values_per_channel(x)
    oracle = Oracle(x, eps, weight, bias)
    if eps == 0.0 and oracle.constant:
        with pytest.raises(bnfast.ZeroVarianceError):
            bnfast.batch_norm_forward(x, weight, bias, eps)
        return
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    kind = data.draw(st.sampled_from(list(Z_KINDS)))
    g = Z_KINDS[kind](rng, x.size).reshape(x.shape).astype(dtype)
    g = lay_out(g, data.draw(st.sampled_from(LAYOUTS)), data.draw)

    # torch: weight 1 / bias 0 stand in for None, so their gradients exist (bnfast's
    # grad_weight / grad_bias are those of the implicit weight 1 and bias 0)
    tdt = DTYPES[dtype]
    tx, tg = torch_tensor(x), torch_tensor(g)
    if ambiguous_channels_last(tx) or ambiguous_channels_last(tg):
        # torch's bug (see ambiguous_channels_last): torch gets NCHW copies, bnfast
        # still the drawn layouts
        tx, tg = tx.contiguous(), tg.contiguous()
        event("torch gets contiguous copies (ambiguous channels-last)")
    tx.requires_grad_()
    tw = (torch.ones(c, dtype=tdt) if weight is None
          else torch.from_numpy(weight.copy())).requires_grad_()
    tb = (torch.zeros(c, dtype=tdt) if bias is None
          else torch.from_numpy(bias.copy())).requires_grad_()
    ty = torch_batch_norm(tx, None, None, tw, tb, True, 0.0, eps)
    ty.backward(tg)
    with torch.no_grad():
        _, t_mean, t_invstd = torch.native_batch_norm(torch_tensor(x), None, None, None,
                                                      None, True, 0.0, eps)

    y, mean, invstd = bnfast.batch_norm_forward(x, weight, bias, eps)
    gx, gw, gb = bnfast.batch_norm_backward(g, x, mean, invstd, weight)
    assert mean.dtype == invstd.dtype == gw.dtype == gb.dtype == np.float64
    assert y.dtype == gx.dtype == x.dtype

    u, tiny = unit_roundoff(dtype), (m + 8) * underflow(dtype)
    within("forward y", y, ty,
           oracle.y_bound(ty.detach().numpy().astype(np.float64), u, underflow(dtype)))
    within("mean", mean, t_mean, 2 * u * (m + 2) * oracle.xmax.ravel() + tiny)
    inv = oracle.invstd.ravel()
    within("invstd", invstd, t_invstd,
           2 * (oracle.dvar(u).ravel() * inv**2 / 2 + 2 * u) * inv)

    axes = oracle.axes
    g64 = np.abs(np.asarray(g, dtype=np.float64))
    xh = np.abs(oracle.xhat)
    A = oracle.A
    cond = (m + 6) * (1 + A) * (1 + m * u * A)
    terms = oracle.gamma * oracle.invstd * (
        g64 + (1 + xh) * (g64.mean(axis=axes, keepdims=True)
                          + (g64 * xh).mean(axis=axes, keepdims=True)))
    within("grad_x", gx, tx.grad, 2 * u * cond * terms + tiny
           + 4 * underflow(dtype) * (g64 + oracle.absx + oracle.xmax))
    within("grad_weight", gw, tw.grad,
           2 * u * cond.ravel() * np.sum(g64 * (1 + xh), axis=axes) + tiny)
    within("grad_bias", gb, tb.grad, 2 * u * (m + 2) * np.sum(g64, axis=axes) + tiny)


# ---------------------------------------------------------------- the bounds bite

@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_bounds_reject_the_unbiased_variance(dtype):
    """The y bound is not vacuous: BN with the unbiased variance (a plausible bug,
    relative error 1/(2m) in xhat) falls outside it at m = 96, the largest m drawn."""
    rng = np.random.default_rng(0)
    x = (3 + 2 * rng.standard_normal((6, 2, 4, 4))).astype(dtype)
    oracle = Oracle(x, 1e-5)
    y = bnfast.batch_norm(x, training=True)
    x64 = x.astype(np.float64)
    wrong = (x64 - oracle.mu) / np.sqrt(x64.var(axis=(0, 2, 3), keepdims=True, ddof=1)
                                        + 1e-5)
    err = np.abs(wrong - y.astype(np.float64))
    bound = oracle.y_bound(y.astype(np.float64), unit_roundoff(dtype), underflow(dtype))
    assert np.max(err - bound) > 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("which", ["x", "grad_y"])
def test_ambiguous_channels_last_gradients(dtype, which):
    """The layouts where torch 2.13's CPU backward goes wrong (see
    ambiguous_channels_last): bnfast against the float64 formulas of
    batch_norm_backward's docstring, within the bounds of the fuzz."""
    rng = np.random.default_rng(1)
    if which == "x":
        x = rng.standard_normal((4, 5, 3)).astype(dtype).transpose(0, 2, 1)[..., None]
        g = rng.standard_normal(x.shape).astype(dtype)
        odd = x
    else:
        x = rng.standard_normal((1, 3, 2, 2)).astype(dtype)
        g = rng.standard_normal((2, 1, 2, 3)).astype(dtype).transpose(1, 3, 0, 2)
        odd = g
    assert ambiguous_channels_last(torch.from_numpy(odd))
    weight = np.array([1.0, -0.5, 2.0], dtype)
    _, mean, invstd = bnfast.batch_norm_forward(x, weight, None, 1e-5)
    gx, gw, gb = bnfast.batch_norm_backward(g, x, mean, invstd, weight)
    oracle = Oracle(x, 1e-5, weight)
    axes, m, u = oracle.axes, oracle.m, unit_roundoff(dtype)
    g64 = g.astype(np.float64)
    xhat = oracle.xhat
    exact_gb = g64.sum(axis=axes)
    exact_gw = (g64 * xhat).sum(axis=axes)
    w = per_channel(weight, 4)
    exact_gx = w * oracle.invstd / m * (m * g64 - per_channel(exact_gb, 4)
                                        - xhat * per_channel(exact_gw, 4))
    cond = (m + 6) * (1 + oracle.A)
    ag, axh = np.abs(g64), np.abs(xhat)
    terms = oracle.gamma * oracle.invstd * (ag + (1 + axh) * (
        ag.mean(axis=axes, keepdims=True) + (ag * axh).mean(axis=axes, keepdims=True)))
    within("layout check grad_x", gx, exact_gx, 2 * u * cond * terms)
    within("layout check grad_weight", gw, exact_gw,
           2 * u * cond.ravel() * np.sum(ag * (1 + axh), axis=axes))
    within("layout check grad_bias", gb, exact_gb, 2 * u * (m + 2) * ag.sum(axis=axes))
