"""How often Theorems 4.1 and 4.4 of Santurkar et al. (2018), as printed, fail over
random instances (docs/math/search.md, docs/math/santurkar_section_4.md).

An instance is one BN neuron on a batch of m samples: pre-BN activations h ~ N(0, I_m)
and the downstream gradient g ~ N(0, I_m), gamma = 1, beta = 0, eps = 0 (and lam for
Theorem 4.4). The float check is vectorised NumPy over a chunk (the closed forms of
bnfast.claims, on whole arrays; lam = lam_n * 2**e enters as lam_n with its power of two
carried as an exponent, as in bnfast.claims, so any finite lam > 0 is decided without
overflow); a verdict whose margin is within rounding is decided by bnfast.claims' exact
checker, and every reported counterexample is certified by it, after shrinking (see
_certify): small integers for Theorem 4.1, integer h and g on a grid 1/q (q = 1, 2, 4,
...) for Theorem 4.4, whose printed verdict depends on g's scale.

Closed forms (docs/math/santurkar_section_4.md): with P the projection onto the
complement of span(1, hhat), ||grad_h Lhat||^2 = (gamma^2/sigma^2) ||P g||^2 exactly, so
Theorem 4.1 as printed (1/sqrt(m) in place of 1/m) fails whenever <g, hhat> != 0: with
probability 1 (predicted rate 0). Theorem 4.4 as printed has no closed-form rate
(predicted None). The corrected forms are identities (bnfast audit proves them): every
instance sits on the boundary, which floats cannot decide, so they are not swept.
"""

from fractions import Fraction

import numpy as np

from .._validate import integer, positive_finite
from ..claims import check_theorem_4_1, check_theorem_4_4
from ..claims._float import FloatArithmetic
from .certify import SCALES
from .sweep import VERDICT_NAMES, Option, Statement, Sweep, common_settings, run_sweep

__all__ = ["CHUNK_SIZE", "SWEEPS", "theorem_4_1", "theorem_4_4"]

#: Instances per chunk (NumPy arrays of chunk x samples).
CHUNK_SIZE = 1 << 16
KEEP_PER_CHUNK = 4
#: A float verdict is trusted when |rhs - lhs| exceeds this many units of rounding of
#: the largest term (float64 sums of m <= 1024 products).
MARGIN_ULPS = 1024 * np.finfo(np.float64).eps
#: The claims' power-of-two scaling (split_scale), for lam.
_SCALING = FloatArithmetic()


def _terms(h, g, lam):
    """Per instance (rows), for gamma = 1 (k = 1/sigma^2): the left side lam^2 ||grad_h
    Lhat||^2 and the statistics of the right sides. lam enters as lam = lam_n * 2**e
    (lam_n in [1/2, 1), exact; the claims' split_scale): every value here is computed
    with lam_n and carries lam's power of two as an exponent, so no lam overflows."""
    m = h.shape[1]
    hc = h - h.mean(axis=1, keepdims=True)
    sigma2 = np.mean(hc * hc, axis=1)
    hhat = hc / np.sqrt(sigma2)[:, None]
    one_g = g.sum(axis=1)
    g_hhat = np.einsum("ij,ij->i", g, hhat)
    gg = np.einsum("ij,ij->i", g, g)
    projected = g - (one_g / m)[:, None] - hhat * (g_hhat / m)[:, None]
    lam_n, e = _SCALING.split_scale(lam)
    lhs = (lam_n ** 2 * np.einsum("ij,ij->i", projected, projected) / sigma2, 2 * e)
    return m, sigma2, one_g, g_hhat, gg, lhs


def _right_side(statement, m, sigma2, one_g, g_hhat, gg, lam):
    """The printed right side as terms (values per instance, exponent of 2), lam as in
    _terms."""
    k = 1.0 / sigma2
    if statement == "theorem-4-1":   # 1/sqrt(m) where the proof has 1/m
        return [(k * gg, 0), (-k * one_g ** 2 / m, 0), (-k * g_hhat ** 2 / np.sqrt(m), 0)]
    lam_n, e = _SCALING.split_scale(lam)
    # g_j^2 = (lam^2 ||g||^2)^2, m mean(g)^2, lam^2 <g,hhat>^2
    return [(k * lam_n ** 4 * gg ** 2, 4 * e), (-k * one_g ** 2 / m, 0),
            (-k * lam_n ** 2 * g_hhat ** 2, 2 * e)]


