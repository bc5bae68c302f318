"""The figure of `bnfast verify --plot PATH`: the loss landscapes of the standard and
the BN network of Example 3.2 side by side, with W* = W0, the BN optimum ray, the
closest BN optimum, the gradient of the BN loss at W* and the native gradient-descent
path of the BN network from W0."""

import numpy as np

from ..claims import EXAMPLE_3_2, example_3_2
from ..claims.gd import auto_lr, native_gd_path
from ..kernels import batch_norm_forward
from .save import figure_format, pyplot, save_figure

__all__ = ["plot_example_3_2", "plot_lemma_4_5"]

#: The gradient at W* is short (~0.3) next to the plotted region; it is drawn longer.
ARROW_SCALE = 5.0
#: The drawn GD path: the cross-check's learning rate divided by this, this many steps.
PATH_LR_DIVISOR = 4.0
PATH_STEPS = 25


def plot_example_3_2(path, report=None):
    """Writes the figure for Example 3.2 to `path` (.png, .pdf or .svg). report: the
    Example 3.2 report (computed if None)."""
    if report is None:
        report = example_3_2()
    return plot_lemma_4_5(path, EXAMPLE_3_2["X"], EXAMPLE_3_2["y"], report,
                          title="Example 3.2 of Dannemann & Junike (2025) refutes "
                                "Lemma 4.5 of Santurkar et al. (2018)")


def _losses(X, y, gamma, beta, W1, W2):
    """Standard and BN losses on a grid of weights (W1, W2): arrays like W1. The BN
    outputs come from the kernel, one grid point per channel; a point where X w is
    constant over the batch (no BN output with eps = 0) gets NaN."""
    W = np.stack([W1.ravel(), W2.ravel()])              # (2, n)
    H = X @ W                                           # (m, n): channel j = grid point j
    std = ((y[:, None] - H) ** 2).sum(axis=0)
    bn = np.full(H.shape[1], np.nan)
    varies = np.ptp(H, axis=0) > 0
    if np.any(varies):
        n = int(np.count_nonzero(varies))
        Z, _, _ = batch_norm_forward(H[:, varies], weight=np.full(n, gamma),
                                     bias=np.full(n, beta), eps=0.0)
        bn[varies] = ((y[:, None] - Z) ** 2).sum(axis=0)
    return std.reshape(W1.shape), bn.reshape(W1.shape)


def _short(report, x):
    """A number for the figure: the exact form when short, else 4 digits; float
    rounding noise below the report's tolerance shows as 0."""
    if report.exact and len(str(x)) <= 12:
        return str(x)
    value = float(x)
    return "0" if abs(value) <= report.tolerance else f"{value:.4g}"


