"""`bnfast hessian NET.pkl DATA.npz [--mode train|eval] [--top K] [--bottom K] [--trace]
[--density] [--layers] [--json] [--plot PATH] [--seed S] [--no-progress]`: the curvature
of a network's loss on a data set (bnfast.curvature; docs/math/curvature.md).

NET.pkl is a pickled bnfast.Network (pickle.dump(net, f)); DATA.npz holds the arrays X
and y (numpy.savez(path, X=X, y=y)) as ``net.loss(X, y)`` takes them. A pickle can run
code when loaded: load only files you trust.

Exit codes: 0 success; 2 usage errors (unreadable files, arrays that do not fit the
network, bad numbers, unwritable figure), all found before any Hessian-vector product;
130 after Ctrl-C.
"""

import json
import math
import pickle

from . import _options as options

__all__ = ["register", "render", "run"]

MODES = {"train": "batch statistics over DATA: the loss being trained",
         "eval": "population statistics net.running_mean/var: the inference loss"}


def register(subparsers):
    parser = subparsers.add_parser(
        "hessian", help="eigenvalues, trace and spectral density of a network's Hessian "
                        "in train or eval mode",
        description="The curvature of a network's loss on a data set from exact "
                    "Hessian-vector products: the largest (and smallest) eigenvalues by "
                    "Lanczos, the trace by Hutch++ with a standard error, the spectral "
                    "density by stochastic Lanczos quadrature; of the train-mode loss "
                    "(batch statistics, the loss being trained) or the eval-mode loss "
                    "(population statistics, what tools that put a model in eval mode "
                    "measure).")
    parser.add_argument("net", metavar="NET.pkl",
                        help="a pickled bnfast.Network (load only files you trust)")
    parser.add_argument("data", metavar="DATA.npz", help="arrays X and y (numpy.savez)")
    parser.add_argument("--mode", choices=list(MODES), default="train",
                        help="train: batch statistics (default); eval: population "
                             "statistics")
    parser.add_argument("--top", default="1", metavar="K",
                        help="the K largest eigenvalues (default 1)")
    parser.add_argument("--bottom", default="0", metavar="K",
                        help="also the K smallest eigenvalues (default 0: none)")
    parser.add_argument("--trace", action="store_true",
                        help="the trace (Hutch++, 99 products, with a standard error)")
    parser.add_argument("--density", action="store_true",
                        help="the spectral density (SLQ: 10 runs of 60 Lanczos steps)")
    parser.add_argument("--layers", action="store_true",
                        help="also each layer's diagonal block of the Hessian")
    options.add_json(parser)
    options.add_plot(parser, "the eigenvalues found and the density")
    options.add_seed(parser, "the random vectors")
    options.add_progress(parser)
    parser.set_defaults(run=run)


def _count(args, flag, text, low, high):
    value = options.integer(text, flag)
    if not low <= value <= high:
        raise ValueError(f"{flag} must be in [{low}, {high}] (the network has {high} "
                         f"parameters), got {value}")
    return value


def load(args):
    """(net, X, y) from the two files; ValueError with the message for the user."""
    import numpy as np

    from ..nn.network import Network

    try:
        with open(args.net, "rb") as fh:
            net = pickle.load(fh)
    except OSError as exc:
        raise ValueError(f"cannot read {args.net}: {exc.strerror or exc}") from None
    except Exception as exc:     # a file that is not a pickle, or of another program
        raise ValueError(f"{args.net} is not a pickled bnfast.Network "
                         f"({type(exc).__name__}: {exc})") from None
    if not isinstance(net, Network):
        raise ValueError(f"{args.net} holds a {type(net).__name__}, not a bnfast.Network")
    try:
        with np.load(args.data, allow_pickle=False) as data:
            missing = [name for name in ("X", "y") if name not in data.files]
            if missing:
                raise ValueError(f"{args.data} has no array {' or '.join(missing)} (it "
                                 f"holds {', '.join(data.files) or 'nothing'}); write it "
                                 "with numpy.savez(path, X=X, y=y)")
            X, y = data["X"], data["y"]
    except OSError as exc:
        raise ValueError(f"cannot read {args.data}: {exc.strerror or exc}") from None
    except ValueError as exc:
        if "has no array" in str(exc):
            raise
        raise ValueError(f"{args.data} is not an .npz file of arrays ({exc})") from None
    try:
        net.loss(X, y, mode=args.mode)       # checks the shapes against the network
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{args.data} does not fit {args.net}: {exc}") from None
    return net, X, y


