"""The figure of the lp-norm experiment, after Santurkar et al. (2018) Figure 5 and
Figures 12-13. Rule version 3: one row per problem (the DLN, the MNIST-1D and digits
CNNs, the dense digits MLP as a reported extra); columns: the training loss curves of
the five normalizations (median over seeds, band min-max over seeds); test accuracy
along training (the DLN, without a test set: the effective beta-smoothness along the
gradient, Figures 12-13); the rule: per seed M_lp - M_BN with its 90% interval against
+-margin (half of BN's gain over no normalization); the curvature control: top Hessian
eigenvalue of the measurement batch over the stability threshold along training.
Version-1 results (two rows, the DLN and the digits MLP) are drawn as they were."""

import numpy as np

__all__ = ["draw"]

_COLORS = {"none": "tab:blue", "std": "tab:red", "l1": "tab:green", "l2": "tab:purple",
           "linf": "tab:orange"}
_LABELS = {"none": "no normalization", "std": "BN (std)", "l1": "l1", "l2": "l2",
           "linf": "linf"}
_TITLES = {"dln": "25-layer deep linear network",
           "mnist1d": "MNIST-1D Conv1d network",
           "digits-images": "digits Conv2d network",
           "digits": "dense digits MLP (reported extra)"}


def _array(rows):
    """A list of per-seed lists (None: NaN) as a float array (seeds, points); rows of
    unequal length (diverged runs) are left out."""
    rows = [row for row in rows if row is not None]
    if not rows:
        return np.empty((0, 0))
    length = max(len(row) for row in rows)
    rows = [row for row in rows if len(row) == length]
    return np.array([[np.nan if v is None else v for v in row] for row in rows],
                    dtype=float)


def _band(ax, x, rows, color, label, log=False):
    values = _array(rows)
    if not values.size or np.all(np.isnan(values)):
        return
    with np.errstate(all="ignore"):
        middle = np.nanmedian(values, 0)
    (ax.semilogy if log else ax.plot)(x[:values.shape[1]], middle, color=color,
                                      label=label, marker="o" if len(x) < 12 else None,
                                      ms=3)
    ax.fill_between(x[:values.shape[1]], np.nanmin(values, 0), np.nanmax(values, 0),
                    color=color, alpha=0.15)


def _differences(block, p):
    """Per seed M_lp - M_BN (None where either diverged)."""
    return [None if a is None or b is None else a - b
            for a, b in zip(block[p]["curve_metric"], block["std"]["curve_metric"])]


def _rule_panel(ax, block, conditions, problem):
    ax.axhline(0.0, color="0.5", lw=0.8)
    margin = None
    for i, p in enumerate(("l1", "l2", "linf")):
        c = conditions.get(f"comparable {problem} {p}", {})
        d = [v for v in _differences(block, p) if v is not None]
        ax.scatter(np.full(len(d), i) + np.linspace(-0.12, 0.12, max(len(d), 1))[:len(d)],
                   d, color=_COLORS[p], s=12, zorder=3)
        if c.get("low") is not None and c.get("high") is not None \
                and np.isfinite(c["low"]) and np.isfinite(c["high"]):
            ax.errorbar(i + 0.25, c["mean"], yerr=[[c["mean"] - c["low"]],
                                                   [c["high"] - c["mean"]]],
                        color="k", capsize=3, marker="s", ms=4)
        ax.annotate(c.get("outcome", "n/a"), (i, 1.0), xycoords=("data", "axes fraction"),
                    ha="center", va="top", fontsize=8)
        margin = c.get("margin", margin)
    if margin is not None:
        ax.axhspan(-margin, margin, color="tab:green", alpha=0.12,
                   label=f"+-margin {margin:.3g} (half of BN's gain)")
        ax.legend(fontsize=7, loc="lower right")
    ax.set_xticks(range(3), ["l1", "l2", "linf"])
    ax.set_xlim(-0.5, 2.6)
    ax.set_ylabel("M_lp - M_BN per seed (decades)")
    ax.set_title("the rule: lp vs BN, 90% interval (lower = lp better)", fontsize=10)