def plot_lemma_4_5(path, X, y, report, title=None, half_width=2.4):
    """Writes the two loss landscapes around W* for a one-neuron, two-input instance
    (X (m, 2), y (m,)) and its Lemma 4.5 report, to path (.png, .pdf or .svg).
    Returns the path."""
    figure_format(path)  # a bad path fails before the work
    if report.n_neurons is not None or report.n_inputs != 2:
        raise ValueError("the landscape plot needs one neuron with two inputs")
    plt = pyplot()
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    gamma, beta = float(report.gamma), float(report.beta)
    f = lambda v: np.asarray(v, dtype=np.float64)  # noqa: E731 - exact -> float
    w0, w_star, grad = f(report.w0), f(report.w_star), f(report.grad_bn_at_w_star)
    direction = f(report.bn_direction)
    lr = report.gd.lr if report.gd is not None else None
    if lr is None:
        lr = auto_lr(X, y, w0, gamma)
    # A smaller step than the cross-check's makes the path visible as a curve of dots.
    path_lr = lr / PATH_LR_DIVISOR
    path_w = native_gd_path(X, y, w0, gamma, beta, path_lr, steps=PATH_STEPS)

    c1, c2 = (w_star + w0) / 2
    half_width = max(half_width, 0.6 * float(np.max(np.abs(w_star - w0))) + 1.0)
    w1 = np.linspace(c1 - half_width, c1 + half_width, 301)
    w2 = np.linspace(c2 - half_width, c2 + half_width, 301)
    W1, W2 = np.meshgrid(w1, w2)
    std, bn = _losses(X, y, gamma, beta, W1, W2)

    fig, axes = plt.subplots(1, 2, figsize=(11.5, 5.9), dpi=100, constrained_layout=True)
    ray_t = np.linspace(0, 3 * np.linalg.norm(w_star) / np.linalg.norm(direction), 2)
    ray = np.outer(ray_t, direction)
    opt = None if report.bn_optimum is None else f(report.bn_optimum)
    lhs_text = _short(report, report.lhs)
    at_w0 = bool(np.allclose(w0, w_star, rtol=1e-12, atol=1e-12))
    std_note = ("W0 = W*: ∇L(W0) = 0,\nstandard GD stays at W0" if at_w0 else
                "∇L(W*) = 0: W* is the\nstandard optimum")
    if report.w_star_is_bn_critical:
        bn_note = "∇L_BN(W*) = 0"
    elif at_w0:
        bn_note = "∇L_BN(W0) ≠ 0: BN GD leaves W0"
    else:
        bn_note = "∇L_BN(W*) ≠ 0: W* is no BN optimum"
    if report.gd is not None and report.gd.agrees:
        bn_note += "\nBN GD from W0 ends on the ray of optima"
    panels = [
        (axes[0], std, "standard network: L(w) = Σᵢ (yᵢ − wᵀxᵢ)²",
         np.quantile(std, np.linspace(0, 0.9, 12)), std_note),
        (axes[1], bn, f"BN network (γ = {gamma:g}, β = {beta:g}, ε = 0): L_BN(w)", None,
         bn_note),
    ]
    for index, (ax, Z, name, levels, note) in enumerate(panels):
        if levels is None:
            lo, hi = float(report.loss_bn_min), float(np.nanmax(Z))
            levels = lo + (hi - lo) * np.linspace(0, 1, 12) ** 2
        filled = ax.contourf(W1, W2, Z, levels=levels, cmap="viridis", extend="max")
        ax.contour(W1, W2, Z, levels=levels, colors="k", linewidths=0.3, alpha=0.4)
        fig.colorbar(filled, ax=ax, shrink=0.9, format="%.4g", label="loss")
        ax.plot(ray[:, 0], ray[:, 1], color="#00d5ff", lw=3,
                label=f"BN optima: the ray {{t·({direction[0]:.3g}, {direction[1]:.3g}) : t > 0}}")
        if opt is not None:
            if index == 0:
                ax.plot([w0[0], opt[0]], [w0[1], opt[1]], color="white", ls="--", lw=1.6)
            ax.plot(*opt, marker="o", ms=10, color="#00d5ff", mec="k", ls="none",
                    label=f"closest BN optimum Ŵ* = ({opt[0]:.4g}, {opt[1]:.4g}):  "
                          f"‖W0 − Ŵ*‖² = {lhs_text} > 0")
            ax.annotate("Ŵ*", opt, xytext=(10, -16), textcoords="offset points",
                        fontsize=13, color="white", weight="bold")
        star = "W* = W0" if at_w0 else "W*"
        ax.plot(*w_star, marker="*", ms=20, color="white", mec="k", ls="none",
                label=f"{star} = ({w_star[0]:.3g}, {w_star[1]:.3g})"
                      + (": the standard optimum is the initialization" if at_w0
                         else ": the standard optimum"))
        ax.annotate(star, w_star, xytext=(10, 8), textcoords="offset points",
                    fontsize=13, color="white", weight="bold")
        if not at_w0:
            ax.plot(*w0, marker="s", ms=9, color="white", mec="k", ls="none",
                    label=f"W0 = ({w0[0]:.3g}, {w0[1]:.3g})")
            ax.annotate("W0", w0, xytext=(10, 8), textcoords="offset points",
                        fontsize=13, color="white", weight="bold")
        ax.text(0.03, 0.97, note, transform=ax.transAxes, va="top", fontsize=10.5,
                bbox=dict(boxstyle="round", fc="white", alpha=0.85))
        ax.set_xlim(w1[0], w1[-1])
        ax.set_ylim(w2[0], w2[-1])
        ax.set_aspect("equal")
        ax.set_xlabel("$w_1$", fontsize=12)
        ax.set_ylabel("$w_2$", fontsize=12)
        ax.set_title(name, fontsize=12)
    ax = axes[1]
    ax.plot(path_w[:, 0], path_w[:, 1], "-o", color="#ff3df2", ms=5, lw=2, mec="k",
            mew=0.6, label=f"native GD of the BN network from W0 (bnfast.train, "
                           f"lr {path_lr:.3g}, {len(path_w) - 1} steps)")
    ax.annotate("", xy=w_star + ARROW_SCALE * grad, xytext=w_star,
                arrowprops=dict(arrowstyle="-|>", color="red", lw=2.5, mutation_scale=20))
    ax.plot([], [], color="red", lw=2.5,
            label=f"∇L_BN(W*), drawn {ARROW_SCALE:g}× longer: ‖∇L_BN(W*)‖ = "
                  f"{float(report.grad_bn_norm):.4g} ≠ 0")
    handles, labels = [], []
    for a in axes:
        for h, lab in zip(*a.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="outside lower center", ncol=2, fontsize=10,
               frameon=False)
    if title:
        rhs_text = _short(report, report.rhs)
        if report.holds is False:
            line = (f"(1) requires ‖W0 − Ŵ*‖² ≤ {rhs_text} (its right side"
                    + (", as W0 = W*" if at_w0 else "") + f"), but ‖W0 − Ŵ*‖² = {lhs_text}")
        else:
            verdict = "holds" if report.holds else "is not claimed (premise fails)"
            line = f"(1): ‖W0 − Ŵ*‖² = {lhs_text}, right side {rhs_text}: (1) {verdict}"
        fig.suptitle(f"{title}\n{line}", fontsize=13)
    save_figure(fig, path)
    plt.close(fig)
    return path
