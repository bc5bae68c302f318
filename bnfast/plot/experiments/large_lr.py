"""Figure of `bnfast run large-lr`: test accuracy against the learning rate with and
without BN, and the largest stable learning rates, as in Bjorck et al. (2018), figure 1
(there: ResNet-110 on CIFAR-10 at several learning rates, with and without BN)."""

import textwrap

import numpy as np


def draw(result, plt):
    """One panel per network: the mean test accuracy over seeds (10-90% band) against
    the learning rate, BN solid and without BN dashed; the matched lr dash-dotted, each
    norm's median largest stable lr dotted and the seeds' largest stable lrs as ticks
    along the top (BN blue, standard orange). Right: the accuracy gaps at the matched lr
    and at the best lrs with their 90% intervals (green supported, red refuted), and in
    the title BN's largest stable lr over the standard net's (2 ** the mean log2 ratio)."""
    curves = result.measurements["curves"]
    rows = result.measurements["conditions"]
    settings = result.settings
    networks = [n for n in ("cnn", "mlp") if any(c["network"] == n for c in curves)]
    fig, axes = plt.subplots(1, len(networks) + 1, figsize=(6 * len(networks) + 6, 4.8))
    colors = {"bn": "C0", "none": "C1"}
    for ax, network in zip(axes, networks):
        for curve in (c for c in curves if c["network"] == network):
            lrs = np.asarray(curve["lrs"])
            color = colors[curve["norm"]]
            label = "BN" if curve["norm"] == "bn" else "no BN"
            ax.plot(lrs, curve["accuracy_mean"], color=color, marker="o",
                    ls="-" if curve["norm"] == "bn" else "--", label=label)
            ax.fill_between(lrs, curve["accuracy_p10"], curve["accuracy_p90"],
                            color=color, alpha=0.15)
            for lr in curve["largest_stable_lr"]:
                if lr:
                    ax.plot([lr], [1.02 if curve["norm"] == "bn" else 1.0], marker="|",
                            color=color, ms=10)
            ax.axvline(curve["largest_stable_lr_median"], color=color, ls=":", lw=1,
                       label=f"{label}: median largest stable lr "
                             f"{curve['largest_stable_lr_median']:.3g}")
        ax.axvline(settings["matched_lr"], color="k", ls="-.", lw=1,
                   label=f"matched lr {settings['matched_lr']:g}")
        ax.axhline(0.1, color="0.5", lw=0.8, ls=":", label="chance (diverged)")
        ax.set_xscale("log")
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("learning rate (SGD, momentum %g)" % settings["momentum"])
        ax.set_ylabel(f"test accuracy after {settings['steps']} steps")
        ax.set_title(f"{network.upper()}: accuracy vs learning rate", fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7, loc="lower left")
    right = axes[-1]
    labels, means, lows, highs, colours = [], [], [], [], []
    for row in rows:
        if row["kind"] == "larger lr":
            continue
        labels.append(row["condition"])
        means.append(row["mean"])
        lows.append(row["low"] if row["low"] is not None else row["mean"])
        highs.append(row["high"] if row["high"] is not None else row["mean"])
        colours.append({"supported": "C2", "refuted": "C3"}.get(row["outcome"], "0.5"))
    y = np.arange(len(labels))
    for i in range(len(labels)):
        right.plot([lows[i], highs[i]], [y[i], y[i]], color=colours[i], lw=3)
        right.plot([means[i]], [y[i]], "o", color=colours[i])
    margin = settings["accuracy_margin"]
    right.axvspan(-margin, margin, color="0.85", alpha=0.6,
                  label=f"similar: |gap| < {margin:g}")
    right.axvline(0, color="k", lw=0.8)
    right.set_yticks(y)
    right.set_yticklabels(labels, fontsize=8)
    right.set_xlabel("test accuracy gap BN - standard (mean, 90% interval)")
    ratios = result.measurements["verdict_inputs"]["lr_ratio"]
    right.set_title("BN's largest stable lr / standard's: " + ", ".join(
        f"{n} x{v:.3g}" for n, v in ratios.items()), fontsize=9)
    right.grid(alpha=0.3)
    right.legend(fontsize=7)
    fig.suptitle(textwrap.fill("BN's benefit comes from the larger learning rates it allows "
                               f"(Bjorck et al. 2018): {result.verdict.text}", 150),
                 fontsize=10)
    fig.tight_layout()
    return fig
