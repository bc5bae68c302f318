"""Figure of `bnfast run residual-identity`: the signal-propagation picture of De and Smith
(2020) at initialization: the skip path's second moment against the block, linear with
BN and doubling without, and the share of each block's output its branch carries,
1/(q_0 + l) with BN and 1/2 without, each against its closed form."""

import textwrap

import numpy as np

_COLORS = {"bn": "C0", "none": "C3"}


def draw(result, plt):
    """Columns: the dense and the Conv1d networks. Top: Var(x_l) = mean(x_l^2) (mean over
    seeds, 10-90% band) with the closed forms dashed (q_0 + l; 2^l q_0, and for the
    zero-padded conv its padding-aware form dotted). Bottom: rho_l = Var(f_l)/Var(x_l)
    with 1/(q_0 + l) and 1/2; the rule's checkpoints marked."""
    networks = result.measurements["networks"]
    checkpoints = result.settings["checkpoints"]
    architectures = [a for a in ("dense", "conv")
                     if any(n["architecture"] == a for n in networks.values())]
    fig, axes = plt.subplots(2, len(architectures), figsize=(5.6 * len(architectures), 8),
                             squeeze=False)
    for column, architecture in enumerate(architectures):
        top, bottom = axes[0][column], axes[1][column]
        for name, net in networks.items():
            if net["architecture"] != architecture:
                continue
            color = _COLORS[net["norm"]]
            curves = net["curves"]
            q = curves["q"]
            blocks = np.arange(len(q["mean"]))
            top.plot(blocks, q["mean"], color=color, lw=1.6, label=f"{name}: measured")
            top.fill_between(blocks, q["p10"], q["p90"], color=color, alpha=0.15)
            top.plot(blocks[1:], curves["plain_skip"], color=color, ls="--", lw=1.1,
                     label=("q_0 + l" if net["norm"] == "bn" else "2^l q_0")
                     + " (paper)")
            if net["norm"] == "none" and architecture == "conv":
                top.plot(blocks[1:], curves["closed_skip"], color="k", ls=":", lw=1.2,
                         label="(I + A^2)^l q_0 (zero padding)")
            if net["norm"] == "bn":
                top.plot(blocks, curves["variance"], color=color, lw=0.8, alpha=0.7,
                         ls="-.", label=f"{name}: channel variance")
            ratio = curves["ratio"]
            depth = blocks[1:]
            bottom.plot(depth, ratio["mean"], color=color, lw=1.6, label=f"{name}")
            bottom.fill_between(depth, ratio["p10"], ratio["p90"], color=color,
                                alpha=0.15)
            bottom.plot(depth, curves["plain_ratio"], color=color, ls="--", lw=1.1,
                        label="1/(q_0 + l)" if net["norm"] == "bn" else "1/2")
            if net["norm"] == "none" and architecture == "conv":
                bottom.plot(depth, curves["closed_ratio"], color="k", ls=":", lw=1.2,
                            label="m2/(m0 + m2) (zero padding)")
        for ax in (top, bottom):
            for l in checkpoints:
                ax.axvline(l, color="0.6", lw=0.6, ls=":")
            ax.grid(alpha=0.3)
        top.set_yscale("log")
        top.set_xlabel("block l")
        top.set_ylabel("Var(x_l) = mean(x_l^2) of the skip path")
        top.set_title(f"{architecture}: the skip path grows linearly with BN, "
                      "doubles without", fontsize=9)
        top.legend(fontsize=7, loc="upper left")
        bottom.set_xscale("log")
        bottom.set_yscale("log")
        bottom.set_xlabel("block l")
        bottom.set_ylabel("Var(f_l) / Var(x_l): the branch's share")
        bottom.set_title(f"{architecture}: BN scales the branch down by sqrt(q_0 + l)",
                         fontsize=9)
        bottom.legend(fontsize=7, loc="lower left")
    fig.suptitle(textwrap.fill("BN biases residual blocks towards the identity at "
                               f"initialization (De and Smith 2020): {result.verdict}",
                               120), fontsize=10)
    fig.tight_layout()
    return fig
