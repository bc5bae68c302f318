"""The curvature of the loss a network is trained on: eigenvalues, trace, spectral density
and blocks of the Hessian of ``net.loss`` with respect to ``net.params``, from exact
Hessian-vector products (``Network.hvp``'s, forward-over-reverse, taken from a core
HessianAt: after the first product at a point only the tangents are recomputed, the same
bits). The Lanczos process runs in C++ (bnfast._core.Lanczos), products included.
docs/math/curvature.md has the algorithms and the error statements.

    top_eigenvalues(net, X, y, k=1, mode="train", which="largest", tol=1e-8,
                    max_iter=None, seed=0) -> Eigenpairs(eigenvalues, eigenvectors,
                    residuals, iterations, converged)
        Lanczos with full reorthogonalization and locking, run to convergence.
    trace(net, X, y, mode="train", samples=99, seed=0) -> TraceEstimate(estimate, stderr)
        Hutch++ with a 1-sigma standard error.
    density(net, X, y, mode="train", runs=10, steps=60, seed=0) -> SpectralDensity(grid,
                    density, moments)     stochastic Lanczos quadrature, Gaussian-broadened.
    hessian(net, X, y, mode="train") -> (n, n) float64    n products with basis vectors
    gradient_overlap(net, X, y, k, mode="train") -> float in [0, 1]
        the share of the gradient's squared norm in the top-k eigenspace.
    lanczos(matvec, n, k=1, which="largest", tol=1e-8, max_iter=None, seed=0)
        the eigensolver of top_eigenvalues on any symmetric operator (e.g. another
        library's Hessian-vector product, for comparisons).

mode="train": the loss with batch statistics over the rows of X, the loss gradient
descent follows (the statistics are functions of the parameters, so they are
differentiated too); mode="eval": BN with the population statistics
(net.running_mean/running_var), the rows independent; this is the Hessian that tools
putting the model in eval mode (PyHessian) compute.

blocks="layer" on every function: per-layer diagonal blocks of the Hessian (the product
restricted to one layer's parameters: v is zero outside the layer's slice of ``params``
and only that slice of H v is kept); the result is a dict {layer index: result} over the
layers with parameters, the index that of ``net.param_slices``.

Every function is deterministic for a given seed (and thread count, as the hvp is);
Ctrl-C raises KeyboardInterrupt within one Hessian-vector product or 0.1 s (the products
and Lanczos steps run with the GIL released, returning to Python every 0.1 s); a tqdm
progress bar on stderr appears when a run takes over a second (progress=False: none).
Needs scipy (the final Ritz pairs, from LAPACK).
"""

import math
import sys
import warnings
from dataclasses import dataclass, field

import numpy as np

from . import _core
from ._validate import boolean, choice, integer, positive_finite, real_number
from ._validate import seed as seed_value
from .nn.network import MODES, Network

__all__ = ["Eigenpairs", "MAX_DENSE_PARAMS", "SpectralDensity", "TraceEstimate", "density",
           "gradient_overlap", "hessian", "lanczos", "top_eigenvalues", "trace"]

#: The most parameters (of the network, or of one block) ``hessian`` builds a dense
#: matrix for: n Hessian-vector products and 8 n^2 bytes (5000: 200 MB).
MAX_DENSE_PARAMS = 5000

#: Which eigenvalues ``top_eigenvalues`` finds.
WHICH = ("largest", "smallest", "both")

#: The values of ``blocks``: None (the whole Hessian) or "layer".
BLOCKS = ("layer",)

#: Default cap on the Lanczos steps (Hessian-vector products) of all runs of one solve
#: together: max(DEFAULT_MAX_ITER, 3 p) for p wanted eigenpairs.
DEFAULT_MAX_ITER = 1000

# ---- results -------------------------------------------------------------------------

@dataclass(frozen=True)
class Eigenpairs:
    """Eigenvalues and eigenvectors of the Hessian (or of one block).

    eigenvalues : float64 (p,), in descending order. p = k for which="largest" (the k
        largest) and "smallest" (the k smallest: eigenvalues[-1] is the smallest);
        "both": the k largest and the k smallest, min(2k, n) values.
    eigenvectors : float64 (n, p), orthonormal columns (Ritz vectors), column i for
        eigenvalues[i].
    residuals : float64 (p,), ||H v_i - lambda_i v_i||, each from one more
        Hessian-vector product (not the Lanczos estimate). Some exact eigenvalue lies
        within residuals[i] of eigenvalues[i] (H symmetric).
    iterations : Lanczos steps taken by all runs (one Hessian-vector product each).
    converged : whether every run's Lanczos residual estimates fell below tol times the
        spectral-norm estimate (or the Krylov space became the whole space), and a last
        run in the complement of the pairs found none better.
    """

    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    residuals: np.ndarray
    iterations: int
    converged: bool
    which: str = "largest"
    mode: str = "train"

    def to_dict(self, vectors=False):
        """JSON-ready fields (eigenvectors only when ``vectors``)."""
        out = {"eigenvalues": self.eigenvalues.tolist(), "residuals": self.residuals.tolist(),
               "iterations": self.iterations, "converged": self.converged,
               "which": self.which, "mode": self.mode}
        if vectors:
            out["eigenvectors"] = self.eigenvectors.T.tolist()
        return out


