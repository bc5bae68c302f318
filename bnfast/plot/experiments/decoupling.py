"""Figure of `bnfast run decoupling`: GDNP's gap against the bound, per condition number,
with plain GD and BN-GD for comparison (Kohler et al. 2019, section 3)."""

import numpy as np


def draw(result, plt):
    """One panel per condition number: rho* - rho(w_t) / (rho* - rho(w_0)) of GDNP (each
    problem), the bound (1 - mu/L)^(2t), and the relative excess loss of GD and BN-GD,
    on a log scale against the step t."""
    problems = result.measurements["problems"]
    kappas = [row["kappa"] for row in result.measurements["per_kappa"]]
    fig, axes = plt.subplots(1, len(kappas), figsize=(4.2 * len(kappas), 3.8),
                             squeeze=False, sharey=True)
    for ax, kappa in zip(axes[0], kappas):
        group = [p for p in problems if p["kappa"] == kappa]
        for i, p in enumerate(group):
            t = np.linspace(0, p["steps"], len(p["gdnp_relative_gap"]))
            floor = 1e-30

            def show(values):
                return np.maximum(np.asarray(values), floor)
            ax.plot(t, show(p["gdnp_relative_gap"]), color="C0", lw=1.2,
                    label="GDNP: rho* - rho(w_t)" if i == 0 else None)
            ax.plot(t, show(p["gd_relative_excess"]), color="C2", lw=0.9, alpha=0.8,
                    label="GD, step 1/(2L): excess loss" if i == 0 else None)
            ax.plot(t, show(p["bn_relative_excess"]), color="C3", lw=0.9, alpha=0.8,
                    label="BN-GD (bnfast.train): excess loss" if i == 0 else None)
            if i == 0:
                ax.plot(t, show(p["bound_relative"]), color="k", ls="--", lw=1.4,
                        label="bound (1 - mu/L)^(2t)")
        ax.set_yscale("log")
        ax.set_ylim(1e-20, 3.0)
        ax.set_xlabel("step t")
        ax.set_title(f"kappa = L/mu = {kappa:g}")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("gap / initial gap")
    axes[0][0].legend(fontsize=7, loc="upper right")
    fig.suptitle("GDNP converges linearly under (1 - mu/L)^(2t) on least squares "
                 f"(Kohler et al. 2019): {result.verdict}", fontsize=10)
    fig.tight_layout()
    return fig
