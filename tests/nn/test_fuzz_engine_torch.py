"""Hypothesis fuzz of the network engine's features against torch autograd, float64
(issue 23, item 5): the second fuzz, extending tests/nn/test_fuzz_network_torch.py (read
its docstring first: the bound here is its bound, extended op by op).

Targets (derandomized, no example database: CI sees the same examples on every run):

* test_features_loss_gradient_hvp_match_torch, 800 examples: random networks of 1 to 3
  entries, each a Dense layer or a Residual block of 1 or 2 Dense layers (widths 1 to 6,
  activations identity / sigmoid / tanh / relu, bias or not), every layer normalized by
  nothing, BatchNorm with norm "std" / "l1" / "l2" / "linf", LayerNorm or GroupNorm
  (any group count dividing the width), eps in {0, 1e-5}, gamma / beta trainable or
  constant; loss "sum", "mean", "cross_entropy" or "cross_entropy_sum"; m = 2 to 10 rows.
  Checked: forward (train mode), loss, gradient, loss_and_gradient, and hvp against
  torch's double backward (along a random v).
* test_training_then_predict_match_torch, 400 examples: 1 to 3 training steps
  (bnfast.train, one step per call, so each step starts from bnfast's own state) of such
  networks with BatchNorm momentum 0.1 / 1 / None (cumulative), noisy BN (BNNoise),
  full batch or a mini-batch, loss "sum" / "mean" / "cross_entropy"; after each step
  the parameters and the running statistics, after the last predict (eval mode, running
  statistics) on fresh rows, the eval-mode loss, its gradient and its hvp.

The torch side is written from docs/math/networks.md: H = A W^T + b; BN "std" is
torch's F.batch_norm (torch.batch_norm for eps = 0, as in the first fuzz), the lp scales
of section 7 are written out (s = mean |h|, sqrt(mean h^2), max |h|, d = sqrt(s^2 + eps),
z = gamma (h - mu) / d + beta), LayerNorm / GroupNorm are F.layer_norm / F.group_norm,
a Residual block is x + block(x), the losses are sum (f - y)^2 (/ m) and
F.cross_entropy (mean or sum). Noise: s z + m after gamma, beta, its draws from
bnfast.reference's NoiseGenerator (section 8's documented stream, reproduced exactly);
mini-batches from bnfast.reference's EpochShuffler (section 5). Eval mode:
F.batch_norm(training=False) on bnfast's running statistics. The running statistics
after a torch step are written from section 9 (unbiased variance for "std", s^2 for the
lp scales). The parameters are sliced from Network.params by the documented flat order
(documented_layout, section 2), not by bnfast's own layout.

Tolerance: the elementwise first-order bound of the first fuzz, u = 2^-53, every
magnitude + LAMBDA = 2^-1022 (underflow), 2 u D M for a gradient entry of magnitude M,
here with D = sum over layers (in + m + out + 10) (+ k + 10 for cross-entropy: the
log-sum-exp over k outputs). New ops:

* Normalization over a set S (BN: a column, m values; LayerNorm / GroupNorm: a row's
  group of c values), d = sqrt(s^2 + eps), maxF = max_S F(H), kappa = maxF / d. The
  scale s errs by <= u D 2 maxF for every kind (std: each centred value errs by
  F(h_i) + maxF and mean |h - mu| <= s; l1, linf: each |h_i| errs by F(h_i); l2:
  mean(|h| F) <= s maxF), so d^2 errs by 2 s u D 2 maxF and d relatively by
  u D rho, rho = 2 (s / d) kappa (not 2 kappa: with eps > 0 a constant set, s = 0,
  has an exact d = sqrt(eps); the cruder 2 kappa compounds over stacked layers).
  hhat = (h - mu) / d has the magnitude E = |hhat| (1 + rho) + (F(H) + maxF) / d
  (value plus error scale), F(Z) = |gamma| E + |beta|.
  Backward (sections 7, 14): dh = (gamma / d) (G - mean G - mean(G zhat) Q) with
  Q = m q: zhat ("std", layer, group), (s / d) sign h ("l1"), h / d ("l2"),
  m (s / d) [j == argmax |h|] ("linf"); magnitudes M(dH) = (1 + rho) / d
  (|gamma| M(G) + mean(|gamma| M(G)) + Q mean(|gamma| M(G) E)) with Q's magnitude
  E, 2 maxF / d, F(H) / d, 2 m maxF / d (at the argmax); gamma inside the means covers
  LayerNorm / GroupNorm, where it varies within a set. M(dgamma) = sum M(dZ) E,
  M(dbeta) = sum M(dZ).
* Eval-mode BN: z = gamma (h - rm) / sqrt(rv + eps) + beta with rm, rv the same bits on
  both sides: F(Z) = |gamma| (F(H) + |rm|) / sqrt(rv + eps) + |beta|, M(dH) = |gamma|
  M(dZ) / sqrt(rv + eps).
* Noise z <- s z + m: F = |s| F(Z) + |m|, M(dZ) = |s| M(dZ_noisy) (the draws themselves
  are the same stream on both sides; a last-ulp difference of log/cos is u |s|, inside
  the D elementwise roundings).
* Residual: F(out) = F(in) + F(block), M(d in) = M(d out) + M(through the block).
* Cross-entropy (section 15), p = softmax(f): dL/df = (p - onehot) / m; p errs by
  <= u D p (F(f_j) + sum_l p_l F(f_l)) (the softmax Jacobian), so M(df) = (p + onehot +
  p (F(f) + sum p F(f))) / m. The loss: 2 u (D + m) sum_i (2 max_j F(f_ij) + log k + 1 +
  loss_i) (/ m): log-sum-exp shifted by the row max errs by the largest F of the row
  (the Jacobian of lse is p) plus the few roundings of exp, sum and log.
* hvp (forward-over-reverse, section 11): every value of the gradient computation
  carries a tangent along v, and its computed tangent errs, to first order, by u D times
  the magnitude of the tangent's terms, plus the tangents' sensitivity to the primal
  errors. Both come out of the same recursion run on dual magnitudes (Dual below):
  every magnitude x carries x', an upper bound of the magnitude of its derivative along
  v (|W| with |v_W|, |gamma| with |v_gamma|, 1 / d with 2 (s / d) maxF' / d^2 (|d'| =
  s |s'| / d and |s'| <= 2 maxF' for every scale, maxF' the largest tangent magnitude
  of the set), s / d with 4 maxF' / d, |phi'| with |phi''| F(Z)', the widening
  |phi''| F(Z) + T with its own derivative (phi''', T', and T2, the error scale of
  phi'' as computed: see tangent_scales)), products by the product rule on magnitudes.
  Since the recursion is a sum of products of nonnegative factors, x' bounds the
  magnitude of every tangent term the gradient's tangent computation forms, with the
  widening of each coefficient differentiated as well (the primal errors). Bound:
  2 u D (M(grad)' + LAMBDA).
* Training steps: params after a step err by lr 2 u D M(grad) + 2 u (|p| + lr |g|);
  running statistics (section 9) by f times the error of mu (u D maxF) or of the
  variance (u D (4 maxF s + s^2), B / (B - 1) for "std") plus 4 u of the update's
  terms. Each step is compared from the same starting state (bnfast's), so the bound
  is one step's, not a trajectory's.

Filters (hypothesis.assume), as in the first fuzz: ReLU pre-activations within
1e3 u D F(Z) of the kink; eps = 0 sets with kappa > 1e6 (a constant set raises
ZeroVarianceError in bnfast); "l1" entries within 1e3 u D F(H) of 0 (sign has its kink
there) unless exactly 0 with all terms 0; "linf" sets whose two largest |h| are within
1e3 u D 2 maxF (at a tie torch's amax splits the gradient, bnfast takes the first index:
both one-sided derivatives, of different sides); a training step that raises
ZeroVarianceError (train records the full-set loss before and after the step, so a
row or column that is constant there at eps = 0, e.g. zeroed by a ReLU after the step,
is undefined); eval at eps = 0 with a zero running
variance (the lp scale of an all-zero column). About 10% of the generated examples are
filtered out (hypothesis counts them apart: the counts above are of checked examples).

batch_size = m is full batch (csrc/core/nn/train.cpp; bnfast.reference.train documents
"None (or m)"): the rows in their order, no epoch shuffle, which matters with noise (the
draws go to the rows in batch order).

test_bound_rejects_a_wrong_variant: for every ordered pair of the four BN scales (and
LayerNorm against GroupNorm(2)), the torch twin of the wrong one is > 1e6 bounds off the
right one's bound, in the gradient and in the hvp (m = 10, uncentred data, so centred
and uncentred scales differ).

Worst error / bound ratios on these CI examples (pytest -s prints them):

    features (800):  forward 0.067, loss 0.016, gradient 0.035, hvp 0.018
    training (400):  step params 0.11, running_mean 0.030, running_var 0.026,
                     predict 0.033, eval loss 0.023, eval gradient 0.029, eval hvp 0.018
    wrong variants:  self-check gradient 0.0021, hvp 9e-5; the wrong twins > 1e6

On 6000 (features) and 3000 (training) non-derandomized examples: at most 0.047
(forward), 0.031 (loss), 0.027 (gradient), 0.019 (hvp); 0.30 (step params: one ulp of
p - lr g, when the two gradients round it to neighbours, is inside 2 u |p - lr g|),
0.062 / 0.087 (running mean / var), 0.053 (predict), 0.037 (eval gradient), 0.034 (eval
hvp). The file runs in ~15 s on two cores.
"""