@dataclass(frozen=True)
class TraceEstimate:
    """The trace of the Hessian (or of one block) by Hutch++.

    estimate : the estimate of tr(H).
    stderr : its 1-sigma standard error (0 when exact); tr(H) lies in
        estimate +- 1.645 stderr (the 90% interval) in at least 90% of seeds, as
        measured (docs/math/curvature.md section 3).
    samples : Hessian-vector products spent.
    exact : True when n <= samples and the trace was summed from the n basis vectors.
    """

    estimate: float
    stderr: float
    samples: int
    exact: bool
    mode: str = "train"

    def interval(self, z=1.645):
        """(low, high) = estimate -+ z stderr (z = 1.645: the 90% interval)."""
        return (self.estimate - z * self.stderr, self.estimate + z * self.stderr)

    def to_dict(self):
        return {"estimate": self.estimate, "stderr": self.stderr, "samples": self.samples,
                "exact": self.exact, "mode": self.mode}


@dataclass(frozen=True)
class SpectralDensity:
    """The eigenvalue density of the Hessian (or of one block) by stochastic Lanczos
    quadrature.

    grid : float64 (points,), eigenvalue axis; from the smallest node - 5 sigma to the
        largest + 5 sigma.
    density : float64 (points,), phi(t) = (1/runs) sum_r sum_j w_rj N(t; theta_rj,
        sigma^2); integrates to 1 (to ~1e-6: the Gaussian tails beyond 5 sigma).
    moments : float64 (3,), the quadrature's moments (1, mean, second moment) of the
        spectral measure, estimates of (1, tr(H)/n, ||H||_F^2/n); for one run
        (v^T H v, ||H v||^2) for the run's unit vector v exactly (the quadrature is exact
        for polynomials of degree < 2 steps). The broadened density has the same mean and
        a second moment larger by sigma^2.
    moments_stderr : float64 (3,), their standard errors over the runs (NaN for one run).
    nodes, weights : float64 (runs, steps): each run's Ritz values and the squared first
        components of its Ritz vectors (weights sum to 1 per run); a run whose Krylov
        space closed early is padded with NaN nodes of weight 0.
    sigma : the Gaussian broadening (standard deviation).
    """

    grid: np.ndarray
    density: np.ndarray
    moments: np.ndarray
    moments_stderr: np.ndarray
    nodes: np.ndarray
    weights: np.ndarray
    sigma: float
    mode: str = "train"
    n: int = field(default=0)

    def to_dict(self, nodes=False):
        out = {"grid": self.grid.tolist(), "density": self.density.tolist(),
               "moments": self.moments.tolist(),
               "moments_stderr": [None if math.isnan(s) else s
                                  for s in self.moments_stderr.tolist()],
               "sigma": self.sigma, "runs": int(self.nodes.shape[0]),
               "steps": int(self.nodes.shape[1]), "mode": self.mode}
        if nodes:
            out["nodes"] = [[None if math.isnan(t) else t for t in row]
                            for row in self.nodes.tolist()]
            out["weights"] = self.weights.tolist()
        return out


# ---- the operator ----------------------------------------------------------------------

class _Hessian:
    """v -> H v for the loss of ``net`` on (X, y) in ``mode``, at the parameters and
    running statistics ``net`` has now (``point``, a core HessianAt shared by the blocks:
    it holds copies, so changing ``net`` later changes nothing; products after its first
    recompute only the tangents), optionally restricted to the parameters ``part`` (a
    slice): H[part, part] v."""

    def __init__(self, net, X, y, mode, point, part=None):
        self.X, self.y = X, y
        self.core = net._core
        self.params = net.params
        self.running = None if mode == "train" else np.array(net._running)
        self.point = point
        self.total = net.num_params
        self.part = part
        self.n = self.total if part is None else part.stop - part.start
        # what a core Lanczos process multiplies with directly (blocks go through here)
        self.native = point if part is None else None

    def __call__(self, v):
        if self.part is None:
            return self.point.apply(np.ascontiguousarray(v, dtype=np.float64))
        full = np.zeros(self.total)
        full[self.part] = v
        return self.point.apply(full)[self.part]

    def gradient(self):
        g = self.core.gradient(self.params, self.X, self.y, self.running)[1]
        return g if self.part is None else g[self.part]


