"""Checker of Observation 4.3 of Santurkar et al. (2018) ("BatchNorm does more than
rescaling") on one identity neuron, in float64 or exactly
(docs/math/santurkar_section_4.md).

The observation: for any data X and weights W there is a BN configuration
(W, gamma, beta) giving the same activations, namely gamma = sigma(W), beta = mu(W);
"consequently, all minima of the standard landscape are preserved in the BN landscape".

Shapes: X (m, d) inputs (one sample per row), W (d,) weights, h = X W (m,) the
activations, y (m,) optional targets of the squared loss ||y - X W||^2.

    gamma, beta None (form "w-dependent"): gamma = sigma(W), beta = mu(W), so
        BN(h) = sigma (h - mu)/sigma + mu = h at every W: the observation holds, and
        with y the BN loss equals the standard loss everywhere, so W* is a minimum of
        both. lhs = ||BN(X W) - X W|| (0), rhs = 0.
    gamma, beta numbers (form "constant", the setting of Lemma 4.5): BN(X t W) =
        BN(X W) for every t > 0 while X t W = t X W, so BN cannot reproduce the
        activations along the ray: lhs = ||BN(X W) - X W|| + ||BN(2 X W) - 2 X W|| > 0
        (one of the two is nonzero since h != 0), rhs = 0, holds False, the witness
        is the t in {1, 2} where reproduction fails. With y, the standard optimum W*
        is checked for being a critical point of the BN loss (check_lemma_4_5);
        Example 3.2 (X = [[1,0],[0,1],[1,1]], y = (8,6,11), W* = (7,5), gamma = 1,
        beta = 0) is the witness that it need not be.

Float path: X and W are scaled by powers of two (statement.py), residual norms are
decided against rel * M with M = sum over the residuals of ||gamma hhat|| +
sqrt(m) |beta| + t ||h|| (the size of what is subtracted).
"""

from functools import partial

from .counterexample import Row, draw_x_w
from .lemma_4_5 import check_lemma_4_5
from .statement import (Neuron, Quantities, StatementReport, arithmetic, batch_matrix,
                        batch_vector, compare, eps_value, real)

__all__ = ["AUDIT_ROWS", "check_observation_4_3"]


def check_observation_4_3(X, W, y=None, gamma=None, beta=None, exact=False, eps=0.0):
    """Checks Observation 4.3 (Santurkar et al. 2018) on one identity neuron.

    X      (m, d) inputs, one sample per row, m >= 2
    W      (d,) weights; h = X W must not be constant
    y      None or (m,) targets of the squared loss (then the standard optimum W* is
           examined too)
    gamma, beta   both None: the W-dependent choice gamma = sigma(W), beta = mu(W) of
           the observation; both numbers: constants (gamma nonzero), the setting of
           Lemma 4.5
    exact  False: float64. True: exact sympy numbers (floats at their binary value)
    eps    0 (the observation's transform); eps > 0 gives holds=None

    Returns a StatementReport (statement "Observation 4.3", form "w-dependent" or
    "constant"): lhs the reproduction residual(s) (see the module docstring), rhs 0,
    holds; quantities h (m,), mu, sigma, hhat, z = BN output, residual_at_w (and
    residual_at_2w, witness_t, witness_w for constants); with y: w_star,
    loss_std_at_w_star, loss_bn_at_w_star and, for constants, grad_bn_at_w_star,
    grad_bn_norm, w_star_is_bn_critical, bn_direction. Raises ValueError /
    TypeError for invalid arguments.
    """
    ar = arithmetic(exact)
    X = batch_matrix(ar, X, "X")
    m, d = X.shape
    W = ar.array(W, "W")
    if W.shape != (d,):
        raise ValueError(f"W must have shape ({d},) for X of shape {X.shape} (one neuron; "
                         f"check a layer column by column), got shape {W.shape}")
    y = None if y is None else batch_vector(ar, y, "y", m=m)
    if (gamma is None) != (beta is None):
        raise ValueError("gamma and beta must both be None (the W-dependent choice gamma "
                         "= sigma(W), beta = mu(W)) or both numbers (constants)")
    constant = gamma is not None
    if constant:
        gamma = real(ar, gamma, "gamma", nonzero=True)
        beta = real(ar, beta, "beta")
    eps, eps_positive = eps_value(ar, eps)
    ar.prepare_batch(m)

    Xn, e_X = ar.split_scale(X)
    Wn, e_W = ar.split_scale(W)
    n = Neuron(ar, ar.vector(Xn @ Wn), eps, eps_positive, h_exp=e_X + e_W, name="X W")
    root_m = ar.sqrt(m)
    if constant:
        gam_n, e_gam = ar.split_scale(gamma)
        beta_n, e_beta = ar.split_scale(beta)
    else:   # gamma = sigma(W), beta = mu(W), in the units of h
        gam_n, e_gam, beta_n, e_beta = ar.sqrt(n.var), n.e_h, n.mu, n.e_h
        gamma, beta = ar.scale_back(gam_n, e_gam), ar.scale_back(beta_n, e_beta)
    ts = (1, 2) if constant else (1,)
    top = max(e_gam, e_beta, n.e_h + 1)           # one unit for z and t h, t <= 2
    z_n = ar.vector(ar.scale_back(gam_n * n.hhat, e_gam - top)
                    + ar.scale_back(beta_n, e_beta - top))
    h_n = ar.scale_back(n.h, n.e_h - top)
    residuals = []
    for t in ts:
        r = ar.vector(z_n - t * h_n)
        residuals.append(ar.sqrt(ar.dot(r, r)))
    sizes = (ar.number(ar.sqrt(ar.dot(n.hhat, n.hhat)) * abs(gam_n)),
             ar.number(root_m * abs(beta_n)), ar.sqrt(ar.dot(n.h, n.h)))
    bounds = [(len(ts) * sizes[0], e_gam), (len(ts) * sizes[1], e_beta),
              (sum(ts) * sizes[2], n.e_h)]
    verdict = compare(ar, [(r, top) for r in residuals], [], bounds,
                      decide=not eps_positive)

    quantities = n.quantities(gamma, beta)
    quantities["h"] = ar.vector(ar.scale_back(n.h, n.e_h))
    quantities["residual_at_w"] = ar.scale_back(residuals[0], top)
    if constant:
        quantities["residual_at_2w"] = ar.scale_back(residuals[1], top)
        size = ar.number(sum(ar.scale_back(v, e - top) for v, e in bounds))
        t = 2 if ar.is_zero(residuals[0], size) else 1    # reproduced at W: 2W fails
        quantities["witness_t"] = t
        quantities["witness_w"] = ar.vector(t * W)
    lemma = None
    if y is not None:
        lemma = _standard_optimum(ar, X, W, y, gamma, beta, eps, eps_positive, constant,
                                  quantities)
    note = _note(constant, eps_positive, quantities, lemma)
    return StatementReport(
        statement="Observation 4.3", form="constant" if constant else "w-dependent",
        exact=ar.exact, m=m, note=note, eps=eps, quantities=Quantities(quantities), **verdict)