import math
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from bnfast import (BatchNorm, BNNoise, Dense, GroupNorm, LayerNorm, Network, Residual,
                    ZeroVarianceError)
from bnfast import train as bn_train
from bnfast.reference.noise import NoiseGenerator, draw_noise
from bnfast.reference.shuffle import EpochShuffler

torch = pytest.importorskip("torch")
from torch_helpers import check_within, one_torch_thread_and_report  # noqa: E402
from test_fuzz_network_torch import (GAMMAS, KAPPA_MAX, LAMBDA, RELU_MARGIN,  # noqa: E402
                                     TORCH_PHI, U, column_std, phi_and_derivatives)

F = torch.nn.functional
F64 = torch.float64

FEATURES = settings(max_examples=800, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.filter_too_much])
TRAINING = settings(FEATURES, max_examples=400)

ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu")
NORMS = ("std", "l1", "l2", "linf")

_WORST = {}


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    with one_torch_thread_and_report(torch, _WORST, "engine features"):
        yield


def within(what, ours, theirs, bound):
    check_within(_WORST, what, ours, theirs, bound)


# ---------------------------------------------------------------- dual magnitudes

class Dual:
    """A nonnegative magnitude v and t >= 0, a bound on the magnitude of its derivative
    along the hvp's direction; sums and products follow the product rule on
    magnitudes (module docstring, "hvp")."""

    __slots__ = ("v", "t")
    __array_ufunc__ = None  # ndarray * Dual: Dual.__rmul__, not an object array

    def __init__(self, v, t=0.0):
        self.v = np.asarray(v, dtype=np.float64)
        t = np.asarray(t, dtype=np.float64)
        self.t = t if t.shape == self.v.shape else np.broadcast_to(t, self.v.shape)

    @staticmethod
    def lift(x):
        return x if isinstance(x, Dual) else Dual(x, 0.0)

    def __add__(self, other):
        other = Dual.lift(other)
        return Dual(self.v + other.v, self.t + other.t)

    __radd__ = __add__

    def __mul__(self, other):
        other = Dual.lift(other)
        return Dual(self.v * other.v, self.t * other.v + self.v * other.t)

    __rmul__ = __mul__

    def __matmul__(self, other):
        other = Dual.lift(other)
        return Dual(self.v @ other.v, self.t @ other.v + self.v @ other.t)

    @property
    def T(self):
        return Dual(self.v.T, self.t.T)

    def reshape(self, *shape):
        t = np.broadcast_to(self.t, self.v.shape)
        return Dual(self.v.reshape(*shape), t.reshape(*shape))

    def sum(self, axis=None, keepdims=False):
        return Dual(self.v.sum(axis=axis, keepdims=keepdims),
                    np.broadcast_to(self.t, self.v.shape).sum(axis=axis, keepdims=keepdims))

    def mean(self, axis=None, keepdims=False):
        n = self.v.size if axis is None else self.v.shape[axis]
        s = self.sum(axis, keepdims)
        return Dual(s.v / n, s.t / n)

    def max(self, axis=None, keepdims=False):
        """An upper bound of the largest magnitude and of its tangent."""
        return Dual(self.v.max(axis=axis, keepdims=keepdims),
                    np.broadcast_to(self.t, self.v.shape).max(axis=axis, keepdims=keepdims))