def _in_unit(terms, top):
    """Each term's values times 2**(exponent - top); a term more than ~1074 binades
    below the unit underflows to 0, far below the margin (MARGIN_ULPS of the largest
    term), and when every term does the instance is undecided (decided exactly)."""
    with np.errstate(under="ignore"):
        return [np.ldexp(v, e - top) for v, e in terms]


def _decide_chunk(lhs, rhs_terms):
    """(holds, fails, undecided) masks: the sides compared in the unit of the largest
    exponent (lam's scale), the margin against the largest term."""
    top = max(e for _, e in [lhs, *rhs_terms])
    left, = _in_unit([lhs], top)
    terms = _in_unit(rhs_terms, top)
    gap = sum(terms) - left
    scale = np.max(np.abs(np.stack(terms)), axis=0)
    margin = MARGIN_ULPS * np.maximum(scale, left)
    undecided = np.abs(gap) <= margin
    return ~undecided & (gap > 0), ~undecided & (gap < 0), undecided


def check_chunk(task):
    """One chunk of a theorem sweep (a task of map_tasks): counts and kept instances."""
    rng = np.random.default_rng(task["seed"])
    count, m, lam = task["count"], task["samples"], task["lam"]
    h = rng.standard_normal((count, m))
    g = rng.standard_normal((count, m))
    m, sigma2, one_g, g_hhat, gg, lhs = _terms(h, g, lam)
    rhs = _right_side(task["statement"], m, sigma2, one_g, g_hhat, gg, lam)
    holds, fails, undecided = _decide_chunk(lhs, rhs)
    predicted = 0.0 if task["statement"] == "theorem-4-1" else None

    def keep(mask, limit):
        return [{"index": int(i), "h": h[i].tolist(), "g": g[i].tolist(),
                 "statement": task["statement"], "lam": lam}
                for i in np.flatnonzero(mask)[:limit]]

    counts = {"no_premise": 0, "holds": int(holds.sum()), "fails": int(fails.sum()),
              "undecided": int(undecided.sum()), "degenerate": 0}
    return dict(counts, chunk=task["chunk"], count=count,
                predicted_sum=0.0 if predicted is None else predicted * count,
                predicted_count=0 if predicted is None else count,
                kept={"fails": keep(fails, KEEP_PER_CHUNK),
                      "undecided": keep(undecided, 4096)})


def _exact(instance, h, g):
    if instance["statement"] == "theorem-4-1":
        return check_theorem_4_1(h, g, form="printed", exact=True)
    return check_theorem_4_4(h, g, lam=instance["lam"], form="printed", exact=True)


def _decide(instance):
    report = _exact(instance, np.array(instance["h"]), np.array(instance["g"]))
    return "holds" if report.holds else "fails"


def _integers(a, k):
    return np.round(a / np.max(np.abs(a)) * k)


#: The denominators tried for Theorem 4.4's g, smallest first: powers of two, so that g
#: rounded to a multiple of 1/q is exact in float64 (the certificate's floats are the
#: rationals themselves, and the exact checker reads exactly those).
DENOMINATORS = tuple(2 ** j for j in range(21))


def _certify(instance):
    """A certificate of a float counterexample: the first small instance near it that
    fails in exact arithmetic, else the float instance itself; None when even that
    does not fail (a bug of the margins).

    Theorem 4.1's verdict does not depend on the scales of h and g: both are normalised
    to a largest entry of 1, multiplied by k (SCALES) and rounded. Theorem 4.4's
    depends on g's scale (g_j^2 is a fourth power of g) but not on h's: h is shrunk to
    integers the same way, with g as it is, then g is rounded to multiples of 1/q for
    q = 1, 2, 4, ... (its scale kept), with that integer h. Either way the instance is
    "shrunk" when the result is small integers (h) and short dyadic fractions (g)."""
    h, g = np.array(instance["h"]), np.array(instance["g"])

    def failing(hk, gk):
        # The exact report when (hk, gk) fails; None when it holds or is degenerate
        # (rounding made h constant: BN undefined).
        if np.ptp(hk) == 0:
            return None
        report = _exact(instance, hk, gk)
        return report if report.holds is False else None

    if instance["statement"] == "theorem-4-1":
        for k in SCALES:
            hk, gk = _integers(h, k), _integers(g, k)
            report = failing(hk, gk)
            if report is not None:
                return _certificate(hk, gk, 1, report)
    else:
        hk = next((c for c in (_integers(h, k) for k in SCALES) if failing(c, g)), None)
        if hk is not None:
            for q in DENOMINATORS:
                gk = np.round(g * q) / q
                report = failing(hk, gk)
                if report is not None:
                    return _certificate(hk, gk, q, report)
    report = failing(h, g)
    return None if report is None else _certificate(h, g, None, report)


