"""Figure of `bnfast run lipschitz`: the measured Lipschitz constant L against Su's bound
c E||x||^2 for raw, centred and standardised digits inputs (MSE and logistic), and the
largest stable learning rate against 2/L."""

import numpy as np


def draw(result, plt):
    """Left: bars of L and the bound (log scale) per loss and preprocessing. Right: the
    largest stable lr against 2/L (the diagonal: equality)."""
    table = result.measurements["table"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    labels = [f"{row['loss']}\n{row['preprocessing']}" for row in table]
    x = np.arange(len(table))
    left.bar(x - 0.2, [np.mean(row["L"]) for row in table], 0.4,
             label="measured L (largest Hessian eigenvalue)", color="C0")
    left.bar(x + 0.2, [np.mean(row["bound"]) for row in table], 0.4,
             label="Su's bound c E||x||^2", color="C1")
    left.set_yscale("log")
    top = max(max(row["bound"]) for row in table)
    left.set_ylim(top=top * 30)   # room for the legend above the bars
    left.set_xticks(x)
    left.set_xticklabels(labels, fontsize=8)
    left.set_ylabel("Lipschitz constant of the gradient")
    left.legend(fontsize=8)
    left.grid(axis="y", alpha=0.3)
    left.set_title("centring lowers L and the bound", fontsize=9)
    markers = {"raw": "o", "centred": "s", "standardised": "^"}
    colors = {"mse": "C0", "logistic": "C3"}
    for row in table:
        right.scatter(row["two_over_L"], row["largest_stable_lr"],
                      marker=markers[row["preprocessing"]], color=colors[row["loss"]],
                      label=f"{row['loss']}, {row['preprocessing']}")
    values = [v for row in table for v in row["two_over_L"] + row["largest_stable_lr"]]
    line = np.array([min(values) / 2, max(values) * 2])
    right.plot(line, line, "k--", lw=1, label="largest stable lr = 2/L")
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xlabel("2/L")
    right.set_ylabel("largest lr with a non-increasing loss (bisection)")
    right.legend(fontsize=7)
    right.grid(alpha=0.3)
    right.set_title("GD descends for lr < 2/L (points on or above the diagonal)",
                    fontsize=9)
    subs = result.measurements["sub_claims"]
    fig.suptitle("One layer on digits (Su 2019): " + "; ".join(
        f"{k.replace('_', ' ')}: {v}" for k, v in subs.items())
        + f" -> {result.verdict}", fontsize=9)
    fig.tight_layout()
    return fig