def _standard_optimum(ar, X, W, y, gamma, beta, eps, eps_positive, constant, quantities):
    """Adds the standard optimum W* and what BN makes of it to `quantities`; returns
    the Lemma 4.5 report for constants (None for the W-dependent choice)."""
    if constant:
        # The BN loss of Lemma 4.5 (constant gamma, beta, eps = 0) at W*.
        lemma = check_lemma_4_5(X, y, W, gamma=gamma, beta=beta, exact=ar.exact,
                                cross_check=False)
        quantities.update({
            "w_star": lemma.w_star, "loss_std_at_w_star": lemma.loss_std_at_w_star,
            "loss_bn_at_w_star": lemma.loss_bn_at_w_star,
            "grad_bn_at_w_star": lemma.grad_bn_at_w_star,
            "grad_bn_norm": lemma.grad_bn_norm,
            "w_star_is_bn_critical": lemma.w_star_is_bn_critical,
            "bn_direction": lemma.bn_direction})
        return lemma
    if ar.rank(X) < X.shape[1]:
        raise ValueError(f"X of shape {X.shape} has rank {ar.rank(X)} < d: the standard "
                         "optimum W* of ||y - X W||^2 is not unique")
    w_star = ar.vector(ar.lstsq(X, y))
    h_star = ar.vector(X @ w_star)
    star = Neuron(ar, h_star, eps, eps_positive, name="X W* (the standard optimum's output)")
    # gamma = sigma(W*), beta = mu(W*): the BN output at W* in the units of h*.
    z_star = ar.vector(ar.scale_back(ar.sqrt(star.var) * star.hhat + star.mu, star.e_h))
    quantities.update({
        "w_star": w_star, "loss_std_at_w_star": ar.dot(y - h_star, y - h_star),
        "loss_bn_at_w_star": ar.dot(y - z_star, y - z_star)})
    return None


def _note(constant, eps_positive, quantities, lemma):
    if eps_positive:
        return ("eps > 0: with s = sqrt(sigma^2 + eps) the BN output is no longer "
                "scale-invariant and gamma = sigma no longer reproduces h (gamma = s "
                "would), so the eps = 0 observation is not checked: the residuals are "
                "for information only and holds is None.")
    if not constant:
        return ("With gamma = sigma(W) and beta = mu(W), parameters that depend on W, "
                "BN(X W) = X W at every W, so the BN network reproduces the standard "
                "activations and every minimum of the standard landscape is one of the "
                "BN landscape (with y: W* has the same loss in both).")
    text = ("With constant gamma, beta (the setting of Lemma 4.5) BN(X t W) = BN(X W) "
            "for every t > 0 while X t W = t X W, so BN does not reproduce the "
            f"activations along the ray: it fails at t = {quantities['witness_t']}.")
    if lemma is not None:
        if lemma.w_star_is_bn_critical:
            text += (" Here the standard optimum W* happens to be a critical point of "
                     "the BN loss (it lies on the line of the BN optima).")
        else:
            text += (" The standard optimum W* is not even a critical point of the BN "
                     "loss (its gradient there is nonzero), so the minima of the "
                     "standard landscape are not preserved (Example 3.2 of Dannemann "
                     "and Junike).")
    return text


#: The rows of `bnfast audit` (claims/audit.py): the W-dependent gamma, beta of the
#: observation, and constant ones.
AUDIT_ROWS = (
    Row("observation-4-3", "Observation 4.3", "w-dependent", check_observation_4_3, draw_x_w),
    Row("observation-4-3", "Observation 4.3", "constant",
        partial(check_observation_4_3, gamma=1, beta=0), draw_x_w),
)