def _operators(function, net, X, y, mode, blocks):
    """The checked arguments as {key: operator}: key None for the whole Hessian, else the
    index of each layer with parameters."""
    if not isinstance(net, Network):
        raise TypeError(f"{function}: net must be a bnfast.Network, got {type(net).__name__}")
    mode = choice(mode, "mode", MODES)
    if blocks is not None:
        choice(blocks, "blocks", BLOCKS)
    if net.num_params == 0:
        raise ValueError(f"{function}: the network has no parameters")
    X, y = net.learning_set(X, y)
    # The core checks the shapes as it makes the point, and the labels and the statistics
    # in its first product (the first step of any solver)
    point = _core.HessianAt(net._core, net.params, X, y,
                            None if mode == "train" else np.array(net._running))
    if blocks is None:
        return {None: _Hessian(net, X, y, mode, point)}
    return {i: _Hessian(net, X, y, mode, point, part)
            for i, part in enumerate(net.param_slices) if part.stop > part.start}


def _unwrap(results, blocks):
    return results[None] if blocks is None else results


class _NoBar:
    """What a progress bar is asked for when there is none (progress=False): nothing,
    without building a disabled tqdm each call (a tenth of a millisecond)."""

    def update(self, n=1):
        pass

    def set_postfix(self, **kwargs):
        pass

    def close(self):
        pass


def _progress_bar(total, progress, desc):
    if not progress:
        return _NoBar()
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, unit="hvp", file=sys.stderr, delay=1.0,
                dynamic_ncols=True, leave=False)


def _layer_desc(function, key):
    return function if key is None else f"{function} (layer {key})"


def _rng(seed, key):
    """The generator of the whole Hessian (key None) or of one layer's block."""
    return np.random.default_rng(seed if key is None else [seed, key + 1])


# ---- Lanczos with full reorthogonalization ---------------------------------------------

def _scipy_linalg():
    """scipy.linalg (LAPACK's tridiagonal eigensolvers), or an ImportError that says how
    to get it."""
    try:
        from scipy import linalg
    except ImportError as exc:  # pragma: no cover - scipy is in the test and dev extras
        raise ImportError("bnfast.curvature needs scipy (the tridiagonal eigensolver): "
                          "pip install scipy") from exc
    return linalg


def _tridiagonal_pairs(d, e, lo, hi, eigenvectors):
    """The eigenvalues lo..hi (ascending positions) of the symmetric tridiagonal (d, e),
    and with ``eigenvectors`` their eigenvectors (len(d), hi - lo + 1): LAPACK's stebz
    (bisection) and stein (inverse iteration), the calls and arguments of
    scipy.linalg.eigh_tridiagonal(d, e, select="i", select_range=(lo, hi)) (the same
    bits), without its per-call validation (a tenth of a millisecond, a few times per
    Lanczos run: d and e come from the core's process, finite and float64)."""
    if len(d) == 1:
        return d.copy(), (np.ones((1, 1)) if eigenvectors else None)
    lapack = _scipy_linalg().lapack
    m, w, iblock, isplit, info = lapack.dstebz(d, e, 2, 0.0, 1.0, lo + 1, hi + 1, 0.0,
                                               "B" if eigenvectors else "E")
    if info != 0:
        raise np.linalg.LinAlgError(f"stebz (the tridiagonal eigenvalues) failed: {info}")
    w = w[:m]
    if not eigenvectors:
        return w, None
    v, info = lapack.dstein(d, e, w, iblock, isplit)
    if info != 0:
        raise np.linalg.LinAlgError(f"stein: {info} eigenvectors failed to converge")
    order = np.argsort(w)  # block order to ascending, as eigh_tridiagonal does
    return w[order], v[:, order]


#: The core process runs this long between progress updates (and Ctrl-C checks, which
#: otherwise come with each product of a Python operator).
_SLICE_SECONDS = 0.1


def _advance(lz, matvec, k, which, tol, budget, bar, rng):
    """Runs the core Lanczos process ``lz`` (bnfast._core.Lanczos: the steps, products
    and convergence test in C++; linalg/lanczos.hpp) until it converges (tol < 0: no
    test), has ``budget`` steps or is exhausted. When the Krylov space closes, a fresh
    random direction from ``rng`` continues it (T block-diagonal), or without rng the run
    ends. The products are the HessianAt behind a network's operator (``native``: no
    Python per product) or ``matvec`` itself. Returns the status that ended it."""
    op = getattr(matvec, "native", None) or matvec
    while True:
        before = lz.size
        status = lz.advance(op, k, which, tol, budget, _SLICE_SECONDS)
        bar.update(lz.size - before)
        if tol >= 0 and status != "closed":
            bar.set_postfix(residual=f"{lz.residual:.1e}", refresh=False)
        if status == "running":
            continue
        if status == "closed" and rng is not None:
            while not lz.restart(rng.standard_normal(lz.n)):
                pass
            continue
        return status


