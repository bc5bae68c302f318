"""The l1 constant of Hoffer, Banner, Golan and Soudry, "Norm matters: efficient and
accurate normalization schemes in deep networks" (NeurIPS 2018, arXiv:1803.01814),
the l1 batch norm: for Gaussian x ~ N(mu, sigma^2), E|x - mu| = sigma sqrt(2/pi),
so dividing the centred activations by sqrt(pi/2) times their mean absolute deviation
(l1 BN) is dividing by their standard deviation (BN) for Gaussian activations;
checked exactly (sympy's symbolic integration) and in float64 (double-exponential
quadrature), with a Monte Carlo sweep over batch sizes; docs/math/l1_constant.md.

A batch x_1..x_B of B >= 2 independent N(mu, sigma^2) samples, xbar its mean,

    mad_B = (1/B) sum_i |x_i - xbar|          what l1 BN divides by (times sqrt(pi/2))
    std_B = sqrt((1/B) sum_i (x_i - xbar)^2)   what BN divides by (biased, eps = 0)

The forms (each an equality lhs = rhs; holds says whether it is one):

    "population"  E|x - mu| = sigma sqrt(2/pi)                      (the paper's constant)
    "batch"       sqrt(pi/2) E[mad_B] = E[std_B]   the constant read at a batch of B:
                  it FAILS at every finite B, since
    "corrected"   sqrt(pi/2) c4(B) E[mad_B] = E[std_B],
                  c4(B) = sqrt(2/(B-1)) Gamma(B/2) / Gamma((B-1)/2)  (-> 1 as B -> inf)

Derivation (the exact path computes each step): x_i - xbar = <e_i - 1/B, x> is Gaussian
with mean 0 and variance sigma^2 ||e_i - 1/B||^2 = sigma^2 (B-1)/B, so by the population
integral E[mad_B] = sigma sqrt(2/pi) sqrt((B-1)/B); B std_B^2 / sigma^2 is chi^2 with
B-1 degrees of freedom (Cochran), and E sqrt(chi^2_n) = sqrt(2) Gamma((n+1)/2) /
Gamma(n/2) by integrating against the chi^2_n density, so E[std_B] = sigma c4(B)
sqrt((B-1)/B). Hence E[mad_B] / E[std_B] = sqrt(2/pi) / c4(B): exactly 1 at B = 2
(mad_2 = std_2 = |x_1 - x_2|/2), 0.8660 at B = 4, 0.7987 at B = 256, -> sqrt(2/pi).

    check_l1_constant(sigma, mu=0, B=None, form="population", exact=False)
    l1_ratio_sweep(sizes, batches, seed) -> L1Sweep: the Monte Carlo ratio per B with
        its standard error, against sqrt(2/pi) / c4(B)
"""

import math
from dataclasses import dataclass
from functools import lru_cache, partial
from statistics import NormalDist

import numpy as np

from .._validate import boolean, choice, integer, positive_finite
from .._validate import seed as seed_value
from .counterexample import BOUND, Row
from .statement import Quantities, StatementReport

__all__ = ["AUDIT_ROWS", "FORMS", "L1Sweep", "c4", "check_l1_constant", "l1_ratio_sweep"]

FORMS = ("population", "batch", "corrected")

#: The Monte Carlo sweep of the audit's row: batch sizes, batches per size, seed.
SWEEP_SIZES = (2, 4, 8, 16, 32, 64, 128, 256)
SWEEP_BATCHES = 10_000
SWEEP_SEED = 0

_EPS64 = np.finfo(np.float64).eps


