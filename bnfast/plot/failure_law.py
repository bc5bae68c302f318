"""The figure of Lemma 4.5's failure law: the measured rate per random data set against
its closed form 1/2 - theta/(2 pi) (bnfast.search.failure_law)."""

import numpy as np

from .save import figure_format, pyplot, save_and_close

__all__ = ["plot_failure_law"]


def plot_failure_law(path, law):
    """Writes the figure of a FailureLaw to ``path`` (.png, .pdf, .svg)."""
    figure_format(path)
    plt = pyplot()
    fig, (ax, hist) = plt.subplots(1, 2, figsize=(11, 4.6),
                                   gridspec_kw={"width_ratios": [1.25, 1]})
    rates = law.rates()
    low, high = law.intervals().T
    ax.errorbar(law.predicted, rates, yerr=[rates - low, high - rates], fmt="o", ms=3,
                color="tab:blue", ecolor="tab:blue", alpha=0.6, elinewidth=0.8,
                label=f"measured, 95% interval ({law.initializations:,} w0 each)")
    line = np.linspace(0, 0.5, 2)
    ax.plot(line, line, "k--", lw=1, label="closed form 1/2 - theta/(2 pi)")
    ax.set_xlabel("closed form 1/2 - theta/(2 pi), theta = angle(a, W*)")
    ax.set_ylabel("measured P[(1) holds | <w0, W*> > 0]")
    ax.set_xlim(0, 0.52)
    ax.set_ylim(0, 0.52)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(f"{len(rates)} random data sets (dim {law.dim}, {law.samples} samples): "
                 f"{100 * law.inside():.0f}% of intervals\ncontain the closed form",
                 fontsize=10)
    hist.hist(law.predicted, bins=25, range=(0, 0.5), color="tab:orange",
              edgecolor="white")
    mean = float(np.mean(law.predicted))
    hist.axvline(mean, color="k", lw=1)
    hist.set_xlabel("P[(1) holds | premise] of a data set")
    hist.set_ylabel("data sets")
    # P[premise] = 1/2 for an isotropic w0: of all initializations it fails for half.
    hist.set_title(f"of the initializations with <w0, W*> > 0, (1) holds for "
                   f"{100 * mean:.0f}%\non average: it FAILS for {100 * (1 - mean):.0f}% "
                   f"of them ({50 * (1 - mean):.0f}% of all)", fontsize=10)
    fig.suptitle("Lemma 4.5 of Santurkar et al. (2018) fails for most random "
                 "initializations that satisfy its premise, as the closed form predicts",
                 fontsize=11)
    fig.tight_layout()
    return save_and_close(fig, path)
