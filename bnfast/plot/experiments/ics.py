"""The figure of the ics experiment (Santurkar et al. 2018, Figure 5): loss curves with
and without BN, and the ICS cosine and l2 distance per layer."""

import numpy as np

__all__ = ["draw"]

_COLORS = {"standard": "tab:blue", "bn": "tab:red"}
_LABELS = {"standard": "standard", "bn": "with BN"}
_STYLES = ["-", "--", ":"]


def draw(result, plt):
    """Row 1: training loss vs step (DLN at each learning rate; digits). Row 2: per
    layer, the median over checkpoints of cos(G, G') (band: min to max over
    checkpoints) and of ||G - G'||_2, for every problem; Row 3: cos(G, G') along
    training for a few layers of the DLN at the paper's first learning rate."""
    runs = result.measurements["runs"]
    keys = list(runs)
    dln_keys = [k for k in keys if k.startswith("dln")]
    fig, axes = plt.subplots(3, 2, figsize=(12, 12.5))
    # losses
    for ax, group in ((axes[0, 0], dln_keys), (axes[0, 1], [k for k in keys
                                                             if k not in dln_keys])):
        for style, key in zip(_STYLES, group):
            for name, run in runs[key].items():
                ax.plot(run["loss_steps"], run["losses"], style, color=_COLORS[name],
                        label=f"{_LABELS[name]}, {key}")
        ax.set_yscale("log")
        ax.set_xlabel("training step")
        ax.set_ylabel("training loss (" + ("sum" if group is dln_keys else "mean")
                      + " of squared errors)")
        ax.set_title("25-layer deep linear network, full-batch GD" if group is dln_keys
                     else "digits MLP, SGD")
        ax.legend(fontsize=8, handlelength=4)   # long enough to show the dashes
    # per-layer ICS
    for style, key in zip(["-", "--", ":", "-."], keys):
        for name, run in runs[key].items():
            layers = np.arange(1, len(run["median_cosine_per_layer"]) + 1)
            cos = np.array([[np.nan if c is None else c for c in row]
                            for row in run["cosine"]])
            median = np.array([np.nan if c is None else c
                               for c in run["median_cosine_per_layer"]])
            axes[1, 0].plot(layers, median, style, marker=".", color=_COLORS[name],
                            label=f"{_LABELS[name]}, {key}")
            axes[1, 0].fill_between(layers, np.nanmin(cos, 0), np.nanmax(cos, 0),
                                    color=_COLORS[name], alpha=0.08)
            # layer 1's distance is 0 by definition: not drawn on the log scale
            axes[1, 1].plot(layers[1:], run["median_l2_per_layer"][1:], style, marker=".",
                            color=_COLORS[name], label=f"{_LABELS[name]}, {key}")
    axes[1, 0].set_ylabel("cos(G, G')  (1: no shift)")
    axes[1, 0].set_ylim(-1.05, 1.05)
    axes[1, 1].set_ylabel("||G - G'||_2  (0: no shift)")
    axes[1, 1].set_yscale("log")
    for ax, what in ((axes[1, 0], "cosine"), (axes[1, 1], "l2 distance")):
        ax.set_xlabel("layer i (layer 1 has G' = G)")
        ax.set_title(f"ICS {what} per layer: median over checkpoints"
                     + (" (band: min-max)" if what == "cosine" else ""))
        ax.legend(fontsize=7, handlelength=4)
    # cosine along training, a few layers of the DLN
    if dln_keys:
        for ax, key in zip(axes[2], dln_keys[:2]):
            for name, run in runs[key].items():
                cos = np.array([[np.nan if c is None else c for c in row]
                                for row in run["cosine"]])
                depth = cos.shape[1]
                for style, layer in zip(["-", "--", ":"], sorted({2, depth // 2, depth})):
                    ax.plot(run["checkpoint_steps"], cos[:, layer - 1], style, marker=".",
                            color=_COLORS[name], label=f"{_LABELS[name]}, layer {layer}")
            ax.set_xlabel("training step")
            ax.set_ylabel("cos(G, G')")
            ax.set_ylim(-1.05, 1.05)
            ax.set_title(f"ICS cosine along training, {key}")
            ax.legend(fontsize=8, handlelength=4)   # long enough to show the dashes
    else:
        for ax in axes[2]:
            ax.axis("off")
    outcomes = ", ".join(f"{key}: {outcome}" for key, outcome in
                         result.measurements["outcomes"].items())
    fig.suptitle("Claim: BN does not reduce internal covariate shift (Def. 2.1), yet trains "
                 f"faster (Santurkar et al. 2018, Fig. 5) - verdict: {result.verdict}\n"
                 f"rule per problem: {outcomes} (digits reported, not in the verdict)",
                 fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    return fig