def check_l1_constant(sigma, mu=0, B=None, form="population", exact=False):
    """Checks the l1 constant of Hoffer et al. (2018) in one form.

    sigma  > 0, the standard deviation of the Gaussian
    mu     its mean (the forms do not depend on it; it is there to show so)
    B      the batch size, an integer >= 2 (forms "batch" and "corrected"; the
           "population" form ignores it)
    form   "population": E|x - mu| = sigma sqrt(2/pi); "batch": sqrt(pi/2) E[mad_B] =
           E[std_B]; "corrected": sqrt(pi/2) c4(B) E[mad_B] = E[std_B]
    exact  False: float64 by numerical quadrature (a double-exponential rule). True:
           exact sympy numbers by symbolic integration

    Returns a StatementReport (statement "l1 constant", relation "="): lhs, rhs, gap =
    rhs - lhs, holds (equal exactly, or within the quadrature's error estimate plus
    rounding); quantities abs_moment = E|x - mu| and, with B, mad (E[mad_B]),
    mad_closed_form (sigma sqrt(2/pi) sqrt((B-1)/B)), std (E[std_B]), c4 and ratio =
    E[mad_B]/E[std_B]. Raises ValueError / TypeError for invalid arguments.
    """
    exact = boolean(exact, "exact")
    form = choice(form, "form", FORMS)
    sigma, mu = _number(sigma, "sigma", exact), _number(mu, "mu", exact)
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    if B is not None:
        B = integer(_whole(B), "B", 2)
    elif form != "population":
        raise ValueError(f"form {form!r} needs the batch size B (an integer >= 2)")
    q = _exact_quantities(sigma, mu, B) if exact else _float_quantities(sigma, mu, B)
    if form == "population":
        lhs, rhs = q["abs_moment"], q["abs_closed_form"]
    elif form == "batch":
        lhs, rhs = q["half_pi_root"] * q["mad"], q["std"]
    else:
        lhs, rhs = q["half_pi_root"] * q["c4"] * q["mad"], q["std"]
    if exact:
        from ._exact import expanded, is_zero_expanded

        lhs, rhs = expanded(lhs), expanded(rhs)
        gap = expanded(rhs - lhs)
        holds, tolerance, magnitude, relative = is_zero_expanded(gap), 0, 0, 0
    else:
        gap = rhs - lhs
        magnitude = abs(lhs) + abs(rhs)
        err = q["error"].get(form, 0.0)
        tolerance = err + 64 * _EPS64 * magnitude
        holds = bool(abs(gap) <= tolerance)
        relative = gap / magnitude
    quantities = {k: v for k, v in q.items() if k not in ("error", "half_pi_root",
                                                            "abs_closed_form")}
    return StatementReport(
        statement="l1 constant", form=form, exact=exact, m=0 if B is None else B,
        lhs=lhs, rhs=rhs, gap=gap, holds=holds, tolerance=tolerance, magnitude=magnitude,
        relative_gap=relative, note=_note(form, holds, B), eps=0 if exact else 0.0,
        relation="=", quantities=Quantities(quantities))


