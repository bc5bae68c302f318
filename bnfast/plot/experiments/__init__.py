"""The figures of `bnfast run NAME --plot PATH`, one module per experiment (ics.py,
explosion.py, ...; the module is the experiment's name with "_" for "-"). Each defines
``draw(result, plt) -> Figure``, drawing from ``result.measurements`` and
``result.settings`` alone, so a result read back from JSON plots the same."""

import importlib

from ..save import save_and_close

__all__ = ["plot_experiment"]


def plot_experiment(result, path):
    """Writes the figure of ``result`` (an ExperimentResult, or its ``to_dict()``) to
    ``path`` (.png, .pdf or .svg); returns the path."""
    from ...experiments import ExperimentResult
    from ..save import figure_format, pyplot

    if isinstance(result, dict):
        result = ExperimentResult.from_dict(result)
    figure_format(path)
    plt = pyplot()
    module = importlib.import_module(f".{result.name.replace('-', '_')}", __package__)
    fig = module.draw(result, plt)
    label_quick(fig, result)
    return save_and_close(fig, path)


def label_quick(fig, result):
    """A quick run's figure says so at the head of its title (its verdict may differ
    from the full run's)."""
    if not result.quick:
        return
    from ...experiments.result import QUICK_LABEL

    title = fig._suptitle
    if title is None:
        fig.suptitle(QUICK_LABEL, color="tab:red")
    else:
        title.set_text(f"{QUICK_LABEL}\n{title.get_text()}")
        title.set_color("tab:red")
