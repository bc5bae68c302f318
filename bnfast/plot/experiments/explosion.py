"""Figure of the explosion experiment (version 3): for each activation and batch size
of the extrapolation, the per-layer rate against 1/width with the fitted finite-width
form, the extrapolated infinite-width rate with its interval, lambda(B) and the
tolerance band around it; below, the rates against B (extrapolated, the networks at
their width, residual blocks, the norm reading) and the ReLU profiles
log ||dL/dW_l||^2 that the rates are fitted on (plain and residual nets)."""

import math

import numpy as np

__all__ = ["draw"]

_COLOURS = {"linear": "tab:blue", "relu": "tab:red", "tanh": "tab:green"}


def _extrapolation_panel(ax, case, s, network):
    """Rate vs 1/width for one (activation, B): the mean over inits at every width
    (+-1 SE; hollow: not fitted), the fit exp(a + c N^-p), rate_inf with its 90%
    interval at 1/width = 0, lambda(B) and the band of the tolerance, and the bnfast
    networks at their width."""
    colour = _COLOURS.get(case["activation"], "black")
    for w in case["widths"]:
        x, mean, se = 1.0 / w["width"], w["log_rate_mean"], w["log_rate_se"]
        ax.errorbar([x], [math.exp(mean)],
                    yerr=[[math.exp(mean) - math.exp(mean - se)],
                          [math.exp(mean + se) - math.exp(mean)]],
                    fmt="o", ms=4, capsize=2, color=colour,
                    mfc=colour if w["fitted"] else "none")
    if "slope" in case:
        smallest = min(case["fitted_widths"])
        grid = np.linspace(0.0, 1.0 / smallest, 200)
        with np.errstate(divide="ignore"):
            N = np.where(grid > 0, 1.0 / np.maximum(grid, 1e-300), np.inf)
        curve = np.exp(case["intercept"] + case["slope"] * N ** -case["exponent"])
        ax.plot(grid, curve, "-", color=colour, lw=1, alpha=0.8,
                label=f"fit a + c N^-{case['exponent']:g}")
    ax.errorbar([0.0], [case["rate"]], yerr=[[case["rate"] - case["rate_low"]],
                                             [case["rate_high"] - case["rate"]]],
                fmt="D", ms=5, capsize=3, color="black", label="rate_inf, 90% interval")
    if case["predicted"] is not None:
        lam, frac = case["predicted"], s["tolerance_fraction"]
        ax.axhline(lam, color="0.3", ls="--", lw=1, label="lambda(B)")
        ax.axhspan(lam ** (1 - frac), lam ** (1 + frac), color="0.9", zorder=0,
                   label=f"tolerance: exponent +-{frac:.0%}")
    if network is not None:
        mean, se = network["log_rate_mean"], network["log_rate_se"]
        ax.errorbar([1.0 / network["width"]], [network["measured"]],
                    yerr=[[network["measured"] - math.exp(mean - se)],
                          [math.exp(mean + se) - network["measured"]]],
                    fmt="s", ms=6, mfc="none", capsize=2, color="black",
                    label=f"bnfast networks, width {network['width']}")
    values = [math.exp(w["log_rate_mean"] + k * w["log_rate_se"]) for w in case["widths"]
              for k in (-1, 1)] + [case["rate_low"], case["rate_high"]]
    if case["predicted"] is not None:
        values.append(case["predicted"])
    if network is not None:
        values.append(network["measured"])
    low, high = min(values), max(values)
    ax.set_ylim(low - 0.15 * (high - low), high + 0.15 * (high - low))
    ax.set_xlim(-0.04 / min(w["width"] for w in case["widths"]),
                1.08 / min(w["width"] for w in case["widths"]))
    verdict = ("not judged" if case["predicted"] is None else
               case["outcome"] if case["method_ok"] else "undecided (method check)")
    ax.set_title(f"{case['activation']} B={case['batch_size']}: {verdict}", fontsize=9)
    ax.tick_params(labelsize=7)
    ax.xaxis.get_offset_text().set_fontsize(7)