def _ritz(lz, indices, eigenvectors=True):
    """Ritz values (ascending) of the process's T at the sorted ``indices`` (positions
    in the ascending order), and the eigenvectors of T (size, len(indices)), by LAPACK."""
    d, e = lz.alpha, lz.beta[:lz.size - 1]
    lo, hi = indices[0], indices[-1]
    theta, S = _tridiagonal_pairs(d, e, lo, hi, eigenvectors)
    keep = np.asarray(indices) - lo
    return theta[keep], (None if S is None else S[:, keep])


def _wanted(which, k, size):
    """Positions (ascending order) of the wanted Ritz values among ``size``."""
    if which == "largest":
        return list(range(size - k, size))
    if which == "smallest":
        return list(range(k))
    if 2 * k >= size:
        return list(range(size))
    return list(range(k)) + list(range(size - k, size))


def _wanted_count(which, k, n):
    """How many eigenpairs are wanted in an n-dimensional space."""
    return min(2 * k if which == "both" else k, n)


def _ritz_pairs(lz, which, k):
    """(theta ascending, S, residual estimates, spectral-norm estimate) for the wanted
    Ritz pairs of the process's T (k: how many at each wanted end)."""
    size = lz.size
    idx = _wanted(which, k, size)
    if which == "both" and len(idx) < size:
        low, S_low = _ritz(lz, idx[:k])
        high, S_high = _ritz(lz, idx[k:])
        theta, S = np.concatenate([low, high]), np.hstack([S_low, S_high])
    else:
        theta, S = _ritz(lz, idx)
    extremes = [theta[0], theta[-1]]
    if idx[0] != 0:
        extremes.append(_ritz(lz, [0], eigenvectors=False)[0][0])
    if idx[-1] != size - 1:
        extremes.append(_ritz(lz, [size - 1], eigenvectors=False)[0][0])
    scale = float(np.max(np.abs(extremes)))
    estimates = np.abs(lz.beta[size - 1] * S[-1, :])  # beta 0: closed or exhausted
    return theta, S, estimates, scale


def _run(matvec, n, k, which, tol, budget, rng, bar, locked, scale):
    """One Lanczos process (in the complement of ``locked``) until its wanted Ritz pairs
    have residual estimates <= tol * scale (scale: the largest |Ritz value| seen, in any
    run) or ``budget`` steps. Returns (theta ascending, Ritz vectors (n, p), residual
    estimates, steps, converged, scale)."""
    lz = _core.Lanczos(rng.standard_normal(n), locked)
    p = _wanted_count(which, k, lz.dim)
    k = min(k, lz.dim)
    lz.ritz_scale = scale
    status = _advance(lz, matvec, k, which, tol, budget, bar, rng)
    scale = lz.ritz_scale
    if lz.size < p:                   # the budget ended before p steps
        return np.empty(0), np.empty((n, 0)), np.empty(0), lz.size, False, scale
    theta, S, estimates, run_scale = _ritz_pairs(lz, which, k)
    converged = status in ("converged", "exhausted")
    return theta, lz.ritz_vectors(S), estimates, lz.size, converged, max(scale, run_scale)


def _select(values, which, k):
    """Indices of the wanted values among ``values`` (any order): the k largest, the k
    smallest, or both (all when there are at most 2k)."""
    order = np.argsort(values, kind="stable")
    if which == "largest":
        return order[-k:]
    if which == "smallest":
        return order[:k]
    return order if len(order) <= 2 * k else np.concatenate([order[:k], order[-k:]])


