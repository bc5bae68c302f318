"""Figure of `bnfast run precise-bn`: the gap between EMA and exact BN statistics and the
test accuracy with each, along training, per BN momentum and learning rate (Wu and
Johnson 2021, section 3)."""

import textwrap


def draw(result, plt):
    """Left: the largest per-layer statistics gap (mean over seeds) against the step,
    log-log, one colour per momentum, solid lr small / dashed lr large, the rule's bar
    dotted. Right: test accuracy with EMA statistics (open markers) and precise BN
    (filled) against the step."""
    m = result.measurements
    curves = m["curves"]
    momenta = sorted({c["momentum"] for c in curves})
    lrs = sorted({c["lr"] for c in curves})
    colors = {mo: f"C{i}" for i, mo in enumerate(momenta)}
    styles = {lr: ("-" if i == 0 else "--") for i, lr in enumerate(lrs)}
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 5))
    for mo in momenta:
        for lr in lrs:
            rows = [c for c in curves if c["momentum"] == mo and c["lr"] == lr]
            steps = [c["step"] for c in rows]
            label = f"BN momentum {mo:g}, lr {lr:g}"
            left.plot(steps, [c["gap"] for c in rows], color=colors[mo], ls=styles[lr],
                      marker="o", label=label)
            right.plot(steps, [c["ema_accuracy"] for c in rows], color=colors[mo],
                       ls=styles[lr], marker="o", mfc="white", label=f"{label}: EMA")
            right.plot(steps, [c["precise_accuracy"] for c in rows], color=colors[mo],
                       ls=styles[lr], marker="o", alpha=0.6, lw=0.8,
                       label=f"{label}: precise BN")
    left.axhline(result.settings["far"], color="k", ls=":", lw=1,
                 label=f"bar {result.settings['far']:g}")
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3, which="both")
    left.set_yscale("log")
    left.set_ylabel("EMA vs exact statistics: largest layer gap (mean over seeds)")
    left.set_title("distance of the EMA population statistics from the exact ones",
                   fontsize=9)
    left.legend(fontsize=7)
    right.set_ylabel("test accuracy (mean over seeds)")
    right.set_title("inference with EMA statistics (open) vs precise BN (filled)",
                    fontsize=9)
    right.legend(fontsize=5.5, ncol=2, loc="lower right")
    fig.suptitle(textwrap.fill("Precise BN vs EMA statistics (Wu and Johnson 2021): "
                               f"{result.verdict.text}", 150), fontsize=10)
    fig.tight_layout()
    return fig