def tangent_scales(activation, a, T):
    """phi''' (the third derivative), T' = dT/dz and T2, the error scale of phi'' as
    computed, through a = phi(z): the tangent of the widened coefficient |phi'| +
    |phi''| F(Z) + T is (|phi''| + |phi'''| F(Z) + |T'| + T2) F(Z)'. T2, as T for phi'
    (phi_and_derivatives): tanh's -2 a (1 - a^2) inherits 2 |a| T; the sigmoid's
    a (1 - a) (1 - 2a) inherits |1 - 2a| T and a (1 - a) times the error scale 1 + 4 |a|
    of 1 - 2a (which errs by ~u near a = 1/2, where it is tiny); each + |phi''| for its
    own rounding."""
    if activation == "tanh":
        d2 = 2 * np.abs(a) * (1 - a * a)
        return (6 * a * a - 2) * (1 - a * a), 6 * a * (1 - a * a), 2 * np.abs(a) * T + d2
    if activation == "sigmoid":
        d1 = a * (1 - a)
        d2 = np.abs(d1 * (1 - 2 * a))
        return (d1 * (1 - 6 * a + 6 * a * a), (2 + 6 * a) * d1,
                T * np.abs(1 - 2 * a) + d1 * (1 + 4 * np.abs(a)) + d2)
    zero = np.zeros_like(a)
    return zero, zero, zero


# ---------------------------------------------------------------- the cases

def normalization(draw, n_out, eps_choices=(0.0, 1e-5), batch_extra=None):
    kind = draw(st.sampled_from(["none", "batch", "batch", "layer", "group"]))
    if kind == "none":
        return None
    per_neuron = draw(st.booleans())
    gamma = [draw(GAMMAS) for _ in range(n_out)] if per_neuron else draw(GAMMAS)
    beta = [draw(GAMMAS) for _ in range(n_out)] if per_neuron else draw(GAMMAS)
    common = dict(gamma=gamma, beta=beta, trainable=draw(st.booleans()),
                  eps=draw(st.sampled_from(eps_choices)))
    if kind == "batch":
        return BatchNorm(norm=draw(st.sampled_from(NORMS)), **common,
                         **(batch_extra(draw) if batch_extra else {}))
    if kind == "layer":
        if common["eps"] == 0.0 and n_out == 1:
            common["eps"] = 1e-5  # one value per row: no defined output at eps = 0
        return LayerNorm(**common)
    divisors = [g for g in range(1, n_out + 1) if n_out % g == 0]
    groups = draw(st.sampled_from(divisors))
    if common["eps"] == 0.0 and groups == n_out:
        common["eps"] = 1e-5
    return GroupNorm(groups, **common)


def dense(draw, n_in, n_out, **kw):
    return Dense(n_in, n_out, draw(st.sampled_from(ACTIVATIONS)), bias=draw(st.booleans()),
                 normalization=normalization(draw, n_out, **kw))


def architecture(draw, max_entries=3, **kw):
    """(entries, in_features, out_features): Dense layers and Residual blocks."""
    width = draw(st.integers(1, 6))
    n_in = width
    entries = []
    for _ in range(draw(st.integers(1, max_entries))):
        if draw(st.booleans()):
            if draw(st.booleans()):
                hidden = draw(st.integers(1, 6))
                block = [dense(draw, width, hidden, **kw), dense(draw, hidden, width, **kw)]
            else:
                block = [dense(draw, width, width, **kw)]
            entries.append(Residual(block))
        else:
            n_out = draw(st.integers(1, 6))
            entries.append(dense(draw, width, n_out, **kw))
            width = n_out
    return entries, n_in, width


