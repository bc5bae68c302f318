"""How often Theorems 4.1 and 4.4 of Santurkar et al. (2018), as printed, fail over
random instances (docs/math/search.md, docs/math/santurkar_section_4.md).

An instance is one BN neuron on a batch of m samples: pre-BN activations h ~ N(0, I_m)
and the downstream gradient g ~ N(0, I_m), gamma = 1, beta = 0, eps = 0 (and lam for
Theorem 4.4). The float check is vectorised NumPy over a chunk (the closed forms of
bnfast.claims, on whole arrays); a verdict whose margin is within rounding is decided by
bnfast.claims' exact checker, and every reported counterexample is certified by it.

Closed forms (docs/math/santurkar_section_4.md): with P the projection onto the
complement of span(1, hhat), ||grad_h Lhat||^2 = (gamma^2/sigma^2) ||P g||^2 exactly, so
Theorem 4.1 as printed (1/sqrt(m) in place of 1/m) fails whenever <g, hhat> != 0: with
probability 1 (predicted rate 0). Theorem 4.4 as printed has no closed-form rate
(predicted None). The corrected forms are identities (bnfast audit proves them): every
instance sits on the boundary, which floats cannot decide, so they are not swept.
"""

import numpy as np

from .._validate import integer, positive_finite
from ..claims import check_theorem_4_1, check_theorem_4_4
from .certify import SCALES
from .sweep import VERDICT_NAMES, Option, Statement, Sweep, common_settings, run_sweep

__all__ = ["CHUNK_SIZE", "SWEEPS", "theorem_4_1", "theorem_4_4"]

#: Instances per chunk (NumPy arrays of chunk x samples).
CHUNK_SIZE = 1 << 16
KEEP_PER_CHUNK = 4
#: A float verdict is trusted when |rhs - lhs| exceeds this many units of rounding of
#: the largest term (float64 sums of m <= 1024 products).
MARGIN_ULPS = 1024 * np.finfo(np.float64).eps


def _terms(h, g, lam):
    """Per instance (rows): lhs = lam^2 ||grad_h Lhat||^2 and the terms of the right
    sides, for gamma = 1 (k = 1/sigma^2)."""
    m = h.shape[1]
    hc = h - h.mean(axis=1, keepdims=True)
    sigma2 = np.mean(hc * hc, axis=1)
    hhat = hc / np.sqrt(sigma2)[:, None]
    one_g = g.sum(axis=1)
    g_hhat = np.einsum("ij,ij->i", g, hhat)
    gg = np.einsum("ij,ij->i", g, g)
    projected = g - (one_g / m)[:, None] - hhat * (g_hhat / m)[:, None]
    lhs = lam ** 2 * np.einsum("ij,ij->i", projected, projected) / sigma2
    return m, sigma2, one_g, g_hhat, gg, lhs


def _right_side(statement, m, sigma2, one_g, g_hhat, gg, lam):
    """The printed right side and the magnitude of its largest term, per instance."""
    k = 1.0 / sigma2
    if statement == "theorem-4-1":   # 1/sqrt(m) where the proof has 1/m
        terms = (k * gg, -k * one_g ** 2 / m, -k * g_hhat ** 2 / np.sqrt(m))
    else:                            # g_j^2 = (lam^2 ||g||^2)^2, m mean(g)^2, lam^2 <g,hhat>^2
        terms = (k * lam ** 4 * gg ** 2, -k * one_g ** 2 / m, -k * lam ** 2 * g_hhat ** 2)
    return sum(terms), np.max(np.abs(np.stack(terms)), axis=0)


def check_chunk(task):
    """One chunk of a theorem sweep (a task of map_tasks): counts and kept instances."""
    rng = np.random.default_rng(task["seed"])
    count, m, lam = task["count"], task["samples"], task["lam"]
    h = rng.standard_normal((count, m))
    g = rng.standard_normal((count, m))
    m, sigma2, one_g, g_hhat, gg, lhs = _terms(h, g, lam)
    rhs, scale = _right_side(task["statement"], m, sigma2, one_g, g_hhat, gg, lam)
    gap = rhs - lhs
    margin = MARGIN_ULPS * np.maximum(scale, lhs)
    undecided = np.abs(gap) <= margin
    holds = ~undecided & (gap > 0)
    fails = ~undecided & (gap < 0)
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


def _certify(instance):
    """The smallest integer rescaling of (h, g) that still fails exactly (Theorem 4.1's
    verdict does not depend on the scales of h and g; Theorem 4.4's depends on g's, so
    its integer candidates may not fail), else the float instance itself."""
    h, g = np.array(instance["h"]), np.array(instance["g"])
    for k in SCALES + (None,):
        hk, gk = (h, g) if k is None else (_integers(h, k), _integers(g, k))
        if np.ptp(hk) == 0:
            continue                       # rounding made h constant: BN undefined
        report = _exact(instance, hk, gk)
        if report.holds is False:
            integral = k is not None
            as_list = (lambda a: a.astype(np.int64).tolist()) if integral else \
                (lambda a: a.tolist())
            return {"h": as_list(hk), "g": as_list(gk), "lhs": str(report.lhs),
                    "rhs": str(report.rhs),
                    "size": float(max(np.max(np.abs(hk)), np.max(np.abs(gk)))),
                    "shrunk": integral}
    return None


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
    return [f"  h = {c['h']}  g = {c['g']}",
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
