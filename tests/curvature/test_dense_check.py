"""bnfast.curvature against dense Hessians built independently: PyTorch float64
(torch.autograd.functional.hessian of a twin of the network written from the docs,
curvature_cases.py) in train and eval mode, on dense and convolutional BN networks and
their BN-free versions; and the NumPy reference's complex-step hvp on basis vectors.

Tolerances, relative to the largest |eigenvalue| (the spectral norm): 1e-9 for the
dense Hessian and for the eigenvalues (the hvp is exact to rounding, ~1e-15 measured;
Lanczos run to tol 1e-10 gives eigenvalues within the residual, and the residual is
below 1e-10 ||H||); eigenvector residuals against the torch Hessian below 1e-9 ||H||.
The worst errors are printed at the end (pytest -s).
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("scipy")
from curvature_cases import BUILDERS, problem, torch_hessian  # noqa: E402

import bnfast  # noqa: E402
import bnfast.reference as reference  # noqa: E402
from bnfast import curvature  # noqa: E402

RTOL = 1e-9
WORST = {}

CASES = [(name, bn, mode) for name in sorted(BUILDERS) for bn in (True, False)
         for mode in ("train", "eval")]


def ids(case):
    name, bn, mode = case
    return f"{name}-{'bn' if bn else 'plain'}-{mode}"


@pytest.fixture(scope="module", autouse=True)
def report_worst():
    yield
    if WORST:
        print("\nworst errors relative to the spectral norm (curvature vs dense torch):")
        for what, err in sorted(WORST.items()):
            print(f"  {what:<28s} {err:.3e}")


@pytest.fixture(autouse=True)
def one_torch_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def relative(what, err, scale):
    value = float(err) / scale
    WORST[what] = max(WORST.get(what, 0.0), value)
    return value


@pytest.fixture(scope="module")
def dense():
    """(net, X, y, torch Hessian, its eigenvalues) per case, built once."""
    cache = {}

    def get(case):
        if case not in cache:
            name, bn, mode = case
            net, X, y = problem(name, bn)
            H = torch_hessian(torch, net, X, y, mode)
            cache[case] = (net, X, y, H, np.linalg.eigvalsh(H))
        return cache[case]
    return get


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_dense_hessian_matches_torch(case, dense):
    net, X, y, H, ev = dense(case)
    ours = curvature.hessian(net, X, y, mode=case[2], progress=False)
    scale = np.max(np.abs(ev))
    assert relative("hessian", np.max(np.abs(ours - H)), scale) <= RTOL
    np.testing.assert_array_equal(ours, ours.T)


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_top_and_bottom_eigenvalues_match_torch(case, dense):
    net, X, y, H, ev = dense(case)
    scale = np.max(np.abs(ev))
    k = 3
    pairs = curvature.top_eigenvalues(net, X, y, k=k, mode=case[2], which="both",
                                      tol=1e-10, progress=False)
    expected = np.concatenate([ev[-k:][::-1], ev[:k][::-1]])
    assert pairs.converged
    assert pairs.eigenvalues.shape == (2 * k,)
    assert pairs.eigenvectors.shape == (net.num_params, 2 * k)
    assert relative("eigenvalues", np.max(np.abs(pairs.eigenvalues - expected)),
                    scale) <= RTOL
    V = pairs.eigenvectors
    np.testing.assert_allclose(V.T @ V, np.eye(2 * k), atol=1e-10)
    true_residuals = np.linalg.norm(H @ V - V * pairs.eigenvalues, axis=0)
    assert relative("eigenvector residuals", np.max(true_residuals), scale) <= RTOL
    # the reported residuals are ||H v - lambda v|| (from bnfast's own hvp)
    np.testing.assert_allclose(pairs.residuals, true_residuals, rtol=0, atol=1e-12 * scale)


@pytest.mark.parametrize("which", ["largest", "smallest"])
def test_largest_and_smallest_alone(which, dense):
    net, X, y, H, ev = dense(("mlp", True, "train"))
    pairs = curvature.top_eigenvalues(net, X, y, k=4, which=which, tol=1e-10,
                                      progress=False)
    expected = ev[-4:][::-1] if which == "largest" else ev[:4][::-1]
    assert list(pairs.eigenvalues) == sorted(pairs.eigenvalues, reverse=True)
    assert relative(f"eigenvalues {which}", np.max(np.abs(pairs.eigenvalues - expected)),
                    np.max(np.abs(ev))) <= RTOL


def test_all_eigenvalues_when_k_is_n(dense):
    """k = n: the whole spectrum, zero eigenvalues (BN's flat directions) included: the
    Krylov space closes before n and fresh directions fill the rest."""
    net, X, y, H, ev = dense(("conv2d", True, "train"))
    n = net.num_params
    pairs = curvature.top_eigenvalues(net, X, y, k=n, tol=1e-10, progress=False)
    assert pairs.iterations == n and pairs.converged
    assert relative("eigenvalues k = n", np.max(np.abs(pairs.eigenvalues - ev[::-1])),
                    np.max(np.abs(ev))) <= RTOL


def test_reference_hvp_on_basis_vectors_agrees():
    """The NumPy oracle's complex-step hvp (independent of the engine and of torch) on
    the basis vectors: the same Hessian and spectrum (train mode)."""
    net, X, y = problem("mlp", True)
    layers = [layer.to_dict() for layer in net.layers]
    n = net.num_params
    H = np.stack([reference.network_hvp(layers, net.params, X, y, e, loss=net.loss_kind)
                  for e in np.eye(n)], axis=1)
    H = 0.5 * (H + H.T)
    ev = np.linalg.eigvalsh(H)
    scale = np.max(np.abs(ev))
    ours = curvature.hessian(net, X, y, progress=False)
    assert relative("hessian vs reference", np.max(np.abs(ours - H)), scale) <= RTOL
    top = curvature.top_eigenvalues(net, X, y, k=2, tol=1e-10, progress=False)
    assert relative("eigenvalues vs reference",
                    np.max(np.abs(top.eigenvalues - ev[-2:][::-1])), scale) <= RTOL


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_layer_blocks_are_the_diagonal_blocks(name, dense):
    net, X, y, H, ev = dense((name, True, "train"))
    scale = np.max(np.abs(ev))
    slices = {i: s for i, s in enumerate(net.param_slices) if s.stop > s.start}
    blocks = curvature.hessian(net, X, y, blocks="layer", progress=False)
    assert list(blocks) == list(slices)
    tops = curvature.top_eigenvalues(net, X, y, k=2, which="both", tol=1e-10,
                                     blocks="layer", progress=False)
    traces = curvature.trace(net, X, y, samples=200, blocks="layer", progress=False)
    for i, part in slices.items():
        block = H[part, part]
        assert relative("blocks", np.max(np.abs(blocks[i] - block)), scale) <= RTOL
        bev = np.linalg.eigvalsh(block)
        found = tops[i].eigenvalues
        # the extremes exactly; every value found is an eigenvalue of the block (a
        # repeated eigenvalue, e.g. the cross-entropy's zero curvature along logit
        # shifts, is found once per Krylov space: see top_eigenvalues)
        assert relative("block eigenvalues", max(abs(found[0] - bev[-1]),
                                                 abs(found[-1] - bev[0])), scale) <= RTOL
        nearest = np.min(np.abs(found[:, None] - bev[None, :]), axis=1)
        assert relative("block eigenvalues", np.max(nearest), scale) <= RTOL
        assert traces[i].exact and traces[i].stderr == 0.0
        assert relative("block traces", abs(traces[i].estimate - np.trace(block)),
                        scale) <= RTOL


def test_gradient_overlap_against_the_dense_eigenvectors(dense):
    net, X, y, H, ev = dense(("mlp", True, "train"))
    g = net.gradient(X, y)
    w, V = np.linalg.eigh(H)
    for k in (1, 3):
        top = V[:, -k:]
        expected = float(np.sum((top.T @ g) ** 2) / (g @ g))
        got = curvature.gradient_overlap(net, X, y, k, tol=1e-10, progress=False)
        assert 0.0 <= got <= 1.0
        assert abs(got - expected) <= 1e-8, (k, got, expected)
    assert curvature.gradient_overlap(net, X, y, net.num_params, progress=False) == \
        pytest.approx(1.0, abs=1e-12)


def test_lanczos_on_a_matrix_with_repeated_eigenvalues():
    """The public solver on any operator: a diagonal matrix with a repeated top
    eigenvalue; k = n finds every copy (fresh directions after each closed space)."""
    d = np.array([5.0, 5.0, 5.0, 2.0, 1.0, 0.0, 0.0, -3.0])
    pairs = bnfast.curvature.lanczos(lambda v: d * v, d.size, k=d.size, tol=1e-12)
    np.testing.assert_allclose(pairs.eigenvalues, np.sort(d)[::-1], atol=1e-12)
    top = bnfast.curvature.lanczos(lambda v: d * v, d.size, k=1, tol=1e-12)
    assert top.eigenvalues[0] == pytest.approx(5.0, abs=1e-12)