def data(draw, rng, m, n_in, n_out, loss):
    if draw(st.booleans()):
        X = rng.standard_normal((m, n_in)) * 10.0 ** rng.uniform(-1, 1, n_in) \
            + rng.uniform(-3, 3, n_in)
    else:
        X = rng.integers(-2, 3, (m, n_in)).astype(np.float64)
    if loss.startswith("cross_entropy"):
        Y = rng.integers(0, n_out, m).astype(np.float64)
    else:
        Y = rng.standard_normal((m, n_out))
        if n_out == 1 and draw(st.booleans()):
            Y = Y[:, 0]
    return X, Y


def describe(entries):
    names = []
    for layer in flat(entries):
        norm = layer.normalization
        names.append("none" if norm is None else
                     norm.norm if isinstance(norm, BatchNorm) else norm.kind)
    return names


@st.composite
def feature_cases(draw):
    """(net, X, Y, v): structure from hypothesis, numbers from a numpy generator it
    seeds; v the hvp direction."""
    entries, n_in, n_out = architecture(draw)
    loss = draw(st.sampled_from(["sum", "mean", "cross_entropy", "cross_entropy_sum"]))
    if loss.startswith("cross_entropy") and n_out == 1:
        loss = "mean"  # one class: cross-entropy is identically 0
    net = Network(entries, loss=loss)
    m = draw(st.integers(2, 10))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    net.params = draw(st.sampled_from([0.3, 1.0, 3.0])) * rng.standard_normal(net.num_params)
    X, Y = data(draw, rng, m, n_in, n_out, loss)
    for name in describe(entries):
        event(f"norm {name}")
    event(f"loss {loss}")
    event(f"{sum(isinstance(e, Residual) for e in entries)} residual block(s)")
    return net, X, Y, rng.standard_normal(net.num_params)


# ---------------------------------------------------------------- torch side

def flat(entries):
    return [d for e in entries for d in (e.layers if isinstance(e, Residual) else [e])]


def structure(net):
    """Per Dense layer in network order: (layer, starts a block, ends a block)."""
    out = []
    for entry in net.layers:
        if isinstance(entry, Residual):
            n = len(entry.layers)
            out += [(layer, i == 0, i == n - 1) for i, layer in enumerate(entry.layers)]
        else:
            out.append((entry, False, False))
    return out


def set_scale(H, norm):
    """s per BN column (1, k), section 7 (0 for an exactly constant "std" column)."""
    if norm == "std":
        return column_std(H, 0.0)[None, :]
    absH = np.abs(H)
    return {"l1": absH.mean(axis=0), "l2": np.sqrt((H * H).mean(axis=0)),
            "linf": absH.max(axis=0)}[norm][None, :]


def torch_lp_bn(H, gamma, beta, norm, eps):
    mu = H.mean(dim=0)
    if norm == "l1":
        s2 = H.abs().mean(dim=0) ** 2
    elif norm == "l2":
        s2 = (H * H).mean(dim=0)
    else:
        s2 = H.abs().amax(dim=0) ** 2
    return gamma * (H - mu) / torch.sqrt(s2 + eps) + beta, mu, s2


def documented_layout(net):
    """Per Dense layer, {name: (slice, shape)} into the flat vector, written from
    networks.md section 2 (W (out, in) row-major, b, gamma, beta if trainable), not read
    from bnfast: a layout mismatch makes every comparison fail."""
    layout, start = [], 0
    for layer, _, _ in structure(net):
        n_in, n_out = layer.in_features, layer.out_features
        names = [("W", (n_out, n_in))] + ([("b", (n_out,))] if layer.bias else [])
        if layer.normalization is not None and layer.normalization.trainable:
            names += [("gamma", (n_out,)), ("beta", (n_out,))]
        slots = {}
        for name, shape in names:
            size = int(np.prod(shape))
            slots[name] = (slice(start, start + size), shape)
            start += size
        layout.append(slots)
    assert start == net.num_params
    return layout


