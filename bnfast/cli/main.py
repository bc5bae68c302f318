"""`bnfast COMMAND ...`: finds the subcommand modules of bnfast.cli (those that define
``register``), builds the parser, dispatches. Exit codes: what the subcommand returns;
2 for usage errors (argparse's convention); 130 after Ctrl-C."""

import argparse
import sys

from .. import __version__
from .._registry import collect

__all__ = ["main"]


def build_parser():
    """The argparse parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="bnfast",
        description="Batch normalization numerics, and checks of what the literature "
                    "claims about batch normalization.")
    parser.add_argument("--version", action="version", version=f"bnfast {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in collect(__package__, "register"):
        register(subparsers)
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