def _rates_panel(ax, m, s, plt):
    """Rates against B: lambda(B), the extrapolated rates (90% intervals), the bnfast
    networks at their width, the residual nets, and the norm reading sqrt(rate)."""
    from ...experiments.explosion import predicted_rate

    sizes = sorted({c["batch_size"] for c in m["networks"]})
    fine = np.unique(np.geomspace(4, max(sizes), 200).round().astype(int))
    for act in s["activations"]:
        colour = _COLOURS.get(act, "black")
        ext = [c for c in m["extrapolation"] if c["activation"] == act]
        B = np.array([c["batch_size"] for c in ext])
        rate = np.array([c["rate"] for c in ext])
        ax.errorbar(B, rate, yerr=[rate - [c["rate_low"] for c in ext],
                                   [c["rate_high"] for c in ext] - rate],
                    fmt="D", ms=5, capsize=3, color=colour,
                    label=f"{act}: extrapolated to infinite width")
        nets = [c for c in m["networks"] if c["activation"] == act]
        ax.plot([c["batch_size"] for c in nets], [c["measured"] for c in nets], "o",
                mfc="none", color=colour, alpha=0.8,
                label=f"{act}: networks, width {nets[0]['width']}" if nets else None)
        if predicted_rate(act, 4) is not None:
            ax.plot(fine, [predicted_rate(act, int(b)) for b in fine], "-",
                    color=colour, alpha=0.6, label=f"{act}: lambda(B), Yang et al.")
        if act == "relu":
            # Wikipedia's sentence is about the NORM: its per-layer rate is sqrt(rate)
            ax.plot(B, np.sqrt(rate), "x", color=colour, ms=8,
                    label="relu: NORM rate = sqrt(rate_inf)")
        res = [c for c in m["residual"] if c["activation"] == act]
        if res:
            ax.plot([c["batch_size"] for c in res], [c["residual"] for c in res],
                    "s--", mfc="none", color=colour, alpha=0.7,
                    label=f"{act}: residual blocks")
    ax.axhline(math.pi / (math.pi - 1), color="tab:red", ls=":", lw=1)
    ax.axhline(1.0, color="0.4", lw=0.8)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(plt.matplotlib.ticker.ScalarFormatter())
    ax.yaxis.set_minor_formatter(plt.matplotlib.ticker.FormatStrFormatter("%.1f"))
    ax.set_xticks(sizes)
    ax.set_xticklabels([str(b) for b in sizes])
    ax.set_xlabel("batch size B")
    ax.set_ylabel("growth of ||dL/dW_l||^2 per layer, going down")
    ax.set_title("per-layer rate vs B (dotted: ReLU limit pi/(pi-1) = 1.467)",
                 fontsize=10)
    ax.legend(fontsize=6.5, loc="upper right", ncol=2)


def _profiles_panel(ax, m, s, plt):
    """ReLU profiles (mean over inits of log, relative to the top BN layer)."""
    sizes = sorted({p["batch_size"] for p in m["profiles"]})
    shown = [b for b in sizes if b in (4, 16, max(sizes))] or sizes
    cmap = plt.get_cmap("viridis")
    for i, B in enumerate(shown):
        colour = cmap(i / max(1, len(shown) - 1) * 0.85)
        for p in m["profiles"]:
            if p["activation"] != "relu" or p["batch_size"] != B:
                continue
            y = np.array(p["log_squared_norm"]) / math.log(10)
            style = "-" if p["architecture"] == "plain" else "--"
            ax.plot(np.arange(len(y)), y, style, color=colour,
                    label=f"ReLU B={B}, {p['architecture']}")
    skip, depth = s["skip"], s["depth"]
    ax.axvspan(skip, depth - 1 - skip, color="0.93", zorder=0, label="fit range")
    ax.set_xlabel("layer l (0 = next to the input)")
    ax.set_ylabel("log10 ||dL/dW_l||^2 - log10 (top BN layer)")
    ax.set_title(f"ReLU networks, width {s['width']}, depth {depth}: mean over "
                 f"{s['replicates']} inits", fontsize=10)
    ax.legend(fontsize=7)


def draw(result, plt):
    """The panels of the module docstring, from result.measurements and settings."""
    m, s = result.measurements, result.settings
    acts = s["activations"]
    sizes = sorted(int(b) for b in s["extrapolation"])
    cols = len(sizes)
    fig = plt.figure(figsize=(3.6 * cols + 1, 2.7 * len(acts) + 5.2))
    grid = fig.add_gridspec(len(acts) + 1, 2 * cols,
                            height_ratios=[1.0] * len(acts) + [1.9])
    networks = {(c["activation"], c["batch_size"]): c for c in m["networks"]}
    cases = {(c["activation"], c["batch_size"]): c for c in m["extrapolation"]}
    legend_done = False
    for i, act in enumerate(acts):
        for j, B in enumerate(sizes):
            ax = fig.add_subplot(grid[i, 2 * j:2 * j + 2])
            _extrapolation_panel(ax, cases[(act, B)], s, networks.get((act, B)))
            if i == len(acts) - 1:
                ax.set_xlabel("1 / width", fontsize=8)
            if j == 0:
                ax.set_ylabel("rate per layer", fontsize=8)
            if not legend_done and cases[(act, B)]["predicted"] is not None:
                ax.legend(fontsize=6, loc="best")
                legend_done = True
    _rates_panel(fig.add_subplot(grid[-1, :cols]), m, s, plt)
    _profiles_panel(fig.add_subplot(grid[-1, cols:]), m, s, plt)

    w = m["wikipedia_reading"]
    verdict = result.verdict
    verdict = verdict.text if verdict.label == "refuted" else verdict.label
    fig.suptitle(f"Gradient explosion in deep BN nets at init (Yang et al. 2019): squared "
                 f"gradient norm x lambda(B) per layer; residual blocks relieve it.\n"
                 f"Verdict: {verdict}. Rates extrapolated in width (filled: the fitted "
                 f"widths >= {s['min_width_per_batch']} B; bars +-1 SE over inits; "
                 f"diamond: rate_inf and its 90% interval).\nWikipedia's 'norm ~ "
                 f"lambda^L': the squared-norm reading fits {w['squared_reading_agrees']}/"
                 f"{len(w['cases'])}, the norm reading {w['norm_reading_agrees']}/"
                 f"{len(w['cases'])} judged cases", fontsize=10)
    top = 1.0 - 0.55 / fig.get_figheight()
    fig.tight_layout(rect=(0, 0, 1, top))
    return fig
