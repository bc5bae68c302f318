"""Hypothesis fuzz of Network.loss and Network.gradient against torch autograd, float64
(issue 15, item 2).

Target test_loss_and_gradient_match_torch_autograd, 1000 derandomized examples (no
example database: CI sees the same examples on every run): random small networks of
1 to 3 Dense layers, widths 1 to 6, activations identity / sigmoid / tanh / relu, bias or
not, BatchNorm (norm "std") or not, with eps in {0, 1e-5} and gamma / beta trainable or
constant (scalars or per-neuron, 0 included), loss "sum" or "mean", m = 2 to 12 rows.
The torch side is written from docs/math/networks.md: H = A W^T + b, then
torch.nn.functional.batch_norm in training mode (for eps = 0, which F.batch_norm refuses
in training since torch 2.x, the ATen op under it, torch.batch_norm), then the
activation; L = sum (f - y)^2 (or / m). Its trainable tensors, in the documented flat
order (W row-major, b, gamma, beta per layer), reproduce Network.params exactly.

Tolerance: an elementwise first-order rounding-error bound, u = 2^-53.
* Forward magnitudes. A computed value v errs by at most ~u D F(v), where F(v) bounds
  the magnitudes its computation went through: F(A_0) = |X|, F(H) = F(A) |W|^T + |b|
  (a dot product errs relative to the sum of |terms|, whatever the cancellation), for BN
  F(Z) = |gamma| (F(H) + max_i F(H)) / s + |beta| (centring errs at the column's largest
  magnitude, dividing by s = sqrt(var + eps) amplifies), F(A) = |A| + |phi'(Z)| F(Z).
  kappa = max_i F(H) / s per BN column is the condition number of the normalization (the
  per-column |mean| / std ratio, with the cancellation in H included).
* Backward magnitudes, the same recursion as the gradient (networks.md section 4) on
  absolute values, each coefficient widened by its own forward error: M(dA_L) =
  2 (F(A_L) + |Y|) (/ m for "mean"); M(dZ) = M(dA) (|phi'(Z)| + |phi''(Z)| F(Z) + T),
  T the scale at which phi' itself is computed (1 + 3 a^2 for tanh's 1 - a^2, which
  errs by ~u even where it is tiny; see phi_and_derivatives);
  BN: with E = (F(H) + max F(H)) / s (the error scale of hhat), M(dgamma) =
  sum M(dZ) (|hhat| + E), M(dbeta) = sum M(dZ), M(dH) = (1 + kappa) |gamma| / s
  (M(dZ) + mean M(dZ) + (|hhat| + E) mean(M(dZ) (|hhat| + E))) (the 1 + kappa: 1/s errs by
  ~u kappa relative); M(dW) = M(dH)^T F(A_in), M(db) = sum M(dH), M(dA_in) = M(dH) |W|.
  Every rounding of either library perturbs one term by <= u |term|, and the recursion
  carries |term| to the result, so |grad_bnfast - grad_torch| <= 2 u D M(grad) with
  D = sum over layers (in_features + m + 10) roundings along the longest chain (a dot
  product, a column sum, ~10 elementwise operations) and the 2 for the two libraries.
  The loss: 2 u (D + m k) sum 2 (F(f) + |Y|) |f - Y| (k outputs).
  For a bias before BN the exact gradient is 0 (networks.md section 3): the bound is
  then the size of the rounding noise both libraries produce, as it should be.
* Underflow: a rounding to a subnormal result errs by eta = 2^-1075 absolutely
  (fl(v) = v (1 + d) + e): u (|v| + eta/u) with eta/u = 2^-1022 = LAMBDA, the smallest
  normal number. So every magnitude above gets + LAMBDA: a subnormal intermediate (e.g.
  phi' of a saturated sigmoid, ~1e-312) then carries its absolute error through the
  recursion like any other term.
* Filters (hypothesis.assume): every ReLU pre-activation is farther from the kink than
  1e3 u D F(Z) (or exactly 0 with F(Z) = 0, computed exactly by both: derivative 0 in
  both); eps = 0 BN columns have kappa <= 1e6 (a constant column makes bnfast raise
  ZeroVarianceError and torch divide by zero; a nearly constant one is a bound of ~1e-9
  relative, still checked but uninformative beyond that).

A wrong gradient (a missing term, the unbiased variance, a transposed W) is off by
O(M(grad)), ~1/(u D) ~ 1e14 times the bound (test_bound_rejects_a_wrong_gradient: the
unbiased variance at m = 12 is ~1e11 bounds off; it asserts > 1e6). Run with -s to see the worst
error / bound ratios (<= 0.07 in 20000 random examples, 0.03 on the CI ones).
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from bnfast import BatchNorm, Dense, Network

torch = pytest.importorskip("torch")
from torch_helpers import check_within, one_torch_thread_and_report  # noqa: E402
F = torch.nn.functional
F64 = torch.float64

FUZZ = settings(max_examples=1000, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

U = 2.0**-53
LAMBDA = 2.0**-1022  # eta / u: the underflow floor of every magnitude
ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu")
KAPPA_MAX = 1e6
RELU_MARGIN = 1e3

_WORST = {}


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    with one_torch_thread_and_report(torch, _WORST, "networks"):
        yield


def within(what, ours, theirs, bound):
    check_within(_WORST, what, ours, theirs, bound)


# ---------------------------------------------------------------- the cases

GAMMAS = st.sampled_from([1.0, -1.0, 0.0, 0.5]) | st.floats(-2, 2)


@st.composite
def cases(draw):
    """(net, X, Y): structure from hypothesis, numbers from a numpy generator it seeds
    (cheap per example); X's columns normal, or few-valued (ties, constant columns)."""
    depth = draw(st.integers(1, 3))
    widths = [draw(st.integers(1, 6)) for _ in range(depth + 1)]
    layers = []
    for n_in, n_out in zip(widths, widths[1:]):
        bn = None
        if draw(st.booleans()):
            per_neuron = draw(st.booleans())
            gamma = [draw(GAMMAS) for _ in range(n_out)] if per_neuron else draw(GAMMAS)
            beta = [draw(GAMMAS) for _ in range(n_out)] if per_neuron else draw(GAMMAS)
            bn = BatchNorm(gamma=gamma, beta=beta, trainable=draw(st.booleans()),
                           eps=draw(st.sampled_from([0.0, 1e-5])), norm="std")
        layers.append(Dense(n_in, n_out, draw(st.sampled_from(ACTIVATIONS)),
                            bias=draw(st.booleans()), batch_norm=bn))
    net = Network(layers, loss=draw(st.sampled_from(["sum", "mean"])))
    m = draw(st.integers(2, 12))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = draw(st.sampled_from([0.3, 1.0, 3.0]))
    net.params = scale * rng.standard_normal(net.num_params)
    if draw(st.booleans()):
        X = rng.standard_normal((m, widths[0])) * 10.0 ** rng.uniform(-1, 1, widths[0]) \
            + rng.uniform(-3, 3, widths[0])
    else:
        X = rng.integers(-2, 3, (m, widths[0])).astype(np.float64)
    Y = rng.standard_normal((m, widths[-1]))
    if widths[-1] == 1 and draw(st.booleans()):
        Y = Y[:, 0]
    event(f"{depth} layer(s), {sum(layer.batch_norm is not None for layer in layers)} BN")
    return net, X, Y


