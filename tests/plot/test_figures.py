"""Figures: the path's suffix names the format, bad paths fail before any work, and the
landscape's BN panel agrees with the closed-form BN loss."""

import math

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from bnfast import plot  # noqa: E402
from bnfast.claims import example_3_2  # noqa: E402
from bnfast.plot.landscape import _losses  # noqa: E402

MAGIC = {"png": b"\x89PNG\r\n\x1a\n", "pdf": b"%PDF-", "svg": b"<?xml"}


@pytest.mark.parametrize("suffix", ["png", "pdf", "svg", "PDF"])
def test_suffix_names_the_format(tmp_path, suffix):
    report = example_3_2(cross_check=False)
    path = tmp_path / f"figure.{suffix}"
    plot.plot_example_3_2(path, report)
    head = path.read_bytes()[:8]
    assert head.startswith(MAGIC[suffix.lower()]), head


@pytest.mark.parametrize("path,match", [
    ("", "the figure path is empty"),
    ("figure.jpg", r"must end in one of \.png, \.pdf, \.svg"),
    ("figure", r"must end in one of"),
])
def test_bad_paths_are_refused(tmp_path, path, match):
    assert plot.figure_format("a.svg") == "svg"
    with pytest.raises(ValueError, match=match):
        plot.figure_format(path)
    with pytest.raises(ValueError, match=match):
        plot.plot_example_3_2(path, example_3_2(cross_check=False))


def test_bn_panel_is_the_closed_form_loss():
    """L_BN(w) = S - 2 gamma sqrt(m) <y_c, u>/||u||, u = X_c w (docs/math/lemma_4_5.md),
    against the kernel-computed grid, including a grid point where X w is constant."""
    X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    y = np.array([8.0, 6.0, 11.0])
    W1, W2 = np.meshgrid(np.linspace(-1, 1, 5), np.linspace(-1, 1, 5))
    std, bn = _losses(X, y, 1.0, 0.0, W1, W2)
    Xc, yc = X - X.mean(axis=0), y - y.mean()
    for w1, w2, s, b in zip(W1.ravel(), W2.ravel(), std.ravel(), bn.ravel()):
        w = np.array([w1, w2])
        assert s == pytest.approx(np.sum((y - X @ w) ** 2), rel=1e-12)
        u = Xc @ w
        if np.linalg.norm(u) == 0:
            assert math.isnan(b)                       # w = 0: no BN output with eps = 0
        else:
            closed = np.sum(y ** 2) + 3 - 2 * math.sqrt(3) * (yc @ u) / np.linalg.norm(u)
            assert b == pytest.approx(closed, rel=1e-12)