def draw(result, plt):
    """The figure of result.measurements and result.settings."""
    measurements = result.measurements
    if "judged" not in measurements:
        return _draw_v1(result, plt)
    problems = list(measurements["problems"])
    order = [p for p in ("dln", "mnist1d", "digits-images", "digits") if p in problems]
    fig, axes = plt.subplots(len(order), 4, figsize=(21, 4.1 * len(order)), squeeze=False)
    conditions = {**measurements["conditions"], **measurements["extra_conditions"]}
    for row, problem in enumerate(order):
        block = measurements["problems"][problem]
        setup = result.settings[problem]
        ax_loss, ax_acc, ax_rule, ax_sharp = axes[row]
        for norm, b in block.items():
            color, label = _COLORS[norm], _LABELS[norm]
            steps = np.array(b["loss_steps"], dtype=float)
            kept = [c for c, stop in zip(b["losses"], b["diverged_step"]) if stop is None]
            _band(ax_loss, steps, kept, color, label, log=True)
            checkpoints = np.array(b["checkpoint_steps"], dtype=float)
            if "test_accuracy_along" in b:
                _band(ax_acc, checkpoints, b["test_accuracy_along"], color, label)
            else:
                _band(ax_acc, checkpoints, b["beta"], color, label, log=True)
            _band(ax_sharp, checkpoints, b["sharpness_ratio"], color, label, log=True)
        ax_loss.set_title(f"{_TITLES[problem]}: training loss", fontsize=10)
        ax_loss.set_ylabel("learning-set loss (median, band over seeds)")
        if "test_accuracy_along" in block["std"]:
            ax_acc.set_title("test accuracy (BN in inference mode)", fontsize=10)
            ax_acc.set_ylabel("test accuracy")
        else:
            ax_acc.set_title("effective beta-smoothness along the gradient "
                             f"({setup['multipliers'][0]:g}-{setup['multipliers'][1]:g} "
                             "x lr)", fontsize=10)
            ax_acc.set_ylabel("max ||g - g'|| / ||x - x'||")
        _rule_panel(ax_rule, block, conditions, problem)
        threshold = block["std"]["sharpness_threshold"]
        ax_sharp.axhline(1.0, color="k", ls="--", lw=0.8)
        ax_sharp.set_title(f"top Hessian eigenvalue / stability threshold {threshold:.3g}",
                           fontsize=10)
        ax_sharp.set_ylabel("sharpness / threshold")
        for ax in (ax_loss, ax_acc, ax_sharp):
            ax.set_xlabel("training step")
        ax_loss.legend(fontsize=8)
    by_problem = {}
    for name, c in measurements["conditions"].items():
        _, problem, p = name.split()
        by_problem.setdefault(problem, []).append(f"{p} {c['outcome']}")
    judged = "; ".join(f"{problem}: {', '.join(parts)}"
                       for problem, parts in by_problem.items())
    beats = measurements["sub_claims"].get("l1 beats BN on the DLN")
    remark = f"; l1 beats BN on the DLN (reported): {beats['outcome']}" if beats else ""
    fig.suptitle("Santurkar et al. (2018) Fig. 5, 12-13: lp normalization performs "
                 f"comparably to BN. Verdict: {result.verdict.label}\n"
                 f"lp within half of BN's gain over no normalization? {judged}{remark}",
                 fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return fig


def _draw_v1(result, plt):
    """Version 1's figure: 2 x 3 panels (the DLN and the digits MLP)."""
    from ...experiments.lp_norm import SUB_CLAIMS, deciding

    measurements = result.measurements
    fig, axes = plt.subplots(2, 3, figsize=(16, 8.2))
    for row, (problem, title) in enumerate((("dln", "25-layer deep linear network"),
                                            ("digits", "digits MLP"))):
        setup = result.settings[problem]
        for position, (norm, block) in enumerate(measurements["problems"][problem].items()):
            color, label = _COLORS[norm], _LABELS[norm]
            if "test_accuracy" in block:
                accuracy = [v for v in block["test_accuracy"] if v is not None]
                if accuracy:
                    label += f" (test acc. {np.median(accuracy):.3f})"
            curves = [np.array(c, dtype=float)
                      for c, stop in zip(block["losses"], block["diverged_step"])
                      if stop is None]
            if curves:
                stack = np.vstack(curves)
                steps = np.linspace(0, setup["steps"], stack.shape[1])
                axes[row, 0].semilogy(steps, np.median(stack, 0), color=color, label=label)
                axes[row, 0].fill_between(steps, stack.min(0), stack.max(0), color=color,
                                          alpha=0.15)
            beta = np.array([[np.nan if v is None else v for v in run]
                             for run in block["beta"]], dtype=float)
            axes[row, 1].semilogy(block["checkpoint_steps"], np.nanmedian(beta, 0), "o-",
                                  color=color, ms=3, label=_LABELS[norm])
            shifts = [v for v in block["shift"] if v is not None]
            axes[row, 2].scatter([position] * len(shifts), shifts, color=color, zorder=3)
            if shifts:
                axes[row, 2].hlines(np.median(shifts), position - 0.3, position + 0.3,
                                    color=color)
        axes[row, 0].set_title(f"{title}: training loss (median, band over seeds)",
                               fontsize=10)
        axes[row, 0].set_xlabel("training step")
        axes[row, 0].set_ylabel("loss (learning set)")
        axes[row, 1].set_title("effective beta-smoothness along the gradient "
                               f"({setup['multipliers'][0]:g}-{setup['multipliers'][1]:g} x lr)",
                               fontsize=10)
        axes[row, 1].set_xlabel("training step")
        axes[row, 1].set_ylabel("max ||g - g'|| / ||x - x'|| (median over seeds)")
        norms = list(measurements["problems"][problem])
        axes[row, 2].set_xticks(range(len(norms)), [_LABELS[n] for n in norms], fontsize=8)
        axes[row, 2].set_yscale("log")
        axes[row, 2].set_title("layer-input distribution shift, start to end", fontsize=10)
        axes[row, 2].set_ylabel("relative W2 of per-unit Gaussian fits")
        for ax in axes[row, :2]:
            ax.legend(fontsize=8)
    claims = measurements["sub_claims"]
    verdicts = "; ".join(f"{SUB_CLAIMS[name]}: {claim['verdict']}"
                         for name, claim in claims.items())
    decided = ", ".join(SUB_CLAIMS[name].split()[0]
                        for name in deciding(claims, result.verdict))
    fig.suptitle("Santurkar et al. (2018) Fig. 5, 12-13: lp normalization performs like BN. "
                 f"Verdict: {result.verdict}, decided by {decided}\n{verdicts}",
                 fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return fig