# ---------------------------------------------------------------- torch side

def phi_and_derivatives(activation, z):
    """phi(z), phi'(z), phi''(z) and T, the error scale of phi' as both libraries
    compute it, from a = phi(z) (networks.md section 1; torch's tanh/sigmoid backward
    too): tanh 1 - a*a rounds at the scale 1 + a^2 and inherits 2|a| times a's own error
    u|a|: T = 1 + 3 a^2 (when tanh saturates, 1 - a^2 is tiny but errs by ~u, not by
    u (1 - a^2)); sigmoid a - a^2: T = 2|a| + 3 a^2; identity and relu are exact, T = 0.
    Numpy, for the bound only."""
    if activation == "identity":
        return z, np.ones_like(z), np.zeros_like(z), np.zeros_like(z)
    if activation == "relu":
        return np.maximum(z, 0), (z > 0).astype(np.float64), np.zeros_like(z), np.zeros_like(z)
    if activation == "tanh":
        a = np.tanh(z)
        return a, 1 - a * a, -2 * a * (1 - a * a), 1 + 3 * a * a
    a = 1 / (1 + np.exp(-np.clip(z, -700, 700)))
    return a, a * (1 - a), a * (1 - a) * (1 - 2 * a), 2 * np.abs(a) + 3 * a * a


