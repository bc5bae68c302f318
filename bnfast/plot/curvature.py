"""The figures of the curvature (bnfast.curvature): `bnfast hessian --plot`, the
eigenvalues found (whole network and, with --layers, each layer's block) and, with
--density, the spectral density (``plot_curvature``); the sharpness along training
against the edge of stability 2/lr (``plot_sharpness``)."""

import numpy as np

from .save import figure_format, pyplot, save_and_close

__all__ = ["plot_curvature", "plot_sharpness"]


def _rows(report):
    """(label, fields) for the whole network and each layer block in ``report``."""
    rows = [("network", report)]
    rows += [(f"layer {layer['layer']}", layer) for layer in report.get("layers", [])]
    return rows


def plot_curvature(path, report):
    """Writes the figure of a `bnfast hessian --json` report (a dict: "mode", "top",
    optionally "bottom", "trace", "density", "layers") to ``path`` (.png, .pdf, .svg).

    Left: the eigenvalues found, one row per block (largest as triangles up, smallest
    as triangles down; the trace in the label). Right (when the report has a density):
    the Gaussian-broadened spectral density on a log scale, with the largest
    eigenvalue marked."""
    figure_format(path)
    plt = pyplot()
    rows = _rows(report)
    has_density = "density" in report
    fig, axes = plt.subplots(1, 2 if has_density else 1,
                             figsize=(11.5 if has_density else 6.5,
                                      1.2 + 0.45 * max(len(rows), 3)),
                             squeeze=False)
    ax = axes[0, 0]
    labels = []
    for i, (label, fields) in enumerate(rows):
        top = np.asarray(fields["top"]["eigenvalues"])
        ax.scatter(top, np.full(top.shape, i), marker="^", color="tab:red", zorder=3,
                   label="largest" if i == 0 else None)
        if "bottom" in fields:
            bottom = np.asarray(fields["bottom"]["eigenvalues"])
            ax.scatter(bottom, np.full(bottom.shape, i), marker="v", color="tab:blue",
                       zorder=3, label="smallest" if i == 0 else None)
        if "trace" in fields:
            t = fields["trace"]
            label += f"\ntr {t['estimate']:.4g}" + ("" if t["exact"]
                                                    else f" +- {t['stderr']:.2g}")
        labels.append(label)
    ax.axvline(0.0, color="0.6", lw=0.8)
    ax.set_yticks(range(len(rows)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("eigenvalue")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    ax.set_title(f"Hessian eigenvalues, {report['mode']} mode "
                 f"({report['num_params']} parameters)", fontsize=10)
    if has_density:
        dens = axes[0, 1]
        floor = 1e-6 * max(max(fields["density"]["density"]) for _, fields in rows
                           if "density" in fields)
        for label, fields in rows:
            if "density" not in fields:
                continue
            d = fields["density"]
            grid, values = np.asarray(d["grid"]), np.asarray(d["density"], dtype=float)
            values[values < floor] = np.nan      # the Gaussians' far tails: not drawn
            dens.semilogy(grid, values, lw=1.2 if label == "network" else 0.8,
                          label=label)
        dens.set_ylim(bottom=floor)
        lam = report["top"]["eigenvalues"][0]
        dens.axvline(lam, color="tab:red", lw=0.8, ls="--",
                     label=f"largest {lam:.4g}")
        d = report["density"]
        dens.set_xlabel("eigenvalue")
        dens.set_ylabel("density (Gaussian-broadened)")
        dens.set_title(f"spectral density (SLQ, {d['runs']} runs x {d['steps']} steps, "
                       f"sigma {d['sigma']:.2g})", fontsize=10)
        dens.legend(fontsize=8)
    fig.tight_layout()
    return save_and_close(fig, path)


def plot_sharpness(path, steps, values, lr, label="top eigenvalue (train mode)"):
    """Writes the sharpness along training to ``path`` (.png, .pdf, .svg): the top
    Hessian eigenvalue ``values`` at the training steps ``steps`` (1-D, same length),
    against 2/lr (``lr`` a float, or one rate per recorded step), the stability edge of
    gradient descent on a quadratic (Cohen et al. 2021)."""
    figure_format(path)
    steps = np.asarray(steps, dtype=float)
    values = np.asarray(values, dtype=float)
    if steps.ndim != 1 or steps.shape != values.shape or steps.size == 0:
        raise ValueError("steps and values must be 1-D arrays of one non-zero length, got "
                         f"shapes {steps.shape} and {values.shape}")
    edge = 2.0 / np.broadcast_to(np.asarray(lr, dtype=float), steps.shape)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, values, "o-", ms=3, lw=1.2, color="tab:red", label=label)
    ax.plot(steps, edge, "k--", lw=1, label="2 / lr")
    ax.set_xlabel("step")
    ax.set_ylabel("eigenvalue")
    ax.set_title("sharpness along training", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_and_close(fig, path)
