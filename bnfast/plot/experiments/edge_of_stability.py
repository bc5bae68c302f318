"""Figure of `bnfast run edge-of-stability`: the sharpness along full-batch gradient
descent divided by 2/lr, as in Cohen et al. (2021), figure 1 (there the sharpness
against 2/lr drawn as a dashed line; here in units of 2/lr so that the learning rates
share one axis), for the CNN and the MLP, with and without BN."""

import textwrap

import numpy as np


def draw(result, plt):
    """Top row: sharpness / (2/lr) against the step (mean over seeds, 10-90% band), one
    panel per (network, BN), one colour per lr, the threshold 1 dashed and the rule's
    band shaded. Bottom row: the training loss of the same runs (mean over seeds)."""
    curves = result.measurements["curves"]
    band = result.settings["band"]
    panels = [(n, b) for n in ("cnn", "mlp") for b in ("none", "bn")]
    fig, axes = plt.subplots(2, 4, figsize=(17, 7.5), sharex="col")
    outcomes = {(r["network"], r["norm"], r["lr"]): r["outcome"]
                for r in result.measurements["conditions"]}
    for col, (network, norm) in enumerate(panels):
        top, bottom = axes[0, col], axes[1, col]
        lrs = sorted({c["lr"] for c in curves if c["network"] == network})
        for i, curve in enumerate(c for c in curves
                                  if c["network"] == network and c["norm"] == norm):
            if not curve["steps"]:
                continue
            color = f"C{lrs.index(curve['lr'])}"
            steps = np.asarray(curve["steps"])
            mean = np.array([np.nan if v is None else v for v in curve["mean"]])
            p10 = np.array([np.nan if v is None else v for v in curve["p10"]])
            p90 = np.array([np.nan if v is None else v for v in curve["p90"]])
            outcome = outcomes.get((network, norm, curve["lr"]), "")
            top.plot(steps, mean, color=color, lw=1.5,
                     label=f"lr={curve['lr']:g} (2/lr={2 / curve['lr']:g}): {outcome}")
            top.fill_between(steps, p10, p90, color=color, alpha=0.15)
            loss = np.array([np.nan if v is None else v for v in curve["loss"]])
            bottom.plot(np.linspace(0, steps[-1], len(loss)), loss, color=color, lw=1.2,
                        label=f"lr={curve['lr']:g}")
        top.axhline(1.0, color="k", ls="--", lw=1, label="2/lr")
        top.axhspan(band[0], band[1], color="0.85", alpha=0.5, label=f"band {band}")
        top.set_ylabel("sharpness / (2/lr)")
        top.set_title(f"{network.upper()}, {'BN' if norm == 'bn' else 'no BN'}",
                      fontsize=10)
        top.set_ylim(0, 2.5)
        top.grid(alpha=0.3)
        top.legend(fontsize=7, loc="lower right")
        bottom.set_yscale("log")
        bottom.set_xlabel("step of full-batch gradient descent")
        bottom.set_ylabel("training loss")
        bottom.grid(alpha=0.3, which="both")
        bottom.legend(fontsize=7)
    fig.suptitle(textwrap.fill("Edge of stability (Cohen et al. 2021): under full-batch GD "
                               "the sharpness rises to 2/lr and hovers there? "
                               f"{result.verdict.text}", 160), fontsize=10)
    fig.tight_layout()
    return fig