def _solve(matvec, n, k, which, tol, max_iter, rng, bar, residuals=True):
    """The wanted eigenpairs of the symmetric ``matvec`` (n-dimensional), as Eigenpairs
    fields (a dict).

    Lanczos with locking: a first run converges the wanted Ritz pairs; they are locked
    and a fresh run in their orthogonal complement looks for eigenvalues that beat them
    (a second copy of a repeated eigenvalue, or one the first start vector nearly
    missed); the best of both are kept and locked, and runs repeat until one finds
    nothing better by more than tol * ||H||_est. ``max_iter`` caps the steps of all
    runs together."""
    values, vectors = np.empty(0), np.empty((n, 0))
    estimates = np.empty(0)
    steps, scale, converged = 0, 0.0, True
    while vectors.shape[1] < n and steps < max_iter:
        locked = vectors.T if vectors.shape[1] else None
        theta, X, est, used, ok, scale = _run(matvec, n, k, which, tol, max_iter - steps,
                                              rng, bar, locked, scale)
        steps += used
        converged = converged and ok
        if not len(theta):
            break
        pool_values = np.concatenate([values, theta])
        pool_vectors = np.hstack([vectors, X])
        pool_estimates = np.concatenate([estimates, est])
        keep = _select(pool_values, which, k)
        before = np.sort(values)
        values, vectors = pool_values[keep], pool_vectors[:, keep]
        estimates = pool_estimates[keep]
        slack = max(tol, 64 * np.finfo(float).eps) * scale
        if len(before) == len(values) and np.all(np.abs(np.sort(values) - before) <= slack):
            break                     # the fresh run found nothing better: verified
    else:
        # the complement is empty (every eigenvalue found), or the budget was spent
        # before a run could verify the wanted pairs
        converged = converged and vectors.shape[1] == n
    order = np.argsort(-values, kind="stable")
    values, vectors = values[order], np.ascontiguousarray(vectors[:, order])
    if residuals:
        res = np.empty(len(values))
        for i in range(len(values)):
            res[i] = np.linalg.norm(matvec(vectors[:, i]) - values[i] * vectors[:, i])
            bar.update(1)
    else:
        res = estimates[order]
    return {"eigenvalues": values, "eigenvectors": vectors, "residuals": res,
            "iterations": steps, "converged": bool(converged)}


def _check_solver_arguments(k, which, tol, max_iter, n):
    k = integer(k, "k", 1)
    if k > n:
        raise ValueError(f"k must be <= the number of parameters ({n}), got {k}")
    which = choice(which, "which", WHICH)
    tol = real_number(tol, "tol")
    if not (tol >= 0 and math.isfinite(tol)):
        raise ValueError(f"tol must be a finite number >= 0, got {tol}")
    if max_iter is not None:
        max_iter = integer(max_iter, "max_iter", 1)
        p = _wanted_count(which, k, n)
        if max_iter < p:
            raise ValueError(f"max_iter must be >= the number of eigenvalues wanted ({p}), "
                             f"got {max_iter}")
    return k, which, tol, max_iter


def _max_iter(max_iter, which, k, n):
    if max_iter is not None:
        return max_iter
    return max(DEFAULT_MAX_ITER, 3 * _wanted_count(which, k, n))


def _not_converged(function, pairs, tol, key):
    where = "" if key is None else f" (layer {key})"
    warnings.warn(f"{function}{where}: Lanczos stopped at max_iter={pairs['iterations']} "
                  f"before every residual fell below tol={tol:g} times the spectral norm "
                  f"(largest residual {np.max(pairs['residuals']):.3e}); raise max_iter",
                  RuntimeWarning, stacklevel=3)


def lanczos(matvec, n, k=1, which="largest", tol=1e-8, max_iter=None, seed=0,
            progress=False):
    """Eigenpairs of a symmetric operator by the solver of ``top_eigenvalues``.

    matvec : callable v (n,) -> A v (n,), float64; A symmetric.
    n : the dimension. The other arguments as for ``top_eigenvalues``.
    Returns ``Eigenpairs`` (mode "").
    """
    if not callable(matvec):
        raise TypeError(f"matvec must be callable, got {type(matvec).__name__}")
    n = integer(n, "n", 1)
    k, which, tol, max_iter = _check_solver_arguments(k, which, tol, max_iter, n)
    seed = seed_value(seed)
    progress = boolean(progress, "progress")
    bar = _progress_bar(None, progress, "Lanczos")
    try:
        pairs = _solve(matvec, n, k, which, tol, _max_iter(max_iter, which, k, n),
                       np.random.default_rng(seed), bar)
    finally:
        bar.close()
    if not pairs["converged"]:
        _not_converged("lanczos", pairs, tol, None)
    return Eigenpairs(which=which, mode="", **pairs)