def _certificate(h, g, q, report):
    """The certificate dict: h, g (ints, or floats: g's are multiples of 1/q), the exact
    sides as strings, "denominator" q (None: the float instance), "size" (the largest
    integer written: an entry of h, a numerator of g, q; for the float instance its
    largest absolute entry) and "shrunk"."""
    shrunk = q is not None
    ints = lambda a: a.astype(np.int64).tolist()                        # noqa: E731
    numerators = g * q if shrunk else g
    size = max(np.max(np.abs(h)), np.max(np.abs(numerators)), q if shrunk else 0)
    return {"h": ints(h) if shrunk else h.tolist(),
            "g": ints(g) if q == 1 else g.tolist(),
            "lhs": str(report.lhs), "rhs": str(report.rhs), "denominator": q,
            "size": float(size), "shrunk": shrunk}


def _sweep(name, instances, samples, lam, seed, executor, progress, out, resume,
           counterexamples, overwrite):
    settings, wanted = common_settings(name, instances, seed, counterexamples, CHUNK_SIZE)
    samples = integer(samples, "samples", 2, 1024)
    settings.update(samples=samples, lam=positive_finite(lam, "lam"))
    statement = Statement(name, check_chunk, _decide, _certify)
    return run_sweep(statement, settings, wanted, executor, progress, out, resume,
                     overwrite)


def theorem_4_1(instances, samples=4, seed=0, executor=None, progress=True, out=None,
                resume=False, counterexamples=5, overwrite=False):
    """Checks Theorem 4.1 as printed on ``instances`` random neurons: h, g ~
    N(0, I_samples) (samples >= 2), gamma = 1, beta = 0, eps = 0. Returns a SearchResult
    (every instance is a premise; predicted rate 0). Other arguments as in lemma_4_5."""
    return _sweep("theorem-4-1", instances, samples, 1.0, seed, executor, progress, out,
                  resume, counterexamples, overwrite)


def theorem_4_4(instances, samples=4, lam=1.0, seed=0, executor=None, progress=True,
                out=None, resume=False, counterexamples=5, overwrite=False):
    """Checks Theorem 4.4 as printed, with ||X|| <= lam (> 0), on ``instances`` random
    neurons: h, g ~ N(0, I_samples), gamma = 1, beta = 0, eps = 0. Returns a
    SearchResult (no closed-form rate: predicted None)."""
    return _sweep("theorem-4-4", instances, samples, lam, seed, executor, progress, out,
                  resume, counterexamples, overwrite)


# ---- as `bnfast search theorem-4-1|theorem-4-4` offers them ---------------------------

def _law(settings):
    lam = f", lam {settings['lam']:g}" if settings["statement"] == "theorem-4-4" else ""
    return (f"batch of {settings['samples']}{lam}, seed {settings['seed']}; h, g ~ N(0, I), "
            "gamma 1, beta 0, eps 0")


def _example(certificate):
    c = certificate
    if c.get("denominator", 1) not in (None, 1):     # g on the grid 1/q: as fractions
        g = "[" + ", ".join(str(Fraction(x)) for x in c["g"]) + "]"
    else:
        g = str(c["g"])
    return [f"  h = {c['h']}  g = {g}",
            f"      left side {c['lhs']}  >  {c['rhs']} = right side"]


_AS_PRINTED = dict(samples="the batch size, >= 2, default 4", law=_law,
                   premise="instances (no premise):", holds="the bound holds:",
                   example=_example)

SWEEPS = (
    Sweep(name="theorem-4-1", title="Theorem 4.1 of Santurkar et al. (2018), as printed",
          run=theorem_4_1, closed="it fails whenever <g, hhat> != 0", **_AS_PRINTED),
    Sweep(name="theorem-4-4", title="Theorem 4.4 of Santurkar et al. (2018), as printed",
          run=theorem_4_4, options=(Option("lam", "L", float,
                                           "the bound on ||X|| (default 1)"),),
          **_AS_PRINTED),
)


if VERDICT_NAMES[:3] != ("no_premise", "holds", "fails"):
    raise ImportError("bnfast.search.theorems does not match the sweep driver")
