"""`bnfast hessian NET.pkl DATA.npz ...` run as a user runs it (a subprocess of
`python -m bnfast`): the text and JSON reports against bnfast.curvature called directly
with the same seed, the figure, usage errors (exit 2, before any Hessian-vector
product), and Ctrl-C (exit 130)."""

import json
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest

pytest.importorskip("scipy")
from sigint_helpers import default_sigint  # noqa: E402  (tests/ is on sys.path)

import bnfast  # noqa: E402
from bnfast import BatchNorm, Dense, Network, curvature  # noqa: E402

pytestmark = pytest.mark.timeout(300)


def run(*args, timeout=120):
    # From outside the source tree, so the installed package is imported.
    return subprocess.run([sys.executable, "-m", "bnfast", "hessian", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout,
                          cwd=tempfile.gettempdir())


def bn_network():
    """The README's network: a BN MLP trained by full-batch GD on 8 samples."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((8, 4)), rng.standard_normal(8)
    net = Network([Dense(4, 16, "tanh", batch_norm=BatchNorm()),
                   Dense(16, 16, "tanh", batch_norm=BatchNorm()), Dense(16, 1)])
    bnfast.train(net, X, y, lr=0.01, steps=1000)
    return net, X, y


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hessian")
    net, X, y = bn_network()
    with open(folder / "net.pkl", "wb") as fh:
        pickle.dump(net, fh)
    np.savez(folder / "data.npz", X=X, y=y)
    return folder / "net.pkl", folder / "data.npz", (net, X, y)


def test_json_matches_the_library(files):
    net_path, data_path, (net, X, y) = files
    p = run(net_path, data_path, "--top", "3", "--bottom", "2", "--trace", "--json",
            "--seed", "7", "--no-progress")
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)           # the whole of stdout is one object
    assert report["mode"] == "train" and report["num_params"] == net.num_params
    assert report["rows"] == 8 and report["seed"] == 7
    assert report["loss"] == pytest.approx(net.loss(X, y), abs=1e-12)
    top = curvature.top_eigenvalues(net, X, y, k=3, seed=7, progress=False)
    bottom = curvature.top_eigenvalues(net, X, y, k=2, which="smallest", seed=7,
                                       progress=False)
    trace = curvature.trace(net, X, y, seed=7, progress=False)
    np.testing.assert_allclose(report["top"]["eigenvalues"], top.eigenvalues, rtol=1e-12)
    np.testing.assert_allclose(report["bottom"]["eigenvalues"], bottom.eigenvalues,
                               rtol=0, atol=1e-9)
    assert report["trace"]["estimate"] == pytest.approx(trace.estimate, rel=1e-10)
    assert report["trace"]["stderr"] == pytest.approx(trace.stderr, rel=1e-6, abs=1e-12)
    assert "density" not in report and "layers" not in report


def test_train_and_eval_modes_differ(files):
    net_path, data_path, (net, X, y) = files
    train = json.loads(run(net_path, data_path, "--json", "--no-progress").stdout)
    evals = json.loads(run(net_path, data_path, "--json", "--mode", "eval",
                           "--no-progress").stdout)
    assert evals["mode"] == "eval"
    assert evals["loss"] == pytest.approx(net.loss(X, y, mode="eval"), rel=1e-12)
    assert evals["top"]["eigenvalues"][0] > 1.05 * train["top"]["eigenvalues"][0]


def test_text_report_with_layers_density_and_figure(files, tmp_path):
    pytest.importorskip("matplotlib")
    net_path, data_path, (net, X, y) = files
    figure = tmp_path / "curvature.svg"
    p = run(net_path, data_path, "--top", "2", "--bottom", "1", "--trace", "--density",
            "--layers", "--plot", figure, "--no-progress")
    assert p.returncode == 0, p.stderr
    out = p.stdout
    for text in ("433 parameters", "mode train: batch statistics",
                 "largest eigenvalues (Lanczos", "smallest eigenvalues (Lanczos",
                 "trace ", "(Hutch++, 99 products; 1 sigma; 90% interval",
                 "density (SLQ, 10 runs x 60 steps", "mean eigenvalue",
                 "layer 0 (112 parameters, its diagonal block):",
                 "layer 2 (17 parameters, its diagonal block):",
                 "trace 134.89 (exact: 17 basis vectors)", f"wrote {figure}"):
        assert text in out, text
    top = curvature.top_eigenvalues(net, X, y, k=1, progress=False).eigenvalues[0]
    assert f"{top:.6g}" in out
    assert figure.read_bytes().startswith(b"<?xml")


def test_json_with_a_figure_keeps_stdout_one_object(files, tmp_path):
    pytest.importorskip("matplotlib")
    net_path, data_path, _ = files
    figure = tmp_path / "spectrum.png"
    p = run(net_path, data_path, "--density", "--layers", "--json", "--plot", figure,
            "--no-progress")
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)
    assert [layer["layer"] for layer in report["layers"]] == [0, 1, 2]
    d = report["density"]
    assert abs(np.trapezoid(d["density"], d["grid"]) - 1) < 1e-6
    assert f"wrote {figure}" in p.stderr
    assert figure.read_bytes().startswith(b"\x89PNG")


def test_convolutional_network(tmp_path):
    rng = np.random.default_rng(3)
    net = Network([bnfast.Conv1d(1, 3, 3, activation="tanh", batch_norm=BatchNorm()),
                   bnfast.Flatten(), Dense(18, 4)], loss="cross_entropy")
    X, y = rng.standard_normal((10, 1, 8)), rng.integers(0, 4, 10)
    with open(tmp_path / "cnn.pkl", "wb") as fh:
        pickle.dump(net, fh)
    np.savez(tmp_path / "digits.npz", X=X, y=y)
    p = run(tmp_path / "cnn.pkl", tmp_path / "digits.npz", "--top", "2", "--json",
            "--no-progress")
    assert p.returncode == 0, p.stderr
    expected = curvature.top_eigenvalues(net, X, y, k=2, progress=False).eigenvalues
    np.testing.assert_allclose(json.loads(p.stdout)["top"]["eigenvalues"], expected,
                               rtol=1e-12)


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, files):
    folder = tmp_path_factory.mktemp("bad")
    (folder / "text.pkl").write_text("not a pickle")
    with open(folder / "list.pkl", "wb") as fh:
        pickle.dump([1, 2], fh)
    np.savez(folder / "no_y.npz", X=np.zeros((3, 4)))
    np.savez(folder / "wrong.npz", X=np.zeros((8, 5)), y=np.zeros(8))
    (folder / "text.npz").write_text("not an npz")
    return folder


@pytest.mark.parametrize("args,message", [
    (["{missing}", "{data}"], "cannot read"),
    (["{bad}/text.pkl", "{data}"], "is not a pickled bnfast.Network"),
    (["{bad}/list.pkl", "{data}"], "holds a list, not a bnfast.Network"),
    (["{net}", "{missing}"], "cannot read"),
    (["{net}", "{bad}/text.npz"], "is not an .npz file"),
    (["{net}", "{bad}/no_y.npz"], "has no array y"),
    (["{net}", "{bad}/wrong.npz"], "does not fit"),
    (["{net}", "{data}", "--top", "0"], "--top must be in [1, 433]"),
    (["{net}", "{data}", "--top", "434"], "--top must be in [1, 433]"),
    (["{net}", "{data}", "--top", "two"], "--top must be an integer"),
    (["{net}", "{data}", "--bottom", "-1"], "--bottom must be in [0, 433]"),
    (["{net}", "{data}", "--seed", "-3"], "--seed must"),
    (["{net}", "{data}", "--plot", "figure.jpg"], "--plot:"),
    (["{net}", "{data}", "--mode", "test"], "invalid choice"),
])
def test_usage_errors_exit_2_before_any_work(files, bad_files, args, message):
    net_path, data_path, _ = files
    names = {"net": net_path, "data": data_path, "bad": bad_files,
             "missing": bad_files / "missing.file"}
    start = time.perf_counter()
    p = run(*[a.format(**names) for a in args], timeout=60)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert message in p.stderr, p.stderr
    assert p.stdout == ""
    assert time.perf_counter() - start < 30


def test_ctrl_c_exits_130_within_a_second(tmp_path):
    rng = np.random.default_rng(0)
    net = Network([Dense(32, 128, "tanh", batch_norm=BatchNorm()),
                   Dense(128, 128, "tanh", batch_norm=BatchNorm()), Dense(128, 1)])
    with open(tmp_path / "big.pkl", "wb") as fh:
        pickle.dump(net, fh)
    np.savez(tmp_path / "big.npz", X=rng.standard_normal((256, 32)),
             y=rng.standard_normal(256))
    process = subprocess.Popen(
        [sys.executable, "-m", "bnfast", "hessian", str(tmp_path / "big.pkl"),
         str(tmp_path / "big.npz"), "--top", "400", "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=tempfile.gettempdir(), preexec_fn=default_sigint)
    try:
        time.sleep(4)
        assert process.poll() is None, process.communicate()
        sent = time.perf_counter()
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
        elapsed = time.perf_counter() - sent
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
    assert process.returncode == 130, err
    assert "bnfast hessian: interrupted" in err and "Traceback" not in err
    assert elapsed < 1.0 + 0.5, elapsed    # + the interpreter's exit
