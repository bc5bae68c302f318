"""The figure of the noisy-bn experiment (Santurkar et al. 2018, Figures 2 and 7), rule
version 3: one row per problem (the MNIST-1D and digits CNNs, the dense digits MLP as a
reported extra); columns: test accuracy against steps of the standard, BN, noisy-BN and
control networks (mean over seeds, band +- 1 std); the noise-free training loss; the
rule, per seed A_net - A_BN (A: mean test accuracy over the checkpoints) with its 90%
interval against +- the margin (half of BN's gain); the drift of the mean and of the
variance of each hidden layer's activation input over one SGD step (Figure 7)."""

import numpy as np

__all__ = ["draw"]

_COLORS = {"standard": "tab:blue", "bn": "tab:red", "noisy_bn": "tab:green",
           "control": "tab:purple"}
_LABELS = {"standard": "standard", "bn": "standard + BN", "noisy_bn": "standard + noisy BN",
           "control": "standard + the same noise (control)"}
_TITLES = {"mnist1d": "MNIST-1D Conv1d network", "digits-images": "digits Conv2d network",
           "digits": "dense digits MLP (reported extra)"}


def _rule_panel(ax, runs, inputs, seeds):
    """Per network, per seed A_net - A_BN (dots) and the mean with its 90% t interval
    (bar) for noisy BN; the margin band +- half of BN's gain."""
    bn = np.asarray([np.nan if v is None else v for v in runs["bn"]["mean_accuracy"]])
    for k, config in enumerate(("standard", "noisy_bn", "control")):
        values = np.asarray([np.nan if v is None else v for v in runs[config]["mean_accuracy"]])
        d = values - bn
        ax.plot(np.full(len(d), k) + np.linspace(-0.15, 0.15, len(d)), d, "o", ms=4,
                color=_COLORS[config], alpha=0.7)
        if np.any(np.isfinite(d)):
            ax.plot([k - 0.25, k + 0.25], [np.nanmean(d)] * 2, color=_COLORS[config], lw=2)
    tost = inputs.get("tost_noisy_minus_bn")
    if tost is not None and tost["low"] is not None:
        ax.errorbar([1.35], [tost["mean"]], yerr=[[tost["mean"] - tost["low"]],
                                                  [tost["high"] - tost["mean"]]],
                    fmt="s", color="k", capsize=4, label="noisy - BN, 90% interval")
        ax.axhspan(-tost["margin"], tost["margin"], color="0.85", zorder=0,
                   label="margin: +- half of BN's gain")
    ax.axhline(0.0, color="k", lw=0.8)
    ax.set_xticks([0, 1, 2])
    ax.set_xticklabels(["standard", "noisy BN", "control"], fontsize=8)
    ax.set_ylabel("A(net) - A(BN), per seed")
    ax.set_title(f"rule: {inputs['outcome']} ({seeds} seeds)")
    if ax.get_legend_handles_labels()[0]:      # no margin when BN has no gain
        ax.legend(fontsize=7, loc="lower left")


def draw(result, plt):
    """One row per problem, five panels (module docstring)."""
    m = result.measurements
    runs = m["runs"]
    inputs = {**m["verdict_inputs"],
              **{p: e["inputs"] for p, e in m.get("extra", {}).items()}}
    rows = len(runs)
    fig, axes = plt.subplots(rows, 5, figsize=(25, 4.4 * rows), squeeze=False)
    seeds = result.settings.get("seeds")
    for row, (problem, per_config) in zip(axes, runs.items()):
        title = _TITLES.get(problem, problem)
        for config, run in per_config.items():
            if "test_accuracy_mean" not in run:
                continue
            steps = np.asarray(run["checkpoint_steps"])
            mean = np.asarray(run["test_accuracy_mean"])
            std = np.asarray(run["test_accuracy_std"])
            label = _LABELS[config] + (f" ({run['diverged']} diverged)" if run["diverged"]
                                       else "")
            row[0].plot(steps, mean, marker=".", color=_COLORS[config], label=label)
            row[0].fill_between(steps, mean - std, mean + std, color=_COLORS[config],
                                alpha=0.15)
            row[1].plot(steps, run["train_loss_mean"], marker=".", color=_COLORS[config])
        row[0].set_xlabel("training step")
        row[0].set_ylabel("test accuracy (noise free)")
        row[0].set_title(f"{title}: test accuracy, mean +- std")
        row[0].legend(fontsize=8, loc="lower right")
        row[1].set_yscale("log")
        row[1].set_xlabel("training step")
        row[1].set_ylabel("training loss (noise free)")
        row[1].set_title(f"{title}: training loss")
        _rule_panel(row[2], per_config, inputs[problem], seeds)
        configs = [c for c, r in per_config.items() if "mean_drift_per_layer" in r]
        width = 0.8 / max(1, len(configs))
        for ax, key, what in ((row[3], "mean_drift_per_layer", "mean"),
                              (row[4], "var_drift_per_layer", "variance")):
            for k, config in enumerate(configs):
                values = per_config[config][key]
                layers = np.arange(1, len(values) + 1)
                ax.bar(layers + (k - (len(configs) - 1) / 2) * width, values, width,
                       color=_COLORS[config], label=_LABELS[config])
            ax.set_yscale("log")
            if configs:
                ax.set_xticks(np.arange(1, len(per_config[configs[0]][key]) + 1))
            ax.set_xlabel("hidden layer")
            ax.set_ylabel(f"mean over units of |change in {what}(z)|")
            ax.set_title(f"drift of the {what} of z over one step")
    fig.suptitle("Claim: noisy BN (unstable activation distributions) trains like BN and "
                 "better than the standard net (Santurkar et al. 2018, Fig. 2, 7); "
                 f"verdict: {result.verdict}\n(A: mean test accuracy over the checkpoints; "
                 "z: a hidden layer's input to ReLU on a fixed probe batch, per channel on "
                 "the CNNs, with a fresh noise draw for noisy BN and the control)",
                 fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 0.95 if rows > 1 else 0.9))
    return fig
