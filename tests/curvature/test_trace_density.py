"""Hutch++ and stochastic Lanczos quadrature against the exact trace, Frobenius norm and
spectrum of dense Hessians (bnfast.curvature.hessian, itself checked against PyTorch in
test_dense_check.py).

The trace's reported error: the check is that tr(H) lies in estimate +- 1.645 stderr
(the 90% interval of a 1-sigma standard error) in at least 90% of seeds, counted over
SEEDS = 400 seeds on each of three networks (dense BN, BN-free, convolutional BN) at the
default budget (99 products) and at 30. The measured rates are the README's ("92% of
1200 seeds", at 99) and docs/math/curvature.md's (92.1% at 99, 94.6% at 30): the test
checks that they say what it measures.

SLQ: the density integrates to 1 (trapezoid on its grid, within 1e-6: the Gaussian
tails beyond 5 sigma hold 6e-7); its moments estimate tr(H)/n and ||H||_F^2/n, checked
within 4 of their reported standard errors; with as many steps as the Krylov space has
dimensions, every node is an eigenvalue of H (to 1e-9 of the spectral norm).
"""

import pathlib

import numpy as np
import pytest

pytest.importorskip("scipy")
from curvature_cases import problem  # noqa: E402

from bnfast import curvature  # noqa: E402

SEEDS = 400
ROOT = pathlib.Path(__file__).resolve().parents[2]
CURVATURE_MD = ROOT / "docs" / "math" / "curvature.md"


def coverage_networks():
    """Three networks with more parameters than the budgets (so that Hutch++
    estimates): a BN MLP 6 -> 12 -> 8 (tanh, BN) -> 2 (246 parameters), the same without
    BN (206), a BN Conv1d 2 -> 6 (k3, tanh), flatten, Dense 36 -> 3, cross-entropy (165);
    16 rows, parameters moved off the initialization."""
    from bnfast import BatchNorm, Conv1d, Dense, Flatten, Network
    rng = np.random.default_rng(11)
    nets = {
        "mlp-bn": Network([Dense(6, 12, "tanh", batch_norm=BatchNorm()),
                           Dense(12, 8, "tanh", batch_norm=BatchNorm()), Dense(8, 2)]),
        "mlp-plain": Network([Dense(6, 12, "tanh"), Dense(12, 8, "tanh"), Dense(8, 2)]),
        "conv-bn": Network([Conv1d(2, 6, 3, activation="tanh", batch_norm=BatchNorm()),
                            Flatten(), Dense(36, 3)], loss="cross_entropy"),
    }
    for name, net in nets.items():
        net.params = net.params + 0.3 * rng.standard_normal(net.num_params)
        if net.takes_labels:
            X, y = rng.standard_normal((16, 2, 8)), rng.integers(0, 3, 16)
        else:
            X, y = rng.standard_normal((16, 6)), rng.standard_normal((16, 2))
        yield name, (net, X, y)


@pytest.mark.parametrize("samples", [30, 99])
def test_trace_is_within_its_90_percent_interval_in_90_percent_of_seeds(samples):
    hits = total = 0
    rates = {}
    for name, (net, X, y) in coverage_networks():
        assert net.num_params > samples
        exact = np.trace(curvature.hessian(net, X, y, progress=False))
        inside = 0
        for seed in range(SEEDS):
            t = curvature.trace(net, X, y, samples=samples, seed=seed, progress=False)
            assert not t.exact and t.stderr > 0 and t.samples == samples
            low, high = t.interval(1.645)
            inside += low <= exact <= high
        rates[name] = inside / SEEDS
        hits, total = hits + inside, total + SEEDS
    print(f"\ncoverage of estimate +- 1.645 stderr, {samples} products: "
          f"{hits / total:.3f} over {total} seeds ({rates})")
    assert hits / total >= 0.90, rates
    # The README and docs/math/curvature.md state what this measures (issue 24: a stated
    # result is checked where it is computed, so the 1200 seeds run once)
    rate = 100 * hits / total
    said = [(CURVATURE_MD, f"over {total} seeds on three networks"),
            (CURVATURE_MD, f"in {rate:.1f}% of seeds at 99 products" if samples == 99
             else f"and {rate:.1f}% at {samples} (")]
    if samples == 99:
        said.append((ROOT / "README.md",
                     f"contained the exact trace in {rate:.0f}% of {total} seeds."))
    for path, text in said:
        assert text in _prose(path), f"{path.name} should say {text!r}"