def top_eigenvalues(net, X, y, k=1, mode="train", which="largest", tol=1e-8, max_iter=None,
                    seed=0, blocks=None, progress=True):
    """The k largest (and/or smallest) eigenvalues of the Hessian of the loss, with their
    eigenvectors, by Lanczos with full reorthogonalization (docs/math/curvature.md).

    net : bnfast.Network (dense or convolutional), at its current params.
    X, y : as for ``net.loss``: X (m, in_features) or (m, C, *); y targets (m, out) or
        (m,), or class labels (m,) for the cross-entropy losses.
    k : how many eigenvalues (1 <= k <= n, n = net.num_params; with blocks="layer", at
        most each layer's count is taken).
    mode : "train" (batch statistics: the loss being trained) or "eval" (population
        statistics).
    which : "largest", "smallest" or "both" (algebraic order: "smallest" finds the most
        negative eigenvalues).
    tol : a run stops when every wanted Ritz pair has ||H v - theta v|| <= tol *
        ||H||_est (||H||_est the largest |Ritz value| seen); eigenvalues are then
        accurate to tol * ||H|| or better (the error is at most the residual, and about
        residual^2 / gap).
    max_iter : cap on the Lanczos steps (Hessian-vector products) of all runs together;
        default max(1000, 3 p). The basis takes 8 n bytes per step. Not converging
        warns (RuntimeWarning) and returns what was found (``converged`` False).
    seed : the starting vectors (and fresh directions when a Krylov space closes).
    blocks : None, or "layer" for per-layer diagonal blocks: {layer index: Eigenpairs}.
    progress : tqdm bar on stderr (shown after a second).

    Returns ``Eigenpairs``: eigenvalues (p,) descending, eigenvectors (n, p),
    residuals (p,) (true residual norms), iterations, converged.

    Repeated eigenvalues (e.g. the zero eigenvalues of BN's flat directions) are found
    with their multiplicity: converged pairs are locked and a fresh run in their
    orthogonal complement looks for better ones, until a run finds none (about twice
    the products of one run; docs/math/curvature.md section 2).
    """
    ops = _operators("top_eigenvalues", net, X, y, mode, blocks)
    n = net.num_params
    k, which, tol, max_iter = _check_solver_arguments(k, which, tol, max_iter, n)
    seed = seed_value(seed)
    progress = boolean(progress, "progress")
    results = {}
    for key, op in ops.items():
        kk = min(k, op.n)
        iters = _max_iter(max_iter, which, kk, op.n)
        iters = max(iters, _wanted_count(which, kk, op.n))
        bar = _progress_bar(None, progress, _layer_desc("top_eigenvalues", key))
        try:
            pairs = _solve(op, op.n, kk, which, tol, iters, _rng(seed, key), bar)
        finally:
            bar.close()
        if not pairs["converged"]:
            _not_converged("top_eigenvalues", pairs, tol, key)
        results[key] = Eigenpairs(which=which, mode=mode, **pairs)
    return _unwrap(results, blocks)


# ---- trace: Hutch++ ------------------------------------------------------------------

def _products(matvec, vectors, bar):
    """matvec of each column of ``vectors`` (n, s), as columns."""
    out = np.empty_like(vectors)
    for i in range(vectors.shape[1]):
        out[:, i] = matvec(np.ascontiguousarray(vectors[:, i]))
        bar.update(1)
    return out


def _hutchpp(matvec, n, samples, rng, bar):
    """(estimate, stderr, exact) of tr(A) from ``samples`` products (docs/math/curvature.md).

    n <= samples: the exact sum of e_i^T A e_i. Else s = samples // 3 Rademacher sketch
    vectors S: Q = orth(A S); t1 = tr(Q^T A Q) (s products), exact given Q; and
    g = samples - 2 s Rademacher vectors z_i projected, u_i = (I - Q Q^T) z_i: t2 = mean
    of u_i^T A u_i, unbiased for tr(P A P), variance at most 2 ||P A P||_F^2 / g (equal
    for Gaussian vectors). ||P A P||_F^2 is estimated without bias by F, the mean of the
    squared cross terms (u_i^T A u_j)^2, i < j; stderr = sqrt(2 F / g) times
    sqrt((g - 1) / (g - 3)), the standard deviation of Student's t with g - 1 degrees of
    freedom: an allowance for F's own error, checked by the measured coverage.
    """
    if n <= samples:
        e = np.zeros(n)
        total = 0.0
        for i in range(n):
            e[i] = 1.0
            total += matvec(e)[i]
            e[i] = 0.0
            bar.update(1)
        return float(total), 0.0, True
    s = samples // 3
    g = samples - 2 * s
    sketch = _products(matvec, _signs(rng, (n, s)), bar)
    Q, _ = np.linalg.qr(sketch)
    t1 = float(np.sum(Q * _products(matvec, Q, bar)))
    Z = _signs(rng, (n, g))
    U = Z - Q @ (Q.T @ Z)
    M = U.T @ _products(matvec, U, bar)
    M = 0.5 * (M + M.T)
    t2 = float(np.mean(np.diag(M)))
    frobenius2 = float(np.mean(M[np.triu_indices(g, 1)] ** 2))
    stderr = math.sqrt(2.0 * frobenius2 / g * (g - 1) / (g - 3))
    return t1 + t2, stderr, False


