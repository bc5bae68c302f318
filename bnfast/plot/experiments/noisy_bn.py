"""The figure of the noisy-bn experiment (Santurkar et al. 2018, Figures 2 and 7):
training curves of the standard, BN and noisy-BN nets, and the drift of each layer's
activation distribution."""

import numpy as np

__all__ = ["draw"]

_COLORS = {"standard": "tab:blue", "bn": "tab:red", "noisy_bn": "tab:green"}
_LABELS = {"standard": "standard", "bn": "standard + BN", "noisy_bn": "standard + noisy BN"}


def draw(result, plt):
    """Per learning rate a row: training loss (mean over seeds, band +- 1 std), test
    accuracy per checkpoint, and per hidden layer the mean over checkpoints of the
    activation mean drift and variance drift over one SGD step (bars, log scale)."""
    runs = result.measurements["runs"]
    outcomes = result.measurements["outcomes"]
    rows = len(runs)
    fig, axes = plt.subplots(rows, 4, figsize=(18, 4.3 * rows), squeeze=False)
    seeds = result.settings.get("seeds")
    for row, (lr, per_config) in zip(axes, runs.items()):
        for config, run in per_config.items():
            if "loss_mean" not in run:
                continue
            steps = np.asarray(run["loss_steps"])
            mean, std = np.asarray(run["loss_mean"]), np.asarray(run["loss_std"])
            row[0].plot(steps, mean, color=_COLORS[config], label=_LABELS[config])
            row[0].fill_between(steps, np.maximum(mean - std, 1e-12), mean + std,
                                color=_COLORS[config], alpha=0.2)
            row[1].plot(run["checkpoint_steps"], run["test_accuracy_mean"], marker=".",
                        color=_COLORS[config], label=_LABELS[config] + " (test)")
            row[1].plot(run["checkpoint_steps"], run["train_accuracy_mean"], ":",
                        color=_COLORS[config], label=_LABELS[config] + " (train)")
        configs = [c for c, r in per_config.items() if "mean_drift_per_layer" in r]
        width = 0.8 / max(1, len(configs))
        for ax, key, what in ((row[2], "mean_drift_per_layer", "mean"),
                              (row[3], "var_drift_per_layer", "variance")):
            for k, config in enumerate(configs):
                values = per_config[config][key]
                layers = np.arange(1, len(values) + 1)
                ax.bar(layers + (k - (len(configs) - 1) / 2) * width, values, width,
                       color=_COLORS[config], label=_LABELS[config])
            ax.set_yscale("log")
            ax.set_xticks(np.arange(1, len(per_config[configs[0]][key]) + 1)
                          if configs else [])
            ax.set_xlabel("hidden layer")
            ax.set_ylabel(f"mean over units j of |change in {what}(z_j)|")
            ax.set_title(f"lr {lr}: drift of the {what} of z (one step)")
            # the colours are those of the loss panel's legend
        row[0].set_yscale("log")
        row[0].set_xlabel("training step")
        row[0].set_ylabel("training loss (MSE, noise free)")
        row[0].set_title(f"lr {lr}: loss, {seeds} seeds (rule: {outcomes[lr]})")
        row[0].legend(fontsize=8)
        row[1].set_xlabel("training step")
        row[1].set_ylabel("accuracy")
        row[1].set_ylim(0, 1.02)
        row[1].set_title(f"lr {lr}: accuracy (mean over seeds)")
        row[1].legend(fontsize=7, loc="lower right")
    fig.suptitle("Claim: noisy BN (unstable activation distributions) trains like BN and "
                 "better than the standard net (Santurkar et al. 2018, Fig. 2, 7); "
                 f"digits MLP, verdict: {result.verdict}\n(z: a hidden layer's input to "
                 "ReLU on a fixed probe batch, with a fresh noise draw for noisy BN)",
                 fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 0.93 if rows == 1 else 0.95))
    return fig
