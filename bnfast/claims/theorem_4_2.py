"""Checker of Theorem 4.2 of Santurkar et al. (2018) ("the effect of BatchNorm on
smoothness": the quadratic form of the loss Hessian along the gradient) on one neuron
and one batch, in float64 or exactly (docs/math/santurkar_section_4.md).

Shapes: h (m,) pre-BN activations; grad (m,) = g and hessian (m, m) = H, the gradient
and Hessian of the downstream loss L with respect to the BN output z = gamma*hhat + beta.
Lhat(h) = L(gamma * hhat(h) + beta); gt = grad_h Lhat (m,); Hhat = d^2 Lhat / dh^2
(m, m). With eps = 0 and P0 = I - 1 1^T / m, the chain rule gives

    Hhat = (gamma^2/sigma^2) P H P + gamma M,
    M    = 1/(m sigma^2) P0 (-g hhat^T - hhat g^T - <g, hhat> I
                             + 3 <g, hhat> hhat hhat^T / m) P0

(M is sum_i g_i d^2 hhat_i / dh^2). For v orthogonal to 1 and hhat, such as gt,
v^T M v = -<g, hhat> ||v||^2 / (m sigma^2). Hence

    (a)  gt^T Hhat gt <= (gamma^2/sigma^2) gt^T H gt - gamma/(m sigma^2) <g, hhat> ||gt||^2
         is an EQUALITY;
    (b)  "if H preserves the relative norms of g and gt":
         gt^T Hhat gt <= (gamma^2/sigma^2) (g^T H g - 1/(m gamma) <g, hhat> ||gt||^2)
         holds iff gt^T H gt <= g^T H g (the other terms are (a)'s). Its formal reading
         (equal H-Rayleigh quotients r of g and gt) turns this into
         r (||gt||^2 - ||g||^2) <= 0, which fails when r > 0 and ||gt|| > ||g||
         (gamma/sigma large); without the hypothesis it fails for many H.

Terms and exponents (statement.py): the H-terms carry 2 e_gt + e_k + e_H, the
<g, hhat>-terms 2 e_gt + e_gamma + e_g - 2 e_h, and g^T H g carries e_k + 2 e_g + e_H.
The (b) verdict is invariant to scaling g or H (degree 2 in g and 1 in H on both
sides), not to scaling h alone (gamma/sigma changes); (a) holds at every scale.
"""

from functools import partial

import numpy as np

from .._validate import choice
from .counterexample import Row, draw_h_grad_hessian
from .statement import (EPS_NOTE, arithmetic, compare, hessian_matrix, make_report,
                        neuron_with_gradient, quadratic_bound)

__all__ = ["AUDIT_ROWS", "check_theorem_4_2"]

PARTS = ("a", "b")