def torch_forward(net, X, params, mode="train", noise=None, running=None):
    """f(X) by torch from the flat parameter tensor ``params`` (documented order).

    mode "train": batch statistics; noise None or, per noisy BN layer in order, (s, m)
    arrays; returns also per BN layer the batch (mu, s^2) for the running statistics.
    mode "eval": BN with running = (means, vars) lists. Per layer a record (numpy) for
    the bound."""
    A = torch.tensor(X, dtype=F64)
    layout = documented_layout(net)
    records, batch_stats = [], []
    draws = None if noise is None else iter(noise)
    bn_index = 0
    skip = None
    for (layer, starts, ends), slots in zip(structure(net), layout):
        if starts:
            skip = A

        def take(name, slots=slots):
            sl, shape = slots[name]
            return params[sl].reshape(shape)
        W = take("W")
        H = A @ W.T
        rec = {"layer": layer, "starts": starts, "ends": ends, "slots": slots,
               "A_in": A.detach().numpy(), "W": W.detach().numpy(), "b": None}
        if layer.bias:
            b = take("b")
            H = H + b
            rec["b"] = b.detach().numpy()
        norm = layer.normalization
        rec["H"] = H.detach().numpy()
        k = layer.out_features
        if norm is not None:
            if norm.trainable:
                gamma, beta = take("gamma"), take("beta")
            else:
                g0, b0 = norm.values(k)
                gamma, beta = torch.tensor(g0, dtype=F64), torch.tensor(b0, dtype=F64)
            rec["gamma"], rec["beta"] = gamma.detach().numpy(), beta.detach().numpy()
            if isinstance(norm, BatchNorm):
                if mode == "eval":
                    rm, rv = (torch.tensor(r[bn_index]) for r in running)
                    rec["rm"], rec["rv"] = rm.numpy(), rv.numpy()
                    Z = F.batch_norm(H, rm, rv, gamma, beta, training=False, eps=norm.eps)
                elif norm.norm == "std":
                    if norm.eps > 0:
                        Z = F.batch_norm(H, None, None, gamma, beta, training=True,
                                         eps=norm.eps)
                    else:  # F.batch_norm refuses eps = 0 in training; the ATen op
                        Z = torch.batch_norm(H, gamma, beta, None, None, True, 0.0, 0.0,
                                             False)
                    Hd = H.detach()
                    batch_stats.append((Hd.mean(dim=0), Hd.var(dim=0, unbiased=False)))
                else:
                    Z, mu, s2 = torch_lp_bn(H, gamma, beta, norm.norm, norm.eps)
                    batch_stats.append((mu.detach(), s2.detach()))
                bn_index += 1
                if mode == "train" and norm.noise is not None and draws is not None:
                    s, mm = next(draws)
                    rec["noise_s"], rec["noise_m"] = s, mm
                    Z = torch.tensor(s) * Z + torch.tensor(mm)
            elif isinstance(norm, LayerNorm):
                Z = F.layer_norm(H, (k,), gamma, beta, norm.eps)
            elif H.shape[0] > 1:
                Z = F.group_norm(H, norm.groups, gamma, beta, norm.eps)
            else:  # F.group_norm refuses one row; its definition, by F.layer_norm
                c = k // norm.groups
                Z = F.layer_norm(H.reshape(1, norm.groups, c), (c,), None, None,
                                 norm.eps).reshape(1, k) * gamma + beta
        else:
            Z = H
        rec["Z"] = Z.detach().numpy()
        A = TORCH_PHI[layer.activation](Z)
        if ends:
            A = skip + A
        records.append(rec)
    return A, records, batch_stats


def torch_loss(net, f, Y):
    kind = net.loss_kind
    if kind.startswith("cross_entropy"):
        y = torch.tensor(Y, dtype=torch.int64)
        return F.cross_entropy(f, y, reduction="mean" if kind == "cross_entropy" else "sum")
    loss = ((f - torch.tensor(Y.reshape(f.shape[0], -1), dtype=F64)) ** 2).sum()
    return loss / f.shape[0] if kind == "mean" else loss


def torch_all(net, X, Y, v=None, mode="train", noise=None, running=None):
    """loss, gradient (and hvp along v) by torch autograd, the records, f."""
    params = torch.tensor(net.params, dtype=F64, requires_grad=True)
    f, records, stats = torch_forward(net, X, params, mode, noise, running)
    loss = torch_loss(net, f, Y)
    (grad,) = torch.autograd.grad(loss, params, create_graph=v is not None)
    hv = None
    if v is not None:
        (hv,) = torch.autograd.grad(grad @ torch.tensor(v), params, allow_unused=True,
                                    materialize_grads=True)
        hv = hv.numpy()
    return (float(loss.detach()), grad.detach().numpy(), hv, records, f.detach().numpy(),
            stats)


# ---------------------------------------------------------------- the bound

