"""Figure of `bnfast run hessian-outliers`: the Hessian's spectral density (SLQ) without
BN, with BN in train mode and with BN in eval mode, as in Ghorbani et al. (2019) figures
4-6, and the top-k gradient share and outlier ratio along training."""

import textwrap

import numpy as np

_STYLE = {("none", "train"): ("C3", "no BN"), ("std", "train"): ("C0", "BN, train mode"),
          ("std", "eval"): ("C2", "BN, eval mode")}


def _density(nodes, weights, grid, sigma):
    """The Gaussian-broadened SLQ density on ``grid`` from nodes, weights (runs, steps)."""
    nodes, weights = np.asarray(nodes), np.asarray(weights)
    keep = weights > 0
    t, w = nodes[keep], weights[keep] / nodes.shape[0]
    z = (grid[:, None] - t[None, :]) / sigma
    return np.exp(-0.5 * z * z) @ w / (sigma * np.sqrt(2 * np.pi))


def draw(result, plt):
    """Top row, per problem: the SLQ density of the first seed's Hessian at the last
    checkpoint, log scale, no BN / BN train / BN eval. Bottom row, per problem: the
    top-k gradient share (solid) and the median outlier ratio lambda_1/lambda_{k+1}
    (dashed, right axis) against the training step."""
    m = result.measurements
    problems = [p for p in ("mnist1d", "digits")
                if any(r["problem"] == p for r in m["table"])]
    fig, axes = plt.subplots(2, len(problems), figsize=(6.5 * len(problems), 8.5),
                             squeeze=False)
    names = {"mnist1d": "MNIST-1D CNN", "digits": "digits MLP"}
    for j, problem in enumerate(problems):
        ax = axes[0][j]
        rows = [d for d in m["densities"] if d["problem"] == problem]
        if rows:
            top = max(np.max(d["nodes"]) for d in rows)
            low = min(np.min(d["nodes"]) for d in rows)
            grid = np.linspace(low - 0.05 * (top - low), top * 1.05, 1500)
            sigma = (top - low) / 300
            for d in rows:
                color, label = _STYLE[(d["norm"], d["mode"])]
                ax.semilogy(grid, np.maximum(_density(d["nodes"], d["weights"], grid,
                                                      sigma), 1e-7), color=color,
                            lw=1.2, label=label)
            ax.set_ylim(1e-6, None)
        ax.set_xlabel("eigenvalue")
        ax.set_ylabel("density (SLQ, seed 0, last checkpoint)")
        ax.set_title(f"{names[problem]}: Hessian spectral density", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        ax = axes[1][j]
        right = ax.twinx()
        for (norm, mode), (color, label) in _STYLE.items():
            rows = [r for r in m["table"] if r["problem"] == problem and r["norm"] == norm
                    and r["mode"] == mode]
            if not rows:
                continue
            steps = [r["step"] for r in rows]
            ax.plot(steps, [r["share"] for r in rows], color=color, marker="o",
                    label=f"{label}: top-k gradient share")
            right.plot(steps, [r["outlier_ratio"] for r in rows], color=color,
                       marker="s", ls="--", label=f"{label}: lambda_1/lambda_k+1")
        ax.axhline(result.settings["share_level"], color="k", ls=":", lw=1)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("training step")
        ax.set_ylabel("share of ||g||^2 in the top-k eigenspace (solid)")
        right.set_ylabel("lambda_1 / lambda_{k+1}, median (dashed)")
        right.set_yscale("log")
        ax.set_title(f"{names[problem]}: gradient share and outlier ratio (means over "
                     "seeds)", fontsize=9)
        ax.grid(alpha=0.3)
        handles = ax.get_legend_handles_labels()
        more = right.get_legend_handles_labels()
        ax.legend(handles[0] + more[0], handles[1] + more[1], fontsize=6, loc="lower right")
    fig.suptitle(textwrap.fill("Hessian outliers with and without BN (Ghorbani et al. "
                               f"2019): {result.verdict.text}", 150), fontsize=10)
    fig.tight_layout()
    return fig
