"""The core Lanczos process (linalg/lanczos.hpp) and its tridiagonal eigensolver
(linalg/tridiagonal.hpp) against their independent twins: bnfast.reference.lanczos and
LAPACK (scipy.linalg.eigh_tridiagonal)."""

import signal
import threading

import numpy as np
import pytest

from bnfast import _core, get_num_threads, set_num_threads
from bnfast.reference.lanczos import Lanczos as ReferenceLanczos

scipy_linalg = pytest.importorskip("scipy.linalg")


def symmetric(n, seed, repeated=0):
    """A random symmetric matrix; ``repeated`` eigenvalues equal to 2 (a closed Krylov
    space sooner than n steps when the rest is small)."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    values = rng.standard_normal(n)
    values[:repeated] = 2.0
    return (Q * values) @ Q.T


@pytest.mark.parametrize("seed", range(40))
def test_tridiagonal_eigen_matches_lapack(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 80))
    d = rng.standard_normal(n) * 10.0 ** rng.uniform(-4, 4)
    e = rng.standard_normal(n - 1) * 10.0 ** rng.uniform(-4, 4)
    if seed % 4 == 0:
        e[rng.random(n - 1) < 0.3] = 0.0     # blocks that split
    if seed % 5 == 0:
        d[:] = 1.0                            # clustered eigenvalues
    values, last = _core.tridiagonal_eigen(d, e)
    want, Z = scipy_linalg.eigh_tridiagonal(d, e)
    scale = max(np.max(np.abs(want)), np.finfo(float).tiny)
    # backward stable: eigenvalues to a few ulps of ||T||
    assert np.max(np.abs(values - want)) <= 64 * np.finfo(float).eps * scale
    # the last components of well-separated eigenvectors: error ~ eps ||T|| / gap
    gaps = np.diff(want)
    gap = np.minimum(np.append(gaps, np.inf), np.insert(gaps, 0, np.inf))
    separated = gap > 1e-6 * scale
    bound = 64 * np.finfo(float).eps * scale / gap[separated]
    assert np.all(np.abs(last[separated] ** 2 - Z[-1, separated] ** 2) <= bound + 1e-15)
    # either way a unit vector's squared components sum to 1 over the whole spectrum
    assert abs(np.sum(last ** 2) - 1.0) < 1e-12


def test_tridiagonal_eigen_edges():
    assert [a.tolist() for a in _core.tridiagonal_eigen([3.0], [])] == [[3.0], [1.0]]
    values, _ = _core.tridiagonal_eigen([np.nan, 1.0], [1.0])
    assert np.all(np.isnan(values))
    with pytest.raises(ValueError, match="off must have 1 values"):
        _core.tridiagonal_eigen([1.0, 2.0], [1.0, 2.0])


def run_both(A, start, steps, locked=None, restart_seed=None):
    """The core and the reference process side by side for ``steps`` products (fewer
    when the space closes and restart_seed is None)."""
    core = _core.Lanczos(start, locked)
    ref = ReferenceLanczos(lambda v: A @ v, start, locked)
    rng_c = np.random.default_rng(restart_seed)
    rng_r = np.random.default_rng(restart_seed)
    while core.size < steps:
        status = core.advance(lambda v: A @ v, 1, "largest", -1.0, steps, 10.0)
        if status == "closed" and restart_seed is not None:
            while not core.restart(rng_c.standard_normal(core.n)):
                pass
            continue
        break
    while ref.size < steps and not ref.exhausted:
        ref.step()
        if ref.closed:
            if restart_seed is None:
                break
            while not ref.restart(rng_r.standard_normal(ref.n)):
                pass
    return core, ref


def test_steps_match_the_reference(threads):
    A = symmetric(60, 0)
    start = np.random.default_rng(1).standard_normal(60)
    core, ref = run_both(A, start, 25)
    assert core.size == ref.size == 25
    scale = np.max(np.abs(np.linalg.eigvalsh(A)))
    # each step's rounding is ~eps ||A||; 25 steps of full reorthogonalization keep it so
    assert np.max(np.abs(core.alpha - ref.alpha)) < 1e-12 * scale
    assert np.max(np.abs(core.beta - ref.beta)) < 1e-12 * scale
    Q = core.basis
    assert np.max(np.abs(Q @ Q.T - np.eye(25))) < 1e-14
    T = np.diag(core.alpha) + np.diag(core.beta[:-1], 1) + np.diag(core.beta[:-1], -1)
    assert np.max(np.abs(Q @ A @ Q.T - T)) < 1e-12 * scale


def test_threads_change_no_bit():
    # 2000 x rows values per pass: split across threads from the first steps
    A = symmetric(2000, 2)
    start = np.random.default_rng(3).standard_normal(2000)
    runs, old = [], get_num_threads()
    for threads in (1, 2, 3):
        set_num_threads(threads)
        try:
            runs.append(run_both(A, start, 30)[0])
        finally:
            set_num_threads(old)
    for other in runs[1:]:
        assert np.array_equal(other.alpha, runs[0].alpha)
        assert np.array_equal(other.basis, runs[0].basis)


def test_a_closed_space_restarts_as_the_reference_does():
    """A = 2 I on a 6-dimensional subspace plus small rest: from a start inside the
    subspace, the space closes after one step."""
    n = 20
    A = symmetric(n, 4, repeated=6)
    w, V = np.linalg.eigh(A)
    inside = V[:, np.isclose(w, 2.0)]
    start = inside @ np.arange(1.0, 1.0 + inside.shape[1])
    core = _core.Lanczos(start)
    assert core.advance(lambda v: A @ v, 1, "largest", -1.0, n, 10.0) == "closed"
    assert core.size == 1 and core.beta[0] == 0.0 and abs(core.alpha[0] - 2.0) < 1e-13
    assert not core.restart(start)                  # nothing left of it
    core, ref = run_both(A, start, n, restart_seed=5)
    assert core.size == ref.size == n and core.exhausted
    assert np.max(np.abs(core.alpha - ref.alpha)) < 1e-12
    assert np.sum(core.beta == 0.0) >= 2            # closed, and exhausted at the end


def test_locked_rows_are_kept_out():
    n = 40
    A = symmetric(n, 6)
    w, V = np.linalg.eigh(A)
    locked = V[:, -3:].T.copy()                     # the top three eigenvectors
    start = np.random.default_rng(7).standard_normal(n)
    core, ref = run_both(A, start, n - 3, locked=locked)
    assert core.exhausted and core.size == core.dim == n - 3
    assert np.max(np.abs(core.basis @ locked.T)) < 1e-14
    ritz = np.linalg.eigvalsh(np.diag(core.alpha) + np.diag(core.beta[:-1], 1)
                              + np.diag(core.beta[:-1], -1))
    assert np.max(np.abs(ritz - w[:-3])) < 1e-12 * np.max(np.abs(w))
    assert np.max(np.abs(core.alpha - ref.alpha)) < 1e-12 * np.max(np.abs(w))


def test_convergence_test_stops_at_the_tolerance():
    A = symmetric(200, 8)
    top = np.linalg.eigvalsh(A)[-1]
    core = _core.Lanczos(np.random.default_rng(9).standard_normal(200))
    status = core.advance(lambda v: A @ v, 1, "largest", 1e-10, 200, 10.0)
    assert status == "converged" and core.size < 200
    assert core.residual <= 1e-10
    T = np.diag(core.alpha) + np.diag(core.beta[:-1], 1) + np.diag(core.beta[:-1], -1)
    assert abs(np.linalg.eigvalsh(T)[-1] - top) < 1e-9 * abs(top)
    assert core.ritz_scale >= abs(top) * (1 - 1e-9)


def test_budget_and_time_slices():
    A = symmetric(100, 10)
    core = _core.Lanczos(np.ones(100))
    assert core.advance(lambda v: A @ v, 1, "both", 1e-14, 7, 10.0) == "budget"
    assert core.size == 7
    assert core.advance(lambda v: A @ v, 1, "both", 1e-14, 100, 0.0) == "running"
    assert core.size == 8                             # one step a slice of no time


def test_bad_operators_and_arguments():
    core = _core.Lanczos(np.ones(5))
    with pytest.raises(ValueError, match="5 values, got 4"):
        core.advance(lambda v: v[:4], 1, "largest", 0.0, 5, 1.0)
    with pytest.raises(ZeroDivisionError):
        core.advance(lambda v: 1 / 0, 1, "largest", 0.0, 5, 1.0)
    assert core.size == 0                             # a failed product adds no step
    with pytest.raises(TypeError, match="HessianAt or a callable"):
        core.advance(3, 1, "largest", 0.0, 5, 1.0)
    with pytest.raises(ValueError, match="which must be"):
        core.advance(lambda v: v, 1, "top", 0.0, 5, 1.0)
    with pytest.raises(ValueError, match="k must be"):
        core.advance(lambda v: v, 6, "largest", 0.0, 5, 1.0)
    with pytest.raises(ValueError, match="rows of 5 values"):
        _core.Lanczos(np.ones(5), np.ones(7))
    with pytest.raises(ValueError, match="< n rows"):
        _core.Lanczos(np.ones(2), np.eye(2))


def test_ctrl_c_in_a_python_product_stops_the_run():
    core = _core.Lanczos(np.ones(50))
    A = symmetric(50, 11)
    calls = []

    def product(v):
        calls.append(1)
        if len(calls) == 3:
            signal.raise_signal(signal.SIGINT)
        return A @ v

    assert threading.current_thread() is threading.main_thread()
    with pytest.raises(KeyboardInterrupt):
        core.advance(product, 1, "largest", -1.0, 50, 10.0)
    assert core.size == 2 or core.size == 3


def test_graded_tridiagonals_converge():
    """Off-diagonal entries tiny next to their neighbours but not next to ||T||: the
    deflation test against eps ||T|| lets them converge (against the neighbours alone
    they stalled and every value came back NaN)."""
    d = 10.0 ** np.linspace(-40, 40, 100)
    e = 10.0 ** np.linspace(-40, 40, 99)
    values, _ = _core.tridiagonal_eigen(d, e)
    want = scipy_linalg.eigh_tridiagonal(d, e, eigvals_only=True)
    assert np.all(np.isfinite(values))
    assert np.max(np.abs(values - want)) <= 64 * np.finfo(float).eps * np.max(np.abs(want))


def test_ritz_vectors_are_the_basis_times_s():
    A = symmetric(30, 12)
    core = _core.Lanczos(np.random.default_rng(13).standard_normal(30))
    core.advance(lambda v: A @ v, 1, "largest", -1.0, 12, 10.0)
    S = np.random.default_rng(14).standard_normal((12, 3))
    assert np.allclose(core.ritz_vectors(S), core.basis.T @ S, rtol=0, atol=1e-14)
    with pytest.raises(ValueError, match=r"S must be \(size, p\) = \(12, p\)"):
        core.ritz_vectors(S[:5])


def test_restart_only_after_the_space_closed():
    core = _core.Lanczos(np.ones(5))
    with pytest.raises(RuntimeError, match="closed"):
        core.restart(np.arange(5.0))
    A = symmetric(5, 15)
    core.advance(lambda v: A @ v, 1, "largest", -1.0, 2, 10.0)
    with pytest.raises(RuntimeError, match="closed"):
        core.restart(np.arange(5.0))
    assert core.size == 2


def test_a_start_with_nothing_left_is_refused():
    with pytest.raises(ValueError, match="start vector must be finite"):
        _core.Lanczos(np.zeros(4))
    with pytest.raises(ValueError, match="start vector must be finite"):
        _core.Lanczos(np.array([1.0, np.nan, 0.0]))
    with pytest.raises(ValueError, match="start vector must be finite"):
        _core.Lanczos(np.array([1.0, 0.0, 0.0]), np.array([[1.0, 0.0, 0.0]]))
    with pytest.raises(ValueError, match=r"start must be a vector \(n,\)"):
        _core.Lanczos(np.ones((3, 4)))


def test_no_step_past_the_budget():
    A = symmetric(10, 16)
    core = _core.Lanczos(np.ones(10))
    assert core.advance(lambda v: A @ v, 1, "largest", -1.0, 3, 10.0) == "budget"
    assert core.advance(lambda v: A @ v, 1, "largest", -1.0, 3, 10.0) == "budget"
    assert core.size == 3


def test_a_process_is_used_by_one_call_at_a_time():
    """A product that reads its own process, and a thread that reads it while another
    steps it, get a RuntimeError instead of a basis being reallocated under them."""
    core = _core.Lanczos(np.ones(2000))
    d = np.linspace(-1.0, 1.0, 2000)
    with pytest.raises(RuntimeError, match="in use"):
        core.advance(lambda v: d * v + 0 * core.size, 1, "largest", -1.0, 5, 10.0)
    assert core.size == 0
    started, errors, done = threading.Event(), [], threading.Event()

    def slow(v):
        started.set()
        done.wait(5.0)
        return d * v

    worker = threading.Thread(target=lambda: core.advance(slow, 1, "largest", -1.0, 1, 10.0))
    worker.start()
    try:
        assert started.wait(5.0)
        for read in (lambda: core.alpha, lambda: core.basis, lambda: core.size):
            try:
                read()
            except RuntimeError as exc:
                errors.append(str(exc))
    finally:
        done.set()
        worker.join(10.0)
    assert len(errors) == 3 and all("in use" in e for e in errors)
    assert core.size == 1


def test_long_runs_test_on_a_schedule_and_still_stop_at_the_tolerance():
    """Past 64 steps the convergence test runs every ceil(size / 64)-th step: a run that
    converges there stops within that many steps of where a test every step would."""
    n = 400
    rng = np.random.default_rng(17)
    d = np.concatenate([np.linspace(0.0, 1.0, n - 1), [1.0 + 1e-3]])   # a slow top
    core = _core.Lanczos(rng.standard_normal(n))
    status = core.advance(lambda v: d * v, 1, "largest", 1e-10, n, 60.0)
    assert status == "converged" and core.size > 64
    T = np.diag(core.alpha) + np.diag(core.beta[:-1], 1) + np.diag(core.beta[:-1], -1)
    assert abs(np.linalg.eigvalsh(T)[-1] - d[-1]) < 1e-9
    # the first size at which a test would have passed
    first = next(j for j in range(1, core.size + 1)
                 if abs(core.beta[j - 1] * np.linalg.eigh(T[:j, :j])[1][-1, -1])
                 <= 1e-10 * max(abs(np.linalg.eigvalsh(T[:j, :j])[[0, -1]])))
    assert core.size - first < -(-core.size // 64)


@pytest.mark.parametrize("seed", range(8))
def test_ritz_pairs_are_eigh_tridiagonal_s_bits(seed):
    """curvature._tridiagonal_pairs calls LAPACK's stebz and stein as
    scipy.linalg.eigh_tridiagonal(select="i") does, without its per-call validation:
    the same eigenvalues and eigenvectors, bit for bit, on every index range."""
    from bnfast.curvature import _tridiagonal_pairs
    rng = np.random.default_rng(seed)
    for _ in range(40):
        n = int(rng.integers(1, 70))
        d = rng.standard_normal(n) * rng.choice([1.0, 1e-8, 1e8])
        e = rng.standard_normal(n - 1) * rng.choice([1.0, 1e-12, 0.0])
        lo = int(rng.integers(0, n))
        hi = int(rng.integers(lo, n))
        values, vectors = _tridiagonal_pairs(d, e, lo, hi, True)
        want, Z = scipy_linalg.eigh_tridiagonal(d, e, select="i", select_range=(lo, hi))
        np.testing.assert_array_equal(values, want)
        np.testing.assert_array_equal(vectors, Z)
        values, none = _tridiagonal_pairs(d, e, lo, hi, False)
        assert none is None
        np.testing.assert_array_equal(values, scipy_linalg.eigh_tridiagonal(
            d, e, eigvals_only=True, select="i", select_range=(lo, hi)))