def run(args):
    from .. import curvature

    try:
        seed = options.seed(args)
        options.check_plot(args)
        net, X, y = load(args)
        n = net.num_params
        if n == 0:
            raise ValueError(f"{args.net} has no parameters")
        top = _count(args, "--top", args.top, 1, n)
        bottom = _count(args, "--bottom", args.bottom, 0, n)
        curvature._scipy_linalg()          # scipy is there (else a usage error)
    except (ValueError, ImportError) as exc:
        return options.fail(args, str(exc))
    progress = not args.no_progress
    common = {"mode": args.mode, "seed": seed, "progress": progress}
    report = {"net": args.net, "data": args.data, "mode": args.mode, "num_params": n,
              "rows": int(len(X)), "loss": float(net.loss(X, y, mode=args.mode)),
              "seed": seed}

    def measure(blocks):
        out = {"top": curvature.top_eigenvalues(net, X, y, k=top, blocks=blocks,
                                                **common)}
        if bottom:
            out["bottom"] = curvature.top_eigenvalues(net, X, y, k=bottom,
                                                      which="smallest", blocks=blocks,
                                                      **common)
        if args.trace:
            out["trace"] = curvature.trace(net, X, y, blocks=blocks, **common)
        if args.density:
            out["density"] = curvature.density(net, X, y, blocks=blocks, **common)
        return out

    whole = measure(None)
    report.update({key: _fields(value) for key, value in whole.items()})
    if args.layers:
        per_layer = measure("layer")
        slices = net.param_slices
        report["layers"] = [
            {"layer": i, "num_params": slices[i].stop - slices[i].start,
             **{key: _fields(per_layer[key][i]) for key in per_layer}}
            for i in per_layer["top"]]
    print(json.dumps(report, indent=2) if args.json else render(report))
    if args.plot is None:
        return 0

    def draw(path):
        from ..plot.curvature import plot_curvature
        plot_curvature(path, report)
    return options.write_plot(args, draw)


def _fields(result):
    fields = result.to_dict()
    fields.pop("mode", None)
    return fields


# ---- the text -------------------------------------------------------------------

def _g(x, digits=6):
    return f"{x:.{digits}g}"


def _block_lines(fields, indent="  "):
    lines = []
    for key, title in (("top", "largest"), ("bottom", "smallest")):
        if key not in fields:
            continue
        pairs = fields[key]
        values = pairs["eigenvalues"] if key == "top" else pairs["eigenvalues"][::-1]
        residuals = pairs["residuals"] if key == "top" else pairs["residuals"][::-1]
        state = "" if pairs["converged"] else "  NOT CONVERGED (raise max_iter)"
        lines.append(f"{indent}{title} eigenvalues (Lanczos, {pairs['iterations']} "
                     f"products){state}:")
        lines += [f"{indent}  {i:>3}  {_g(v):>14}   residual {r:.1e}"
                  for i, (v, r) in enumerate(zip(values, residuals), start=1)]
    if "trace" in fields:
        t = fields["trace"]
        if t["exact"]:
            lines.append(f"{indent}trace {_g(t['estimate'])} (exact: {t['samples']} basis "
                         "vectors)")
        else:
            low, high = t["estimate"] - 1.645 * t["stderr"], t["estimate"] + 1.645 * t["stderr"]
            lines.append(f"{indent}trace {_g(t['estimate'])} +- {_g(t['stderr'], 3)} "
                         f"(Hutch++, {t['samples']} products; 1 sigma; 90% interval "
                         f"[{_g(low)}, {_g(high)}])")
    if "density" in fields:
        d = fields["density"]
        m, s = d["moments"], d["moments_stderr"]

        def pm(i):
            return "" if s[i] is None else f" +- {_g(s[i], 2)}"
        lines.append(f"{indent}density (SLQ, {d['runs']} runs x {d['steps']} steps, sigma "
                     f"{_g(d['sigma'], 3)}): support [{_g(d['grid'][0], 4)}, "
                     f"{_g(d['grid'][-1], 4)}]")
        lines.append(f"{indent}  mean eigenvalue {_g(m[1])}{pm(1)} (tr/n), mean squared "
                     f"{_g(m[2])}{pm(2)} (||H||_F^2/n)")
    return lines


def render(report):
    """The terminal report of `bnfast hessian`."""
    loss = report["loss"]
    lines = [f"bnfast hessian: {report['net']} on {report['data']} ({report['rows']} rows), "
             f"{report['num_params']} parameters",
             f"mode {report['mode']}: {MODES[report['mode']]}",
             f"loss {_g(loss) if math.isfinite(loss) else loss}"]
    lines += _block_lines(report)
    for layer in report.get("layers", []):
        lines.append(f"layer {layer['layer']} ({layer['num_params']} parameters, its "
                     "diagonal block):")
        lines += _block_lines(layer, indent="    ")
    return "\n".join(lines)