TORCH_PHI = {"identity": lambda z: z, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
             "relu": torch.relu}


def torch_loss_and_grad(net, X, Y):
    """Loss and flat gradient by torch autograd, and per layer the forward values the
    bound needs (numpy)."""
    values = net.unflatten()
    A = torch.tensor(X, dtype=F64)
    trainable, record = [], []
    for layer, vals in zip(net.layers, values):
        W = torch.tensor(vals["W"], dtype=F64, requires_grad=True)
        trainable.append(W)
        H = A @ W.T
        b = None
        if layer.bias:
            b = torch.tensor(vals["b"], dtype=F64, requires_grad=True)
            trainable.append(b)
            H = H + b
        rec = {"layer": layer, "A_in": A.detach().numpy(), "W": vals["W"],
               "b": None if b is None else vals["b"], "H": H.detach().numpy()}
        bn = layer.batch_norm
        if bn is not None:
            if bn.trainable:
                gamma = torch.tensor(vals["gamma"], dtype=F64, requires_grad=True)
                beta = torch.tensor(vals["beta"], dtype=F64, requires_grad=True)
                trainable += [gamma, beta]
            else:
                g0, b0 = bn.values(layer.out_features)
                gamma, beta = torch.tensor(g0, dtype=F64), torch.tensor(b0, dtype=F64)
            if bn.eps > 0:
                Z = F.batch_norm(H, None, None, gamma, beta, training=True, eps=bn.eps)
            else:  # F.batch_norm refuses eps = 0 in training; the ATen op below it
                Z = torch.batch_norm(H, gamma, beta, None, None, True, 0.0, 0.0, False)
            rec["gamma"], rec["beta"], rec["eps"] = (gamma.detach().numpy(),
                                                     beta.detach().numpy(), bn.eps)
        else:
            Z = H
        rec["Z"] = Z.detach().numpy()
        A = TORCH_PHI[layer.activation](Z)
        record.append(rec)
    Yt = torch.tensor(Y.reshape(X.shape[0], -1), dtype=F64)
    loss = ((A - Yt) ** 2).sum()
    if net.loss_kind == "mean":
        loss = loss / X.shape[0]
    grads = torch.autograd.grad(loss, trainable)
    flat_params = torch.cat([t.detach().reshape(-1) for t in trainable]).numpy()
    np.testing.assert_array_equal(flat_params, net.params)  # the documented order
    flat_grad = torch.cat([g.reshape(-1) for g in grads]).numpy()
    return float(loss.detach()), flat_grad, record, A.detach().numpy()


# ---------------------------------------------------------------- the bound

def column_std(H, eps):
    """sqrt(var + eps) per column; exactly 0 for an exactly constant column."""
    var = np.square(H - H.mean(axis=0)).mean(axis=0)
    var[np.max(H, axis=0) == np.min(H, axis=0)] = 0.0
    return np.sqrt(var + eps)


