"""Figure of the explosion experiment: measured vs predicted per-layer growth lambda(B)
of the squared gradient norm against the batch size, and the per-layer profiles
log ||dL/dW_l||^2 that the rates are fitted on (plain and residual nets)."""

import math

import numpy as np

__all__ = ["draw"]

_COLOURS = {"linear": "tab:blue", "relu": "tab:red", "tanh": "tab:green"}


def draw(result, plt):
    """Two panels from result.measurements and result.settings (see module docstring)."""
    from ...experiments.explosion import predicted_rate

    m, s = result.measurements, result.settings
    fig, (ax_rate, ax_prof) = plt.subplots(1, 2, figsize=(13, 5.2))

    # Panel 1: rate vs B, measured (error bars: +- one sd of the log-rate across inits)
    sizes = sorted({c["batch_size"] for c in m["cases"]})
    fine = np.unique(np.geomspace(4, max(sizes), 200).round().astype(int))
    for act in s["activations"]:
        colour = _COLOURS.get(act, "black")
        cases = [c for c in m["cases"] if c["activation"] == act]
        B = np.array([c["batch_size"] for c in cases])
        mean = np.array([c["log_rate_mean"] for c in cases])
        sd = np.array([c["log_rate_sd"] for c in cases])
        rate = np.exp(mean)
        err = np.vstack([rate - np.exp(mean - sd), np.exp(mean + sd) - rate])
        ax_rate.errorbar(B, rate, yerr=err, fmt="o", color=colour, capsize=3,
                         label=f"{act}: measured (plain)")
        if predicted_rate(act, 4) is not None:
            ax_rate.plot(fine, [predicted_rate(act, int(b)) for b in fine], "-",
                         color=colour, alpha=0.7, label=f"{act}: lambda(B), Yang et al.")
        if act == "relu":
            # Wikipedia's sentence is about the NORM: its per-layer rate is sqrt(rate)
            ax_rate.plot(B, np.sqrt(rate), "x", color=colour, ms=8,
                         label="relu: measured NORM rate = sqrt(rate)")
        res = [c for c in m["residual"] if c["activation"] == act]
        if res:
            ax_rate.plot([c["batch_size"] for c in res], [c["residual"] for c in res],
                         "s--", mfc="none", color=colour, alpha=0.8,
                         label=f"{act}: measured (residual)")
    limit = s["verdict_max_batch_ratio"] * s["width"]
    if limit < max(sizes):
        ax_rate.axvspan(limit * 1.05, max(sizes) * 1.3, color="0.9", zorder=0,
                        label=f"B > width/8: not judged (width {s['width']})")
    ax_rate.axhline(math.pi / (math.pi - 1), color="tab:red", ls=":", lw=1)
    ax_rate.axhline(1.0, color="0.4", lw=0.8)
    ax_rate.set_xscale("log", base=2)
    ax_rate.set_yscale("log")
    ax_rate.yaxis.set_major_formatter(plt.matplotlib.ticker.ScalarFormatter())
    ax_rate.yaxis.set_minor_formatter(plt.matplotlib.ticker.FormatStrFormatter("%.1f"))
    ax_rate.set_xticks(sizes)
    ax_rate.set_xticklabels([str(b) for b in sizes])
    ax_rate.set_xlabel("batch size B")
    ax_rate.set_ylabel("growth of ||dL/dW_l||^2 per layer, going down")
    ax_rate.set_title("per-layer rate: measured vs closed form\n"
                      "(dotted: ReLU limit pi/(pi-1) = 1.467; bars: +-1 sd over inits)",
                      fontsize=10)
    ax_rate.legend(fontsize=7, loc="upper right")

    # Panel 2: ReLU profiles (mean over inits of log, relative to the top BN layer)
    shown = [b for b in sizes if b in (4, 16, max(sizes))] or sizes
    cmap = plt.get_cmap("viridis")
    for i, B in enumerate(shown):
        colour = cmap(i / max(1, len(shown) - 1) * 0.85)
        for p in m["profiles"]:
            if p["activation"] != "relu" or p["batch_size"] != B:
                continue
            y = np.array(p["log_squared_norm"]) / math.log(10)
            style = "-" if p["architecture"] == "plain" else "--"
            ax_prof.plot(np.arange(len(y)), y, style, color=colour,
                         label=f"ReLU B={B}, {p['architecture']}")
    skip, depth = s["skip"], s["depth"]
    ax_prof.axvspan(skip, depth - 1 - skip, color="0.93", zorder=0, label="fit range")
    ax_prof.set_xlabel("layer l (0 = next to the input)")
    ax_prof.set_ylabel("log10 ||dL/dW_l||^2 - log10 (top BN layer)")
    ax_prof.set_title(f"ReLU, width {s['width']}, depth {depth}: mean over "
                      f"{s['replicates']} inits", fontsize=10)
    ax_prof.legend(fontsize=7)

    w = m["wikipedia_reading"]
    fig.suptitle(f"Gradient explosion in deep BN nets at init (Yang et al. 2019): squared "
                 f"gradient norm x lambda(B) per layer; residual blocks relieve it. "
                 f"Verdict: {result.verdict}\nWikipedia's 'norm ~ lambda^L': squared-norm "
                 f"reading fits {w['squared_reading_agrees']}/{len(w['cases'])}, "
                 f"norm reading {w['norm_reading_agrees']}/{len(w['cases'])} judged cases",
                 fontsize=10)
    fig.tight_layout()
    return fig