def _prose(path):
    """The text of ``path`` with line breaks as spaces (sentences wrap)."""
    return " ".join(path.read_text().split())


def test_trace_is_exact_when_the_budget_covers_every_basis_vector():
    net, X, y = problem("conv2d", True)
    exact = np.trace(curvature.hessian(net, X, y, progress=False))
    t = curvature.trace(net, X, y, samples=net.num_params, progress=False)
    assert t.exact and t.stderr == 0.0 and t.samples == net.num_params
    assert t.estimate == pytest.approx(exact, rel=1e-12, abs=1e-12)
    assert t.interval() == (t.estimate, t.estimate)


def test_trace_error_shrinks_with_the_budget():
    _, (net, X, y) = next(coverage_networks())
    small = [curvature.trace(net, X, y, samples=30, seed=s, progress=False).stderr
             for s in range(5)]
    large = [curvature.trace(net, X, y, samples=180, seed=s, progress=False).stderr
             for s in range(5)]
    assert np.median(large) < 0.5 * np.median(small)


@pytest.mark.parametrize("name,bn", [("mlp", True), ("conv1d", True), ("mlp", False)])
def test_density_integrates_to_one_and_its_moments_match(name, bn):
    net, X, y = problem(name, bn, m=12)
    H = curvature.hessian(net, X, y, progress=False)
    n = net.num_params
    mean, second = np.trace(H) / n, np.sum(H * H) / n
    d = curvature.density(net, X, y, runs=40, steps=20, seed=3, progress=False)
    assert d.grid.shape == d.density.shape == (1001,)
    assert np.all(d.density >= 0)
    assert abs(np.trapezoid(d.density, d.grid) - 1.0) <= 1e-6
    assert d.moments[0] == pytest.approx(1.0, abs=1e-12)
    assert np.all(d.moments_stderr[1:] > 0)
    assert abs(d.moments[1] - mean) <= 4 * d.moments_stderr[1], (d.moments, mean)
    assert abs(d.moments[2] - second) <= 4 * d.moments_stderr[2], (d.moments, second)
    np.testing.assert_allclose(d.weights.sum(axis=1), 1.0, rtol=1e-12)
    # the broadened density: same mean, second moment + sigma^2 (to the grid's rounding)
    m1 = np.trapezoid(d.grid * d.density, d.grid)
    m2 = np.trapezoid(d.grid ** 2 * d.density, d.grid)
    scale = abs(d.moments[2]) + d.sigma ** 2
    assert abs(m1 - d.moments[1]) <= 1e-5 * np.sqrt(scale)
    assert abs(m2 - (d.moments[2] + d.sigma ** 2)) <= 1e-5 * scale


def test_density_nodes_are_eigenvalues_when_the_krylov_space_closes():
    net, X, y = problem("conv2d", True)
    ev = np.linalg.eigvalsh(curvature.hessian(net, X, y, progress=False))
    d = curvature.density(net, X, y, runs=2, steps=net.num_params, seed=0, progress=False)
    nodes = d.nodes[np.isfinite(d.nodes)]
    assert nodes.size < d.nodes.size      # a space closed early (zero eigenvalues)
    assert np.all(d.weights[~np.isfinite(d.nodes)] == 0)
    nearest = np.min(np.abs(nodes[:, None] - ev[None, :]), axis=1)
    assert np.max(nearest) <= 1e-9 * np.max(np.abs(ev))


def test_density_sigma_and_points():
    net, X, y = problem("mlp", True)
    d = curvature.density(net, X, y, runs=2, steps=10, sigma=0.5, points=64,
                          progress=False)
    assert d.sigma == 0.5 and d.grid.shape == (64,)
    assert d.grid[0] == pytest.approx(np.nanmin(d.nodes) - 2.5)
    one = curvature.density(net, X, y, runs=1, steps=10, progress=False)
    assert np.all(np.isnan(one.moments_stderr))
