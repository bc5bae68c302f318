"""The figure of the ics experiment in the style of Santurkar et al. (2018), Figure 5: per
condition (the deep linear network at each learning rate, the MNIST-1D and digits
CNNs), the training loss with and without BN, cos(G, G') and
||G - G'||_2 of a few layers along training, and the curvature control (the top Hessian
eigenvalue against the stability threshold)."""

import textwrap

import numpy as np

__all__ = ["draw"]

_STYLES = {"standard": "-", "bn": "--"}
_NAMES = {"standard": "standard", "bn": "with BN"}
_COLORS = ["tab:blue", "tab:orange", "tab:green"]
_CONFIG_COLORS = {"standard": "tab:blue", "bn": "tab:red"}
_SHORT = {"dln": "25-layer DLN", "mnist1d": "MNIST-1D Conv1d",
          "digits-images": "digits Conv2d"}


def _array(values):
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def _layers(k):
    """The layers drawn (1-based) of a net with k weighted layers: the second, the
    middle one and the last (layer 1 has G' = G)."""
    return sorted({min(2, k), (k + 2) // 2, k})


def draw(result, plt):
    """Rows: the conditions. Columns: (1) the learning-set loss vs step, median over
    seeds (band: min to max); (2) cos(G, G') vs step for the second, middle and last
    layer (median over seeds); (3) ||G - G'||_2 for the same layers; (4) the top
    Hessian eigenvalue / stability threshold vs step, one thin line per seed and the
    median (1: the threshold; the band 0.9-1.1)."""
    m = result.measurements
    blocks = m["conditions"]
    inputs = m["verdict_inputs"]
    rows = list(blocks)
    fig, axes = plt.subplots(len(rows), 4, figsize=(21, 4.3 * len(rows) + 1.4),
                             squeeze=False)
    for row, condition in zip(axes, rows):
        block = blocks[condition]
        v = inputs[condition]
        curves = block["curves"]
        what = ("full-batch GD" if block["momentum"] == 0 and block["problem"] == "dln"
                else f"momentum SGD {block['momentum']:g}" if block["momentum"]
                else "SGD")
        label = f"{_SHORT.get(block['problem'], block['problem'])}, {what}, lr {block['lr']:g}"
        # (1) loss
        ax = row[0]
        for config, c in curves.items():
            steps = np.asarray(c["loss_steps"])
            ax.plot(steps, _array(c["loss_median"]), _STYLES[config],
                    color=_CONFIG_COLORS[config], label=f"{_NAMES[config]} (median)")
            ax.fill_between(steps, _array(c["loss_min"]), _array(c["loss_max"]),
                            color=_CONFIG_COLORS[config], alpha=0.12)
        ax.set_yscale("log")
        ax.set_xlabel("training step")
        ax.set_ylabel("learning-set loss")
        ax.set_title(f"{label}: {v['outcome']}\nloss, median of "
                     f"{len(v['per_seed_cosine_difference'])} seeds (band min-max)\nr "
                     f"{_mean(v['log_loss_ratio'])} -> (b) {v['speed_outcome']}",
                     fontsize=9)
        ax.legend(fontsize=8, handlelength=4)
        # (2), (3) ICS of a few layers along training
        k = len(curves["standard"]["cosine_per_layer"])
        for ax, key, name in ((row[1], "cosine_median", "cos(G, G')  (1: no shift)"),
                              (row[2], "l2_median", "||G - G'||_2  (0: no shift)")):
            for config, c in curves.items():
                values = np.array([_array(r) for r in c[key]])
                for color, layer in zip(_COLORS, _layers(k)):
                    ax.plot(c["checkpoint_steps"], values[:, layer - 1], _STYLES[config],
                            marker=".", color=color,
                            label=f"{_NAMES[config]}, layer {layer}")
            ax.set_xlabel("training step")
            ax.set_ylabel(name)
            ax.legend(fontsize=7, handlelength=4, ncol=2)
        row[1].set_ylim(-1.05, 1.05)
        row[1].set_title(
            f"ICS: cos(G, G') (median over seeds)\nC standard "
            f"{_num(v['median_cosine_standard'])}, BN {_num(v['median_cosine_bn'])}\nd "
            f"{_mean(v['cosine_difference'])} -> (a) {v['ics_outcome']}", fontsize=9)
        row[2].set_yscale("log")
        row[2].set_title("ICS: ||G - G'||_2 (median over seeds)\nreported, not judged",
                         fontsize=9)
        # (4) sharpness vs the stability threshold
        ax = row[3]
        edge = block["curvature"]
        for config, c in curves.items():
            ratios = np.array([_array(r) for r in c["sharpness_ratio"]])
            steps = c["sharpness_steps"]
            for seed_ratios in ratios:
                ax.plot(steps, seed_ratios, _STYLES[config], color=_CONFIG_COLORS[config],
                        alpha=0.25, linewidth=0.8)
            with np.errstate(all="ignore"):
                median = np.array([np.nanmedian(col) if np.isfinite(col).any() else np.nan
                                   for col in ratios.T])
            ax.plot(steps, median, _STYLES[config], marker="o", markersize=3,
                    color=_CONFIG_COLORS[config],
                    label=f"{_NAMES[config]} (median; at the edge in "
                          f"{edge[config]['seeds_at_edge']}/{edge[config]['seeds']} seeds)")
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.axhspan(0.9, 1.1, color="grey", alpha=0.15)
        ax.set_yscale("symlog", linthresh=0.1)
        ax.set_xlabel("training step")
        ax.set_ylabel("top Hessian eigenvalue / threshold")
        flagged = v["at_edge_of_stability"]
        ax.set_title(f"curvature control: sharpness / {edge['threshold']:.3g}\n"
                     f"({'2' if not block['momentum'] else '(2 + 2 momentum)'} / lr: "
                     "the stability threshold)"
                     + (f"\nAT THE EDGE OF STABILITY: {', '.join(flagged)}" if flagged
                        else ""), fontsize=9)
        ax.legend(fontsize=7, handlelength=4)
    fragile = result.fragility
    fragility = ("" if fragile is None else
                 f"; {fragile['flips']} of {fragile['of']} alternative summaries flip it"
                 + (f" ({'; '.join(fragile['which'])})" if fragile["which"] else ""))
    verdict = textwrap.fill(f"Verdict (rule v{result.rule_version}): {result.verdict}"
                            f"{fragility}", 170)
    fig.suptitle("Claim: BN does not reduce internal covariate shift (Def. 2.1), yet trains "
                 f"faster (Santurkar et al. 2018, Fig. 5)\n{verdict}", fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.9 / fig.get_figheight()))
    return fig


def _num(value):
    return "n/a" if value is None else f"{value:.3g}"


def _mean(entry):
    if entry["mean"] is None:
        return "n/a"
    if entry["low"] is None:
        return f"{entry['mean']:.3g}"
    return f"{entry['mean']:.3g} [{entry['low']:.3g}, {entry['high']:.3g}]"
