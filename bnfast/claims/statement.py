"""What the section-4 checkers share (Santurkar et al. 2018, section 4 and appendix C;
docs/math/santurkar_section_4.md): the report type, the argument rules, one BN neuron's
batch statistics and backward pass, and the comparison of the two sides of a statement.

The setting (one neuron j of a layer, a batch of m samples, eps = 0 in the theory):

    h      (m,)    pre-BN activations
    mu     mean(h);  sigma^2 = mean((h - mu)^2) (biased);  s = sqrt(sigma^2 + eps)
    hhat   (m,)    (h - mu) / s;  <1, hhat> = 0 and ||hhat||^2 = m sigma^2 / s^2
    z      (m,)    gamma * hhat + beta, the BN output (gamma, beta constants)
    g      (m,)    dL/dz and H (m, m) = d^2 L / dz^2 at z (given by the caller)
    P      (m, m)  I - 1 1^T / m - hhat hhat^T / m, an orthogonal projection when eps = 0
    gt     (m,)    grad_h Lhat = (gamma / s) P g, the BN backward pass

Scaling (float path). Every input array and scalar is first divided by a power of two
(max |entry| in [1/2, 1)): that is exact, so the scaled numbers are the inputs' own
digits, and nothing overflows or underflows however large or small the inputs are.
Each term of a statement is then a pair (value, exponent) meaning value * 2**exponent,
where value is computed from the scaled inputs and the exponent is the term's degree
in each input's exponent. `compare` brings all terms of a statement to the largest
exponent, decides there, and scales the results back; lhs and rhs are each summed at
their own largest exponent, so that a side far below the other does not underflow
(values outside the float64 range become +-inf or 0 in the report; relative_gap and
the verdict are unaffected).
Multiplying an input by a power of two therefore changes no bit of the decision, and
multiplying by 1e150 changes only the inputs' last bits. The exact path takes every
number as it is (exponent 0 throughout).

Tolerance (float path). With the scaled inputs, the computed value of each term
differs from the exact value of the same formula at the same binary inputs by a few
units of m * u * M, u = eps_64 / 2 the unit roundoff, where M (`magnitude`) is the sum
of the absolute values of the terms of both sides plus, for a quadratic form v^T A v,
|coefficient| * sum_ij |A_ij| * (an upper bound of ||v||^2): centring with correctly
rounded sums (FloatArithmetic.centre) leaves an error of a few u relative to the
centred values themselves (not to |mu|); each inner product of m terms adds at most
m u sum_i |a_i b_i| (Higham, Accuracy and Stability, Thm 3.1); s and hhat add a few
u; a term multiplies at most five such factors. So |computed - exact| <= about
10 m u M for every side, and the float path decides

    holds  <=>  lhs <= rhs + rel * M,    rel = 64 m eps_64 = 128 m u   (`tolerance`)

which reproduces the exact verdict whenever |gap| > rel * M, and counts an equality
lost in rounding as holding. The inputs themselves carry no rounding: the exact path
reads the same binary values.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Optional

import numpy as np

from .._validate import boolean
from ._float import FloatArithmetic
from .report import _exact_strings, _plain

__all__ = ["StatementReport", "Quantities"]

#: The note of every checker given eps > 0.
EPS_NOTE = ("eps > 0: ||hhat||^2 = m sigma^2 / (sigma^2 + eps) < m, so P = I - 11^T/m "
            "- hhat hhat^T/m is no longer a projection and the eps = 0 identities behind "
            "this statement do not apply; lhs and rhs are computed with "
            "s = sqrt(sigma^2 + eps) in place of sigma, for information only, and holds "
            "is None.")


class Quantities(Mapping):
    """A read-only mapping of named numbers (the report's `quantities`)."""

    def __init__(self, data):
        self._data = dict(data)

    def __getitem__(self, key):
        return self._data[key]

    def __iter__(self):
        return iter(self._data)

    def __len__(self):
        return len(self._data)

    def __repr__(self):
        return f"Quantities({self._data!r})"


@dataclass(frozen=True, eq=False)  # arrays inside: identity equality, hashable
class StatementReport:
    """One statement of Santurkar et al. section 4 checked on one instance.

    statement   e.g. "Theorem 4.1", "Theorem 4.2(b)", "Observation 4.3"
    form        "printed" (as in the paper) or "corrected" (what its proof supports);
                Observation 4.3: "w-dependent" or "constant" (gamma, beta)
    exact       True: every number is an exact sympy number; False: float64
    m           batch size
    lhs, rhs    the two sides of the statement lhs <= rhs (or lhs = rhs: relation)
                (original scale)
    gap         rhs - lhs
    holds       True / False; None when eps > 0 (the eps = 0 statement does not apply)
    tolerance   float path: rel * magnitude, the rounding allowance of the verdict
                (see the module docstring); exact path: 0
    magnitude   M, the scale the rounding is measured against
    relative_gap  gap / M (scale-free, always finite; 0 when M = 0)
    note        a sentence saying what the verdict means here
    eps         the eps given (0 = the theory's transform)
    hypothesis_met  Theorem 4.2(b): does the instance meet the formal reading of its
                hypothesis (equal H-Rayleigh quotients of g and gt)? None where the
                statement has no hypothesis or the reading is undefined
    quantities  the numbers a reader needs (mu, sigma, hhat, grad_h, ...), original
                scale; each is also an attribute (report.hhat)
    relation    "<=" (the statement is the inequality lhs <= rhs) or "=" (an equality:
                holds iff lhs = rhs, exactly or within the tolerance; the scale
                invariance rows, scale_invariance.py, and the l1 constant, l1_constant.py)
    """

    statement: str
    form: str
    exact: bool
    m: int
    lhs: Any
    rhs: Any
    gap: Any
    holds: Optional[bool]
    tolerance: Any
    magnitude: Any
    relative_gap: Any
    note: str
    eps: Any = 0.0
    hypothesis_met: Optional[bool] = None
    quantities: Mapping = field(default_factory=lambda: Quantities({}))
    relation: str = "<="

    def __getattr__(self, name):
        # Only called when the normal lookup fails: the quantities as attributes.
        quantities = self.__dict__.get("quantities")
        if quantities is not None and name in quantities:
            return quantities[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    @property
    def refutes(self):
        """True when this instance is a counterexample: the inequality fails and the
        statement's hypothesis (if it has one) is not known to fail."""
        return self.holds is False and self.hypothesis_met is not False

    def to_dict(self):
        """JSON-ready dict: numbers as floats (nested lists for arrays; None where a
        value is missing or outside the float64 range), quantities under
        "quantities". Exact reports add "exact_forms": the numeric fields and the
        quantities as strings of the exact sympy numbers."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = _json(value)
        if self.exact:
            forms = {name: _forms(getattr(self, name)) for name in _NUMERIC_FIELDS}
            forms["quantities"] = _forms(self.quantities)
            out["exact_forms"] = forms
        return out


_NUMERIC_FIELDS = ("lhs", "rhs", "gap", "magnitude", "relative_gap", "eps")


def _json(value):
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return {k: _json(v) for k, v in value.items()}
    return _finite(_plain(value))


def _finite(value):
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _forms(value):
    if isinstance(value, (bool, np.bool_, str)):
        return value
    if isinstance(value, Mapping):
        return {k: _forms(v) for k, v in value.items()}
    return _exact_strings(value)


# ---- arguments -------------------------------------------------------------------------

def arithmetic(exact):
    """The arithmetic of exact=False (float64) or exact=True (sympy)."""
    if boolean(exact, "exact"):
        from ._exact import ExactArithmetic   # sympy is imported only when needed
        return ExactArithmetic()
    return FloatArithmetic()


def batch_vector(ar, value, name, m=None):
    """A (m,) vector of real numbers; m >= 2 when m is not imposed."""
    arr = ar.array(value, name)
    if m is None:
        if arr.ndim != 1:
            raise ValueError(f"{name} must be a vector (m,), one value per sample of the "
                             f"batch, got shape {arr.shape}")
        if arr.shape[0] < 2:
            raise ValueError(f"{name} has m = {arr.shape[0]} sample(s): batch "
                             "normalization needs a batch of m >= 2")
    elif arr.shape != (m,):
        raise ValueError(f"{name} must have shape ({m},), one value per sample like h, "
                         f"got shape {arr.shape}")
    return arr


def batch_matrix(ar, value, name):
    """An (m, d) matrix of real numbers, one sample per row, m >= 2 and d >= 1."""
    arr = ar.array(value, name)
    if arr.ndim != 2 or arr.shape[0] < 2 or arr.shape[1] == 0:
        raise ValueError(f"{name} must be an (m, d) matrix, one sample per row, with m >= 2 "
                         f"(batch normalization needs a batch), got shape {arr.shape}")
    return arr


def hessian_matrix(ar, value, m):
    """A symmetric (m, m) matrix of real numbers."""
    arr = ar.array(value, "hessian")
    if arr.shape != (m, m):
        raise ValueError(f"hessian must be a square ({m}, {m}) matrix (d^2 L / dz^2 over "
                         f"the batch of m = {m}), got shape {arr.shape}")
    for i in range(m):
        for j in range(i + 1, m):
            if not ar.is_zero(arr[i, j] - arr[j, i], 0.0):
                raise ValueError(f"hessian must be symmetric, but hessian[{i}, {j}] = "
                                 f"{arr[i, j]} != hessian[{j}, {i}] = {arr[j, i]} (a "
                                 "numerically computed Hessian: pass (H + H.T) / 2)")
    return arr


def real(ar, value, name, *, nonzero=False, positive=False):
    """A real scalar; nonzero / positive enforce gamma != 0, lam > 0."""
    x = ar.scalar(value, name)
    if nonzero and ar.is_zero(x, 0.0):
        why = (" (the BN output is then the constant beta and its gradient vanishes)"
               if name == "gamma" else "")
        raise ValueError(f"{name} must be nonzero, got 0{why}")
    if positive and not ar.is_positive(x, 0.0):
        raise ValueError(f"{name} must be > 0, got {x}")
    return x


def eps_value(ar, value):
    """eps >= 0 and whether it is > 0."""
    eps = ar.scalar(value, "eps")
    if ar.is_positive(-eps, 0.0):
        raise ValueError(f"eps must be a finite number >= 0, got {eps}")
    return eps, bool(ar.is_positive(eps, 0.0))


# ---- one neuron's batch ----------------------------------------------------------------

class Neuron:
    """One BN neuron over a batch, in scaled units: a quantity q is stored as a value
    and an exponent with q = value * 2**exponent (exponents are 0 on the exact path).

    h (m,) the activations times 2**-h_exp (Observation 4.3 passes X W already scaled);
    name  how errors call h. Attributes: m, eps_positive, h (m,), c (m,) = h - mu and
    mu (all three times 2**-e_h), var (sigma^2 = var * 4**e_h), s (times 2**-e_s),
    hhat (m,); after backward(): the gradient quantities (see there)."""

    def __init__(self, ar, h, eps, eps_positive, h_exp=0, name="h"):
        self.ar = ar
        self.m = m = h.shape[0]
        self.eps, self.eps_positive = eps, eps_positive
        if ar.all_equal(h) and not eps_positive:
            raise ValueError(f"{name} is constant over the batch (sigma = 0): hhat = "
                             "(h - mu) / sigma is undefined with eps = 0")
        self.h, e = ar.split_scale(h)
        self.e_h = e + h_exp
        self.c, self.mu = ar.centre(self.h)
        self.var = ar.number(ar.dot(self.c, self.c) / m)
        if eps_positive:
            # s^2 = sigma^2 + eps at the larger of the two scales (eps may dwarf sigma^2).
            e_eps = (ar.split_scale(eps)[1] + 1) // 2
            self.e_s = max(self.e_h, e_eps)
            s2 = (ar.scale_back(self.var, 2 * (self.e_h - self.e_s))
                  + ar.scale_back(eps, -2 * self.e_s))
        else:
            self.e_s, s2 = self.e_h, self.var
        self.s = ar.sqrt(ar.number(s2))
        self.hhat = ar.vector(ar.scale_back(self.c, self.e_h - self.e_s) / self.s)
        self.one = ar.array(np.ones(m), "ones")
        self.eye = ar.array(np.eye(m), "identity")

    def backward(self, grad, gamma):
        """The backward pass for g = grad and a constant gamma. Sets g (m,) / e_g,
        gamma / e_gam, one_g = <1, g>, g_hhat = <g, hhat>, gg = ||g||^2 (e_g each,
        2 e_g for gg), k = gamma^2 / s^2 (exponent e_k), gt (m,) = grad_h Lhat
        (exponent e_gt) and gt2 = ||gt||^2 (exponent 2 e_gt)."""
        ar, m = self.ar, self.m
        self.g, self.e_g = ar.split_scale(grad)
        self.gamma, self.e_gam = ar.split_scale(gamma)
        self.one_g = ar.dot(self.one, self.g)
        self.g_hhat = ar.dot(self.g, self.hhat)
        self.gg = ar.dot(self.g, self.g)
        self.k = ar.number(self.gamma ** 2 / self.s ** 2)
        self.e_k = 2 * (self.e_gam - self.e_s)
        # dL/dh = gamma / (m s) (m g - <1, g> 1 - <g, hhat> hhat): the backward pass.
        self.gt = ar.vector(self.gamma / (m * self.s)
                            * (m * self.g - self.one_g * self.one - self.g_hhat * self.hhat))
        self.e_gt = self.e_gam + self.e_g - self.e_s
        self.gt2 = ar.dot(self.gt, self.gt)
        return self

    def projection(self):
        """P = I - 1 1^T / m - hhat hhat^T / m (dimensionless)."""
        m = self.m
        return self.ar.vector(self.eye - np.outer(self.one, self.one) / m
                              - np.outer(self.hhat, self.hhat) / m)

    def quantities(self, gamma, beta):
        """The original-scale numbers every section-4 report carries."""
        ar = self.ar
        gamma_n, e_gam = ar.split_scale(gamma)
        out = {
            "gamma": gamma, "beta": beta,
            "mu": ar.scale_back(self.mu, self.e_h),
            "sigma": ar.scale_back(ar.sqrt(self.var), self.e_h),
            "hhat": self.hhat,
            "norm_hhat_sq": ar.dot(self.hhat, self.hhat),
            "z": ar.vector(ar.scale_back(gamma_n * self.hhat, e_gam) + beta),
        }
        if self.eps_positive:
            out["s"] = ar.scale_back(self.s, self.e_s)
        if hasattr(self, "g"):
            out.update({
                "one_dot_g": ar.scale_back(self.one_g, self.e_g),
                "g_dot_hhat": ar.scale_back(self.g_hhat, self.e_g),
                "norm_g_sq": ar.scale_back(self.gg, 2 * self.e_g),
                "grad_h": ar.vector(ar.scale_back(self.gt, self.e_gt)),
                "norm_grad_h_sq": ar.scale_back(self.gt2, 2 * self.e_gt),
                "projection": self.projection(),
            })
        return out


def neuron_with_gradient(ar, h, grad, gamma, beta, eps):
    """Validates the common arguments of Theorems 4.1, 4.2, 4.4 and runs the forward
    and backward pass: (neuron, gamma, beta, eps)."""
    h = batch_vector(ar, h, "h")
    grad = batch_vector(ar, grad, "grad", m=h.shape[0])
    gamma = real(ar, gamma, "gamma", nonzero=True)
    beta = real(ar, beta, "beta")
    eps, eps_positive = eps_value(ar, eps)
    ar.prepare_batch(h.shape[0])
    return Neuron(ar, h, eps, eps_positive).backward(grad, gamma), gamma, beta, eps


def quadratic_bound(ar, coefficient, A, v_bound):
    """|coefficient| * sum_ij |A_ij| * v_bound: the size the rounding of a computed
    quadratic form v^T A v is measured against (v_bound >= ||v||^2)."""
    return ar.number(abs(coefficient) * sum(abs(a) for a in np.ravel(A)) * v_bound)


# ---- the comparison of the two sides --------------------------------------------------

def compare(ar, lhs, rhs, bounds=(), decide=True):
    """Decides lhs <= rhs. lhs, rhs: lists of terms (value, exponent), each side the
    sum of value * 2**exponent; bounds: extra nonnegative (value, exponent) added to
    the magnitude M (see the module docstring). decide=False (eps > 0): holds None.
    Returns the verdict fields of a StatementReport as a dict (lhs, rhs, gap, holds,
    tolerance, magnitude, relative_gap), in the original scale."""
    terms = [*lhs, *rhs, *bounds]

    def unit(ts):
        # The largest exponent of a nonzero term (0 when every term is 0).
        return max((e for v, e in ts if not ar.is_zero(v, 0.0)), default=0)

    def total(ts, at, absolute=False):
        parts = (ar.scale_back(v, e - at) for v, e in ts)
        return ar.number(sum((abs(p) if absolute else p for p in parts), 0))

    def reported(ts):
        # A side in the original scale, summed at its own unit: at the decision's unit
        # a side far smaller than the largest term would underflow to 0 (Theorem 4.4
        # with lam = 1e200: lhs ~ 1e400 against rhs ~ 1e800 is inf, not 0).
        at = unit(ts)
        return ar.scale_back(total(ts, at), at)

    # The unit of the decision: the largest exponent of a nonzero term. A term more
    # than ~1074 binades below it underflows to 0 there, an error far below the
    # tolerance rel * M (M contains the largest term).
    top = unit(terms)
    left, right = total(lhs, top), total(rhs, top)
    size = total(terms, top, absolute=True)
    gap = ar.number(right - left)
    return dict(
        lhs=reported(lhs), rhs=reported(rhs),
        gap=ar.scale_back(gap, top),
        holds=bool(ar.le(left, right, size)) if decide else None,
        tolerance=ar.scale_back(ar.tolerance(size), top),
        magnitude=ar.scale_back(size, top),
        relative_gap=ar.number(0 if ar.is_zero(size, 0.0) else gap / size))


def make_report(ar, statement, form, neuron, verdict, note, gamma, beta, eps,
                extra=None, hypothesis_met=None):
    """The StatementReport of a one-neuron statement."""
    quantities = neuron.quantities(gamma, beta)
    quantities.update(extra or {})
    return StatementReport(
        statement=statement, form=form, exact=ar.exact, m=neuron.m, note=note, eps=eps,
        hypothesis_met=hypothesis_met, quantities=Quantities(quantities), **verdict)
