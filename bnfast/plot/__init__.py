"""Figures, one module per figure family. matplotlib is optional
(pip install 'bnfast[plot]') and imported only when a figure is drawn, with the Agg
backend (no display needed).

    plot_example_3_2(path, report=None), plot_lemma_4_5(path, X, y, report, ...)
        the loss landscapes of the standard and the BN network (landscape.py)
    save_figure(fig, path)      writes the format the path's suffix names (save.py)
"""

from .landscape import plot_example_3_2, plot_lemma_4_5
from .save import FORMATS, figure_format, save_figure

__all__ = ["FORMATS", "figure_format", "plot_example_3_2", "plot_lemma_4_5", "save_figure"]
