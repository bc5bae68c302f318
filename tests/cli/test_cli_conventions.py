"""One CLI convention across the subcommands (issue 24): every --help parses and prints
no argparse escape, the same option has the same metavar everywhere and two options of
one subcommand do not share a metavar, every long-running subcommand has --no-progress
from the one builder, and integer counts accept 1e6 through the one rule
(_validate.integer_text)."""

import pathlib

import pytest

from bnfast import _validate
from bnfast.cli import _options as options
from bnfast.cli.main import build_parser, main

CLI = pathlib.Path(options.__file__).parent
#: The subcommands that can run for long (a sweep, an experiment, exact audits, Lanczos).
LONG_RUNNING = ("audit", "hessian", "run", "search")
#: Options of one subcommand that may share a metavar: they take the same kind of value.
SAME_KIND = {frozenset({"--top", "--bottom"}), frozenset({"--results", "--asv"})}


def _subparsers():
    parser = build_parser()
    (action,) = [a for a in parser._actions if a.dest == "command"]
    return action.choices


def _options(sub):
    """{option string: metavar} of a subcommand's options that take a value."""
    return {a.option_strings[-1]: a.metavar for a in sub._actions
            if a.option_strings and a.nargs != 0 and a.metavar is not None}


@pytest.mark.parametrize("name", sorted(_subparsers()))
def test_help_parses_and_has_no_escaped_percent(name, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([name, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: bnfast {name}")
    assert "%%" not in text and "%(" not in text


def test_an_option_has_one_metavar_across_subcommands():
    seen = {}
    for name, sub in _subparsers().items():
        for option, metavar in _options(sub).items():
            seen.setdefault(option, {}).setdefault(metavar, []).append(name)
    differing = {option: by for option, by in seen.items() if len(by) > 1}
    assert not differing, differing


@pytest.mark.parametrize("name", sorted(_subparsers()))
def test_options_of_one_subcommand_have_distinct_metavars(name):
    by_metavar = {}
    for option, metavar in _options(_subparsers()[name]).items():
        by_metavar.setdefault(metavar, set()).add(option)
    shared = {m: o for m, o in by_metavar.items() if len(o) > 1 and frozenset(o) not in SAME_KIND}
    assert not shared, shared      # e.g. --data D and --dim D before issue 24


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_long_running_subcommands_have_no_progress(name):
    sub = _subparsers()[name]
    (action,) = [a for a in sub._actions if "--no-progress" in a.option_strings]
    assert action.help == "no progress bar on stderr"


def test_shared_flags_are_written_only_by_the_builders():
    for path in CLI.glob("*.py"):
        if path.name == "_options.py":
            continue
        source = path.read_text()
        for flag in ("--no-progress", "--seed", "--json", "--plot", "--scheduler", "--out",
                     "--exact"):
            assert f'add_argument("{flag}"' not in source, (path.name, flag)


def test_audit_passes_no_progress_to_the_library(monkeypatch, capsys):
    from bnfast.claims import audit as audit_module

    seen = []
    real = audit_module.audit

    def spy(*args, **kwargs):
        seen.append(kwargs["progress"])
        return real(*args, **kwargs)
    monkeypatch.setattr(audit_module, "audit", spy)
    assert main(["audit", "theorem-4-1", "--no-progress"]) == 0
    assert main(["audit", "theorem-4-1"]) == 0
    assert seen == [False, True]
    assert "Theorem 4.1" in capsys.readouterr().out


@pytest.mark.parametrize("text, value", [
    ("1000000", 10**6), ("1_000_000", 10**6), ("1e6", 10**6), ("4.0E6", 4 * 10**6),
    ("2.5e3", 2500), (" 12 ", 12), ("-3", -3), ("1e30", 10**30), ("0", 0)])
def test_integer_text_accepts_integral_numbers(text, value):
    assert _validate.integer_text(text, "--n") == value
    assert options.integer(text, "--n") == value


@pytest.mark.parametrize("text", ["1.5", "1e-3", "inf", "nan", "ten", "", "1e", "0x10",
                                  "1e999999999"])
def test_integer_text_refuses_the_rest(text):
    with pytest.raises(ValueError, match=r"^--n (must be an integer|is out of range)"):
        _validate.integer_text(text, "--n")


def test_search_accepts_1e6_style_counts(capsys):
    assert main(["search", "lemma-4-5", "--instances", "2e3", "--samples", "4e0",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "over 2,000 random instances (data random, dim 2, samples 4," in out


@pytest.mark.parametrize("args, message", [
    (["--instances", "2.5"], "--instances must be an integer (e.g. 1000000 or 1e6), got"),
    (["--instances=-1e3"], "--instances must be >= "),
    (["--dim", "2.5"], "--dim must be an integer"),
    (["--seed", "1e30"], "--seed must be in [0, 2**63)"),
])
def test_search_usage_errors_exit_2(args, message, capsys):
    assert main(["search", "lemma-4-5", *args, "--no-progress"]) == 2
    assert message in capsys.readouterr().err


def test_seed_accepts_integral_float_notation(capsys):
    assert main(["audit", "theorem-4-1", "--seed", "1e0", "--json"]) == 0
    assert '"seed": 1' in capsys.readouterr().out
