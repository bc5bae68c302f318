"""`bnfast run NAME [--quick] [--json] [--out FILE.json] [--plot PATH] [--seed S]
[--scheduler ADDR] [--no-progress]` and `bnfast run --list`: one empirical claim about
BN as an experiment with a verdict (docs/experiments/README.md; bnfast.experiments).

Exit codes: 0 the experiment ran (whatever its verdict); 2 usage errors (unknown name,
bad seed, unreachable scheduler, an --out or --plot file that cannot be written or
exists without --overwrite: all checked before the run starts); 130 after Ctrl-C or
SIGTERM (the local workers stopped; no verdict from a partial grid; --out and --plot
files untouched).
"""

import json
import sys
import textwrap

from . import _options as options

__all__ = ["register", "render", "run"]


def register(subparsers):
    parser = subparsers.add_parser(
        "run", help="run one experiment on an empirical claim about BN, with a verdict",
        description="Runs one experiment that settles an empirical claim about batch "
                    "normalization and prints the claim, what was measured and a verdict "
                    "decided by a rule fixed in advance. `bnfast run --list` lists them.")
    parser.add_argument("name", nargs="?", metavar="NAME",
                        help="the experiment (see --list)")
    parser.add_argument("--list", action="store_true", help="list the experiments")
    parser.add_argument("--quick", action="store_true",
                        help="the reduced set-up (under a minute; same code as the full run)")
    options.add_json(parser)
    options.add_out(parser, "the result (the object --json prints)")
    options.add_plot(parser, "the experiment's figure")
    options.add_seed(parser, "the run")
    options.add_scheduler(parser)
    options.add_progress(parser)
    parser.set_defaults(run=run)


def run(args):
    from .. import experiments
    from ..executors import Interrupted

    if args.list:
        for name in experiments.names():
            print(f"{name:<11} {experiments.experiment(name).source}")
        return 0
    if args.name is None:
        return options.fail(args, "name an experiment (one of: "
                            + ", ".join(experiments.names()) + "), or use --list")
    try:
        experiments.experiment(args.name)
        seed = options.seed(args)
        options.check_json_out(args)
        options.check_plot(args)
        client = options.scheduler_client(args)
    except ValueError as exc:
        return options.fail(args, str(exc))
    try:
        result = experiments.run(args.name, quick=args.quick, seed=seed, executor=client,
                                 progress=not args.no_progress)
    except Interrupted as exc:
        print(f"bnfast run {args.name}: interrupted; {len(exc.finished)} of {exc.total} "
              "runs had finished (no verdict from a partial grid)", file=sys.stderr)
        return 130
    finally:
        if client is not None:
            client.close()
    fields = result.to_dict()
    print(json.dumps(fields, indent=2) if args.json else render(result))
    if args.out is not None:
        status = options.write_json_out(args, fields)
        if status:
            return status
    if args.plot is None:
        return 0

    def draw(path):
        from ..plot.experiments import plot_experiment
        plot_experiment(result, path)
    return options.write_plot(args, draw)


def _wrap(text, indent="  "):
    return textwrap.fill(" ".join(str(text).split()), width=88, initial_indent=indent,
                         subsequent_indent=indent)


def _number(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_number(v) for v in value) + "]"
    return str(value)


def render(result):
    """The terminal report of an ExperimentResult."""
    spec_lines = [f"{k} = {_number(v)}" for k, v in result.settings.items()
                  if k != "reduced" and not isinstance(v, dict)]
    from ..experiments.result import QUICK_LABEL, fragility_line, verdict_line

    lines = [f"Experiment {result.name}" + (f" - {QUICK_LABEL}" if result.quick else ""),
             "Claim:", _wrap(f'"{result.claim}"'), _wrap(f"-- {result.source}"),
             "Set-up:", _wrap("; ".join(spec_lines))]
    reduced = result.settings.get("reduced") or []
    if reduced:
        lines.append("Reduced relative to the paper:")
        lines += [_wrap(f"- {item}") for item in reduced]
    from ..experiments import experiment

    lines.append("Measured:")
    lines += ["  " + line for line in experiment(result.name).summary(result.measurements)]
    lines += [f"Rule (version {result.rule_version}, sha256 {result.rule_hash[:12]}):",
              _wrap(result.rule)]
    lines.append(verdict_line(result))     # the key figures; --json has every number
    lines.append(f"Fragility: {fragility_line(result.fragility)}")
    cpu = "" if result.cpu_seconds is None else f"; tasks' CPU time {result.cpu_seconds:.1f} s"
    lines.append(f"({result.seconds:.1f} s{cpu})")
    return "\n".join(lines)
