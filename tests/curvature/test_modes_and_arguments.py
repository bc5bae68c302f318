"""Train vs eval mode, determinism per seed, what the functions take and refuse, the
progress bar, and Ctrl-C.

Train vs eval: on a BN network with 8 samples the two Hessians differ (the batch
statistics are functions of the parameters in train mode, constants in eval mode): the
extreme eigenvalues differ by more than 5% of the spectral norm (conv2d, whose BN
normalizes over 8 x 16 values per channel, differs least: 9%); without BN the two modes
are the same loss, so the spectra agree to rounding (1e-12 relative).
"""

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np
import pytest

pytest.importorskip("scipy")
from curvature_cases import problem  # noqa: E402
from sigint_helpers import default_sigint  # noqa: E402  (tests/ is on sys.path)

import bnfast  # noqa: E402
from bnfast import BatchNorm, Dense, Network, curvature  # noqa: E402


def readme_network():
    """The README's example (section "Curvature of the loss being trained"): a BN MLP
    trained by 1000 steps of full-batch GD on 8 samples, running statistics from the
    training."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((8, 4)), rng.standard_normal(8)
    net = Network([Dense(4, 16, "tanh", batch_norm=BatchNorm()),
                   Dense(16, 16, "tanh", batch_norm=BatchNorm()), Dense(16, 1)])
    bnfast.train(net, X, y, lr=0.01, steps=1000)
    return net, X, y


@pytest.mark.parametrize("name", ["mlp", "conv1d", "conv2d"])
def test_train_and_eval_spectra_differ_with_bn_and_agree_without(name):
    net, X, y = problem(name, bn=True, m=8)
    train = curvature.top_eigenvalues(net, X, y, k=2, which="both", progress=False)
    evals = curvature.top_eigenvalues(net, X, y, k=2, which="both", mode="eval",
                                      progress=False)
    gap = np.abs(train.eigenvalues - evals.eigenvalues) / np.max(np.abs(train.eigenvalues))
    assert np.max(gap) > 0.05, (train.eigenvalues, evals.eigenvalues)

    plain, X, y = problem(name, bn=False, m=8)
    train = curvature.top_eigenvalues(plain, X, y, k=2, which="both", progress=False)
    evals = curvature.top_eigenvalues(plain, X, y, k=2, which="both", mode="eval",
                                      progress=False)
    np.testing.assert_allclose(evals.eigenvalues, train.eigenvalues, rtol=0,
                               atol=1e-12 * np.max(np.abs(train.eigenvalues)))
    t1 = curvature.trace(plain, X, y, samples=plain.num_params, progress=False)
    t2 = curvature.trace(plain, X, y, samples=plain.num_params, mode="eval", progress=False)
    assert t1.estimate == pytest.approx(t2.estimate, rel=1e-12)


def test_readme_example_train_vs_eval():
    """The numbers the README prints (to its digits): train mode at a minimum (positive
    semi-definite), eval mode with negative curvature and larger top eigenvalues."""
    net, X, y = readme_network()
    printed = {"train": ([197.37, 111.79, 81.31, 0.0, 0.0, 0.0], 468.7),
               "eval": ([214.32, 122.17, 114.82, -1.69, -3.08, -4.38], 647.7)}
    for mode, (eigenvalues, trace) in printed.items():
        top = curvature.top_eigenvalues(net, X, y, k=3, which="both", mode=mode,
                                        progress=False)
        tr = curvature.trace(net, X, y, mode=mode, progress=False)
        assert top.converged
        np.testing.assert_allclose(top.eigenvalues, eigenvalues, rtol=0, atol=0.005)
        assert round(tr.estimate, 1) == trace
    assert net.loss(X, y) < 1e-20 and net.loss(X, y, mode="eval") == pytest.approx(0.032,
                                                                                  abs=5e-4)


# ---- determinism ------------------------------------------------------------------------

def test_each_function_is_deterministic_per_seed():
    net, X, y = problem("mlp", True)
    a = curvature.top_eigenvalues(net, X, y, k=2, seed=5, progress=False)
    b = curvature.top_eigenvalues(net, X, y, k=2, seed=5, progress=False)
    np.testing.assert_array_equal(a.eigenvalues, b.eigenvalues)
    np.testing.assert_array_equal(a.eigenvectors, b.eigenvectors)
    c = curvature.top_eigenvalues(net, X, y, k=2, seed=6, progress=False)
    assert not np.array_equal(a.eigenvectors, c.eigenvectors)    # another start vector
    np.testing.assert_allclose(c.eigenvalues, a.eigenvalues, rtol=1e-9)

    t = [curvature.trace(net, X, y, samples=30, seed=s, progress=False) for s in (1, 1, 2)]
    assert t[0] == t[1] and t[0] != t[2]
    d = [curvature.density(net, X, y, runs=3, steps=8, seed=s, progress=False)
         for s in (1, 1, 2)]
    np.testing.assert_array_equal(d[0].density, d[1].density)
    assert not np.array_equal(d[0].nodes, d[2].nodes)
    o = [curvature.gradient_overlap(net, X, y, 2, seed=s, progress=False) for s in (4, 4)]
    assert o[0] == o[1]


def test_the_network_is_left_as_it_was():
    net, X, y = problem("conv1d", True)
    params, mean, var = net.params, net.running_mean, net.running_var
    curvature.top_eigenvalues(net, X, y, k=2, mode="eval", progress=False)
    curvature.density(net, X, y, runs=2, steps=5, progress=False)
    curvature.trace(net, X, y, samples=20, blocks="layer", progress=False)
    np.testing.assert_array_equal(net.params, params)
    for a, b in zip(net.running_mean + net.running_var, mean + var):
        np.testing.assert_array_equal(a, b)


def test_gradient_overlap_is_a_share_and_nan_for_a_zero_gradient():
    net, X, y = problem("conv1d", True)
    for k in (1, 5):
        share = curvature.gradient_overlap(net, X, y, k, progress=False)
        assert 0.0 <= share <= 1.0
    blocks = curvature.gradient_overlap(net, X, y, 1, blocks="layer", progress=False)
    assert set(blocks) == {0, 3} and all(0.0 <= s <= 1.0 for s in blocks.values())
    # y = the network's own outputs and no BN coupling: a zero gradient for "sum"
    flat = Network([Dense(2, 1, bias=False)])
    Xf = np.array([[1.0, 2.0], [3.0, -1.0]])
    share = curvature.gradient_overlap(flat, Xf, flat.forward(Xf), 1, progress=False)
    assert np.isnan(share)


# ---- arguments ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small():
    return problem("mlp", True)


@pytest.mark.parametrize("call,error,match", [
    (lambda n, X, y: curvature.top_eigenvalues("net", X, y), TypeError, "net must be"),
    (lambda n, X, y: curvature.top_eigenvalues(n, X, y, k=0), ValueError, "k must be >= 1"),
    (lambda n, X, y: curvature.top_eigenvalues(n, X, y, k=1000), ValueError, "k must be <="),
    (lambda n, X, y: curvature.top_eigenvalues(n, X, y, k=1.5), TypeError, "k must be an int"),
    (lambda n, X, y: curvature.top_eigenvalues(n, X, y, k=True), TypeError, "k must be an int"),
    (lambda n, X, y: curvature.top_eigenvalues(n, X, y, mode="test"), ValueError, "mode must"),
    (lambda n, X, y: curvature.top_eigenvalues(n, X, y, which="top"), ValueError, "which must"),
    (lambda n, X, y: curvature.top_eigenvalues(n, X, y, tol=-1.0), ValueError, "tol must"),
    (lambda n, X, y: curvature.top_eigenvalues(n, X, y, tol=float("nan")), ValueError,
     "tol must"),
    (lambda n, X, y: curvature.top_eigenvalues(n, X, y, tol="small"), TypeError, "tol must"),
    (lambda n, X, y: curvature.top_eigenvalues(n, X, y, k=3, max_iter=2), ValueError,
     "max_iter must be >= the number"),
    (lambda n, X, y: curvature.top_eigenvalues(n, X, y, max_iter=0), ValueError,
     "max_iter must be >= 1"),
    (lambda n, X, y: curvature.top_eigenvalues(n, X, y, seed=-1), ValueError, "seed must"),
    (lambda n, X, y: curvature.top_eigenvalues(n, X, y, seed=1.0), TypeError, "seed must"),
    (lambda n, X, y: curvature.top_eigenvalues(n, X, y, blocks="neuron"), ValueError,
     "blocks must"),
    (lambda n, X, y: curvature.top_eigenvalues(n, X, y, progress=1), TypeError,
     "progress must"),
    (lambda n, X, y: curvature.top_eigenvalues(n, X[:, :2], y), ValueError,
     "X has 2 features but the network expects 3"),
    (lambda n, X, y: curvature.trace(n, X, y, samples=9), ValueError, "samples must be >= 10"),
    (lambda n, X, y: curvature.trace(n, X, y, samples=None), TypeError, "samples must"),
    (lambda n, X, y: curvature.density(n, X, y, runs=0), ValueError, "runs must"),
    (lambda n, X, y: curvature.density(n, X, y, steps=0), ValueError, "steps must"),
    (lambda n, X, y: curvature.density(n, X, y, sigma=0.0), ValueError, "sigma must"),
    (lambda n, X, y: curvature.density(n, X, y, points=1), ValueError, "points must"),
    (lambda n, X, y: curvature.hessian(n, X, y, mode=None), TypeError, "mode must"),
    (lambda n, X, y: curvature.gradient_overlap(n, X, y, k=0), ValueError, "k must"),
    (lambda n, X, y: curvature.lanczos(np.eye(3), 3), TypeError, "matvec must be callable"),
    (lambda n, X, y: curvature.lanczos(lambda v: v, 0), ValueError, "n must be >= 1"),
])
def test_bad_arguments_name_the_argument(small, call, error, match):
    net, X, y = small
    with pytest.raises(error, match=match):
        call(net, X, y)


def test_hessian_refuses_large_networks_before_any_product():
    big = Network([Dense(100, 50, "tanh"), Dense(50, 1)])     # 5101 parameters
    X, y = np.zeros((2, 100)), np.zeros(2)
    t = time.perf_counter()
    with pytest.raises(ValueError, match=r"5101 parameters; a dense Hessian is built for "
                                         r"at most 5000.*blocks='layer'"):
        curvature.hessian(big, X, y)
    with pytest.raises(ValueError, match="layer 0 has 5050 parameters"):
        curvature.hessian(big, X, y, blocks="layer")
    assert time.perf_counter() - t < 0.5


def test_not_converging_warns_and_says_so(small):
    net, X, y = small
    with pytest.warns(RuntimeWarning, match="max_iter"):
        pairs = curvature.top_eigenvalues(net, X, y, k=2, tol=0.0, max_iter=5,
                                          progress=False)
    assert not pairs.converged and pairs.iterations == 5


def test_progress_bar_on_stderr_only_when_asked(small, capsys, monkeypatch):
    net, X, y = small
    curvature.hessian(net, X, y, progress=False)
    assert capsys.readouterr().err == ""
    import tqdm.auto
    original = tqdm.auto.tqdm

    def at_once(*args, **kwargs):    # the bar without its one-second delay
        kwargs["delay"] = 0.0
        return original(*args, **kwargs)
    monkeypatch.setattr(tqdm.auto, "tqdm", at_once)
    curvature.hessian(net, X, y, blocks="layer")
    err = capsys.readouterr().err
    assert "hessian (layer 0)" in err and "hvp" in err
    curvature.top_eigenvalues(net, X, y, progress=False)
    assert capsys.readouterr().err == ""


def test_results_serialize():
    import json
    net, X, y = problem("mlp", True)
    pairs = curvature.top_eigenvalues(net, X, y, k=2, progress=False)
    d = curvature.density(net, X, y, runs=1, steps=5, progress=False)
    t = curvature.trace(net, X, y, samples=20, progress=False)
    text = json.dumps({"top": pairs.to_dict(vectors=True), "density": d.to_dict(nodes=True),
                       "trace": t.to_dict()})
    back = json.loads(text)
    assert back["top"]["eigenvalues"] == pairs.eigenvalues.tolist()
    assert back["density"]["moments_stderr"][1] is None


# ---- Ctrl-C ------------------------------------------------------------------------------

def test_ctrl_c_stops_a_long_run_within_a_second():
    script = textwrap.dedent("""
        import sys, numpy as np, bnfast
        from bnfast import curvature
        rng = np.random.default_rng(0)
        X, y = rng.standard_normal((256, 32)), rng.standard_normal(256)
        net = bnfast.Network([bnfast.Dense(32, 128, "tanh", batch_norm=bnfast.BatchNorm()),
                              bnfast.Dense(128, 128, "tanh", batch_norm=bnfast.BatchNorm()),
                              bnfast.Dense(128, 1)])
        print("ready", flush=True)
        try:
            curvature.density(net, X, y, runs=1000, steps=100, progress=False)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            sys.exit(3)
    """)
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, cwd=tempfile.gettempdir(),
                               preexec_fn=default_sigint)
    try:
        assert process.stdout.readline().strip() == "ready", process.communicate()
        time.sleep(1.5)
        assert process.poll() is None, process.communicate()
        sent = time.perf_counter()
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
        elapsed = time.perf_counter() - sent
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
    assert process.returncode == 3, err
    assert "interrupted" in out
    assert elapsed < 1.0, elapsed
