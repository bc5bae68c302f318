"""The figure of the landscape experiment, after Santurkar et al. (2018) Figure 4: per
problem (rows), the training loss and, per checkpoint, the band (min to max along the
gradient) of the loss, the band of the gradient change, and the effective
beta-smoothness, with and without BN (first seed's run)."""

import numpy as np

__all__ = ["draw"]

_STYLE = {"standard": ("tab:blue", "standard"), "bn": ("tab:red", "BN")}
_ROWS = (("dln", "25-layer deep linear network"), ("digits", "digits MLP"))


def draw(result, plt):
    """Figure with 2 x 4 panels from result.measurements and result.settings."""
    problems = result.measurements["problems"]
    fig, axes = plt.subplots(2, 4, figsize=(17, 7.8))
    for row, (problem, label) in enumerate(_ROWS):
        block, setup = problems[problem], result.settings[problem]
        low, high = setup["multipliers"]
        for config, (color, name) in _STYLE.items():
            run = block["runs"][config][0]
            losses = np.array(run["losses"], dtype=float)
            # Recorded every record_every steps, then downsampled evenly end to end.
            last_step = setup["steps"] if run["diverged_step"] is None else run["diverged_step"]
            axes[row, 0].semilogy(np.linspace(0, last_step, len(losses)), losses,
                                  color=color, label=name)
            steps = np.array(run["steps"], dtype=float)
            for col, (lo_key, hi_key) in ((1, ("loss_min", "loss_max")),
                                          (2, ("grad_change_min", "grad_change_max"))):
                lo, hi = _floats(run[lo_key]), _floats(run[hi_key])
                axes[row, col].fill_between(steps, lo, hi, color=color, alpha=0.35,
                                            label=name)
                axes[row, col].plot(steps, hi, color=color, lw=0.8)
                axes[row, col].plot(steps, lo, color=color, lw=0.8)
            axes[row, 3].semilogy(steps, _floats(run["beta"]), "o-", color=color, ms=3,
                                  label=name)
        limit = block["early_step_limit"]
        titles = (f"{label}: training loss",
                  f"loss along the gradient, eta in [{low:g}, {high:g}] x lr",
                  "gradient predictiveness ||g - g'||",
                  "effective beta-smoothness")
        ylabels = ("loss (learning set)", "loss L(x - eta g) (band)",
                   "||grad L(x) - grad L(x - eta g)|| (band)",
                   "max ||g - g'|| / ||x - x'||")
        for col, ax in enumerate(axes[row]):
            ax.set_title(titles[col], fontsize=10)
            ax.set_xlabel("training step")
            ax.set_ylabel(ylabels[col], fontsize=9)
            if col in (1, 2):
                ax.set_yscale("log")
            if col:
                ax.axvspan(0, limit, color="0.9", zorder=0,
                           label="early (judged)" if col == 3 else None)
            ax.legend(fontsize=8)
    verdict_inputs = result.measurements["verdict_inputs"]
    fractions = ", ".join(
        f"{key.split('.')[0]} {key.split('.')[1]} {value['bn_smaller_fraction_early']:.0%}"
        for key, value in verdict_inputs.items() if isinstance(value, dict)
        and value["bn_smaller_fraction_early"] is not None)
    fig.suptitle("Santurkar et al. (2018) Fig. 4: BN makes the loss landscape smoother "
                 f"(first seed shown). Verdict: {result.verdict}\n"
                 f"BN smaller at this fraction of early checkpoints: {fractions}",
                 fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return fig


def _floats(values):
    """A list with None (a non-finite value) as NaN (a gap in the line)."""
    return np.array([np.nan if v is None else v for v in values], dtype=float)
