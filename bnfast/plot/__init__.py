"""Figures, one module per figure family. matplotlib is optional
(pip install 'bnfast[plot]') and imported only when a figure is drawn, with the Agg
backend (no display needed).

    plot_example_3_2(path, report=None), plot_lemma_4_5(path, X, y, report, ...)
        the loss landscapes of the standard and the BN network (landscape.py)
    plot_curvature(path, report), plot_sharpness(path, steps, values, lr)
        the Hessian's eigenvalues and spectral density of `bnfast hessian`; the top
        eigenvalue along training against 2/lr (curvature.py)
    save_figure(fig, path)      writes the format the path's suffix names (save.py)
"""

from .curvature import plot_curvature, plot_sharpness
from .landscape import plot_example_3_2, plot_lemma_4_5
from .save import FORMATS, figure_format, save_figure

__all__ = ["FORMATS", "figure_format", "plot_curvature", "plot_example_3_2", "plot_lemma_4_5",
           "plot_sharpness", "save_figure"]
