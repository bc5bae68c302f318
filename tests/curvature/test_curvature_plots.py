"""The curvature figures: `bnfast hessian`'s report drawn in each format (with layers,
the smallest eigenvalues and the density, and without the density), and the sharpness
against 2/lr; bad inputs fail before drawing."""

import numpy as np
import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("scipy")
from curvature_cases import problem  # noqa: E402

from bnfast import curvature  # noqa: E402
from bnfast.plot import plot_curvature, plot_sharpness  # noqa: E402

MAGIC = {"png": b"\x89PNG\r\n\x1a\n", "pdf": b"%PDF-", "svg": b"<?xml"}


def report(density=True, layers=True):
    """A report as `bnfast hessian --json` prints it."""
    net, X, y = problem("mlp", True)

    def fields(blocks):
        out = {"top": curvature.top_eigenvalues(net, X, y, k=3, blocks=blocks,
                                                progress=False),
               "bottom": curvature.top_eigenvalues(net, X, y, k=2, which="smallest",
                                                   blocks=blocks, progress=False),
               "trace": curvature.trace(net, X, y, samples=30, blocks=blocks,
                                        progress=False)}
        if density:
            out["density"] = curvature.density(net, X, y, runs=3, steps=10,
                                               blocks=blocks, progress=False)
        return out

    whole = {key: value.to_dict() for key, value in fields(None).items()}
    out = {"mode": "train", "num_params": net.num_params, **whole}
    if layers:
        per = fields("layer")
        out["layers"] = [{"layer": i, **{key: per[key][i].to_dict() for key in per}}
                         for i in per["top"]]
    return out


@pytest.mark.parametrize("suffix", ["png", "pdf", "svg"])
def test_curvature_figure_in_each_format(tmp_path, suffix):
    path = tmp_path / f"curvature.{suffix}"
    plot_curvature(path, report())
    assert path.read_bytes().startswith(MAGIC[suffix])


def test_curvature_figure_without_density_or_layers(tmp_path):
    path = tmp_path / "spectrum.svg"
    plot_curvature(path, report(density=False, layers=False))
    assert path.read_bytes().startswith(MAGIC["svg"])


def test_sharpness_figure(tmp_path):
    path = tmp_path / "sharpness.png"
    steps = np.arange(0, 1000, 100)
    plot_sharpness(path, steps, 2 / 0.01 * (1 - np.exp(-steps / 300)), lr=0.01)
    assert path.read_bytes().startswith(MAGIC["png"])
    with pytest.raises(ValueError, match="steps and values"):
        plot_sharpness(tmp_path / "bad.png", steps, steps[:-1], lr=0.01)
    with pytest.raises(ValueError, match="must end in one of"):
        plot_sharpness(tmp_path / "bad.jpg", steps, steps, lr=0.01)
