"""The figure of the landscape experiment, after Santurkar et al. (2018) Figure 4: one row
per problem (the DLN, the MNIST-1D and digits CNNs, the dense digits MLP when it ran),
with and without BN: (a) the band (min to max along the gradient) of the loss and (b) of
the gradient change (the first seed's run, as the paper shows one run), (c) the
effective beta-smoothness of every seed (thin) and its median over seeds (thick), (d)
the curvature control, the largest Hessian eigenvalue over the stability threshold
(1 = the edge of stability), and (e) the training loss (median over seeds). The early
window the rule judges is shaded."""

import numpy as np

__all__ = ["draw"]

_STYLE = {"standard": ("tab:blue", "standard"), "bn": ("tab:red", "BN")}
_SHORT = {"dln": "25-layer DLN", "mnist1d": "MNIST-1D Conv1d",
          "digits-images": "digits Conv2d", "digits": "digits MLP (extra)"}


def draw(result, plt):
    """Figure with (problems x 5) panels from result.measurements and result.settings
    (version 3; a version-1/2 result has only the first two problems and no sharpness
    ratios: panel (d) then shows |largest Hessian eigenvalue|)."""
    problems = result.measurements["problems"]
    rows = list(problems)
    fig, axes = plt.subplots(len(rows), 5, figsize=(23, 3.6 * len(rows) + 1.2),
                             squeeze=False)
    for row, problem in enumerate(rows):
        block, setup = problems[problem], result.settings[problem]
        low, high = setup["multipliers"]
        label = _SHORT.get(problem, problem) + ("" if block.get("judged", True)
                                                else " - reported, not judged")
        for config, (color, name) in _STYLE.items():
            runs = block["runs"][config]
            first = runs[0]
            steps = np.array(first["steps"], dtype=float)
            for col, (lo_key, hi_key) in ((0, ("loss_min", "loss_max")),
                                          (1, ("grad_change_min", "grad_change_max"))):
                lo, hi = _floats(first[lo_key]), _floats(first[hi_key])
                axes[row, col].fill_between(steps, lo, hi, color=color, alpha=0.35,
                                            label=name)
                axes[row, col].plot(steps, hi, color=color, lw=0.8)
                axes[row, col].plot(steps, lo, color=color, lw=0.8)
            _seeds(axes[row, 2], runs, "beta", color, name)
            if "sharpness_ratio" in first:
                _seeds(axes[row, 3], runs, "sharpness_ratio", color, name)
            else:
                _seeds(axes[row, 3], runs, "hessian_max", color, name, absolute=True)
            _loss_curves(axes[row, 4], runs, setup, color, name)
        edge = block.get("at_edge_of_stability") or []
        titles = (f"{label}: loss along the gradient\n(eta in [{low:g}, {high:g}] x lr, "
                  "seed 1)",
                  "gradient predictiveness ||g - g'|| (seed 1)",
                  "effective beta-smoothness (all seeds)",
                  ("sharpness / stability threshold" if "curvature" in block
                   else "|largest Hessian eigenvalue|") + (
                      f"\nat the edge: {', '.join('BN' if c == 'bn' else c for c in edge)}"
                      if edge else ""),
                  "training loss (median over seeds)")
        ylabels = ("loss L(x - eta g) (band)", "||grad L(x) - grad L(x - eta g)|| (band)",
                   "max ||g - g'|| / ||x - x'||",
                   "lambda_max / threshold" if "curvature" in block else "|lambda_max|",
                   "loss (learning set)")
        for col, ax in enumerate(axes[row]):
            ax.set_title(titles[col], fontsize=9.5)
            ax.set_xlabel("training step")
            ax.set_ylabel(ylabels[col], fontsize=8.5)
            ax.set_yscale("log")
            if col < 4:
                ax.axvspan(0, block["early_step_limit"], color="0.92", zorder=0,
                           label="early (judged)" if col == 0 else None)
            ax.legend(fontsize=7.5)
        if "curvature" in block:
            axes[row, 3].axhline(1.0, color="k", lw=1, ls="--")
            axes[row, 3].axhspan(0.9, 1.1, color="tab:orange", alpha=0.15, zorder=0)
            axes[row, 3].text(0.02, 0.97, f"threshold {block['curvature']['threshold']:.3g}"
                              " (dashed: 1)", transform=axes[row, 3].transAxes,
                              fontsize=7.5, va="top")
    fragile = result.fragility
    fig.suptitle("Santurkar et al. (2018) Fig. 4: BN makes the loss landscape smoother. "
                 f"Verdict: {result.verdict}\n" + _cells_line(result)
                 + ("" if not fragile else
                    f"; fragility: {fragile['flips']} of {fragile['of']} alternatives flip"),
                 fontsize=10.5)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.9 / (3.6 * len(rows) + 1.2)))
    return fig


def _cells_line(result):
    """The verdict's key figures (the experiment's headline: seeds with BN smaller per
    judged cell; version 1: the pooled fractions)."""
    from ...experiments.runner import experiment

    return experiment(result.name).headline(result.measurements["verdict_inputs"])


def _seeds(ax, runs, key, color, name, absolute=False):
    """Every seed's values of ``key`` along its checkpoints (thin) and the median over
    the seeds that have a value at a step (thick)."""
    by_step = {}
    for run in runs:
        values = _floats(run[key])
        if absolute:
            values = np.abs(values)
        ax.plot(run["steps"], values, color=color, lw=0.5, alpha=0.35)
        for step, value in zip(run["steps"], values):
            by_step.setdefault(step, []).append(value)
    steps = sorted(by_step)
    medians = [np.nanmedian(by_step[s]) if np.any(np.isfinite(by_step[s])) else np.nan
               for s in steps]
    ax.plot(steps, medians, "o-", color=color, ms=3, lw=1.6, label=f"{name} (median)")


def _loss_curves(ax, runs, setup, color, name):
    """The median over seeds of the learning-set loss curves (each recorded every
    record_every steps, then downsampled evenly end to end; a diverged run is left
    out)."""
    curves = [np.array(_floats(r["losses"])) for r in runs if r["diverged_step"] is None]
    if not curves:
        return
    length = min(len(c) for c in curves)
    curves = np.array([c[:length] for c in curves])
    x = np.linspace(0, setup["steps"], length)
    ax.plot(x, np.nanmedian(curves, axis=0), color=color, label=name)


def _floats(values):
    """A list with None (a non-finite value) as NaN (a gap in the line)."""
    return np.array([np.nan if v is None else v for v in values], dtype=float)