def _signs(rng, shape):
    """Rademacher entries: +1 or -1 with probability 1/2 each."""
    return np.where(rng.random(shape) < 0.5, -1.0, 1.0)


def trace(net, X, y, mode="train", samples=99, seed=0, blocks=None, progress=True):
    """The trace of the Hessian of the loss by Hutch++ (Meyer, Musco, Musco and Woodruff
    2021), with a standard error (docs/math/curvature.md).

    samples : Hessian-vector products to spend (>= 10): a third sketch the top of the
        spectrum, whose trace is then taken exactly; a third estimate the rest by
        Hutchinson's estimator with Rademacher vectors. When n <= samples the trace is
        summed exactly from the n basis vectors (stderr 0).
    Other arguments as for ``top_eigenvalues``.

    Returns ``TraceEstimate(estimate, stderr, samples, exact)``. stderr is a 1-sigma
    standard error, sqrt(2 F / g) sqrt((g - 1) / (g - 3)): F an unbiased estimate of the
    squared Frobenius norm of the deflated Hessian from the g (g - 1) / 2 cross terms of
    the g Hutchinson vectors, the second factor for F's own error. estimate +- 1.645
    stderr is a 90% interval: it held the exact trace in 92% of 1200 seeds at 99
    products and 95% at 30 (docs/math/curvature.md section 3).
    """
    ops = _operators("trace", net, X, y, mode, blocks)
    samples = integer(samples, "samples", 10)
    seed = seed_value(seed)
    progress = boolean(progress, "progress")
    results = {}
    for key, op in ops.items():
        bar = _progress_bar(min(samples, op.n), progress, _layer_desc("trace", key))
        try:
            estimate, stderr, exact = _hutchpp(op, op.n, samples, _rng(seed, key), bar)
        finally:
            bar.close()
        results[key] = TraceEstimate(estimate, stderr, min(samples, op.n), exact, mode)
    return _unwrap(results, blocks)


# ---- density: stochastic Lanczos quadrature ------------------------------------------

def _slq(matvec, n, runs, steps, rng, bar):
    """Per run: a Gaussian start vector, ``steps`` Lanczos steps (fewer when the Krylov
    space closes), the Ritz values and the squared first components of T's
    eigenvectors. Returns nodes, weights (runs, steps) padded with NaN / 0."""
    eigh = _scipy_linalg().eigh_tridiagonal
    nodes = np.full((runs, steps), np.nan)
    weights = np.zeros((runs, steps))
    for r in range(runs):
        lz = _core.Lanczos(rng.standard_normal(n))
        _advance(lz, matvec, 1, "largest", -1.0, steps, bar, None)
        bar.update(steps - lz.size)
        theta, S = eigh(lz.alpha, lz.beta[:lz.size - 1])
        nodes[r, :len(theta)] = theta
        weights[r, :len(theta)] = S[0] ** 2
    return nodes, weights


def _broaden(nodes, weights, sigma, points):
    finite = nodes[np.isfinite(nodes)]
    grid = np.linspace(finite.min() - 5 * sigma, finite.max() + 5 * sigma, points)
    keep = weights > 0
    t, w = nodes[keep], weights[keep] / nodes.shape[0]
    density = np.zeros(points)
    for start in range(0, t.size, 256):   # bounded memory: points x 256 at a time
        z = (grid[:, None] - t[None, start:start + 256]) / sigma
        density += np.exp(-0.5 * z * z) @ w[start:start + 256]
    return grid, density / (sigma * math.sqrt(2 * math.pi))


def _default_sigma(nodes):
    finite = nodes[np.isfinite(nodes)]
    span = float(finite.max() - finite.min())
    if span > 0:
        return span / 100
    size = float(np.max(np.abs(finite)))
    return size / 100 if size > 0 else 1.0


