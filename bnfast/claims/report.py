"""The result of a Lemma 4.5 check: a frozen record, printable as JSON.

Shapes. One neuron (y of shape (m,), w0 of shape (d,)): vectors are (d,), scalars are
scalars. A layer of k neurons (y (m, k), w0 (d, k)): matrices are (d, k) (column j =
neuron j), per-neuron scalars are (k,) arrays, and `columns` holds the k one-neuron
reports. Float path: numpy float64 arrays and Python floats. Exact path: numpy object
arrays of sympy numbers (same shapes) and sympy numbers.
"""

import warnings
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Optional, Tuple

import numpy as np

__all__ = ["Lemma45Report", "GDCrossCheck"]


@dataclass(frozen=True, eq=False)  # arrays inside: identity equality, hashable
class GDCrossCheck:
    """Native full-batch gradient descent of the BN network from w0 (bnfast.train),
    compared with the closed-form BN optimum ray. Always float64: a numerical check
    of the closed form, not part of the exact argument.

    end_point      (d,) or (d, k): the weights after `steps` steps
    end_direction  end_point scaled to unit norm (per column)
    angle          angle in radians between end_point and the closed-form ray (per
                   column: (k,) for a layer)
    agrees         every angle is below `tolerance` (radians)
    loss_start, loss_end   BN loss at w0 and at end_point (sum over the neurons)
    """

    lr: float
    steps: int
    end_point: np.ndarray
    end_direction: np.ndarray
    angle: Any
    agrees: bool
    tolerance: float
    loss_start: float
    loss_end: float

    def to_dict(self):
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}


@dataclass(frozen=True, eq=False)  # arrays inside: identity equality, hashable
class Lemma45Report:
    """Inequality (1) of Lemma 4.5 (Santurkar et al. 2018) checked on one instance.

    w_star            W*, the standard network's optimum (least squares without
                      intercept; unique since X has full column rank)
    inner_w0_w_star   <W0, W*> (per column)
    premise           <W0, W*> > 0 (per column), the lemma's hypothesis
    bn_direction      a vector spanning the open ray of BN optima {t * bn_direction,
                      t > 0}: sign(gamma) times the least-squares slope WITH
                      intercept (per column). Every BN local minimum lies on it.
    bn_optimum        the BN optimum closest to w0, or None when w0 points away from
                      the ray (<w0, bn_direction> <= 0): the open ray then has no
                      closest point. For a layer: a tuple of k such entries.
    lhs               ||W0 - What*||^2, the left side of (1); ||W0||^2 (the infimum
                      over the ray) when bn_optimum is None
    rhs               ||W0 - W*||^2 - (||W*||^2 - <W*, W0>)^2 / ||W*||^2
    holds             True / False when the premise holds, None when it fails (the
                      lemma then claims nothing). For a layer: False if some column
                      with the premise violates (1) (one neuron suffices to refute the
                      lemma); True if every column has the premise and satisfies (1);
                      None otherwise. Per-column verdicts: columns[j].holds.
    gap               rhs - lhs (the name StatementReport uses); float path: holds is
                      lhs <= rhs + tolerance, so an equality lost in rounding never
                      counts as a violation. (Up to 0.1.0 this field was called margin;
                      report.margin still reads it, with a DeprecationWarning.)
    grad_bn_at_w_star gradient of the BN loss at W*
    grad_bn_norm      its Euclidean norm (Frobenius for a layer)
    w_star_is_bn_critical  grad_bn_at_w_star == 0 (exactly, or within rounding)
    loss_std_at_w_star     standard loss ||y - X W*||^2 (sum over neurons)
    loss_bn_at_w_star, loss_bn_at_w0, loss_bn_min   BN loss values (sum over neurons)
    gd                the native gradient-descent cross-check, or None if not run
    statement, form   "Lemma 4.5", "printed": what the report checks, named as the
                      section-4 reports (StatementReport) name theirs
    """

    statement: ClassVar[str] = "Lemma 4.5"
    form: ClassVar[str] = "printed"

    exact: bool
    gamma: Any
    beta: Any
    n_samples: int
    n_inputs: int
    n_neurons: Optional[int]
    w0: np.ndarray
    w_star: np.ndarray
    inner_w0_w_star: Any
    premise: Any
    bn_direction: np.ndarray
    bn_optimum: Any
    lhs: Any
    rhs: Any
    gap: Any
    holds: Optional[bool]
    grad_bn_at_w_star: np.ndarray
    grad_bn_norm: Any
    w_star_is_bn_critical: bool
    loss_std_at_w_star: Any
    loss_bn_at_w_star: Any
    loss_bn_at_w0: Any
    loss_bn_min: Any
    gd: Optional[GDCrossCheck] = None
    columns: Tuple["Lemma45Report", ...] = ()
    tolerance: float = 0.0

    @property
    def margin(self):
        """Deprecated: the old name of ``gap`` (rhs - lhs)."""
        warnings.warn("Lemma45Report.margin is deprecated: read .gap (rhs - lhs), the "
                      "name every statement report uses", DeprecationWarning, stacklevel=2)
        return self.gap

    @property
    def refutes(self):
        """True when this instance is a counterexample to Lemma 4.5."""
        return self.holds is False

    def with_gd(self, gd):
        """A copy carrying the gradient-descent cross-check."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["gd"] = gd
        return Lemma45Report(**values)

    def to_dict(self):
        """JSON-ready dict: every number as a float (nested lists for arrays, None
        where there is no value). Exact reports add "exact_forms": the same fields
        as strings of the exact sympy numbers, e.g. "-10*sqrt(78)/507"."""
        out = {}
        forms = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "columns":
                if value:
                    out["columns"] = [c.to_dict() for c in value]
                continue
            if f.name == "gd":
                out["gd"] = None if value is None else value.to_dict()
                continue
            out[f.name] = _plain(value)
            if self.exact and f.name in _NUMERIC_FIELDS:
                forms[f.name] = _exact_strings(value)
        if self.exact:
            out["exact_forms"] = forms
        return out


_NUMERIC_FIELDS = ("gamma", "beta", "w0", "w_star", "inner_w0_w_star", "bn_direction",
                   "bn_optimum", "lhs", "rhs", "gap", "grad_bn_at_w_star",
                   "grad_bn_norm", "loss_std_at_w_star", "loss_bn_at_w_star",
                   "loss_bn_at_w0", "loss_bn_min")


def _plain(value):
    """Floats, bools, None and nested lists of them."""
    if value is None or isinstance(value, (bool, np.bool_)):
        return None if value is None else bool(value)
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, np.ndarray):
        if value.dtype == bool:
            return value.tolist()
        return [_plain(v) for v in value] if value.ndim else _plain(value[()])
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return float(value)


def _exact_strings(value):
    if value is None:
        return None
    if isinstance(value, np.ndarray):
        return [_exact_strings(v) for v in value]
    if isinstance(value, (tuple, list)):
        return [_exact_strings(v) for v in value]
    return str(value)
