"""Figure of `bnfast run rank-collapse`: the rank of a batch's hidden representation
against depth, with and without BN, for linear and ReLU networks of several widths
(Daneshmand et al. 2020), and the BN networks' rank against width with sqrt(width)."""

import textwrap

import numpy as np


def draw(result, plt):
    """Left, middle: the stable rank against the layer for linear and ReLU networks (mean
    over seeds, 10-90% band), BN solid, without BN dashed, one colour per width, the
    rule's threshold 2 dotted. Right: the BN networks' mean stable rank over layers
    L/2..L against the width, log-log, with sqrt(d) lines, and the plain networks' last
    layer."""
    curves = result.measurements["curves"]
    bound = result.measurements["bound"]
    widths = result.settings["widths"]
    threshold = result.settings["collapse_threshold"]
    colors = {w: f"C{i}" for i, w in enumerate(widths)}
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    for ax, activation in zip(axes[:2], ("linear", "relu")):
        for curve in curves:
            if curve["activation"] != activation:
                continue
            depths = np.asarray(curve["depths"])
            stable = curve["stable"]
            bn = curve["norm"] == "bn"
            color = colors[curve["width"]]
            ax.plot(depths, stable["mean"], color=color, lw=1.5 if bn else 1.1,
                    ls="-" if bn else "--",
                    label=f"d={curve['width']}, {'BN' if bn else 'no BN'}")
            ax.fill_between(depths, stable["p10"], stable["p90"], color=color,
                            alpha=0.12)
        ax.axhline(threshold, color="k", ls=":", lw=1,
                   label=f"collapse threshold {threshold:g}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("layer l")
        ax.set_ylabel("stable rank ||Z||_F^2 / ||Z||_2^2")
        ax.set_title(f"{activation} networks: rank collapses without BN", fontsize=9)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=6, ncol=2, loc="lower left")
    right = axes[2]
    grid = np.array(widths, dtype=np.float64)
    for activation, marker, color in (("linear", "o", "C0"), ("relu", "s", "C3")):
        rows = [b for b in bound if b["activation"] == activation]
        if not rows:
            continue
        d = np.array([b["width"] for b in rows], dtype=np.float64)
        ranks = np.array([b["bn_tail_stable_rank"] for b in rows])
        constant = min(b["over_sqrt_width"] for b in rows)
        right.plot(d, ranks, marker=marker, lw=1.4, color=color,
                   label=f"{activation}, BN (layers L/2..L)")
        right.plot(grid, constant * np.sqrt(grid), ls="--", lw=1, color=color, alpha=0.5)
        if rows[0].get("bn_tail_soft_rank") is not None:
            right.plot(d, [b["bn_tail_soft_rank"] for b in rows], marker=marker,
                       ls="-.", lw=1, color=color, alpha=0.7,
                       label=f"{activation}, BN: soft rank (sigma_i >= 0.1 sigma_1)")
        plain = [b["plain_last_stable_rank"] for b in rows]
        right.plot(d, plain, marker=marker, ls=":", lw=1, color=color,
                   label=f"{activation}, no BN (last layer)")
    right.plot([], [], ls="--", color="0.4", label="c sqrt(d), c the smallest ratio")
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xticks(grid)
    right.set_xticklabels([str(w) for w in widths])
    right.xaxis.set_minor_locator(plt.NullLocator())
    right.set_xlabel("width d")
    right.set_ylabel("rank (stable, or soft: dash-dot)")
    exponents = result.measurements["verdict_inputs"]["width_exponent"]
    right.set_title("BN: rank >= Omega(sqrt(d))? slopes " + ", ".join(
        f"{a} {v[0]:.2f}" for a, v in exponents.items()), fontsize=9)
    right.grid(alpha=0.3, which="both")
    right.legend(fontsize=7)
    fig.suptitle(textwrap.fill("BN avoids rank collapse in randomly initialised deep "
                               f"networks (Daneshmand et al. 2020): {_verdict(result)}",
                               150), fontsize=10)
    fig.tight_layout()
    return fig


def _verdict(result):
    """The verdict for the title: a mixed verdict names only the conditions that
    refuted, with the count of those that supported."""
    verdict = result.verdict
    if verdict.label != "mixed":
        return verdict.text
    refuted = [k for k, v in verdict.conditions.items() if v == "refuted"]
    supported = sum(v == "supported" for v in verdict.conditions.values())
    return (f"mixed ({supported} of {len(verdict.conditions)} conditions supported; "
            f"refuted: {', '.join(refuted)})")