def density(net, X, y, mode="train", runs=10, steps=60, seed=0, sigma=None, points=1001,
            blocks=None, progress=True):
    """The spectral density of the Hessian of the loss by stochastic Lanczos quadrature
    (Lin, Saad and Yang 2016; Ghorbani, Krishnan and Xiao 2019), Gaussian-broadened
    (docs/math/curvature.md).

    runs : independent Gaussian start vectors (>= 1).
    steps : Lanczos steps per run (>= 1; at most n are taken): runs * steps
        Hessian-vector products.
    sigma : the broadening (standard deviation), > 0; default 1% of the spread of the
        Ritz values.
    points : grid points (>= 2).
    Other arguments as for ``top_eigenvalues``.

    Returns ``SpectralDensity(grid, density, moments, moments_stderr, nodes, weights,
    sigma)``: the density integrates to 1 on the grid; moments (1, m1, m2) estimate
    (1, tr(H)/n, ||H||_F^2/n).
    """
    ops = _operators("density", net, X, y, mode, blocks)
    runs = integer(runs, "runs", 1)
    steps = integer(steps, "steps", 1)
    seed = seed_value(seed)
    if sigma is not None:
        sigma = positive_finite(sigma, "sigma")
    points = integer(points, "points", 2)
    progress = boolean(progress, "progress")
    results = {}
    for key, op in ops.items():
        run_steps = min(steps, op.n)
        bar = _progress_bar(runs * run_steps, progress, _layer_desc("density", key))
        try:
            nodes, weights = _slq(op, op.n, runs, run_steps, _rng(seed, key), bar)
        finally:
            bar.close()
        width = _default_sigma(nodes) if sigma is None else sigma
        grid, values = _broaden(nodes, weights, width, points)
        t = np.where(weights > 0, nodes, 0.0)
        per_run = np.stack([weights.sum(axis=1), (weights * t).sum(axis=1),
                            (weights * t * t).sum(axis=1)], axis=1)
        moments = per_run.mean(axis=0)
        spread = (per_run.std(axis=0, ddof=1) / math.sqrt(runs) if runs > 1
                  else np.full(3, np.nan))
        results[key] = SpectralDensity(grid, values, moments, spread, nodes, weights, width,
                                       mode, op.n)
    return _unwrap(results, blocks)


# ---- the dense Hessian, and the gradient's share ---------------------------------------

def hessian(net, X, y, mode="train", blocks=None, progress=True):
    """The Hessian of the loss as a dense float64 (n, n) matrix: column i is H e_i (n
    exact Hessian-vector products), symmetrized, (A + A^T) / 2 (the asymmetry before is
    rounding). For networks (or, with blocks="layer", layers) of at most
    MAX_DENSE_PARAMS = 5000 parameters; larger ones raise ValueError (use
    top_eigenvalues, trace, density or blocks="layer").

    Arguments as for ``top_eigenvalues``; blocks="layer": {layer index: (n_l, n_l)}.
    """
    ops = _operators("hessian", net, X, y, mode, blocks)
    progress = boolean(progress, "progress")
    for key, op in ops.items():
        if op.n > MAX_DENSE_PARAMS:
            what = "the network has" if key is None else f"layer {key} has"
            raise ValueError(
                f"hessian: {what} {op.n} parameters; a dense Hessian is built for at most "
                f"{MAX_DENSE_PARAMS} (n Hessian-vector products, 8 n^2 bytes). Use "
                "top_eigenvalues, trace or density"
                + (", or blocks='layer' for the per-layer blocks" if key is None else ""))
    results = {}
    for key, op in ops.items():
        bar = _progress_bar(op.n, progress, _layer_desc("hessian", key))
        try:
            H = _products(op, np.eye(op.n), bar)
        finally:
            bar.close()
        results[key] = 0.5 * (H + H.T)
    return _unwrap(results, blocks)


def gradient_overlap(net, X, y, k, mode="train", tol=1e-8, max_iter=None, seed=0,
                     blocks=None, progress=True):
    """The share of the gradient's squared norm in the span of the Hessian's top-k
    eigenvectors (largest eigenvalues): ||V_k^T g||^2 / ||g||^2 with V_k (n, k) from
    ``top_eigenvalues`` (Gur-Ari, Roberts and Dyer 2018), a float in [0, 1] (rounding
    clipped); 1 for k = n; NaN when the gradient is zero. g and H in ``mode``.

    Arguments as for ``top_eigenvalues``; blocks="layer": {layer index: share}, each
    layer's gradient in its own block's top-k eigenspace.
    """
    ops = _operators("gradient_overlap", net, X, y, mode, blocks)
    n = net.num_params
    k, _, tol, max_iter = _check_solver_arguments(k, "largest", tol, max_iter, n)
    seed = seed_value(seed)
    progress = boolean(progress, "progress")
    results = {}
    for key, op in ops.items():
        kk = min(k, op.n)
        iters = max(_max_iter(max_iter, "largest", kk, op.n), kk)
        bar = _progress_bar(None, progress, _layer_desc("gradient_overlap", key))
        try:
            pairs = _solve(op, op.n, kk, "largest", tol, iters, _rng(seed, key), bar,
                           residuals=False)
        finally:
            bar.close()
        if not pairs["converged"]:
            _not_converged("gradient_overlap", pairs, tol, key)
        g = op.gradient()
        norm2 = float(g @ g)
        if norm2 == 0.0:
            results[key] = float("nan")
            continue
        c = pairs["eigenvectors"].T @ g
        results[key] = float(min(1.0, max(0.0, float(c @ c) / norm2)))
    return _unwrap(results, blocks)
