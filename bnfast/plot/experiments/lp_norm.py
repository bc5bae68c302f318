"""The figure of the lp-norm experiment, after Santurkar et al. (2018) Figure 5 and
Figures 12-13: per problem (rows), the training loss curves of the five normalizations
(median over seeds, band min-max over seeds), the effective beta-smoothness along
training (median over seeds), and the distribution shift of the layer inputs per
normalization (one dot per seed)."""

import numpy as np

__all__ = ["draw"]

_COLORS = {"none": "tab:blue", "std": "tab:red", "l1": "tab:green", "l2": "tab:purple",
           "linf": "tab:orange"}
_LABELS = {"none": "no normalization", "std": "BN (std)", "l1": "l1", "l2": "l2",
           "linf": "linf"}
_ROWS = (("dln", "25-layer deep linear network"), ("digits", "digits MLP"))


def draw(result, plt):
    """Figure with 2 x 3 panels from result.measurements and result.settings."""
    measurements = result.measurements
    fig, axes = plt.subplots(2, 3, figsize=(16, 8.2))
    for row, (problem, title) in enumerate(_ROWS):
        setup = result.settings[problem]
        for position, (norm, block) in enumerate(measurements["problems"][problem].items()):
            color, label = _COLORS[norm], _LABELS[norm]
            if "test_accuracy" in block:
                accuracy = [v for v in block["test_accuracy"] if v is not None]
                if accuracy:
                    label += f" (test acc. {np.median(accuracy):.3f})"
            # Diverged runs (shorter curves) are left out of the band.
            curves = [np.array(c, dtype=float)
                      for c, stop in zip(block["losses"], block["diverged_step"])
                      if stop is None]
            if curves:
                stack = np.vstack(curves)
                steps = np.linspace(0, setup["steps"], stack.shape[1])
                axes[row, 0].semilogy(steps, np.median(stack, 0), color=color, label=label)
                axes[row, 0].fill_between(steps, stack.min(0), stack.max(0), color=color,
                                          alpha=0.15)
            beta = np.array([[np.nan if v is None else v for v in run]
                             for run in block["beta"]], dtype=float)
            axes[row, 1].semilogy(block["checkpoint_steps"], np.nanmedian(beta, 0), "o-",
                                  color=color, ms=3, label=_LABELS[norm])
            shifts = [v for v in block["shift"] if v is not None]
            axes[row, 2].scatter([position] * len(shifts), shifts, color=color, zorder=3)
            if shifts:
                axes[row, 2].hlines(np.median(shifts), position - 0.3, position + 0.3,
                                    color=color)
        axes[row, 0].set_title(f"{title}: training loss (median, band over seeds)",
                               fontsize=10)
        axes[row, 0].set_xlabel("training step")
        axes[row, 0].set_ylabel("loss (learning set)")
        axes[row, 1].set_title("effective beta-smoothness along the gradient "
                               f"({setup['multipliers'][0]:g}-{setup['multipliers'][1]:g} x lr)",
                               fontsize=10)
        axes[row, 1].set_xlabel("training step")
        axes[row, 1].set_ylabel("max ||g - g'|| / ||x - x'|| (median over seeds)")
        norms = list(measurements["problems"][problem])
        axes[row, 2].set_xticks(range(len(norms)), [_LABELS[n] for n in norms], fontsize=8)
        axes[row, 2].set_yscale("log")
        axes[row, 2].set_title("layer-input distribution shift, start to end", fontsize=10)
        axes[row, 2].set_ylabel("relative W2 of per-unit Gaussian fits")
        for ax in axes[row, :2]:
            ax.legend(fontsize=8)
    from ...experiments.lp_norm import SUB_CLAIMS, deciding

    if "conditions" in measurements:           # version 2: the conditions decide
        outcomes = "; ".join(f"{name}: {c['outcome']}"
                             for name, c in measurements["conditions"].items())
        fig.suptitle("Santurkar et al. (2018) Fig. 5, 12-13: lp normalization performs "
                     f"like BN. Verdict: {result.verdict}\n{outcomes}", fontsize=9)
        fig.tight_layout(rect=(0, 0, 1, 0.93))
        return fig
    claims = measurements["sub_claims"]
    verdicts = "; ".join(f"{SUB_CLAIMS[name]}: {claim['verdict']}"
                         for name, claim in claims.items())
    decided = ", ".join(SUB_CLAIMS[name].split()[0]
                        for name in deciding(claims, result.verdict))
    fig.suptitle("Santurkar et al. (2018) Fig. 5, 12-13: lp normalization performs like BN. "
                 f"Verdict: {result.verdict}, decided by {decided}\n{verdicts}",
                 fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return fig