def to_sets(x, norm, m, k):
    """(m, k) -> (..., set): BN columns as rows (k, m); row kinds (m, G, c)."""
    if isinstance(norm, BatchNorm):
        return x.T
    groups = norm.groups if isinstance(norm, GroupNorm) else 1
    return x.reshape(m, groups, k // groups)


def from_sets(x, norm, m, k):
    return x.T if isinstance(norm, BatchNorm) else x.reshape(m, k)


def train_normalization(rec, FH, D, m, k):
    """Forward magnitudes of a batch-statistics normalization (module docstring), or
    None when a filter applies; stores what the backward pass needs in rec."""
    norm = rec["layer"].normalization
    H = rec["H"]
    hs, Fs = to_sets(H, norm, m, k), to_sets(FH, norm, m, k)
    variant = norm.norm if isinstance(norm, BatchNorm) else "row"
    if variant == "row":
        mu = hs.mean(axis=-1, keepdims=True)
        var = np.square(hs - mu).mean(axis=-1, keepdims=True)
        var[hs.max(axis=-1, keepdims=True) == hs.min(axis=-1, keepdims=True)] = 0.0
        s = np.sqrt(var)
    else:
        s = set_scale(H, variant).T  # (k, 1)
    d = np.sqrt(s * s + norm.eps)
    maxF = Fs.max(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        kappa = maxF.v / d
        if norm.eps == 0.0 and not np.all(kappa <= KAPPA_MAX):  # inf / NaN included
            return None
    s_d = Dual(s / d, 4 * maxF.t / d)
    inv_d = Dual(1.0 / d, 2.0 * (s / d) * maxF.t / (d * d))
    rho = 2 * s_d * maxF * inv_d  # the relative error of d, / (u D)
    margin = RELU_MARGIN * U * D
    if variant == "l1":
        ok = (np.abs(hs) > margin * Fs.v) | ((hs == 0) & (Fs.v < 1e-300))
        if not np.all(ok):
            return None
    n = hs.shape[-1]
    Q = None
    if variant == "linf":
        top = np.sort(np.abs(hs), axis=-1)
        if n > 1 and not np.all(top[:, -1] - top[:, -2] > 2 * margin * maxF.v[:, 0]):
            return None
        at = (np.abs(hs) == top[:, -1:]).astype(np.float64)
        Q = at * (2 * n * maxF * inv_d)
    hc = Dual(np.abs(hs - hs.mean(axis=-1, keepdims=True)), Fs.t + maxF.t)
    E = hc * inv_d * (1 + rho) + (Fs + maxF) * inv_d
    if Q is None:
        Q = {"l1": 2 * maxF * inv_d, "l2": Fs * inv_d}.get(variant, E)
    gamma = to_sets(rec["Fgamma"], norm, m, k)
    beta = to_sets(rec["Fbeta"], norm, m, k)
    rec.update(Es=E, Q=Q, inv_d=inv_d, rho=rho, gamma_s=gamma,
               E=from_sets(E, norm, m, k))
    return from_sets(gamma * E + beta, norm, m, k) + LAMBDA


def param_dual(rec, name, v):
    """|value| of a parameter with the tangent |v| of its slots (0 for constants)."""
    value = np.abs(rec[name])
    slots = rec["slots"]
    if name not in slots or v is None:
        return Dual(value, 0.0)
    sl, shape = slots[name]
    return Dual(value, np.abs(v[sl]).reshape(shape))


def depth(net, m, records, cross_entropy):
    D = sum(rec["layer"].in_features + m + rec["layer"].out_features + 10 for rec in records)
    return D + (records[-1]["layer"].out_features + 10 if cross_entropy else 0)


def bounds(net, X, Y, records, f, v=None, mode="train"):
    """(loss bound, gradient bound, hvp bound or None, output magnitude F(f)) per the
    module docstring, or None when a filter applies."""
    m = X.shape[0]
    ce = net.loss_kind.startswith("cross_entropy")
    D = depth(net, m, records, ce)
    FA = Dual(np.abs(X) + LAMBDA)
    skip = None
    for rec in records:
        layer = rec["layer"]
        k = layer.out_features
        if rec["starts"]:
            skip = FA
        rec["FA_in"] = FA
        FW = param_dual(rec, "W", v)
        FH = FA @ FW.T + LAMBDA
        if rec["b"] is not None:
            FH = FH + param_dual(rec, "b", v)
        norm = layer.normalization
        if norm is not None:
            rec["Fgamma"] = Dual(np.broadcast_to(np.abs(rec["gamma"]), (m, k)))
            rec["Fbeta"] = Dual(np.broadcast_to(np.abs(rec["beta"]), (m, k)))
            if norm.trainable and v is not None:
                rec["Fgamma"] = param_dual(rec, "gamma", v) * np.ones((m, k))
                rec["Fbeta"] = param_dual(rec, "beta", v) * np.ones((m, k))
        if norm is None:
            FZ = FH
        elif mode == "eval" and isinstance(norm, BatchNorm):
            inv = 1.0 / np.sqrt(rec["rv"] + norm.eps)
            rec["inv"] = inv
            rec["E"] = (FH + np.abs(rec["rm"])) * inv
            FZ = rec["Fgamma"] * rec["E"] + rec["Fbeta"] + LAMBDA
        else:
            FZ = train_normalization(rec, FH, D, m, k)
            if FZ is None:
                return None
        if "noise_s" in rec:
            FZ = np.abs(rec["noise_s"]) * FZ + np.abs(rec["noise_m"]) + LAMBDA
        Z = rec["Z"]
        if layer.activation == "relu":
            if not np.all(np.abs(Z) > RELU_MARGIN * U * D * FZ.v):
                return None
        a, d1, d2, T = phi_and_derivatives(layer.activation, Z)
        d3, dT, T2 = tangent_scales(layer.activation, a, T)
        d1, d2 = np.abs(d1), np.abs(d2)
        phi1 = Dual(d1, d2 * FZ.t)
        rec["FH"] = FH
        rec["dphi"] = (phi1 + Dual(d2, np.abs(d3) * FZ.t) * FZ
                       + Dual(T, (np.abs(dT) + T2) * FZ.t))
        FA = Dual(np.abs(a), d1 * FZ.t) + phi1 * FZ + LAMBDA
        if rec["ends"]:
            FA = FA + skip
    Ff = FA
    reduce = m if net.loss_kind in ("mean", "cross_entropy") else 1
    if ce:
        y = Y.astype(np.int64)
        k = f.shape[1]
        shifted = f - f.max(axis=1, keepdims=True)
        p = np.exp(shifted)
        p /= p.sum(axis=1, keepdims=True)
        onehot = np.zeros_like(f)
        onehot[np.arange(m), y] = 1.0
        row_loss = np.log(np.exp(shifted).sum(axis=1)) - shifted[np.arange(m), y]
        loss_bound = 2 * U * (D + m) * (np.sum(2 * Ff.v.max(axis=1) + math.log(k) + 1
                                              + row_loss) + LAMBDA) / reduce
        P = Dual(p, p * (Ff.t + (p * Ff.t).sum(axis=1, keepdims=True)))
        MA = (P + onehot + P * (Ff + (P * Ff).sum(axis=1, keepdims=True))) * (1.0 / reduce)
    else:
        Y2 = Y.reshape(m, -1)
        loss_bound = 2 * U * (D + Y2.size) * (np.sum(2 * (Ff.v + np.abs(Y2))
                                                     * np.abs(f - Y2)) + LAMBDA) / reduce
        MA = (Ff + np.abs(Y2)) * (2.0 / reduce)
    G = Dual(np.zeros(net.num_params), np.zeros(net.num_params))
    skip_grad = None
    for rec in reversed(records):
        layer = rec["layer"]
        norm = layer.normalization
        k = layer.out_features
        if rec["ends"]:
            skip_grad = MA
        if "noise_s" in rec:
            MA = MA * np.abs(rec["noise_s"])
        MZ = MA * rec["dphi"] + LAMBDA
        slots = rec["slots"]
        if norm is not None:
            if norm.trainable:
                put(G, slots["gamma"][0], (MZ * rec["E"]).sum(axis=0))
                put(G, slots["beta"][0], MZ.sum(axis=0))
            if mode == "eval" and isinstance(norm, BatchNorm):
                MH = rec["Fgamma"] * rec["inv"] * MZ + LAMBDA
            else:
                Ms = to_sets(MZ, norm, m, k)
                gM = rec["gamma_s"] * Ms
                MHs = (1 + rec["rho"]) * rec["inv_d"] * (
                    gM + gM.mean(axis=-1, keepdims=True)
                    + rec["Q"] * (gM * rec["Es"]).mean(axis=-1, keepdims=True))
                MH = from_sets(MHs, norm, m, k) + LAMBDA
        else:
            MH = MZ
        if layer.bias:
            put(G, slots["b"][0], MH.sum(axis=0))
        put(G, slots["W"][0], (MH.T @ rec["FA_in"]).reshape(-1))
        MA = MH @ param_dual(rec, "W", None if v is None else v) + LAMBDA
        if rec["starts"]:
            MA = MA + skip_grad
    grad_bound = 2 * U * D * (G.v + LAMBDA)
    hvp_bound = None if v is None else 2 * U * D * (G.t + LAMBDA)
    return loss_bound, grad_bound, hvp_bound, Ff


def put(G, sl, d):
    G.v[sl] = d.v
    G.t[sl] = np.broadcast_to(d.t, d.v.shape)


# ---------------------------------------------------------------- target 1: features

@FEATURES
@given(feature_cases())
def test_features_loss_gradient_hvp_match_torch(case):
    net, X, Y, v = case
    loss, grad, hv, records, f, _ = torch_all(net, X, Y, v)
    bnd = bounds(net, X, Y, records, f, v)
    assume(bnd is not None)
    loss_bound, grad_bound, hvp_bound, Ff = bnd
    D = depth(net, X.shape[0], records, False)
    within("features: forward", net.forward(X), f, 2 * U * D * (Ff.v + LAMBDA))
    within("features: loss", net.loss(X, Y), loss, loss_bound)
    within("features: gradient", net.gradient(X, Y), grad, grad_bound)
    both = net.loss_and_gradient(X, Y)
    within("features: loss (l&g)", both[0], loss, loss_bound)
    within("features: gradient (l&g)", both[1], grad, grad_bound)
    within("features: hvp", net.hvp(X, Y, v), hv, hvp_bound)


# ---------------------------------------------------------------- target 2: training

def bn_extra(draw):
    return dict(momentum=draw(st.sampled_from([0.1, 1.0, None])),
                noise=draw(st.sampled_from([None, None, BNNoise(),
                                            BNNoise(0.3, 1.5, 0.2, 0.05)])))


@st.composite
def training_cases(draw):
    """(net, X, Y, batch_size, [(seed, lr)] per step, X_new)."""
    entries, n_in, n_out = architecture(draw, max_entries=2, batch_extra=bn_extra)
    loss = draw(st.sampled_from(["sum", "mean", "cross_entropy"]))
    if loss == "cross_entropy" and n_out == 1:
        loss = "mean"
    net = Network(entries, loss=loss)
    m = draw(st.integers(4, 10))
    batch_size = draw(st.sampled_from([None, None, 2, 3, 4]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    net.params = draw(st.sampled_from([0.5, 1.0])) * rng.standard_normal(net.num_params)
    X, Y = data(draw, rng, m, n_in, n_out, loss)
    rows = m if batch_size is None else batch_size
    lr = 0.1 / (rows if loss == "sum" else 1)
    steps = [(draw(st.integers(0, 2**64 - 1)), lr) for _ in range(draw(st.integers(1, 3)))]
    X_new = rng.standard_normal((draw(st.integers(1, 4)), n_in)) * 2
    Y_new = data(draw, rng, X_new.shape[0], n_in, n_out, loss)[1]
    for name in describe(entries):
        event(f"norm {name}")
    event(f"noise: {any(getattr(l.normalization, 'noise', None) for l in flat(entries))}")
    event(f"batch {batch_size}, loss {loss}")
    return net, X, Y, batch_size, steps, X_new, Y_new


def noise_draws(net, seed, B):
    """One step's noise, (s, m) per noisy BN layer: bnfast.reference's draw of the
    documented stream (section 8), fresh for a run's first step."""
    noisy = [SimpleNamespace(bn=layer.normalization, out_features=layer.out_features)
             for layer, _, _ in structure(net)
             if isinstance(layer.normalization, BatchNorm) and layer.normalization.noise]
    return draw_noise(NoiseGenerator(seed), noisy, B)


def running_bounds(rec, mu, s2, B, D, f):
    """Bounds of the new running mean and variance (module docstring, training steps)
    without the update's own rounding (added by the caller)."""
    norm = rec["layer"].normalization
    maxF = rec["FH"].v.max(axis=0)
    corr = B / (B - 1) if norm.norm == "std" else 1.0
    mean_err = 2 * U * D * maxF
    var_err = 2 * U * D * (4 * maxF * np.sqrt(s2) + s2) * corr
    return f * mean_err, f * var_err


@TRAINING
@given(training_cases())
def test_training_then_predict_match_torch(case):
    net, X, Y, batch_size, steps, X_new, Y_new = case
    m = X.shape[0]
    for t, (seed, lr) in enumerate(steps):
        p0 = net.params
        rm0, rv0 = net.running_mean, net.running_var
        # batch_size = m is full batch (bnfast.reference.train: "None (or m)"): the rows
        # in their order, not an epoch's shuffle (which would reorder the noise draws)
        rows = np.arange(m) if batch_size in (None, m) else \
            EpochShuffler(m, seed).next_epoch()[:batch_size]
        B = len(rows)
        Xb, Yb = X[rows], Y[rows]
        noise = noise_draws(net, seed, B)
        _, grad, _, records, f, stats = torch_all(net, Xb, Yb, noise=noise)
        bnd = bounds(net, Xb, Yb, records, f)
        assume(bnd is not None)
        D = depth(net, B, records, net.loss_kind.startswith("cross_entropy"))
        expected = p0 - lr * grad
        try:  # train records the full-set loss before and after the step: a constant
            # set at eps = 0 there (e.g. a row ReLU zeroes after the step) raises
            bn_train(net, X, Y, lr, 1, batch_size=batch_size, seed=seed)
        except ZeroVarianceError:
            assume(False)
        within("training: step params", net.params, expected,
               lr * bnd[1] + 2 * U * (np.abs(p0) + lr * np.abs(grad)))
        bn_records = [r for r in records if isinstance(r["layer"].normalization, BatchNorm)]
        for rec, (mu, s2), a, b, mean, var in zip(bn_records, stats, rm0, rv0,
                                                  net.running_mean, net.running_var):
            momentum = rec["layer"].normalization.momentum
            frac = 1.0 / (t + 1) if momentum is None else momentum
            mu, s2 = mu.numpy(), s2.numpy()
            v = s2 * B / (B - 1) if rec["layer"].normalization.norm == "std" else s2
            mean_b, var_b = running_bounds(rec, mu, s2, B, D, frac)
            within("training: running_mean", mean, (1 - frac) * a + frac * mu,
                   mean_b + 4 * U * (np.abs((1 - frac) * a) + np.abs(frac * mu)) + LAMBDA)
            within("training: running_var", var, (1 - frac) * b + frac * v,
                   var_b + 4 * U * (np.abs((1 - frac) * b) + np.abs(frac * v)) + LAMBDA)
    running = (net.running_mean, net.running_var)
    eps0 = [r["layer"].normalization.eps == 0.0 for r in records
            if isinstance(r["layer"].normalization, BatchNorm)]
    assume(all(not z or np.all(var > 0) for z, var in zip(eps0, running[1])))
    v = np.random.default_rng(len(steps)).standard_normal(net.num_params)
    for what, Xe, Ye in (("predict", X_new, Y_new), ("eval", X, Y)):
        loss, grad, hv, records, f, _ = torch_all(net, Xe, Ye, v, mode="eval",
                                                  running=running)
        bnd = bounds(net, Xe, Ye, records, f, v, mode="eval")
        assume(bnd is not None)
        loss_bound, grad_bound, hvp_bound, Ff = bnd
        if what == "predict":
            D = depth(net, Xe.shape[0], records, False)
            within("training: predict", net.predict(Xe), f, 2 * U * D * (Ff.v + LAMBDA))
        else:
            within("training: eval loss", net.loss(Xe, Ye, mode="eval"), loss, loss_bound)
            within("training: eval gradient", net.gradient(Xe, Ye, mode="eval"), grad,
                   grad_bound)
            within("training: eval hvp", net.hvp(Xe, Ye, v, mode="eval"), hv, hvp_bound)


# ---------------------------------------------------------------- the bound is not vacuous

def one_layer(normalization):
    return Network([Dense(3, 4, "tanh", bias=False, normalization=normalization),
                    Dense(4, 1)], seed=3)


WRONG_VARIANTS = [(BatchNorm(norm=a), BatchNorm(norm=b)) for a in NORMS for b in NORMS
                  if a != b] + [(LayerNorm(), GroupNorm(2)), (GroupNorm(2), LayerNorm())]


@pytest.mark.parametrize("right, wrong", WRONG_VARIANTS, ids=repr)
def test_bound_rejects_a_wrong_variant(right, wrong):
    """The torch twin of another scale (or another grouping) is far outside the bound
    of the right one, in the gradient and in the hvp, at m = 10 with uncentred data
    (X's columns have means 1 to 3, so centred and uncentred scales differ)."""
    rng = np.random.default_rng(4)
    X = rng.standard_normal((10, 3)) + np.array([1.0, 2.0, 3.0])
    Y = rng.standard_normal(10)
    net, twin = one_layer(right), one_layer(wrong)
    net.params = twin.params = rng.standard_normal(net.num_params)
    v = rng.standard_normal(net.num_params)
    _, grad, hv, records, f, _ = torch_all(net, X, Y, v)
    _, grad_bound, hvp_bound, _ = bounds(net, X, Y, records, f, v)
    within("self-check: gradient", net.gradient(X, Y), grad, grad_bound)
    within("self-check: hvp", net.hvp(X, Y, v), hv, hvp_bound)
    _, wrong_grad, wrong_hv, _, _, _ = torch_all(twin, X, Y, v)
    assert np.max(np.abs(wrong_grad - grad) / grad_bound) > 1e6
    assert np.max(np.abs(wrong_hv - hv) / hvp_bound) > 1e6
