"""`bnfast COMMAND ...`: finds the subcommand modules of bnfast.cli, builds the parser,
dispatches. Exit codes: what the subcommand returns; 2 for usage errors (argparse's
convention); 130 after Ctrl-C."""

import argparse
import importlib
import pkgutil
import sys

from .. import __version__

__all__ = ["main"]

_NOT_SUBCOMMANDS = ("main",)


def _subcommand_modules():
    package = importlib.import_module(__package__)
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if info.name not in _NOT_SUBCOMMANDS and not info.name.startswith("_"):
            yield importlib.import_module(f"{__package__}.{info.name}")


def build_parser():
    """The argparse parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="bnfast",
        description="Batch normalization numerics, and checks of what the literature "
                    "claims about batch normalization.")
    parser.add_argument("--version", action="version", version=f"bnfast {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _subcommand_modules():
        module.register(subparsers)
    return parser


def main(argv=None):
    """Entry point of the `bnfast` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print(f"bnfast {args.command}: interrupted", file=sys.stderr)
        return 130
