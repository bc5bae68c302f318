"""Checker of Theorem 4.4 of Santurkar et al. (2018) ("minimax bound on weight-space
Lipschitzness") on one neuron and one batch, in float64 or exactly
(docs/math/santurkar_section_4.md).

Shapes: h (m,) pre-BN activations, grad (m,) = g = dL/dz at the BN output. The layer
is y_j = X W_j for inputs X (m, n); the gradient in the weights is X^T g, so over
||X|| <= lam (operator norm)

    g_j    = max ||dL/dW_j||^2     = lam^2 ||g||^2               (the proof, eq. 18)
    ghat_j = max ||dLhat/dW_j||^2  = lam^2 ||grad_h Lhat||^2

    printed     ghat_j <= (gamma^2/sigma^2) (g_j^2 - m mean(g)^2 - lam^2 <g, hhat>^2)
    corrected   ghat_j <= (gamma^2/sigma^2) lam^2 (||g||^2 - m mean(g)^2 - <g, hhat>^2/m)

The printed g_j^2 = lam^4 ||g||^4 is a fourth power of the gradient against the
square on the left (dimensionally inconsistent, not homogeneous in g or lam), and
the bound fails on some instances (e.g. small ||g||, or lam = 1 and <g, hhat> large).
The corrected form is lam^2 times Theorem 4.1's identity: an equality. Both maxima
treat sigma and hhat as fixed, although they depend on X (h = X W_j).

Terms and exponents (statement.py): with K = e_k = 2 (e_gamma - e_h) the printed
terms carry K + 4 e_lam + 4 e_g, K + 2 e_g and K + 2 e_lam + 2 e_g; every corrected
term carries K + 2 e_lam + 2 e_g. So the printed verdict is invariant to the scale
of h but changes with the scale of g; the corrected one is invariant to both.
"""

from functools import partial

from .._validate import choice
from .counterexample import Row, draw_h_grad
from .statement import (EPS_NOTE, arithmetic, compare, make_report,
                        neuron_with_gradient, real)

__all__ = ["AUDIT_ROWS", "check_theorem_4_4"]

FORMS = ("printed", "corrected")

_X_CAVEAT = (" Both maxima over ||X|| <= lam treat sigma and hhat as fixed, although "
             "they depend on X (h = X W_j).")


def check_theorem_4_4(h, grad, gamma=1.0, beta=0.0, lam=1.0, form="printed", exact=False,
                      eps=0.0):
    """Checks Theorem 4.4 (Santurkar et al. 2018) on one neuron and one batch.

    h      (m,) the neuron's pre-BN activations over the batch, m >= 2, not constant
    grad   (m,) g = dL/dz at the BN output z = gamma * hhat + beta
    gamma, beta   the constant BN scale (nonzero) and shift
    lam    > 0, the bound on the operator norm of the layer's input X
    form   "printed" (g_j^2, as in the paper) or "corrected" (lam^2 times Theorem 4.1's
           identity, what the proof supports)
    exact  False: float64. True: exact sympy numbers (floats at their binary value)
    eps    0 (the theorem's transform); eps > 0 gives holds=None (see the note)

    Returns a StatementReport: lhs = ghat_j = lam^2 ||grad_h Lhat||^2, rhs as printed
    or corrected, gap, holds; quantities as for Theorem 4.1 plus lam, g_j =
    lam^2 ||g||^2 and ghat_j. Raises ValueError / TypeError for invalid arguments.
    """
    ar = arithmetic(exact)
    form = choice(form, "form", FORMS)
    n, gamma, beta, eps = neuron_with_gradient(ar, h, grad, gamma, beta, eps)
    lam = real(ar, lam, "lam", positive=True)
    lam_n, e_lam = ar.split_scale(lam)
    m, k, lam2 = n.m, n.k, lam_n ** 2
    e2 = n.e_k + 2 * e_lam + 2 * n.e_g            # the exponent of lam^2 (gamma/s)^2 g^2
    mean_term = n.one_g ** 2 / m                  # m mean(g)^2 = <1, g>^2 / m
    g_j = ar.number(lam2 * n.gg)
    ghat_j = ar.number(lam2 * n.gt2)
    lhs = [(ghat_j, 2 * e_lam + 2 * n.e_gt)]
    if form == "printed":
        rhs = [(ar.number(k * g_j ** 2), n.e_k + 4 * e_lam + 4 * n.e_g),
               (ar.number(-k * mean_term), n.e_k + 2 * n.e_g),
               (ar.number(-k * lam2 * n.g_hhat ** 2), e2)]
    else:
        rhs = [(ar.number(k * lam2 * n.gg), e2), (ar.number(-k * lam2 * mean_term), e2),
               (ar.number(-k * lam2 * n.g_hhat ** 2 / m), e2)]
    # lam^2 (gamma/s)^2 ||g||^2 bounds ghat_j: the rounding of the left side is measured
    # against it (the printed right side need not contain it).
    verdict = compare(ar, lhs, rhs, [(ar.number(k * g_j), e2)], decide=not n.eps_positive)
    extra = {"lam": lam, "g_j": ar.scale_back(g_j, 2 * e_lam + 2 * n.e_g),
             "ghat_j": ar.scale_back(ghat_j, 2 * e_lam + 2 * n.e_gt)}
    return make_report(ar, "Theorem 4.4", form, n, verdict, _note(form, verdict, n.eps_positive),
                       gamma, beta, eps, extra=extra)


def _note(form, verdict, eps_positive):
    if eps_positive:
        return EPS_NOTE + _X_CAVEAT
    if form == "corrected":
        return ("The corrected form is lam^2 times Theorem 4.1's identity, so it holds "
                "with equality (gap 0 up to rounding)." + _X_CAVEAT)
    outcome = "fails here" if verdict["holds"] is False else "happens to hold here"
    return ("As printed, g_j^2 = lam^4 ||g||^4 is a fourth power of the gradient while "
            "ghat_j is a square, so the bound is not homogeneous in g or lam; it "
            + outcome + "." + _X_CAVEAT)


#: The rows of `bnfast audit` (claims/audit.py).
AUDIT_ROWS = tuple(Row("theorem-4-4", "Theorem 4.4", form,
                       partial(check_theorem_4_4, form=form), draw_h_grad) for form in FORMS)
