"""Checker of Theorem 4.1 of Santurkar et al. (2018) ("the effect of BatchNorm on the
Lipschitzness of the loss") on one neuron and one batch, in float64 or exactly
(docs/math/santurkar_section_4.md).

Shapes: h (m,) pre-BN activations, grad (m,) = g = dL/dz at the BN output
z = gamma * hhat + beta. With sigma the biased batch std and eps = 0:

    printed     ||grad_h Lhat||^2 <= (gamma^2/sigma^2) (||g||^2 - <1, g>^2/m
                                                        - <g, hhat>^2 / sqrt(m))
    corrected   the same with <g, hhat>^2 / m: an EQUALITY, since
                grad_h Lhat = (gamma/sigma) P g and P = I - 1 1^T/m - hhat hhat^T/m is
                the orthogonal projection onto the complement of span(1, hhat)
                (||1||^2 = ||hhat||^2 = m, <1, hhat> = 0).

So the printed form fails by (gamma^2/sigma^2)(1/sqrt(m) - 1/m) <g, hhat>^2 whenever
m >= 2 and <g, hhat> != 0. Terms and the float tolerance: bnfast/claims/statement.py
(all terms here have the same exponent 2 (e_gamma + e_g - e_h), so the statement is
invariant to the scale of h and homogeneous in g).
"""

from functools import partial

from .._validate import choice
from .counterexample import Row, draw_h_grad
from .statement import EPS_NOTE, arithmetic, compare, make_report, neuron_with_gradient

__all__ = ["AUDIT_ROWS", "check_theorem_4_1"]

FORMS = ("printed", "corrected")


def check_theorem_4_1(h, grad, gamma=1.0, beta=0.0, form="printed", exact=False, eps=0.0):
    """Checks Theorem 4.1 (Santurkar et al. 2018) on one neuron and one batch.

    h      (m,) the neuron's pre-BN activations over the batch, m >= 2, not constant
    grad   (m,) the gradient g of the downstream loss with respect to the BN output
           z = gamma * hhat + beta
    gamma, beta   the constant BN scale (nonzero) and shift
    form   "printed" (1/sqrt(m) in the last term, as in the paper) or "corrected"
           (1/m, what the proof's own step gives; an identity)
    exact  False: float64. True: exact sympy numbers (floats taken at their binary value)
    eps    0 (the theorem's transform); eps > 0 gives holds=None (see the note)

    Returns a StatementReport: lhs = ||grad_h Lhat||^2, rhs as printed or corrected,
    gap = rhs - lhs, holds; quantities mu, sigma, hhat, z, grad_h (m,), projection
    (m, m), one_dot_g, g_dot_hhat, norm_g_sq, norm_grad_h_sq, coefficient (of the
    last term) and deficit (the printed form's shortfall, (gamma^2/sigma^2)(1/sqrt(m)
    - 1/m) <g, hhat>^2). Raises ValueError / TypeError for invalid arguments.
    """
    ar = arithmetic(exact)
    form = choice(form, "form", FORMS)
    n, gamma, beta, eps = neuron_with_gradient(ar, h, grad, gamma, beta, eps)
    m = n.m
    root_m = ar.sqrt(m)
    coefficient = ar.number(1 / root_m if form == "printed" else ar.number(1) / m)
    e = n.e_k + 2 * n.e_g             # the exponent of every term
    lhs = [(n.gt2, 2 * n.e_gt)]
    rhs = [(n.k * n.gg, e), (-n.k * n.one_g ** 2 / m, e),
           (-n.k * coefficient * n.g_hhat ** 2, e)]
    verdict = compare(ar, lhs, rhs, decide=not n.eps_positive)
    deficit = ar.scale_back(ar.number(n.k * (1 / root_m - ar.number(1) / m)
                                      * n.g_hhat ** 2), e)
    return make_report(ar, "Theorem 4.1", form, n, verdict,
                       _note(form, verdict, n.eps_positive), gamma, beta, eps,
                       extra={"coefficient": coefficient, "deficit": deficit})


def _note(form, verdict, eps_positive):
    if eps_positive:
        return EPS_NOTE
    if form == "corrected":
        return ("The corrected form (1/m in the last term) is an identity: grad_h Lhat = "
                "(gamma/sigma) P g with P an orthogonal projection, so "
                "||grad_h Lhat||^2 = (gamma^2/sigma^2) ||P g||^2 is exactly the right "
                "side (gap 0 up to rounding).")
    if verdict["holds"]:
        return ("<g, hhat> = 0 here (up to rounding), where the printed 1/sqrt(m) and the "
                "correct 1/m coincide and the bound is an equality.")
    return ("As printed (1/sqrt(m) in the last term) the bound fails: its right side is "
            "below the true ||grad_h Lhat||^2 by (gamma^2/sigma^2)(1/sqrt(m) - 1/m) "
            "<g, hhat>^2 (the deficit), which is positive whenever m >= 2 and "
            "<g, hhat> != 0.")


#: The rows of `bnfast audit` (claims/audit.py).
AUDIT_ROWS = tuple(Row("theorem-4-1", "Theorem 4.1", form,
                       partial(check_theorem_4_1, form=form), draw_h_grad) for form in FORMS)