def bounds(net, X, Y, record, f):
    """(loss bound, gradient bound (num_params,)) per the module docstring, or None when
    the case is filtered out (a ReLU pre-activation at its kink, an ill-conditioned
    eps = 0 BN column)."""
    m = X.shape[0]
    D = sum(layer.in_features + m + 10 for layer in net.layers)
    FA = np.abs(X) + LAMBDA
    for rec in record:
        layer = rec["layer"]
        FH = FA @ np.abs(rec["W"]).T + (0.0 if rec["b"] is None else np.abs(rec["b"])) + LAMBDA
        if "gamma" in rec:
            s = column_std(rec["H"], rec["eps"])
            with np.errstate(divide="ignore", invalid="ignore"):
                E = (FH + FH.max(axis=0)) / s
                kappa = float(np.max(FH.max(axis=0) / s))
            if rec["eps"] == 0.0 and not kappa <= KAPPA_MAX:  # inf / NaN included
                return None
            rec["s"], rec["E"], rec["kappa"] = s, E, kappa
            rec["hhat"] = (rec["H"] - rec["H"].mean(axis=0)) / s
            FZ = np.abs(rec["gamma"]) * E + np.abs(rec["beta"]) + LAMBDA
        else:
            FZ = FH
        Z = rec["Z"]
        if layer.activation == "relu":
            if not np.all((np.abs(Z) > RELU_MARGIN * U * D * FZ) | ((Z == 0) & (FZ == 0))):
                return None
        a, d1, d2, T = phi_and_derivatives(layer.activation, Z)
        rec["FA_in"], rec["FZ"], rec["dphi"] = FA, FZ, d1 + np.abs(d2) * FZ + T
        FA = np.abs(a) + d1 * FZ + LAMBDA
    Y2 = Y.reshape(m, -1)
    reduce = m if net.loss_kind == "mean" else 1
    loss_bound = 2 * U * (D + Y2.size) * (np.sum(2 * (FA + np.abs(Y2)) * np.abs(f - Y2))
                                          + LAMBDA) / reduce

    MA = 2 * (FA + np.abs(Y2)) / reduce
    chunks = []
    for rec in reversed(record):
        layer = rec["layer"]
        MZ = MA * rec["dphi"] + LAMBDA
        grads = []
        if "gamma" in rec:
            h = np.abs(rec["hhat"]) + rec["E"]
            if layer.batch_norm.trainable:
                grads += [np.sum(MZ * h, axis=0), np.sum(MZ, axis=0)]
            MH = ((1 + rec["kappa"]) * np.abs(rec["gamma"]) / rec["s"]
                  * (MZ + MZ.mean(axis=0) + h * (MZ * h).mean(axis=0)) + LAMBDA)
        else:
            MH = MZ
        if layer.bias:
            grads.insert(0, MH.sum(axis=0))
        grads.insert(0, (MH.T @ rec["FA_in"]).ravel())
        chunks = grads + chunks
        MA = MH @ np.abs(rec["W"]) + LAMBDA
    return loss_bound, 2 * U * D * (np.concatenate(chunks) + LAMBDA)


# ---------------------------------------------------------------- the target

@FUZZ
@given(cases())
def test_loss_and_gradient_match_torch_autograd(case):
    net, X, Y = case
    loss, grad, record, f = torch_loss_and_grad(net, X, Y)
    bnd = bounds(net, X, Y, record, f)
    assume(bnd is not None)
    loss_bound, grad_bound = bnd
    within("loss", net.loss(X, Y), loss, loss_bound)
    within("gradient", net.gradient(X, Y), grad, grad_bound)
    both = net.loss_and_gradient(X, Y)
    within("loss (loss_and_gradient)", both[0], loss, loss_bound)
    within("gradient (loss_and_gradient)", both[1], grad, grad_bound)


def unbiased_bn_gradient(net, X, Y):
    """The gradient of the one-layer network below with BN dividing by the unbiased
    variance (a plausible bug), by torch autograd."""
    vals = net.unflatten()[0]
    W = torch.tensor(vals["W"], dtype=F64, requires_grad=True)
    gamma = torch.tensor(vals["gamma"], dtype=F64, requires_grad=True)
    beta = torch.tensor(vals["beta"], dtype=F64, requires_grad=True)
    H = torch.tensor(X, dtype=F64) @ W.T
    Z = gamma * (H - H.mean(0)) / torch.sqrt(H.var(0, unbiased=True) + 1e-5) + beta
    loss = ((torch.tanh(Z) - torch.tensor(Y.reshape(-1, 1))) ** 2).sum()
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, [W, gamma, beta])])


def test_bound_rejects_a_wrong_gradient():
    """The bound is not vacuous: at m = 12 (the largest m drawn, where the unbiased
    variance is closest to the biased one) that bug's gradient falls far outside it."""
    net = Network([Dense(3, 1, "tanh", bias=False, batch_norm=BatchNorm(eps=1e-5))],
                  seed=3)
    rng = np.random.default_rng(4)
    X, Y = rng.standard_normal((12, 3)), rng.standard_normal(12)
    _, grad, record, f = torch_loss_and_grad(net, X, Y)
    _, grad_bound = bounds(net, X, Y, record, f)
    within("self-check", net.gradient(X, Y), grad, grad_bound)
    wrong = unbiased_bn_gradient(net, X, Y).numpy()
    assert np.max(np.abs(wrong - grad) / grad_bound) > 1e6