def check_theorem_4_2(h, grad, hessian, gamma=1.0, beta=0.0, part="a", exact=False, eps=0.0):
    """Checks Theorem 4.2 (Santurkar et al. 2018), part (a) or (b), on one neuron.

    h        (m,) the neuron's pre-BN activations over the batch, m >= 2, not constant
    grad     (m,) g = dL/dz at the BN output z = gamma * hhat + beta
    hessian  (m, m) H = d^2 L / dz^2 at z, symmetric
    gamma, beta   the constant BN scale (nonzero) and shift
    part     "a" (an identity at eps = 0) or "b" (with the hypothesis "H preserves the
             relative norms of g and gt"; report.hypothesis_met gives its formal
             reading, equal Rayleigh quotients g^T H g/||g||^2 = gt^T H gt/||gt||^2)
    exact    False: float64. True: exact sympy numbers (floats at their binary value)
    eps      0 (the theorem's transform); eps > 0 gives holds=None (see the note)

    Returns a StatementReport: lhs = gt^T Hhat gt, rhs as printed, gap, holds (the
    inequality itself; for (b) also when the hypothesis is not met: see
    hypothesis_met and report.refutes); quantities as for Theorem 4.1 plus
    hessian_bn = Hhat (m, m), quad_grad_h = gt^T H gt, quad_g = g^T H g, curvature_term
    = -gamma/(m sigma^2) <g, hhat> ||gt||^2, rayleigh_g and rayleigh_grad_h (None for a
    zero vector). Raises ValueError / TypeError for invalid arguments.
    """
    ar = arithmetic(exact)
    part = choice(part, "part", PARTS)
    n, gamma, beta, eps = neuron_with_gradient(ar, h, grad, gamma, beta, eps)
    H, e_H = ar.split_scale(hessian_matrix(ar, hessian, n.m))
    m, s2 = n.m, n.s ** 2
    P = n.projection()
    P0 = n.eye - np.outer(n.one, n.one) / m

    # Hhat = A1 * 2**e1 + A2 * 2**e2 (the two parts scale differently).
    A1 = ar.vector(n.k * (P @ H @ P))
    e1 = n.e_k + e_H
    inner = (-np.outer(n.g, n.hhat) - np.outer(n.hhat, n.g) - n.g_hhat * n.eye
             + 3 * n.g_hhat * np.outer(n.hhat, n.hhat) / m)
    A2 = ar.vector(n.gamma / (m * s2) * (P0 @ inner @ P0))
    e2 = n.e_gam + n.e_g - 2 * n.e_s
    quad_gt = ar.dot(n.gt, H @ n.gt)
    quad_g = ar.dot(n.g, H @ n.g)
    curvature = ar.number(-n.gamma / (m * s2) * n.g_hhat * n.gt2)

    lhs = [(ar.dot(n.gt, A1 @ n.gt), 2 * n.e_gt + e1), (ar.dot(n.gt, A2 @ n.gt), 2 * n.e_gt + e2)]
    rhs = [(curvature, 2 * n.e_gt + e2)]
    g2_bound = ar.number(n.k * n.gg)            # >= ||gt||^2 (scaled by 2**(2 e_gt))
    bounds = [(quadratic_bound(ar, n.k, H, g2_bound), 2 * n.e_gt + e1),
              (quadratic_bound(ar, 6 * n.gamma / s2, np.abs(n.g), g2_bound),
               2 * n.e_gt + e2)]
    if part == "a":
        rhs.append((ar.number(n.k * quad_gt), 2 * n.e_gt + e1))
    else:
        rhs.append((ar.number(n.k * quad_g), n.e_k + 2 * n.e_g + e_H))
        bounds.append((quadratic_bound(ar, n.k, H, n.gg), n.e_k + 2 * n.e_g + e_H))
    verdict = compare(ar, lhs, rhs, bounds, decide=not n.eps_positive)

    # The formal reading of (b)'s hypothesis: equal H-Rayleigh quotients of g and gt.
    zero_g, zero_gt = ar.is_zero(n.gg, 0.0), ar.is_zero(n.gt2, float(n.k * n.gg))
    r_g = None if zero_g else ar.number(quad_g / n.gg)
    r_gt = None if zero_gt else ar.number(quad_gt / n.gt2)
    hypothesis_met = None
    if part == "b" and r_g is not None and r_gt is not None:
        hypothesis_met = bool(ar.is_zero(r_g - r_gt, float(quadratic_bound(ar, 1, H, 1))))

    extra = {
        "hessian": ar.scale_back(H, e_H),
        "hessian_bn": ar.vector(ar.scale_back(A1, e1) + ar.scale_back(A2, e2)),
        "quad_grad_h": ar.scale_back(quad_gt, 2 * n.e_gt + e_H),
        "quad_g": ar.scale_back(quad_g, 2 * n.e_g + e_H),
        "curvature_term": ar.scale_back(curvature, 2 * n.e_gt + e2),
        "rayleigh_g": None if r_g is None else ar.scale_back(r_g, e_H),
        "rayleigh_grad_h": None if r_gt is None else ar.scale_back(r_gt, e_H),
    }
    note = _note(part, verdict, hypothesis_met, r_g, n.eps_positive, ar)
    return make_report(ar, f"Theorem 4.2({part})", "printed", n, verdict, note, gamma,
                       beta, eps, extra=extra, hypothesis_met=hypothesis_met)


def _note(part, verdict, hypothesis_met, r_g, eps_positive, ar):
    if eps_positive:
        return EPS_NOTE
    if part == "a":
        return ("(a) is an equality at eps = 0: the Hessian of hhat contracted with g "
                "is -<g, hhat> ||v||^2 / (m sigma^2) along every v orthogonal to 1 and "
                "hhat, and gt is such a v, so gt^T Hhat gt equals the right side "
                "(gap 0 up to rounding).")
    base = "(b) holds iff gt^T H gt <= g^T H g (the other terms are those of (a))"
    if hypothesis_met is None:
        return (base + "; its hypothesis cannot be read formally here (g or gt is 0, "
                "so a Rayleigh quotient is undefined).")
    if not hypothesis_met:
        return (base + "; the instance does not meet the formal reading of the "
                "hypothesis (g^T H g/||g||^2 != gt^T H gt/||gt||^2), so "
                + ("a failure here does not refute (b)." if verdict["holds"] is False
                   else "(b) holds without it."))
    if verdict["holds"]:
        return base + "; the hypothesis (equal H-Rayleigh quotients) is met and (b) holds."
    why = ("r > 0 and ||gt|| > ||g||" if ar.is_positive(r_g, 0.0)
           else "r < 0 and ||gt|| < ||g||")
    return (base + "; the hypothesis (equal H-Rayleigh quotients r of g and gt) is met, "
            "yet (b) fails: it then reads r (||gt||^2 - ||g||^2) <= 0, false here "
            f"({why}): a counterexample to the formal reading.")


#: The rows of `bnfast audit` (claims/audit.py).
AUDIT_ROWS = tuple(Row("theorem-4-2", f"Theorem 4.2({part})", "printed",
                       partial(check_theorem_4_2, part=part), draw_h_grad_hessian)
                   for part in PARTS)