def _whole(value):
    """A batch size as given, an integral float (an instance file's 4.0) as an int."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return int(value)
    return value


def _number(value, name, exact):
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if exact:
        from ._exact import _to_exact
        return _to_exact(value, name)
    from ._float import FloatArithmetic
    return FloatArithmetic().scalar(value, name)


def c4(B, exact=False):
    """c4(B) = sqrt(2/(B-1)) Gamma(B/2) / Gamma((B-1)/2) = E[s] / sigma for the unbiased
    sample standard deviation s of B Gaussian samples: a sympy number (exact) or a
    float (from log-gamma)."""
    B = integer(B, "B", 2)
    if exact:
        import sympy
        return sympy.sqrt(sympy.Rational(2, B - 1)) * sympy.gamma(sympy.Rational(B, 2)) \
            / sympy.gamma(sympy.Rational(B - 1, 2))
    return math.sqrt(2 / (B - 1)) * math.exp(math.lgamma(B / 2) - math.lgamma((B - 1) / 2))


# ---- exact: symbolic integration -------------------------------------------------------

@lru_cache(maxsize=None)
def _abs_moment_symbolic():
    """(E|x - mu| for x ~ N(mu, sigma^2) by sympy's integral, mu, sigma)."""
    import sympy

    x = sympy.Symbol("x", real=True)
    mu = sympy.Symbol("mu", real=True)
    sigma = sympy.Symbol("sigma", positive=True)
    density = sympy.exp(-(x - mu) ** 2 / (2 * sigma ** 2)) / (sigma * sympy.sqrt(2 * sympy.pi))
    value = sympy.integrate(sympy.Abs(x - mu) * density, (x, -sympy.oo, sympy.oo))
    return sympy.simplify(value), mu, sigma


@lru_cache(maxsize=None)
def _chi_mean(n):
    """E sqrt(Q) for Q ~ chi^2_n, by sympy's integral against the chi^2_n density."""
    import sympy

    t = sympy.Symbol("t", positive=True)
    half = sympy.Rational(n, 2)
    density = t ** (half - 1) * sympy.exp(-t / 2) / (2 ** half * sympy.gamma(half))
    return sympy.simplify(sympy.integrate(sympy.sqrt(t) * density, (t, 0, sympy.oo)))


def _exact_abs_moment(sigma, mu=0):
    from ._exact import expanded

    value, mu_s, sigma_s = _abs_moment_symbolic()
    return expanded(value.xreplace({mu_s: mu, sigma_s: sigma}))


def _exact_quantities(sigma, mu, B):
    import sympy

    from ._exact import expanded

    out = {"abs_moment": _exact_abs_moment(sigma, mu),
           "abs_closed_form": sigma * sympy.sqrt(2 / sympy.pi),
           "half_pi_root": sympy.sqrt(sympy.pi / 2), "error": {}}
    if B is not None:
        mads = []
        for i in range(B):
            a = [sympy.Integer(int(l == i)) - sympy.Rational(1, B) for l in range(B)]
            assert sum(a) == 0         # mu cancels: x_i - xbar has mean 0
            var = sigma ** 2 * sum(v * v for v in a)
            mads.append(_exact_abs_moment(sympy.sqrt(var)))
        mad = expanded(sum(mads) / B)
        std = expanded(sigma / sympy.sqrt(B) * _chi_mean(B - 1))
        out.update(mad=mad, std=std, c4=expanded(c4(B, exact=True)),
                   mad_closed_form=sigma * sympy.sqrt(2 / sympy.pi)
                   * sympy.sqrt(sympy.Rational(B - 1, B)),
                   ratio=expanded(mad / std))
    return out


# ---- float: numerical quadrature ------------------------------------------------------

def _half_line(f, a, scale):
    """(int_a^inf f(x) dx, error estimate) by the exp-sinh rule x = a + scale
    exp(pi/2 sinh s) on s in [-4.5, 4.5] with steps 1/16 and 1/32 (double-exponential
    quadrature: the error falls about as exp(-c/h), so the difference of the two
    levels bounds the finer one's error generously). f maps an array to an array."""
    values = []
    for h in (1 / 16, 1 / 32):
        s = np.arange(-4.5, 4.5 + h / 2, h)
        e = np.exp(np.pi / 2 * np.sinh(s))
        with np.errstate(over="ignore", under="ignore"):
            values.append(float(np.sum(f(a + scale * e) * scale * h * np.pi / 2
                                       * np.cosh(s) * e)))
    return values[1], abs(values[1] - values[0])


@lru_cache(maxsize=256)
def _quad_abs_moment(sigma, mu):
    """(E|x - mu| for x ~ N(mu, sigma^2), error estimate): the integral of |x - mu| times
    the density over each side of mu."""
    norm = 1 / (sigma * math.sqrt(2 * math.pi))

    def f(x):
        return np.abs(x - mu) * norm * np.exp(-0.5 * ((x - mu) / sigma) ** 2)

    right, e_right = _half_line(f, mu, sigma)
    left, e_left = _half_line(lambda x: f(2 * mu - x), mu, sigma)    # x -> 2 mu - x
    return left + right, e_left + e_right


@lru_cache(maxsize=256)
def _quad_chi_mean(n):
    """(E sqrt(Q) for Q ~ chi^2_n, error estimate): the integral of sqrt(t) times the
    chi^2_n density."""
    log_norm = (n / 2) * math.log(2) + math.lgamma(n / 2)

    def f(t):
        return np.exp((n / 2 - 0.5) * np.log(t) - t / 2 - log_norm)

    return _half_line(f, 0.0, float(max(1, n)))     # the density's mode is near n


def _float_quantities(sigma, mu, B):
    moment, err = _quad_abs_moment(sigma, mu)
    half = math.sqrt(math.pi / 2)
    out = {"abs_moment": moment, "abs_closed_form": sigma * math.sqrt(2 / math.pi),
           "half_pi_root": half, "error": {"population": err}}
    if B is not None:
        spread = sigma * math.sqrt((B - 1) / B)
        unit, e_unit = _quad_abs_moment(1.0, 0.0)
        mad = spread * unit                      # every x_i - xbar has this law
        chi, e_chi = _quad_chi_mean(B - 1)
        std = sigma / math.sqrt(B) * chi
        c = c4(B)
        out.update(mad=mad, std=std, c4=c,
                   mad_closed_form=spread * math.sqrt(2 / math.pi), ratio=mad / std)
        err_mad, err_std = spread * e_unit, sigma / math.sqrt(B) * e_chi
        out["error"].update(batch=half * err_mad + err_std,
                            corrected=half * c * err_mad + err_std)
    return out


def _note(form, holds, B):
    if form == "population":
        return ("E|x - mu| = 2 int_0^inf t phi_sigma(t) dt = sigma sqrt(2/pi): the "
                "paper's constant, exact for a Gaussian population.")
    if form == "batch":
        return (f"At a batch of B = {B}: E[mad_B] = sigma sqrt(2/pi) sqrt((B-1)/B) but "
                "E[std_B] = sigma c4(B) sqrt((B-1)/B), so sqrt(pi/2) E[mad_B] = "
                "E[std_B] / c4(B)" + (", not E[std_B]." if not holds else "."))
    return ("sqrt(pi/2) c4(B) E[mad_B] = E[std_B] for every B >= 2: the paper's "
            "constant times 1/c4(B) = 1 + 1/(4B) + O(1/B^2) is l1 BN's exact "
            "finite-batch constant (in expectation).")


# ---- the Monte Carlo sweep -----------------------------------------------------------

@dataclass(frozen=True, eq=False)
class L1Sweep:
    """Monte Carlo of E[mad_B] / E[std_B] over batches of B Gaussian samples.

    sizes     (K,) batch sizes B
    batches   batches drawn per size; sigma their standard deviation; seed
    ratio     (K,) mean(mad_B) / mean(std_B) over the batches
    se        (K,) its standard error (delta method: sd(mad - ratio std) / (sqrt(N)
              mean(std)))
    exact     (K,) sqrt(2/pi) / c4(B), the exact value
    mad, mad_se, mad_exact   (K,) mean(mad_B), its standard error, and
              sigma sqrt(2/pi) sqrt((B-1)/B)
    z         the half-width of the intervals in standard errors: simultaneous level
              ``level`` over the K sizes (Bonferroni, z = Phi^-1(1 - (1-level)/(2K)));
              each interval also allows the rounding of its sums
    covered   (K,) bool: the exact value lies in ratio +- (z se + rounding)
    mad_covered  (K,) bool: the same for E[mad_B]
    limit     sqrt(2/pi); limit_excluded (K,) bool: the limit lies outside the interval
    """

    sizes: tuple
    batches: int
    sigma: float
    seed: int
    level: float
    z: float
    ratio: np.ndarray
    se: np.ndarray
    exact: np.ndarray
    mad: np.ndarray
    mad_se: np.ndarray
    mad_exact: np.ndarray
    covered: np.ndarray
    mad_covered: np.ndarray
    limit: float
    limit_excluded: np.ndarray

    def to_dict(self):
        out = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            out[name] = value.tolist() if isinstance(value, np.ndarray) else \
                (list(value) if isinstance(value, tuple) else value)
        return out


def l1_ratio_sweep(sizes=SWEEP_SIZES, batches=SWEEP_BATCHES, seed=SWEEP_SEED, sigma=1.0,
                   level=0.95):
    """The Monte Carlo sweep of E[mad_B] / E[std_B] (see L1Sweep): for each B in sizes,
    ``batches`` batches of B samples of N(0, sigma^2) (numpy's PCG64 from ``seed``,
    sizes drawn in order), in chunks of about a million samples."""
    sizes = tuple(integer(B, "B", 2) for B in sizes)
    if not sizes:
        raise ValueError("sizes must hold at least one batch size")
    batches = integer(batches, "batches", 2)
    sigma = positive_finite(sigma, "sigma")
    seed = seed_value(seed)
    level = float(level)
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    z = NormalDist().inv_cdf(1 - (1 - level) / (2 * len(sizes)))
    rng = np.random.default_rng(seed)
    limit = math.sqrt(2 / math.pi)
    rows = []
    for B in sizes:
        mad = np.empty(batches)
        std = np.empty(batches)
        step = max(1, (1 << 20) // B)
        for start in range(0, batches, step):
            n = min(step, batches - start)
            x = rng.normal(0.0, sigma, size=(n, B))
            c = x - x.mean(axis=1, keepdims=True)
            mad[start:start + n] = np.abs(c).mean(axis=1)
            std[start:start + n] = np.sqrt((c * c).mean(axis=1))
        m_mad, m_std = mad.mean(), std.mean()
        r = m_mad / m_std
        se = (mad - r * std).std(ddof=1) / (math.sqrt(batches) * m_std)
        mad_se = mad.std(ddof=1) / math.sqrt(batches)
        # The sums' rounding (n B terms each, pairwise in numpy; bounded generously).
        rounding = 4 * batches * B * _EPS64
        exact = limit / c4(B)
        mad_exact = sigma * limit * math.sqrt((B - 1) / B)
        half = z * se + rounding * r
        rows.append((r, se, exact, m_mad, mad_se, mad_exact, abs(r - exact) <= half,
                     abs(m_mad - mad_exact) <= z * mad_se + rounding * m_mad,
                     abs(r - limit) > half))
    cols = list(zip(*rows))
    arr = [np.array(c, dtype=float) for c in cols[:6]]
    flags = [np.array(c, dtype=bool) for c in cols[6:]]
    return L1Sweep(sizes=sizes, batches=batches, sigma=sigma, seed=seed, level=level, z=z,
                   ratio=arr[0], se=arr[1], exact=arr[2], mad=arr[3], mad_se=arr[4],
                   mad_exact=arr[5], covered=flags[0], mad_covered=flags[1], limit=limit,
                   limit_excluded=flags[2])


# ---- the audit's rows -------------------------------------------------------------------

def draw_gaussian(rng, m):
    """sigma in 1..BOUND and mu in -BOUND..BOUND (0-d arrays, so the shrink moves
    them)."""
    return {"sigma": np.array(int(rng.integers(1, BOUND + 1))),
            "mu": np.array(int(rng.integers(-BOUND, BOUND + 1)))}


def draw_batch(rng, m):
    """A Gaussian (draw_gaussian) and the batch size B = m."""
    return {"B": np.array(m), **draw_gaussian(rng, m)}


def _sweep_extra():
    return {"monte_carlo": l1_ratio_sweep().to_dict()}


def _sweep_notes(extra):
    s = extra["monte_carlo"]
    lines = [f"Monte Carlo E[mad_B]/E[std_B], {s['batches']:,} batches",
             "per B (exact sqrt(2/pi)/c4(B) in brackets):"]
    cells = [f"B={B} {r:.4f} [{e:.4f}]" for B, r, e in zip(s["sizes"], s["ratio"],
                                                           s["exact"])]
    for i in range(0, len(cells), 2):
        lines.append("  ".join(f"{c:<23}" for c in cells[i:i + 2]).rstrip())
    covered, excluded, K = sum(s["covered"]), sum(s["limit_excluded"]), len(s["sizes"])
    lines += [f"-> sqrt(2/pi) = {s['limit']:.4f}; {covered} of {K} exact values in",
              f"their {100 * s['level']:.0f}% intervals (Bonferroni over {K}), the",
              f"limit outside {excluded} of {K}"]
    return lines


#: The rows of `bnfast audit` (claims/audit.py).
AUDIT_ROWS = (
    Row("l1-constant", "l1 constant", "population",
        partial(check_l1_constant, form="population"), draw_gaussian),
    Row("l1-constant", "l1 constant", "batch B",
        partial(check_l1_constant, form="batch"), draw_batch),
    Row("l1-constant", "l1 constant", "corrected",
        partial(check_l1_constant, form="corrected"), draw_batch,
        extra=_sweep_extra, notes=_sweep_notes),
)
